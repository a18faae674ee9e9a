"""view_dtype: Tensor.view(dtype), the input's bits reread as another dtype.

A view (Tag.VIEW): the result shares the input's storage, so writes through one show in
the other, as in PyTorch. With equal element sizes the shape and strides are kept. With
different sizes, PyTorch's rules apply to the last dimension: it must have stride 1 and
(growing the element) a size, storage offset and other strides divisible by the size
ratio; its size is scaled by the ratio and the other strides with it. Not
differentiable (PyTorch's output carries no gradient either).
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError
from ..meta import TensorMeta
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S


def _size_change(self, dtype):
    """The view's (shape, strides) when element sizes differ, or a DTypeError."""
    old, new = self.dtype.itemsize, dtype.itemsize
    what = (f"to view {self.dtype.scalar_type_name} as {dtype.scalar_type_name} "
            "(different element sizes)")
    if self.ndim == 0:
        raise DTypeError(f"self.dim() cannot be 0 {what}")
    strides, shape = list(self.stride()), list(self.shape)
    if strides[-1] != 1:
        raise DTypeError(f"self.stride(-1) must be 1 {what}, but got {strides[-1]}")
    if old > new:
        ratio = old // new
        return (shape[:-1] + [shape[-1] * ratio],
                [s * ratio for s in strides[:-1]] + [1])
    ratio = new // old
    if shape[-1] % ratio:
        raise DTypeError(f"self.size(-1) must be divisible by {ratio} {what}, "
                         f"but got {shape[-1]}")
    offset = _storage_offset(self)
    if offset % ratio:
        raise DTypeError(f"self.storage_offset() must be divisible by {ratio} {what}, "
                         f"but got {offset}")
    for s in strides[:-1]:
        if s % ratio:
            raise DTypeError(f"self.stride(i) must be divisible by {ratio} for every "
                             f"i < self.dim() - 1 {what}, but got {s}")
    return (shape[:-1] + [shape[-1] // ratio],
            [s // ratio for s in strides[:-1]] + [1])


def _storage_offset(self) -> int:
    offset = getattr(self, "storage_offset", None)
    return int(offset()) if callable(offset) else 0


def _view_dtype_meta(self, dtype):
    if dtype.is_quantized or self.dtype.is_quantized:
        raise DTypeError("Tensor.view(dtype) is not supported for quantized tensors")
    if dtype.itemsize == self.dtype.itemsize:
        shape, strides = list(self.shape), list(self.stride())
    else:
        shape, strides = _size_change(self, dtype)
    return TensorMeta(tuple(shape), dtype, str(self.device), strides=tuple(strides))


def _view_dtype_reference(x, dtype):
    # NumPy rereads a contiguous last axis the same way the meta rule allows
    return x.view(dtype.np_dtype)


def _samples(rng):
    x = S.randn(rng, 3, 4)
    return [S.Sample((x, _dt("int32")), grad=False),
            S.Sample((x.T, _dt("int32")), grad=False),            # any strides, equal sizes
            S.Sample((x, _dt("float16")), grad=False),            # last dim doubles
            S.Sample((x, _dt("float64")), grad=False),            # last dim halves
            S.Sample((x[:, :2], _dt("int64")), grad=False),
            S.Sample((S.int_array(rng, 2, 8).astype(np.int8), _dt("int32")), grad=False),
            S.Sample((S.randn(rng).astype(np.float32), _dt("int32")), grad=False),
            S.Sample((S.bool_array(rng, 2, 2), _dt("uint8")), grad=False)]


def _dt(name):
    from .. import dtypes
    return getattr(dtypes, name)


view_dtype = defop(
    "view_dtype(Tensor self, ScalarType dtype) -> Tensor",
    meta=_view_dtype_meta, reference=_view_dtype_reference,
    derivative=NOT_DIFFERENTIABLE, saves=(), tags={Tag.VIEW}, samples=_samples,
    torch_ref=lambda torch: lambda x, dtype: x.view(dtype),
    doc="Tensor.view(dtype): the same memory reread as `dtype` (a view, as in PyTorch).",
)
