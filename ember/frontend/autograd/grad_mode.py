"""Grad-mode switches: no_grad, enable_grad, set_grad_enabled, inference_mode.

Each works as a context manager and as a decorator, as in PyTorch.
"""
from __future__ import annotations

import functools
import inspect

from ..grad_state import STATE


def _wrap_in(make_ctx, fn):
    """`fn` run under a fresh context from `make_ctx()`; a generator function is
    resumed under it at every step (the caller's mode holds between steps), as torch."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            with make_ctx():
                gen = fn(*args, **kwargs)
                try:
                    value = next(gen)
                except StopIteration as stop:
                    return stop.value
            while True:
                try:
                    sent = yield value
                except GeneratorExit:
                    with make_ctx():
                        gen.close()
                    raise
                except BaseException as exc:
                    with make_ctx():
                        try:
                            value = gen.throw(exc)
                        except StopIteration as stop:
                            return stop.value
                    continue
                with make_ctx():
                    try:
                        value = gen.send(sent)
                    except StopIteration as stop:
                        return stop.value
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with make_ctx():
            return fn(*args, **kwargs)
    return wrapper


def is_grad_enabled() -> bool:
    return STATE.enabled


def is_inference_mode_enabled() -> bool:
    return STATE.inference


class _GradModeContext:
    """Base: subclasses say what `enabled` becomes inside."""
    target: bool = True

    def __enter__(self):
        self._prev = STATE.enabled
        STATE.enabled = self.target
        return self

    def __exit__(self, *exc):
        STATE.enabled = self._prev
        return False

    def __call__(self, fn):
        return _wrap_in(self.__class__, fn)


class _NoParamDecorator(_GradModeContext):
    """Usable bare as a decorator too (`@no_grad` as well as `@no_grad()`), as torch."""

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        return cls()(orig_func)


class no_grad(_NoParamDecorator):
    target = False


class enable_grad(_NoParamDecorator):
    target = True


class set_grad_enabled(_GradModeContext):
    def __init__(self, mode: bool):
        self._prev = STATE.enabled
        self.target = bool(mode)
        STATE.enabled = self.target   # takes effect as a function call, too

    def __enter__(self):
        return self

    def __call__(self, fn):
        mode = self.target
        STATE.enabled = self._prev
        return _wrap_in(lambda: set_grad_enabled(mode), fn)


class inference_mode(_GradModeContext):
    """no_grad that also marks the results as inference tensors (no version checks)."""

    def __new__(cls, mode=True):
        if isinstance(mode, bool):
            return super().__new__(cls)
        return cls()(mode)        # bare `@inference_mode` on a function

    def __init__(self, mode: bool = True):
        self.mode = mode

    def __enter__(self):
        self._prev = (STATE.enabled, STATE.inference)
        # as torch's InferenceMode guard: grad mode is the opposite of the inference flag
        # (inference_mode(False) inside inference_mode or no_grad turns grad mode back on)
        STATE.enabled, STATE.inference = not self.mode, bool(self.mode)
        return self

    def __exit__(self, *exc):
        STATE.enabled, STATE.inference = self._prev
        return False

    def __call__(self, fn):
        mode = self.mode
        return _wrap_in(lambda: inference_mode(mode), fn)
