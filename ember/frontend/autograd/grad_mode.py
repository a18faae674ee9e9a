"""Grad-mode switches: no_grad, enable_grad, set_grad_enabled, inference_mode.

Each works as a context manager and as a decorator, as in PyTorch.
"""
from __future__ import annotations

import functools

from ..grad_state import STATE


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
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradModeContext):
    target = False


class enable_grad(_GradModeContext):
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

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper


class inference_mode(_GradModeContext):
    """no_grad that also marks the results as inference tensors (no version checks)."""

    def __init__(self, mode: bool = True):
        self.mode = mode

    def __enter__(self):
        self._prev = (STATE.enabled, STATE.inference)
        if self.mode:
            STATE.enabled, STATE.inference = False, True
        return self

    def __exit__(self, *exc):
        STATE.enabled, STATE.inference = self._prev
        return False

    def __call__(self, fn):
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(mode):
                return fn(*args, **kwargs)
        return wrapper
