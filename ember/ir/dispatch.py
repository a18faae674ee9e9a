"""The one dispatch point every op call passes through.

`dispatch(op, bound_args)` picks a handler:
0. an active `ember.autocast` region casts the arguments first (ir/autocast.py), so the
   casts are op calls that every handler below records or runs, then runs the call with
   autocast suspended;
1. the innermost active *mode* (profiler, jit tracer, forward-AD, ...) if any;
   a mode handles the call, usually by re-dispatching with itself disabled
   (`with disabled(mode): ...`), which is how modes stack;
2. otherwise the highest-priority *value handler* among the argument types
   (fx Proxy outranks eager Tensor, as `__torch_function__` would arrange);
3. otherwise the default handler (eager), for calls with no tensor at all.

Handlers are installed by higher layers at import time (`register_value_handler`),
so `ir` itself imports nothing above it.
"""
from __future__ import annotations

import contextlib
from typing import Callable

from . import autocast

_value_handlers: dict[type, tuple[int, Callable]] = {}
_modes: list = []
_default_handler: list[Callable] = []


def register_value_handler(cls: type, handler: Callable, priority: int) -> None:
    """`handler(op, bound_args)` runs calls whose arguments include a `cls` value."""
    _value_handlers[cls] = (priority, handler)
    _handler_by_type.clear()


def set_default_handler(handler: Callable) -> None:
    _default_handler[:] = [handler]


# type -> its handler entry (or None): the MRO walk once per type, not per call
_handler_by_type: dict[type, tuple[int, Callable] | None] = {}


def _handler_for(value):
    cls = type(value)
    try:
        return _handler_by_type[cls]
    except KeyError:
        pass
    entry = next((_value_handlers[c] for c in cls.__mro__ if c in _value_handlers), None)
    _handler_by_type[cls] = entry
    return entry


def _best_handler(op, args):
    best = None
    for i in op.schema.tensor_arg_indices:
        value = args[i]
        values = value if isinstance(value, (list, tuple)) else (value,)
        for v in values:
            entry = _handler_for(v)
            if entry is not None and (best is None or entry[0] > best[0]):
                best = entry
    if best is None and not op.schema.tensor_arg_indices:
        return None
    if best is not None and best[0] == 0:
        # plain tensors only: a traced value among the sizes (`const.repeat(x.size(0), 1)`
        # while symbolic tracing) claims the call
        for value in args:
            if isinstance(value, (list, tuple)):
                for v in value:
                    entry = _handler_for(v)
                    if entry is not None and entry[0] > best[0]:
                        best = entry
    if best is None:  # Scalars where tensors go (e.g. add(2, x) with x a Proxy in kwargs)
        for value in args:
            entry = _handler_for(value)
            if entry is not None and (best is None or entry[0] > best[0]):
                best = entry
    return best


def dispatch(op, args: tuple):
    if autocast.ACTIVE and autocast.applies():
        # mixed precision rewrites the arguments before anyone sees them; the op itself
        # (its decomposition, eager CUDA's one-op graph) then runs without autocast, as
        # PyTorch's autocast kernels call the op with autocast excluded
        args = autocast.cast_arguments(op, args)
        with autocast.suspended():
            return _dispatch(op, args)
    return _dispatch(op, args)


def _dispatch(op, args: tuple):
    if _modes:
        return _modes[-1].handle(op, args)
    best = _best_handler(op, args)
    if best is not None:
        return best[1](op, args)
    return _default_handler[0](op, args)


@contextlib.contextmanager
def enabled(mode):
    """Push a mode: every op call goes to `mode.handle(op, args)` while inside."""
    _modes.append(mode)
    try:
        yield mode
    finally:
        _modes.remove(mode)


@contextlib.contextmanager
def disabled(mode):
    """Inside a mode's handler: run the call as if `mode` (and modes above it) were off."""
    index = _modes.index(mode)
    saved = _modes[index:]
    del _modes[index:]
    try:
        yield
    finally:
        _modes.extend(saved)


def active_modes() -> tuple:
    return tuple(_modes)
