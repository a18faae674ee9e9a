"""torch.utils.backend_registration for ember: out-of-tree devices and compile backends.

- `register_device(name, *, allocator, to_host, from_host, free=None, ops={...},
  device_count=1, module=None)`: a package adds device type `name` for eager tensors
  (frontend/device_backend.py says what each piece must do). ember's CUDA device is
  registered through the same call.
- `rename_privateuse1_backend(name)`: PyTorch's spelling for naming the one
  out-of-tree device; here it reserves `name` and `register_device` fills it in.
- `device_buffer(t)`, `make_device_tensor(handle, nbytes, device, shape, dtype, strides,
  offset)`: what a backend's kernels use to read and create tensors of its device.
- `register_backend(compiler_fn=None, name=None)`, `list_backends()`: compile backends for
  `ember.compile(backend=name)` (torch._dynamo's names); a callable works unregistered.
"""
from __future__ import annotations

from ..backends import registry
from ..compiler.compile_custom import list_backends, register_backend
from ..frontend.device_backend import (DeviceBuffer, device_buffer, make_device_tensor,
                                       register_device, unregister_device)

__all__ = ["register_device", "unregister_device", "rename_privateuse1_backend",
           "device_buffer", "make_device_tensor", "DeviceBuffer", "register_backend",
           "list_backends", "registered_devices"]

_PRIVATEUSE1 = {"name": "privateuseone"}


def rename_privateuse1_backend(backend_name: str) -> None:
    """Name the out-of-tree device (once per process, as in PyTorch)."""
    current = _PRIVATEUSE1["name"]
    if current != "privateuseone" and current != backend_name:
        raise RuntimeError(f"rename_privateuse1_backend: the backend is already named "
                           f"{current!r}; it can be renamed only once")
    _PRIVATEUSE1["name"] = backend_name


def _get_privateuse1_backend_name() -> str:
    return _PRIVATEUSE1["name"]


def registered_devices() -> tuple[str, ...]:
    """Device types registered with register_device (ember's 'cuda' first)."""
    return tuple(registry.DEVICES)
