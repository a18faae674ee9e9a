"""ember._C: the handful of torch._C functions that library code calls directly.

torch._C is PyTorch's C++ binding; ember has none. Libraries nonetheless reach into it
for a few process-wide queries (torchvision's `_log_api_usage_once` in every model's
constructor, `_get_tracing_state()` in its detection heads), answered here with their
meaning in ember.
"""
from __future__ import annotations


def _log_api_usage_once(event: str) -> None:
    """PyTorch's opt-in API usage telemetry: ember records no usage, so nothing to do."""


def _get_tracing_state():
    """The active trace recorder while ember.jit.trace records, else None (a falsy
    value, which is all callers test)."""
    from .ir import dispatch
    from .frontend.jit import _JitRecorder
    for mode in dispatch.active_modes():
        if isinstance(mode, _JitRecorder):
            return mode
    return None
