"""torch.use_deterministic_algorithms and friends, over ember.ir.determinism's state.

See ember/ir/determinism.py for why ember's kernels are deterministic by construction
and exactly what the mode changes (default GEMM configs; NONDETERMINISTIC ops raise).
"""
from __future__ import annotations

from ..ir import determinism as _state

__all__ = ["use_deterministic_algorithms", "are_deterministic_algorithms_enabled",
           "is_deterministic_algorithms_warn_only_enabled"]


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Make every op either use a deterministic kernel or raise naming itself.

    With warn_only=True an op with no deterministic kernel warns instead of raising.
    Set it before ember.compile: compiled plans keep the kernels they were built with."""
    _state.set_mode(mode, warn_only)


def are_deterministic_algorithms_enabled() -> bool:
    return _state.enabled()


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    return _state.warn_only()


_DEBUG_MODES = {"default": 0, "warn": 1, "error": 2}


def set_deterministic_debug_mode(debug_mode) -> None:
    """torch's other spelling of use_deterministic_algorithms: 0/'default' off, 1/'warn'
    on with warnings, 2/'error' on with errors."""
    if isinstance(debug_mode, str):
        if debug_mode not in _DEBUG_MODES:
            raise RuntimeError("invalid value of debug_mode, expected one of `default`, "
                               f"`warn`, `error`, but got {debug_mode}")
        debug_mode = _DEBUG_MODES[debug_mode]
    if debug_mode not in (0, 1, 2):
        raise RuntimeError("invalid value of debug_mode, expected 0, 1, or 2, but got "
                           f"{debug_mode}")
    use_deterministic_algorithms(debug_mode != 0, warn_only=debug_mode == 1)


def get_deterministic_debug_mode() -> int:
    if not are_deterministic_algorithms_enabled():
        return 0
    return 1 if is_deterministic_algorithms_warn_only_enabled() else 2


__all__ += ["set_deterministic_debug_mode", "get_deterministic_debug_mode"]
