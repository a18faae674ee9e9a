"""torch.cpu: the CPU as a device module, for code written against the device-generic
API (`getattr(torch, device_type).synchronize()`)."""
from __future__ import annotations

from .runtime.threads import get_num_threads

__all__ = ["is_available", "device_count", "current_device", "synchronize", "set_device",
           "get_num_threads"]


def is_available() -> bool:
    return True


def device_count() -> int:
    return 1


def current_device() -> str:
    return "cpu"


def set_device(device) -> None:
    """Only the CPU exists here; accepted for device-generic code."""


def synchronize(device=None) -> None:
    """CPU work completes before a call returns: nothing to wait for."""


def __getattr__(name: str):
    """`ember.cpu.amp` (torch.cpu.amp's deprecated names), loaded on first use."""
    if name == "amp":
        import importlib
        import sys
        amp = importlib.import_module("ember.amp.cpu_amp")
        sys.modules.setdefault("ember.cpu.amp", amp)
        globals()["amp"] = amp
        return amp
    raise AttributeError(f"module 'ember.cpu' has no attribute '{name}'")
