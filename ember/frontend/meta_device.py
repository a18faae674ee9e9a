"""The 'meta' device: tensors with a shape, dtype and strides but no data.

PyTorch users build models on it without allocating (`with torch.device("meta"):`,
accelerate's init_empty_weights), then `to_empty(device="cpu")` and
`load_state_dict(..., assign=True)`; shape inference runs whole programs on it. An op on
meta tensors runs only its meta rule (eager.run_op computes it for every call anyway):
the results are fresh meta tensors of the rule's shapes, dtypes and strides, views share
their source's (unallocated) storage with the geometry numpy computes for them, and
in-place ops change nothing but the version counter. Autograd records as for any device,
so backward on meta tensors gives meta gradients.

Reading values raises PyTorch's errors: `.cpu()`/`.tolist()` NotImplementedError
"Cannot copy out of meta tensor; no data!", `.numpy()` TypeError, `.item()` RuntimeError.

The device plugs into the hooks every non-CPU device goes through (devices.py); it is
not in the registry of packages' devices, since 'meta' is a type of PyTorch's own.
"""
from __future__ import annotations

import mmap
import sys

import numpy as np

from ..ir.errors import LoweringError
from ..ir.meta import TensorMeta, channels_last, contiguous_format, strides_for
from ..ir.registry import Tag
from .tensor import Tensor

META = "meta"
NO_DATA = "Cannot copy out of meta tensor; no data!"


class MetaStorage:
    """The storage of meta tensors: a size and a version counter, no memory. Its public
    face is torch.UntypedStorage's on meta: nbytes()/size() in bytes, data_ptr() 0."""
    __slots__ = ("_nbytes", "version", "device", "index", "inference", "__weakref__")

    def __init__(self, nbytes: int):
        from .grad_state import STATE
        self._nbytes = int(nbytes)
        self.version = 0
        self.device = META
        self.index = 0
        self.inference = STATE.inference

    def nbytes(self) -> int:
        return self._nbytes

    size = nbytes
    __len__ = nbytes

    def element_size(self) -> int:
        return 1

    def data_ptr(self) -> int:
        return 0

    @property
    def is_meta(self) -> bool:
        return True


def empty_meta(shape, element_strides, np_dtype) -> Tensor:
    """A meta tensor with this geometry (strides in elements)."""
    from .devices import DeviceArray
    geometry = DeviceArray.of(shape, element_strides, np_dtype)
    return Tensor._make(geometry, MetaStorage(geometry.extent() * geometry.itemsize))


def rebuild_meta(shape, element_strides, dtype_name: str, requires_grad: bool) -> Tensor:
    """Unpickling a meta tensor (Tensor.__reduce_ex__)."""
    from ..ir.dtypes import as_dtype
    t = empty_meta(shape, element_strides, as_dtype(dtype_name).np_dtype)
    return t.requires_grad_(True) if requires_grad else t


def _empty_like_meta(meta: TensorMeta) -> Tensor:
    strides = meta.strides if meta.strides is not None else strides_for(
        meta.shape, channels_last if meta.memory_format is channels_last and
        len(meta.shape) == 4 else contiguous_format)
    return empty_meta(meta.shape, strides, meta.dtype.np_dtype)


def _result(out_meta):
    """Fresh meta tensors for an op's outputs (scalars and None pass through)."""
    if isinstance(out_meta, TensorMeta):
        return _empty_like_meta(out_meta)
    if isinstance(out_meta, (list, tuple)):
        return type(out_meta)(_result(m) for m in out_meta)
    return out_meta


def _dense_strides(t: Tensor):
    from .devices import _layout_for
    return strides_for(tuple(t.shape), _layout_for(t))


class MetaHooks:
    """The meta device as devices.py's hooks: shapes in, shapes out, no data."""

    def check(self, dev) -> None:
        return None

    def compute(self, op, args: tuple, out_meta, device: str):
        if op.has_tag(Tag.VIEW):
            views = _views(op, args)
            if views is not None:
                return views
        return _result(out_meta)

    def upload(self, t: Tensor, index: int) -> Tensor:
        """`.to('meta')`: a meta tensor of t's shape, dtype and dense layout."""
        return empty_meta(tuple(t.shape), _dense_strides(t), t._array.dtype)

    def download(self, t: Tensor) -> Tensor:
        raise NotImplementedError(NO_DATA)

    def values(self, t: Tensor) -> np.ndarray:
        raise NotImplementedError(NO_DATA)

    def copy_into(self, dst: Tensor, src: Tensor) -> None:
        return None                         # no data to write: the meta rule checked shapes

    def clone(self, t: Tensor) -> Tensor:
        return empty_meta(tuple(t.shape), _dense_strides(t), t._array.dtype)


def _views(op, args: tuple):
    """A view op's results as views of the source's storage, their geometry computed by
    numpy on an unread shadow of the storage (as for CUDA tensors); None when the result
    is not a view or the shadow cannot be mapped."""
    from .eager_cuda import _as_view, _get, _inside, _replace, _slots
    source = args[0]
    if not isinstance(source, Tensor):
        return None
    try:
        storage, view = _shadow(source)
        slots = _slots(op, args)
        shadows = [view if _get(args, s) is source else _shadow(_get(args, s))[1]
                   for s in slots]
        result = op.reference(*_replace(args, slots, shadows))
        results = result if isinstance(result, (list, tuple)) else [result]
        if not all(isinstance(r, np.ndarray) and _inside(r, storage) for r in results):
            return None
        views = [_as_view(source, r, storage) for r in results]
    except (OSError, MemoryError, OverflowError, ValueError, LoweringError):
        return None
    if isinstance(result, (list, tuple)):
        return tuple(views) if op.schema.returns_tuple else views
    return views[0]


# Linux's MAP_NORESERVE (Python < 3.13 does not name it): a shadow of a storage larger
# than the machine's memory is still mapped, never touched, never committed
_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000 if sys.platform.startswith("linux") else 0)


def _shadow(t: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(storage, view): arrays over an unread anonymous mapping of t's storage size."""
    geometry = t._array
    count = max(1, t._storage.nbytes() // geometry.itemsize)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _NORESERVE
    buffer = mmap.mmap(-1, count * geometry.itemsize, flags=flags)
    storage = np.frombuffer(buffer, geometry.dtype, count)
    if not geometry.size:
        return storage, np.empty(geometry.shape, geometry.dtype)
    return storage, np.lib.stride_tricks.as_strided(storage[geometry.offset:], geometry.shape,
                                                    geometry.strides)


HOOKS = MetaHooks()
