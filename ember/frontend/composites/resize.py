"""Tensor.resize_ / Tensor.resize_as_ (and torch.resize_as_): change a tensor's shape in
place, keeping its storage offset.

As in PyTorch, the tensor becomes contiguous (or channels_last when asked) over its own
storage: when the storage holds enough elements past the offset, the first ones are
reused as they are; otherwise the storage grows, keeping its old contents in front, and
the new elements are zeros (PyTorch leaves them uninitialized). A grown storage is a new
buffer: views taken earlier keep reading the old one. Tensors that require grad cannot
be resized (PyTorch's rule), and neither can traced (symbolic) tensors.
"""
from __future__ import annotations

import math

import numpy as np

from ...ir.composite import composite
from ...ir.errors import AutogradError, ShapeError
from ...ir.meta import MemoryFormat, channels_last, strides_for
from ...ir.operators import pack_sizes


def _new_geometry(shape, memory_format):
    fmt = channels_last if memory_format is channels_last and len(shape) == 4 else None
    return strides_for(shape, fmt) if fmt is not None else None


@composite(function=False, method=True)
def resize_(self, *size, memory_format=None):
    shape = [int(s) for s in (pack_sizes(size) if size else [])]
    if not hasattr(self, "_storage"):
        raise ShapeError("resize_: cannot resize a traced tensor; resize the real tensor "
                         "before tracing")
    if self.requires_grad:
        raise AutogradError("cannot resize variables that require grad")
    if any(s < 0 for s in shape):
        raise ShapeError(f"Trying to create tensor with negative dimension: {shape}")
    if self._storage.device != "cpu":
        raise ShapeError("resize_: only CPU tensors can be resized")
    if memory_format is not None and not isinstance(memory_format, MemoryFormat):
        memory_format = MemoryFormat(memory_format)
    offset, numel = self.storage_offset(), math.prod(shape)
    storage = self._storage
    if offset + numel > storage.data.size:
        grown = np.zeros(offset + numel, storage.data.dtype)
        grown[:storage.data.size] = storage.data
        storage.data = grown
    flat = storage.data[offset:offset + numel]
    strides = _new_geometry(shape, memory_format)
    if strides is None:
        self._array = flat.reshape(shape)
    else:
        self._array = np.lib.stride_tricks.as_strided(
            flat, tuple(shape), tuple(s * flat.itemsize for s in strides))
    self._bump_version()
    return self


@composite(method=True)
def resize_as_(input, the_template, *, memory_format=None):
    return resize_(input, list(the_template.shape), memory_format=memory_format)
