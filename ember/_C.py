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


# the __torch_function__ protocol's switches (frontend/torch_function.py)
from .frontend.torch_function import (DisableTorchFunction,  # noqa: E402,F401
                                      DisableTorchFunctionSubclass,
                                      _disabled_torch_function_impl)
from .frontend.torch_function import is_torch_function_enabled as _is_torch_function_enabled  # noqa: E402,F401,E501
from .frontend.torch_function import (  # noqa: E402,F401
    is_torch_function_mode_enabled as _is_torch_function_mode_enabled)


def _len_torch_function_stack() -> int:
    from .ir.torch_function import STATE
    return len(STATE.modes)


def _get_function_stack_at(i: int):
    from .ir.torch_function import STATE
    return STATE.modes[i]


def _push_on_torch_function_stack(mode) -> None:
    from .ir.torch_function import push_mode
    push_mode(mode)


def _pop_torch_function_stack():
    from .ir.torch_function import pop_mode
    return pop_mode()


def _set_grad_enabled(mode: bool) -> None:
    """torch._C._set_grad_enabled: turn grad mode on or off (the call torch.compile's
    graphs make around a `no_grad` region, which a graph-break segment makes too)."""
    from .frontend.grad_state import STATE
    STATE.enabled = bool(mode)
