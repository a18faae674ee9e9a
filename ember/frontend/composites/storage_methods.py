"""Tensor methods that re-point a tensor at storage in place: set_, as_strided_,
is_set_to, and the deprecated out-of-place resize/resize_as (a resized alias, with
PyTorch's warning).

As in PyTorch, set_ makes the tensor share the source's storage (writes through either
are seen by both, version counter included) without becoming a view of it. Only real
CPU tensors can be re-pointed: a traced tensor has no storage.
"""
from __future__ import annotations

import warnings

import numpy as np

from ...ir.composite import composite
from ...ir.errors import DTypeError, ShapeError
from ...ir.meta import strides_for
from ...ir.operators import pack_sizes
from .resize import resize_


def _check_real(self, name: str) -> None:
    if not hasattr(self, "_storage"):
        raise ShapeError(f"{name}: cannot re-point a traced tensor; call it on the real "
                         "tensor before tracing")
    if self._storage.device != "cpu":
        raise ShapeError(f"{name}: only CPU tensors can be re-pointed at new storage")


def _strided(flat: np.ndarray, offset: int, size, stride) -> np.ndarray:
    size = [int(s) for s in size]
    stride = strides_for(size, None) if stride is None else [int(s) for s in stride]
    extent = offset + (1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else 0)
    if extent > flat.size:
        raise ShapeError(f"setStorage: sizes {size}, strides {stride}, storage offset {offset} "
                         f"require a storage of {extent} elements, but it has {flat.size}")
    return np.lib.stride_tricks.as_strided(flat[offset:], tuple(size),
                                           tuple(s * flat.itemsize for s in stride))


@composite(function=False, method=True)
def set_(self, source=None, storage_offset=0, size=None, stride=None):
    """set_(): empty; set_(tensor): share its storage and geometry; set_(storage, offset,
    size, stride): view that storage with this geometry (size None: all of it, 1-d)."""
    from ..tensor import Storage, Tensor
    _check_real(self, "set_")
    if source is None:
        self._storage = Storage(np.empty(0, self._array.dtype))
        self._array = self._storage.data
    elif isinstance(source, Tensor):
        if source.dtype != self.dtype:
            raise DTypeError(f"Could not set tensor of type {self.dtype} to a tensor of type "
                             f"{source.dtype}")
        self._storage, self._array = source._storage, source._array
    elif isinstance(source, Storage):
        flat = source.data
        if flat.dtype != self._array.dtype:     # an untyped storage: its bytes as our dtype
            flat = flat.view(np.uint8).view(self._array.dtype)
        if size is None:
            size = [flat.size - storage_offset]
        self._array = _strided(flat, int(storage_offset), size, stride)
        self._storage = source
    else:
        raise TypeError(f"set_(): expected a Tensor or a storage, got {type(source).__name__}")
    self._bump_version()
    return self


@composite(function=False, method=True)
def is_set_to(self, tensor) -> bool:
    """True when both tensors use the same storage with the same offset, sizes and strides."""
    return (self._storage is tensor._storage and
            self.storage_offset() == tensor.storage_offset() and
            tuple(self.shape) == tuple(tensor.shape) and self.stride() == tensor.stride())


@composite(function=False, method=True)
def as_strided_(self, size, stride, storage_offset=None):
    """In place: this tensor becomes the strided view as_strided(size, stride, offset)
    of its own storage."""
    _check_real(self, "as_strided_")
    offset = self.storage_offset() if storage_offset is None else int(storage_offset)
    self._array = _strided(self._storage.data, offset, size, stride)
    self._bump_version()
    return self


@composite(function=False, method=True)
def resize(self, *sizes):
    warnings.warn("non-inplace resize is deprecated", UserWarning, stacklevel=2)
    return resize_(self.detach(), *([pack_sizes(sizes)] if sizes else []))


@composite(function=False, method=True)
def resize_as(self, tensor):
    warnings.warn("non-inplace resize_as is deprecated", UserWarning, stacklevel=2)
    return resize_(self.detach(), list(tensor.shape))
