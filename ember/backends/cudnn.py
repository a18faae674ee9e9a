"""ember.backends.cudnn: torch.backends.cudnn's switches over ember's optional cuDNN.

On CUDA, each convolution shape (forward, input gradient, weight gradient) runs either
ember's Triton implicit-GEMM kernels or cuDNN through NVIDIA's cuDNN frontend Python
package (`pip install ember[cuda]` brings `nvidia-cudnn-frontend` and the cuDNN library
wheel): the faster of the two, timed once per shape and remembered in ember's on-disk
autotune cache (docs/cuda.md, "Convolutions: Triton or cuDNN"). Where the package cannot
be imported or its library does not load, is_available() is False, one info line goes to
the `ember.backends.cudnn` logger and convolutions use Triton.

- `enabled` (default True): False never uses cuDNN (torch: cuDNN off).
- `allow_tf32` (default True): False keeps float32 convolutions in IEEE float32 on both
  sides (cuDNN's tensor-core engines left out, Triton's dot in "ieee"). True allows TF32
  where ember's float32 precision allows it (`ember.backends.cuda.matmul.allow_tf32` /
  `set_float32_matmul_precision`), which ember's convolutions have always followed; torch
  uses TF32 for convolutions from this flag alone.
- `deterministic` (default False): True keeps cuDNN to engines without the
  nondeterministic note (as does `ember.use_deterministic_algorithms(True)`).
- `benchmark` (default False): True times up to `benchmark_limit` cuDNN plans per shape
  (0: every plan, as in torch) and keeps the fastest, instead of the heuristics' first
  choice.
"""
from __future__ import annotations

import contextlib
import sys

enabled = True
benchmark = False
benchmark_limit = 10
deterministic = False
allow_tf32 = True


class _Fp32Precision:
    """`ember.backends.cudnn.conv` / `.rnn`: torch's newer spelling of allow_tf32,
    `fp32_precision` "tf32" or "ieee" (reads "none" after allow_tf32 = False, as torch's
    does). One state with allow_tf32: ember has no cuDNN RNNs, so both objects set it."""

    def __init__(self, op: str):
        object.__setattr__(self, "op", op)

    @property
    def fp32_precision(self) -> str:
        return "tf32" if sys.modules[__name__].allow_tf32 else "none"

    @fp32_precision.setter
    def fp32_precision(self, value: str) -> None:
        if value not in ("tf32", "ieee", "none"):
            raise ValueError(f"cudnn.{self.op}.fp32_precision must be 'tf32', 'ieee' or "
                             f"'none', got {value!r}")
        sys.modules[__name__].allow_tf32 = value == "tf32"

    def __setattr__(self, name, value):
        if name != "fp32_precision":
            raise AttributeError(f"Unknown attribute {name}")
        object.__setattr__(self, name, value)


conv = _Fp32Precision("conv")
rnn = _Fp32Precision("rnn")


def is_available() -> bool:
    """True when the cuDNN frontend package imports and its library loads."""
    from ..runtime.cuda import cudnn
    return cudnn.library() is not None


def version():
    """cuDNN's version as an int (91300 for 9.13.0), or None when it is not available."""
    from ..runtime.cuda import cudnn
    return cudnn.version()


def is_acceptable(tensor) -> bool:
    """torch.backends.cudnn.is_acceptable: a CUDA tensor of a dtype cuDNN takes, with
    cuDNN enabled and available."""
    return bool(enabled and getattr(tensor, "is_cuda", False) and
                tensor.dtype.name in ("float32", "float16", "bfloat16", "float64") and
                is_available())


@contextlib.contextmanager
def flags(enabled=False, benchmark=False, benchmark_limit=10, deterministic=False,
          allow_tf32=True, fp32_precision="none", depthwise_kernel="auto"):
    """torch.backends.cudnn.flags: set the switches inside the block, restore them after.
    fp32_precision "tf32" / "ieee" sets allow_tf32 True / False ("none": allow_tf32 as
    given); depthwise_kernel picks among cuDNN's own depthwise kernels in torch and has
    no meaning here."""
    if fp32_precision not in ("none", "tf32", "ieee"):
        raise ValueError(f"flags: fp32_precision must be 'none', 'tf32' or 'ieee', got "
                         f"{fp32_precision!r}")
    if fp32_precision != "none":
        allow_tf32 = fp32_precision == "tf32"
    module = sys.modules[__name__].__dict__
    names = ("enabled", "benchmark", "deterministic", "allow_tf32", "benchmark_limit")
    saved = {name: module[name] for name in names}
    module.update(enabled=enabled, benchmark=benchmark, deterministic=deterministic,
                  allow_tf32=allow_tf32, benchmark_limit=benchmark_limit)
    try:
        yield
    finally:
        module.update(saved)
