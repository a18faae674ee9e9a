"""Out-of-tree devices: one registration API for a device type's eager tensors.

PyTorch lets a package add a device through its PrivateUse1 dispatch key
(`torch.utils.rename_privateuse1_backend`, `torch._register_device_module`, kernels
registered for the key). ember's equivalent is one call:

    ember.utils.backend_registration.register_device(
        "npu", allocator=alloc, to_host=to_host, from_host=from_host,
        ops={"add": npu_add, "mm": npu_mm})

- `allocator(nbytes) -> handle`: device memory for one storage (any object the package
  understands; freed by `free(handle)` if given, else when the handle is collected);
- `to_host(handle) -> numpy uint8 array`: a host copy of the storage's bytes;
- `from_host(handle, bytes)`: overwrite the storage's bytes with a host uint8 array;
- `ops`: {op name: kernel}. A kernel is called with the op's arguments in schema order
  (positionally; tensors are tensors on this device) and returns what the op returns, on
  this device. `device_buffer(t)` gives a kernel the handle and geometry of a tensor,
  `make_device_tensor(...)` wraps a new handle. Results are checked against the op's
  shape/dtype rule.

Every op the backend does not claim falls back through the CPU: operands are copied to
the host, the op runs there, results come back; the first such call of each op warns
once, naming the op. View ops keep sharing storage (their geometry is computed on a
never-read shadow of the storage, as on CUDA), so in-place writes through views work.
Autograd, shapes and dtype rules are ember's own and need nothing from the backend.

ember's CUDA device registers through the same call with whole dispatch `hooks` (its
generated kernels, caching allocator and streams) instead of the memory primitives.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..backends import registry
from ..ir.errors import DeviceError, EmberError, user_frame
from ..ir.meta import TensorMeta, channels_last, contiguous_format, strides_for
from ..ir.registry import Tag
from .autograd import grad_mode
from .tensor import Tensor


class BackendStorage:
    """One allocation of a registered device: the backend's handle and its size."""
    __slots__ = ("handle", "nbytes", "version", "device", "index", "entry", "__weakref__")

    def __init__(self, entry: registry.DeviceEntry, nbytes: int, index: int, handle=None):
        self.entry, self.nbytes, self.index = entry, int(nbytes), index
        self.handle = entry.allocator(self.nbytes) if handle is None else handle
        self.version = 0
        self.device = f"{entry.name}:{index}"

    def __del__(self):
        free = getattr(getattr(self, "entry", None), "free", None)
        if free is not None and getattr(self, "handle", None) is not None:
            free(self.handle)


# --- registration --------------------------------------------------------------------
def register_device(name: str, *, allocator: Callable | None = None,
                    to_host: Callable | None = None, from_host: Callable | None = None,
                    free: Callable | None = None, ops: dict | None = None,
                    device_count: int | Callable[[], int] = 1, module=None,
                    hooks=None) -> registry.DeviceEntry:
    """Add device type `name` (see the module docstring). Pass either the memory
    primitives (allocator, to_host, from_host) or `hooks` (ember's CUDA does)."""
    if not isinstance(name, str) or not name.isidentifier() or name in registry.RESERVED:
        raise ValueError(f"register_device: {name!r} cannot name a device type (use a "
                         f"lowercase identifier other than {' or '.join(registry.RESERVED)})")
    if name in registry.DEVICES:
        raise RuntimeError(f"register_device: device type {name!r} is already registered")
    if hooks is None:
        missing = [k for k, v in (("allocator", allocator), ("to_host", to_host),
                                  ("from_host", from_host)) if not callable(v)]
        if missing:
            raise TypeError(f"register_device({name!r}): {', '.join(missing)} must be "
                            "callables (or pass hooks=)")
    count = device_count if callable(device_count) else (lambda n=int(device_count): n)
    entry = registry.DeviceEntry(name, allocator, to_host, from_host, free, dict(ops or {}),
                                 count, module, hooks)
    registry.DEVICES[name] = entry
    _HOOKS.pop(name, None)
    if module is not None:
        _register_module(name, module)
    return entry


def unregister_device(name: str) -> None:
    """Remove a device type registered by a package (tests; ember's CUDA stays)."""
    if name == "cuda":
        raise RuntimeError("unregister_device: ember's CUDA device cannot be removed")
    registry.DEVICES.pop(name, None)
    _HOOKS.pop(name, None)


def _register_module(name: str, module) -> None:
    """torch._register_device_module: `ember.<name>` is the backend's module."""
    import ember
    if hasattr(ember, name) and getattr(ember, name) is not module:
        raise RuntimeError(f"register_device: ember.{name} already exists; the device module "
                           "cannot replace it")
    setattr(ember, name, module)


_HOOKS: dict[str, "GenericHooks"] = {}


def hooks_for(device_type: str):
    """The object eager execution calls for tensors of `device_type`."""
    if device_type == "meta":                 # PyTorch's own data-less device
        from .meta_device import HOOKS
        return HOOKS
    entry = registry.DEVICES.get(device_type)
    if entry is None:
        raise DeviceError(f"no backend is registered for device type '{device_type}'")
    if entry.hooks is not None:
        return entry.hooks
    hooks = _HOOKS.get(device_type)
    if hooks is None:
        hooks = _HOOKS[device_type] = GenericHooks(entry)
    return hooks


# --- what a backend's kernels use ------------------------------------------------------
@dataclass(frozen=True)
class DeviceBuffer:
    """A device tensor as its backend sees it: the storage's handle and the geometry in
    elements (`offset` into the storage, `strides`), with a numpy dtype."""
    handle: object
    nbytes: int
    shape: tuple
    strides: tuple
    offset: int
    dtype: np.dtype


def device_buffer(t: Tensor) -> DeviceBuffer:
    storage = t._storage
    if not isinstance(storage, BackendStorage):
        raise DeviceError(f"device_buffer: the tensor is on {t.device}, not on a device "
                          "registered with register_device")
    g = t._array
    return DeviceBuffer(storage.handle, storage.nbytes, g.shape, g.element_strides(),
                        g.offset, g.dtype)


def make_device_tensor(handle, nbytes: int, device, shape, dtype, strides=None,
                       offset: int = 0) -> Tensor:
    """A tensor over a storage the backend allocated (`handle` of `nbytes` bytes)."""
    from ..ir.dtypes import as_dtype
    from .device import device as Device
    from .devices import DeviceArray
    dev = Device(device)
    entry = registry.DEVICES.get(dev.type)
    if entry is None or entry.hooks is not None:
        raise DeviceError(f"make_device_tensor: '{dev}' is not a device registered with "
                          "register_device")
    np_dtype = as_dtype(dtype).np_dtype if not isinstance(dtype, np.dtype) else dtype
    shape = tuple(int(s) for s in shape)
    strides = strides_for(shape, contiguous_format) if strides is None else tuple(strides)
    geometry = DeviceArray.of(shape, strides, np_dtype, offset)
    if (offset + geometry.extent()) * geometry.itemsize > nbytes:
        raise DeviceError(f"make_device_tensor: shape {list(shape)} with strides "
                          f"{list(strides)} and offset {offset} reaches past the {nbytes} "
                          "bytes of the storage")
    storage = BackendStorage(entry, nbytes, dev.index or 0, handle)
    return Tensor._make(geometry, storage)


# --- the generic device: eager execution from the memory primitives ---------------------
class GenericHooks:
    """Eager execution on a device registered with memory primitives and claimed ops."""

    def __init__(self, entry: registry.DeviceEntry):
        self.entry = entry
        self.warned: set[str] = set()

    # availability
    def check(self, dev) -> None:
        count = self.entry.device_count()
        if dev.index is not None and not 0 <= dev.index < count:
            raise DeviceError(f"{self.entry.name}: device index {dev.index} is out of range "
                              f"(the backend has {count} device(s))")

    # memory
    def empty(self, shape, strides, np_dtype, index: int) -> Tensor:
        from .devices import DeviceArray
        geometry = DeviceArray.of(shape, strides, np_dtype)
        storage = BackendStorage(self.entry, max(geometry.extent(), 1) * geometry.itemsize,
                                 index)
        return Tensor._make(geometry, storage)

    def upload(self, t: Tensor, index: int) -> Tensor:
        """A new device tensor with CPU tensor t's values (dense, in t's memory format)."""
        arr = t._array
        strides = strides_for(arr.shape, _format(t))
        out = self.empty(arr.shape, strides, arr.dtype, index)
        host = np.zeros(out._storage.nbytes, np.uint8)
        _host_view(host, out._array)[...] = arr
        self.entry.from_host(out._storage.handle, host)
        return out

    def storage_bytes(self, t: Tensor) -> np.ndarray:
        data = np.asarray(self.entry.to_host(t._storage.handle))
        if data.dtype != np.uint8 or data.ndim != 1 or data.size < t._storage.nbytes:
            raise DeviceError(f"{self.entry.name}: to_host must return the storage's bytes as a "
                              f"1-D uint8 array of {t._storage.nbytes} bytes, got "
                              f"{data.dtype}{list(data.shape)}")
        return data

    def values(self, t: Tensor) -> np.ndarray:
        """t's values as a new host array with t's shape."""
        return np.array(_host_view(self.storage_bytes(t), t._array))

    def download(self, t: Tensor) -> Tensor:
        from .devices import _layout_for
        return Tensor._from_array(self.values(t), _layout_for(t))

    def copy_into(self, dst: Tensor, src: Tensor) -> None:
        """dst[...] = src (cast to dst's dtype): a claimed 'copy_' kernel, else the host."""
        kernel = self.entry.ops.get("copy_")
        if kernel is not None and src._storage.device == dst._storage.device:
            with grad_mode.no_grad():
                kernel(dst, src)
            return
        values = src._values()
        host = self.storage_bytes(dst).copy()
        with np.errstate(all="ignore"):
            np.copyto(_host_view(host, dst._array), values, casting="unsafe")
        self.entry.from_host(dst._storage.handle, host)

    def clone(self, t: Tensor) -> Tensor:
        out = self.empty(t.shape, strides_for(tuple(t.shape), _format(t)), t._array.dtype,
                         t._storage.index)
        self.copy_into(out, t)
        return out

    # ops
    def compute(self, op, args: tuple, out_meta, device: str):
        """The outputs of `op(*args)` for operands on this device (no autograd here)."""
        index = int(device.partition(":")[2] or 0)
        args = self._scalars_to_device(op, args, index)
        kernel = self.entry.ops.get(op.name) or _custom_op_kernel(op, self.entry.name)
        if kernel is not None:
            with grad_mode.no_grad():
                result = kernel(*args)
            _check_result(self.entry.name, op, result, out_meta, device)
            return result
        if op.has_tag(Tag.VIEW):
            from .eager_cuda import _views    # geometry from a shadow: device-agnostic
            views = _views(op, args)
            if views is not None:
                return views
        return self._on_host(op, args, index)

    def _scalars_to_device(self, op, args, index: int) -> tuple:
        from .eager_cuda import _get, _replace, _slots
        slots = [s for s in _slots(op, args) if _get(args, s)._storage.device == "cpu"]
        if not slots:
            return args
        return tuple(_replace(args, slots, [self.upload(_get(args, s), index) for s in slots]))

    def _on_host(self, op, args: tuple, index: int):
        from .devices import creating_on_host
        from .eager_cuda import _call, _get, _replace, _slots
        if op.name not in self.warned:
            self.warned.add(op.name)
            _warn_at_user_line(f"{op.name}: the '{self.entry.name}' backend has no kernel for "
                               "this op; it runs on the CPU (operands copied to the host and "
                               "results back)")
        slots = _slots(op, args)
        host = _replace(args, slots, [self.download(_get(args, s)) for s in slots])
        names = [a.name for a in op.schema.args]
        if "device" in names:
            host[names.index("device")] = "cpu"
        with grad_mode.no_grad(), creating_on_host():
            result = _call(op, host)
        if isinstance(result, (list, tuple)):
            moved = [self._back(r, index) for r in result]
            return tuple(moved) if isinstance(result, tuple) else moved
        return self._back(result, index)

    def _back(self, value, index: int):
        return self.upload(value, index) if isinstance(value, Tensor) else value


def _custom_op_kernel(op, device_type: str):
    """A custom op's kernel registered for this device (register_kernel("<device>"))."""
    custom = getattr(op, "custom", None)
    return None if custom is None else custom._kernels.get(device_type)


def _format(t: Tensor):
    """The dense layout a copy of t gets: channels-last stays, the rest is contiguous."""
    return channels_last if t.ndim == 4 and t.memory_format is channels_last else \
        contiguous_format


def _host_view(data: np.ndarray, geometry) -> np.ndarray:
    """A writable numpy view of storage bytes `data` with a device tensor's geometry."""
    typed = data[:(data.size // geometry.itemsize) * geometry.itemsize].view(geometry.dtype)
    if geometry.size == 0:
        return np.empty(geometry.shape, geometry.dtype)
    return np.lib.stride_tricks.as_strided(typed[geometry.offset:], geometry.shape,
                                           geometry.strides)


def _check_result(backend: str, op, result, out_meta, device: str) -> None:
    """A claimed kernel's results must be what the op's rule says, on this device."""
    want = out_meta if isinstance(out_meta, (tuple, list)) else (out_meta,)
    got = result if isinstance(result, (tuple, list)) else (result,)
    if len(got) != len(want):
        raise EmberError(f"{op.name}: the '{backend}' kernel returned {len(got)} results, the "
                         f"op returns {len(want)}")
    for i, (r, m) in enumerate(zip(got, want)):
        if not isinstance(m, TensorMeta):
            continue
        ok = isinstance(r, Tensor) and tuple(r.shape) == tuple(m.shape) and \
            r.dtype == m.dtype and r._storage.device == device
        if not ok:
            what = f"{r.dtype.short}{list(r.shape)} on {r._storage.device}" \
                if isinstance(r, Tensor) else type(r).__name__
            raise EmberError(f"{op.name}: the '{backend}' kernel returned {what} for output "
                             f"{i}, but the op gives {m.dtype.short}{list(m.shape)} on {device}")


def _warn_at_user_line(message: str) -> None:
    frame = user_frame()
    if frame is None:
        warnings.warn(message, stacklevel=3)
    else:
        warnings.warn_explicit(message, UserWarning, frame.filename, frame.lineno or 0)

