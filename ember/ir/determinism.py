"""Deterministic mode: torch.use_deterministic_algorithms's state and its alert.

Why ember's kernels are deterministic by construction, and what this mode changes:
- every generated kernel (LLVM and Triton) writes each output element from exactly
  one thread/program and reduces in a fixed order: there are no atomics in codegen
  (a test keeps it so), no split-K GEMM and no cross-program split reductions;
- CPU kernels split only *outer* (output) loops across threads, so the thread count
  changes who computes an element, never the order of its sums;
- scatter-style ops with duplicate indices (index_add, scatter_add, index_put with
  accumulate=True, the pooling/upsampling backwards) run as gather-form kernels or
  on the host (numpy's sequential np.add.at), never as racing atomic adds.
What the mode does:
- GEMM kernels use the documented default block configuration instead of a config
  autotuned by timing on this machine (a tuned BLOCK_K changes the summation order,
  so two machines could disagree in the last bits);
- ops tagged Tag.NONDETERMINISTIC (custom ops may declare it) raise, or warn with
  warn_only=True, naming the op, with PyTorch's wording.
`TORCH_NONDETERMINISTIC` lists the ops PyTorch documents as nondeterministic on some
device, and how ember runs each; tests check every entry.
"""
from __future__ import annotations

import warnings

from .errors import EmberError

_STATE = {"enabled": False, "warn_only": False}


class DeterminismError(EmberError, RuntimeError):
    """An op with no deterministic implementation ran in deterministic mode."""


def set_mode(mode: bool, warn_only: bool = False) -> None:
    if not isinstance(mode, bool) and mode not in (0, 1):
        raise TypeError("use_deterministic_algorithms expects a bool, but got "
                        f"{type(mode).__name__}")
    if not isinstance(warn_only, bool):
        raise TypeError("use_deterministic_algorithms: warn_only must be a bool, but got "
                        f"{type(warn_only).__name__}")
    _STATE["enabled"] = bool(mode)
    _STATE["warn_only"] = bool(mode) and warn_only


def enabled() -> bool:
    return _STATE["enabled"]


def warn_only() -> bool:
    return _STATE["warn_only"]


def alert_not_deterministic(caller: str) -> None:
    """Raise (or warn, with warn_only) that `caller` has no deterministic implementation."""
    if not _STATE["enabled"]:
        return
    message = (f"{caller} does not have a deterministic implementation, but you set "
               "'ember.use_deterministic_algorithms(True)'. You can turn off determinism just "
               "for this operation, or you can use the 'warn_only=True' option, if that's "
               "acceptable for your application.")
    if _STATE["warn_only"]:
        warnings.warn(message, UserWarning, stacklevel=3)
        return
    raise DeterminismError(message)


# PyTorch's documented nondeterministic ops (CUDA atomics, mostly in backward passes),
# under ember's op names, and why ember's route is deterministic.
_GATHER_OR_HOST = "one writer per output element (gather-form kernel or host numpy)"
TORCH_NONDETERMINISTIC: dict[str, str] = {
    "index_add": "host numpy np.add.at: sequential in index order",
    "scatter_add": "host numpy np.add.at: sequential in index order",
    "scatter": "host numpy: later indices win in index order, as on the CPU",
    "index_put": "host numpy (accumulate=True: np.add.at, sequential)",
    "index_select": "its backward is index_add: sequential on the host",
    "gather": "its backward is scatter_add: sequential on the host",
    "embedding": "its backward accumulates with np.add.at: sequential",
    "kthvalue": "host numpy partition/sort: fixed order",
    "median": "host numpy sort: fixed order; index of the first median",
    "nll_loss": "reduction in a fixed order",
    "ctc_loss": "host numpy dynamic programming: fixed order",
    "cumsum": "scan in a fixed order",
    "avg_pool3d": _GATHER_OR_HOST,
    "adaptive_avg_pool2d": _GATHER_OR_HOST,
    "adaptive_avg_pool3d": _GATHER_OR_HOST,
    "max_pool3d": _GATHER_OR_HOST,
    "adaptive_max_pool2d": _GATHER_OR_HOST,
    "fractional_max_pool2d": _GATHER_OR_HOST,
    "max_unpool2d": _GATHER_OR_HOST,
    "upsample_linear1d": _GATHER_OR_HOST,
    "upsample_bilinear2d": _GATHER_OR_HOST,
    "upsample_bicubic2d": _GATHER_OR_HOST,
    "upsample_trilinear3d": _GATHER_OR_HOST,
    "upsample_nearest2d": _GATHER_OR_HOST,
    "pad": "reflect/replicate backward: " + _GATHER_OR_HOST,
    "conv2d": "implicit-GEMM conv without split-K; default block config in this mode",
    "bmm": "GEMM without split-K; default block config in this mode",
    "mm": "GEMM without split-K; default block config in this mode",
}
