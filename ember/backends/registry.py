"""The registry of device backends and compile backends (data only).

`ember.utils.backend_registration.register_device` and `register_backend` fill it; the
eager dispatcher (frontend/devices.py), `ember.device(...)` and `ember.compile` read it.
It imports nothing from ember, so every layer may read it, as the flags beside it.

A device entry is what a package supplies for one device type (PyTorch's PrivateUse1
backend under its renamed name): memory primitives (allocator, host copies), the ops it
claims, or (ember's own CUDA) whole dispatch hooks. frontend/devices.py turns an entry
into the object eager execution calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

# device types that are not backends: the host and shape-only tensors
RESERVED = ("cpu", "meta")


@dataclass
class DeviceEntry:
    """One registered device type (see register_device for each field's contract)."""
    name: str
    allocator: Callable | None = None      # nbytes -> handle
    to_host: Callable | None = None        # handle -> uint8 ndarray (a copy of its bytes)
    from_host: Callable | None = None      # (handle, uint8 ndarray) -> None
    free: Callable | None = None           # handle -> None, when the last tensor dies
    ops: dict[str, Callable] = field(default_factory=dict)
    device_count: Callable[[], int] = lambda: 1
    module: object | None = None           # ember.<name> (torch._register_device_module)
    hooks: object | None = None            # whole dispatch hooks (ember's CUDA)


DEVICES: dict[str, DeviceEntry] = {}
COMPILE_BACKENDS: dict[str, Callable] = {}   # name -> compiler_fn(GraphModule, inputs)


def device_entry(name: str) -> DeviceEntry | None:
    return DEVICES.get(name)


def device_types() -> tuple[str, ...]:
    """Every device type `ember.device` accepts, in PyTorch's listing order."""
    return ("cpu", *DEVICES, "meta") if "cuda" in DEVICES else ("cpu", "cuda", *DEVICES, "meta")
