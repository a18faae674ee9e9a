"""`ember._assert`: an assertion that tracing records as a call (torch._assert).

A plain `assert` needs a concrete bool, so it cannot appear in a symbolically
traced program; `ember._assert(cond, msg)` can: ember.fx records it as a
call_function node, and running the graph checks the condition then.
"""
from __future__ import annotations

from ..ir.graph import has_side_effect


@has_side_effect        # dead-code elimination keeps the check (torch._assert is marked too)
def _assert(condition, message: str) -> None:
    """Raise AssertionError(message) unless `condition` is true (a bool, or a
    one-element tensor, as torch._assert)."""
    if not bool(condition):
        raise AssertionError(message)


_assert.__module__ = "ember"
