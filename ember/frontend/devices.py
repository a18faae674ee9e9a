"""CUDA tensors' storage and geometry, and moving tensors between devices.

A CPU tensor's `_array` is a numpy view of its storage. A CUDA tensor has no host
values, so its `_array` is a `DeviceArray`: the same geometry in numpy's vocabulary
(`shape`, byte `strides`, numpy `dtype`, `ndim`, `size`, `itemsize`, `nbytes`) plus the
element `offset` into its storage. Tensor's metadata code therefore reads both kinds
alike, and host code that tries to read a CUDA tensor's values (np.asarray) gets a
DeviceError instead of garbage.

`DeviceStorage` owns one block of the caching allocator (runtime/cuda/allocator.py):
the block goes back to the cache when the last tensor viewing the storage dies.

Moves: `.to('cuda')` copies the host bytes in the tensor's memory format (contiguous or
channels-last; other layouts become contiguous, as PyTorch's preserve_format does for
non-dense tensors); `.cpu()` copies the device span the tensor covers and lays it out
the same way. Both record an autograd node, so gradients flow across devices.

Every non-CPU device goes through the hooks registered for its type
(device_backend.register_device): eager ops (`compute`), moves, in-place writes
(`copy_into`), clones and host reads. CUDA registers `CudaHooks` (below) through that same
call; a package's device gets device_backend.GenericHooks, built from its allocator,
host copies and claimed ops.
"""
from __future__ import annotations

import contextlib
import math
import threading

import numpy as np

from ..ir.errors import DeviceError
from ..ir.meta import channels_last, contiguous_format, strides_for
from .autograd.function import Function
from .conversions import check_device_available
from .device import device as Device
from .tensor import Tensor


class DeviceArray:
    """The geometry of a CUDA tensor, spelled as numpy spells an array's."""
    __slots__ = ("shape", "strides", "dtype", "offset")

    def __init__(self, shape, strides, dtype, offset: int = 0):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.strides = tuple(int(s) for s in strides)          # bytes, as numpy's
        self.offset = int(offset)                               # elements into the storage

    @classmethod
    def of(cls, shape, element_strides, dtype, offset: int = 0) -> "DeviceArray":
        itemsize = np.dtype(dtype).itemsize
        return cls(shape, [s * itemsize for s in element_strides], dtype, offset)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    def element_strides(self) -> tuple[int, ...]:
        return tuple(s // self.itemsize for s in self.strides)

    def extent(self) -> int:
        """Elements from the first to one past the last the geometry reaches."""
        if self.size == 0:
            return 0
        return 1 + sum((n - 1) * s for n, s in zip(self.shape, self.element_strides()))

    def __array__(self, dtype=None, copy=None):
        raise DeviceError("internal: host code tried to read the values of a device tensor; "
                          "copy it with .cpu() first")

    def __repr__(self) -> str:
        return (f"DeviceArray(shape={list(self.shape)}, strides={list(self.element_strides())},"
                f" dtype={self.dtype}, offset={self.offset})")


class DeviceStorage:
    """Device memory of one allocator block; freed back to the cache when unreferenced."""
    __slots__ = ("block", "ptr", "nbytes", "version", "device", "index", "_allocator", "source")

    def __init__(self, nbytes: int, index: int):
        from ..runtime.cuda.allocator import device_allocator
        from ..runtime.cuda.stream import current_stream
        self._allocator = device_allocator(index)
        self.block = self._allocator.malloc(nbytes, current_stream(index).handle)
        self.ptr, self.nbytes = self.block.ptr, nbytes
        self.version = 0
        self.index = index
        self.device = f"cuda:{index}"
        self.source = None          # pinned host bytes a queued copy still reads

    def __del__(self):
        block = getattr(self, "block", None)
        if block is not None and block.allocated:
            self._allocator.free(block)


def device_index(dev) -> int:
    """The CUDA ordinal of 'cuda', 'cuda:n' or a device (no index: the current device)."""
    dev = Device(dev)
    return 0 if dev.index is None else dev.index


def tensor_index(t: Tensor) -> int:
    return t._storage.index


def empty_cuda(shape, strides, dtype, index: int = 0) -> Tensor:
    """An uninitialized CUDA tensor with the given geometry (element strides)."""
    geometry = DeviceArray.of(shape, strides, dtype.np_dtype)
    storage = DeviceStorage(geometry.extent() * geometry.itemsize, index)
    return Tensor._make(geometry, storage)


def empty_cuda_like_meta(meta, index: int = 0) -> Tensor:
    return empty_cuda(meta.shape, meta.strides, meta.dtype, index)


def data_ptr(t: Tensor) -> int:
    return t._storage.ptr + t._array.offset * t._array.itemsize


def cuda_view(t: Tensor, shape, element_strides, offset: int, dtype=None) -> Tensor:
    """A view of CUDA tensor `t`'s storage with another geometry (and maybe dtype: real,
    imag and view_as_real reinterpret complex storage)."""
    dtype = t._array.dtype if dtype is None else dtype
    geometry = DeviceArray.of(shape, element_strides, dtype, offset)
    base = t._base if t._base is not None else t
    return Tensor._make(geometry, t._storage, base)


# --- host <-> device -------------------------------------------------------------------
def _layout_for(t: Tensor):
    if t.ndim == 4 and not t.is_contiguous() and t.is_contiguous(channels_last):
        return channels_last
    return contiguous_format


def _dense_order(shape, memory_format):
    """The permutation that makes a tensor of this format C-contiguous."""
    if memory_format is channels_last and len(shape) == 4:
        return (0, 2, 3, 1)
    return tuple(range(len(shape)))


def upload(arr: np.ndarray, memory_format=None, index: int = 0) -> Tensor:
    """A new CUDA tensor holding host array `arr` laid out in `memory_format`."""
    from ..ir.dtypes import from_numpy_dtype
    from ..runtime.cuda.stream import copy_host_to_device, current_stream
    dtype = from_numpy_dtype(arr.dtype)
    memory_format = memory_format or contiguous_format
    out = empty_cuda(arr.shape, strides_for(arr.shape, memory_format), dtype, index)
    host = np.ascontiguousarray(arr.transpose(_dense_order(arr.shape, memory_format)))
    from .pinned import copy_without_waiting
    if copy_without_waiting(host):                  # queued: the stream orders its users
        copy_host_to_device(data_ptr(out), host, current_stream(index), pinned=True)
        out._storage.source = host                  # the pinned bytes outlive the copy
    else:
        copy_host_to_device(data_ptr(out), host, current_stream(index))
    return out


def download(t: Tensor) -> np.ndarray:
    """The values of CUDA tensor `t` as a new host array with t's shape (any strides)."""
    from ..runtime.cuda.stream import copy_device_to_host, current_stream
    geometry = t._array
    span = np.empty(geometry.extent(), geometry.dtype)
    copy_device_to_host(span, data_ptr(t), current_stream(tensor_index(t)))
    from .eager_cuda_training import raise_deferred_index_error
    raise_deferred_index_error(tensor_index(t))       # a compiled step's bad index, if any
    if geometry.size == 0:
        return np.empty(geometry.shape, geometry.dtype)
    return np.lib.stride_tricks.as_strided(span, geometry.shape, geometry.strides)


def to_host(t: Tensor) -> Tensor:
    return Tensor._from_array(download(t), _layout_for(t))


def to_device(t: Tensor, index: int) -> Tensor:
    if t.is_cuda:                                   # another GPU: through the host
        return upload(download(t), _layout_for(t), index)
    return upload(t._array, _layout_for(t), index)


class _Move(Function):
    """A device copy as an autograd node: the gradient moves back to the source device."""

    @staticmethod
    def forward(ctx, t, target: str):
        ctx.source = str(t.device)
        if t._storage.device != "cpu":           # to the host first (another device: via it)
            t = hooks_of(t._storage.device).download(t)
            if target == "cpu":
                return t
        index = int(target.partition(":")[2] or 0)
        return hooks_of(target).upload(t, index)

    @staticmethod
    def backward(ctx, grad):
        return grad.to(ctx.source), None


def move(t: Tensor, target: Device) -> Tensor:
    """`t` on `target` (a copy; `t` itself when it is already there)."""
    target = Device(target)
    source = t._storage.device
    if target.type == "cpu":
        return t if source == "cpu" else _Move.apply(t, "cpu")
    check_device_available(target)
    wanted = device_string(target)
    if source == wanted:
        return t
    return _Move.apply(t, wanted)


# --- every device through its registered hooks ------------------------------------------
def device_string(dev) -> str:
    """'cuda:0', 'npu:1': a non-CPU device with its index (no index: device 0); 'meta'
    has no index, as in PyTorch."""
    dev = Device(dev)
    if dev.type == "meta":
        return "meta"
    return f"{dev.type}:{0 if dev.index is None else dev.index}"


def hooks_of(device: str):
    """The registered hooks of a device string ('cuda:0', 'npu:0')."""
    from .device_backend import hooks_for
    return hooks_for(device.partition(":")[0])


def compute(op, args: tuple, out_meta, device: str):
    """The outputs of `op(*args)` on a non-CPU device (eager.run_op's device route)."""
    return hooks_of(device).compute(op, args, out_meta, device)


def copy_into(dst: Tensor, src: Tensor) -> None:
    """dst[...] = src for a tensor on a non-CPU device (in-place ops, optimizers)."""
    hooks_of(dst._storage.device).copy_into(dst, src)


def clone_on_device(t: Tensor) -> Tensor:
    return hooks_of(t._storage.device).clone(t)


def host_values(t: Tensor) -> np.ndarray:
    """The values of a non-CPU tensor as a host array with its shape."""
    return hooks_of(t._storage.device).values(t)


def op_device(op, tensors, args) -> str:
    """Where an op on non-CPU operands runs: the first such operand's device, else (a
    factory) its creation target."""
    for t in tensors:
        if t._storage.device != "cpu":
            return t._storage.device
    return creation_target(op, args)


class CudaHooks:
    """ember's CUDA device as registered hooks: generated Triton kernels (eager_cuda.py),
    the caching allocator, stream copies."""

    def check(self, dev) -> None:
        from . import cuda
        cuda.check_device(dev)

    def compute(self, op, args, out_meta, device: str):
        from .eager_cuda import compute
        return compute(op, args, out_meta)

    def upload(self, t: Tensor, index: int) -> Tensor:
        return to_device(t, index)

    def download(self, t: Tensor) -> Tensor:
        return to_host(t)

    def values(self, t: Tensor) -> np.ndarray:
        return download(t)

    def copy_into(self, dst: Tensor, src: Tensor) -> None:
        from .eager_cuda import copy_into
        copy_into(dst, src)

    def clone(self, t: Tensor) -> Tensor:
        from .eager_cuda import clone
        return clone(t)


# --- where tensor-less ops (factories) put their results --------------------------------
_creation = threading.local()


def creation_device() -> str:
    """'cpu', or the CUDA device a derivative rule's factories must use (see below)."""
    return getattr(_creation, "device", "cpu")


@contextlib.contextmanager
def creation_device_like(tensors):
    """While a derivative rule runs on CUDA (or another device's) gradients, factories it
    calls without a device (`full(shape, 0)`) create tensors there, so the rule's
    arithmetic stays on one device."""
    previous = creation_device()
    found = next((t._storage.device for t in tensors if isinstance(t, Tensor) and
                  t._storage.device != "cpu"), None)
    _creation.device = found or previous
    try:
        yield
    finally:
        _creation.device = previous


def creation_target(op, args: tuple) -> str:
    """Where a tensor-less op (a factory) creates its result: its `device=` argument, else
    the creation device ('cpu' outside derivative rules on CUDA)."""
    target = creation_device()
    names = [a.name for a in op.schema.args]
    if "device" in names and args[names.index("device")] is not None:
        target = str(Device(args[names.index("device")]))
    if target != "cpu":
        check_device_available(Device(target))
        return device_string(target)
    return target


@contextlib.contextmanager
def creating_on_host():
    """Factories inside run on the CPU (the host fallback of a CUDA op)."""
    previous = creation_device()
    _creation.device = "cpu"
    try:
        yield
    finally:
        _creation.device = previous


def _register_cuda() -> None:
    """ember's own CUDA device, through the same registration as out-of-tree devices."""
    from .device_backend import register_device
    from ..backends import registry

    def device_count() -> int:
        from . import cuda
        return cuda.device_count()
    if "cuda" not in registry.DEVICES:
        register_device("cuda", hooks=CudaHooks(), device_count=device_count)


_register_cuda()
