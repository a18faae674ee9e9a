"""Reductions over dims: sum, mean, amax, amin, ... with PyTorch's dim/keepdim/dtype.

`dim=None` (or []) reduces everything. Integer and bool sums accumulate in int64,
as PyTorch does; floats accumulate in their own type (float32 sums use numpy's
pairwise summation, close to PyTorch's cascade sum).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..meta import TensorMeta
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S
from .rules import reduced_shape, wrap_dims

R = {Tag.REDUCTION}

REDUCE_SAMPLES = lambda rng: [  # noqa: E731 - a table entry
    S.Sample((S.randn(rng, 3, 4),), {}),
    S.Sample((S.randn(rng, 3, 4), 1)),
    S.Sample((S.randn(rng, 2, 3, 4), [0, 2], True)),
    S.Sample((S.randn(rng, 5), 0, True)),
    S.Sample((S.randn(rng),), {}),
]


def _sum_dtype(x, dtype):
    if dtype is not None:
        return dtypes.as_dtype(dtype)
    if x.dtype.category <= dtypes.Category.INT:
        return dtypes.int64
    return x.dtype


def _np_sum_dtype(x: np.ndarray, dtype):
    if dtype is not None:
        return dtypes.as_dtype(dtype).np_dtype
    return np.int64 if x.dtype.kind in "biu" else x.dtype


def _reduce_meta(result_dtype):
    def rule(self, dim=None, keepdim=False, dtype=None):
        dims = wrap_dims(dim, self.ndim)
        return TensorMeta(reduced_shape(tuple(self.shape), dims, keepdim),
                          result_dtype(self, dtype), str(self.device))
    return rule


def _axes(x, dim):
    return wrap_dims(dim, x.ndim) if x.ndim else None


def expand_reduced(g, self, dim, keepdim):
    """Broadcast a reduced gradient back to `self`'s shape."""
    if not keepdim and self.ndim:
        for d in sorted(wrap_dims(dim, self.ndim)):
            g = unsqueeze(g, d)
    return expand(g, list(self.shape))


sum = defop(  # noqa: A001 - PyTorch's name
    "sum(Tensor self, int[]? dim=None, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor",
    saves=(),
    meta=_reduce_meta(_sum_dtype),
    reference=lambda x, dim, keepdim, dtype: np.sum(
        x, axis=_axes(x, dim), keepdims=keepdim, dtype=_np_sum_dtype(x, dtype)),
    derivative=lambda g, self, dim, keepdim, dtype: expand_reduced(g, self, dim, keepdim),
    tags=R, samples=REDUCE_SAMPLES, torch_ref="torch.sum", method=True,
)

mean = defop(
    "mean(Tensor self, int[]? dim=None, bool keepdim=False, *, ScalarType? dtype=None) -> Tensor",
    saves=(),
    meta=_reduce_meta(lambda x, dtype: dtypes.as_dtype(dtype) if dtype else x.dtype),
    reference=lambda x, dim, keepdim, dtype: np.mean(x, axis=_axes(x, dim), keepdims=keepdim),
    derivative=lambda g, self, dim, keepdim, dtype: expand_reduced(
        g, self, dim, keepdim) / _count(self, dim),
    tags=R, samples=REDUCE_SAMPLES, torch_ref="torch.mean", method=True,
)


def _count(x, dim) -> int:
    n = 1
    for d in wrap_dims(dim, x.ndim):
        n *= x.shape[d]
    return max(n, 1)


def _extreme_derivative(g, self, dim, keepdim, out):
    """amax/amin: the gradient is split evenly among the tied extreme elements."""
    out_b = expand_reduced(out, self, dim, keepdim)
    mask = self == out_b
    count = sum(mask, dim, True)
    return expand_reduced(g, self, dim, keepdim) * mask / expand(
        count if keepdim or not self.ndim else count, list(self.shape))


amax = defop(
    "amax(Tensor self, int[] dim=[], bool keepdim=False) -> Tensor",
    meta=lambda self, dim, keepdim: _reduce_meta(lambda x, d: x.dtype)(self, dim, keepdim),
    reference=lambda x, dim, keepdim: np.amax(x, axis=_axes(x, dim), keepdims=keepdim),
    derivative=_extreme_derivative,
    tags=R, samples=REDUCE_SAMPLES, torch_ref="torch.amax", method=True,
)

argmax = defop(
    "argmax(Tensor self, int? dim=None, bool keepdim=False) -> Tensor",
    meta=lambda self, dim, keepdim: TensorMeta(
        reduced_shape(tuple(self.shape), wrap_dims(dim, self.ndim), keepdim)
        if dim is not None else ((1,) * self.ndim if keepdim else ()), dtypes.int64,
        str(self.device)),
    reference=lambda x, dim, keepdim: _arg_reduce(np.argmax, x, dim, keepdim),
    derivative=NOT_DIFFERENTIABLE,
    tags=R, samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 1)),
                                 S.Sample((S.randn(rng, 3, 4),))],
    torch_ref="torch.argmax", method=True,
)


def _arg_reduce(fn, x, dim, keepdim):
    if dim is None:
        out = fn(x.reshape(-1))
        return np.asarray(out).reshape((1,) * x.ndim if keepdim else ())
    axis = wrap_dims(dim, x.ndim)[0] if x.ndim else None
    out = fn(x, axis=axis) if x.ndim else np.asarray(0)
    return np.expand_dims(out, axis) if keepdim and x.ndim else out


from .shape import expand, unsqueeze  # noqa: E402 - derivative rules use shape ops
