"""ember.amp: automatic mixed precision, torch.amp's names.

`autocast` (ember/frontend/autocast.py; op policies in ir/autocast.py), `GradScaler`
(grad_scaler.py), `custom_fwd`/`custom_bwd` for autograd.Function, and
`is_autocast_available`. `ember.cuda.amp` keeps torch.cuda.amp's deprecated spellings.
"""
from __future__ import annotations

import functools

from ..frontend.autocast import (autocast, get_autocast_dtype,  # noqa: F401 - public names
                                 is_autocast_enabled)
from ..ir import autocast as _state
from .grad_scaler import GradScaler  # noqa: F401

__all__ = ["autocast", "GradScaler", "custom_fwd", "custom_bwd", "is_autocast_available"]


def is_autocast_available(device_type: str) -> bool:
    return device_type in ("cpu", "cuda")


def custom_fwd(fwd=None, *, device_type: str, cast_inputs=None):
    """Decorate an autograd.Function's forward: with `cast_inputs`, an enabled autocast
    region runs it with its floating-point tensors of that device cast to `cast_inputs`
    and autocast off; the autocast state is kept in ctx for `custom_bwd`."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def decorate_fwd(ctx, *args, **kwargs):
        ctx._fwd_used_autocast = _state.is_enabled(device_type)
        ctx._dtype = _state.get_dtype(device_type)
        if cast_inputs is None or not ctx._fwd_used_autocast:
            return fwd(ctx, *args, **kwargs)
        args = tuple(_cast(a, device_type, cast_inputs) for a in args)
        kwargs = {k: _cast(v, device_type, cast_inputs) for k, v in kwargs.items()}
        with autocast(device_type, enabled=False):
            return fwd(ctx, *args, **kwargs)
    return decorate_fwd


def custom_bwd(bwd=None, *, device_type: str):
    """Decorate an autograd.Function's backward: it runs under the autocast state its
    forward (decorated with custom_fwd) ran under."""
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def decorate_bwd(ctx, *grads):
        with autocast(device_type, dtype=ctx._dtype, enabled=ctx._fwd_used_autocast):
            return bwd(ctx, *grads)
    return decorate_bwd


def _cast(value, device_type: str, dtype):
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(v, device_type, dtype) for v in value)
    if _state._eligible(value, device_type) and value.dtype is not dtype:
        return value.to(dtype)
    return value
