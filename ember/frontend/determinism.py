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
