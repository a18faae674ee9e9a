"""Factory ops: tensors made from sizes and fill values, or shaped like another.

`*_like` ops take a tensor, so they trace as graph nodes; plain factories with no
tensor argument run eagerly unless a mode (jit trace) records them.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..errors import ShapeError
from ..meta import TensorMeta, check_memory_format_rank, contiguous_format, preserve_format
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S
from .rules import cast_scalar, pointwise_memory_format

F = {Tag.FACTORY}
MAX_DIMS = 64


def _factory_dtype(dtype, fill_value=None):
    if dtype is not None:
        return dtypes.as_dtype(dtype)
    if fill_value is None:
        return dtypes.get_default_dtype()
    return dtypes.scalar_default_dtype(fill_value)


def _check_size(size):
    # an int stays itself: a traced size keeps its polynomial in the result's shape
    size = tuple(s if type(s) is not bool and isinstance(s, int) else int(s) for s in size)
    if size and min(size) < 0:
        raise ShapeError(f"Trying to create tensor with negative dimension: {list(size)}")
    if len(size) > MAX_DIMS:     # NumPy's limit, which holds ember's values
        raise ShapeError(f"only tensors with up to {MAX_DIMS} dims are supported (size has "
                         f"{len(size)})")
    return size


def fill_array(shape: tuple, fill_value, np_dtype) -> np.ndarray:
    """np.full, through np.zeros (several times faster) for a +0 fill (zeros, empty)."""
    kind = type(fill_value)
    if (kind is int or kind is bool) and fill_value == 0 or \
            kind is float and fill_value == 0 and math.copysign(1.0, fill_value) > 0:
        return np.zeros(shape, np_dtype)
    if np_dtype in _FILL_DTYPES and kind in (int, float, bool) and abs(fill_value) < 1e300:
        out = np.empty(shape, np_dtype)         # np.full's result, without its Python layer
        out.fill(fill_value)
        return out
    return np.full(shape, fill_value, np_dtype)


_FILL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _full_reference(size, fill_value, dtype, device, memory_format):
    np_dtype = _factory_dtype(dtype, fill_value).np_dtype
    if np_dtype.kind in "iu" and type(fill_value) is int:   # wraps or refuses as torch
        fill_value = cast_scalar(fill_value, np_dtype, True).item()
    return fill_array(_check_size(size), fill_value, np_dtype)


def _full_meta(size, fill_value, dtype, device, memory_format):
    check_memory_format_rank(size, memory_format)
    return TensorMeta(_check_size(size), _factory_dtype(dtype, fill_value),
                      str(device or "cpu"), memory_format or contiguous_format)


full = defop(
    "full(int[] size, Scalar fill_value, *, ScalarType? dtype=None, Device? device=None, "
    "MemoryFormat? memory_format=None) -> Tensor",
    meta=_full_meta,
    reference=_full_reference,
    derivative=NOT_DIFFERENTIABLE, tags=F,
    samples=lambda rng: [S.Sample(([2, 3], 1.5)), S.Sample(([4], 7)),
                         S.Sample(([2, 2], 0), {"dtype": "float64"})],
    torch_ref="torch.full",
)


def _like_meta(self, dtype, memory_format):
    check_memory_format_rank(self.shape, memory_format)
    fmt = pointwise_memory_format([self]) if memory_format in (None, preserve_format) \
        else memory_format
    return TensorMeta(tuple(self.shape), dtypes.as_dtype(dtype) if dtype else self.dtype,
                      str(self.device), fmt)


def like(name, fill):
    return defop(
        f"{name}(Tensor self, *, ScalarType? dtype=None, MemoryFormat? memory_format=None)"
        " -> Tensor",
        meta=_like_meta,
        reference=lambda x, dtype, memory_format: fill_array(
            x.shape, fill, (dtypes.as_dtype(dtype).np_dtype if dtype else x.dtype)),
        derivative=NOT_DIFFERENTIABLE, tags=F,
        samples=lambda rng: [S.Sample((S.randn(rng, 3, 4),)),
                             S.Sample((S.randn(rng, 2),), {"dtype": "int32"})],
        torch_ref=f"torch.{name}",
    )


zeros_like = like("zeros_like", 0)
ones_like = like("ones_like", 1)

full_like = defop(
    "full_like(Tensor self, Scalar fill_value, *, ScalarType? dtype=None, "
    "MemoryFormat? memory_format=None) -> Tensor",
    meta=lambda self, fill_value, dtype, memory_format: _like_meta(self, dtype, memory_format),
    reference=lambda x, fill_value, dtype, memory_format: np.full(
        x.shape, fill_value, dtypes.as_dtype(dtype).np_dtype if dtype else x.dtype),
    derivative=NOT_DIFFERENTIABLE, tags=F,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 2.5))],
    torch_ref="torch.full_like",
)


def _arange_dtype(start, end, step, dtype):
    if dtype is not None:
        return dtypes.as_dtype(dtype)
    if all(isinstance(v, (int, np.integer)) for v in (start, end, step)):
        return dtypes.int64
    return dtypes.get_default_dtype()


def _arange_len(start, end, step) -> int:
    if step == 0:
        raise ShapeError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ShapeError(f"arange: upper bound and larger bound inconsistent with step sign "
                         f"(start={start}, end={end}, step={step})")
    return max(int(np.ceil((end - start) / step)), 0)


arange = defop(
    "arange(Scalar start, Scalar end, Scalar step=1, *, ScalarType? dtype=None, "
    "Device? device=None) -> Tensor",
    meta=lambda start, end, step, dtype, device: TensorMeta(
        (_arange_len(start, end, step),), _arange_dtype(start, end, step, dtype),
        str(device or "cpu")),
    reference=lambda start, end, step, dtype, device: (
        start + np.arange(_arange_len(start, end, step)) * step).astype(
        _arange_dtype(start, end, step, dtype).np_dtype),
    derivative=NOT_DIFFERENTIABLE, tags=F,
    samples=lambda rng: [S.Sample((0, 5)), S.Sample((1.0, 2.0, 0.25)), S.Sample((5, -3, -2))],
    torch_ref="torch.arange",
)
