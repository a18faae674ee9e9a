"""torch.accelerator: the device-generic API that PyTorch's tutorials now use,

    device = torch.accelerator.current_accelerator().type \\
        if torch.accelerator.is_available() else "cpu"

In ember the accelerator is CUDA (when a GPU and its driver are present); without one,
is_available() is False and current_accelerator() is None, as in PyTorch.
"""
from __future__ import annotations

from .frontend import cuda as _cuda
from .frontend.device import device as _device

__all__ = ["is_available", "current_accelerator", "device_count", "current_device_index",
           "set_device_index", "synchronize"]


def is_available() -> bool:
    return _cuda.is_available()


def current_accelerator(check_available: bool = False):
    """The accelerator's device type as an ember.device ('cuda'), or None without one."""
    return _device("cuda") if _cuda.is_available() else None


def device_count() -> int:
    return _cuda.device_count() if _cuda.is_available() else 0


def current_device_index() -> int:
    return _cuda.current_device()


def set_device_index(device) -> None:
    _cuda.check_device(device)


current_device_idx = current_device_index
set_device_idx = set_device_index


def synchronize(device=None) -> None:
    if _cuda.is_available():
        _cuda.synchronize(device)
