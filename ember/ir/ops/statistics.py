"""Statistics ops with NumPy kernels: mode, nanmedian, histc, bincount, and the two halves
of histogramdd (bin edges, then counts in given bins) that histogram and histogramdd
compose.

mode and nanmedian pick an element, so their gradient flows to it (nanmedian's full
reduction shares it among the elements equal to the result, as median's does). The
histogram ops count, so they are not differentiable; bincount's output length is the
largest value + 1, a data-dependent shape (`Tag.DYNAMIC_SHAPE`).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..meta import TensorMeta
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S
from .reduction import (_dim_select_meta, _extreme_derivative, _select_grad,
                        median_meta, named_tuple_op, overloaded)
from .rules import np_inexact, wrap_dim
from .selection import concrete_values

R = {Tag.REDUCTION}


def _sample(*args, **kwargs):
    return S.Sample(tuple(args), kwargs)


def _per_slice(fn, x, dim, keepdim):
    """(values, indices) of fn(1-D slice) -> (value, index) over every slice along dim."""
    if not x.ndim:
        return x.copy(), np.asarray(0, np.int64)
    axis = wrap_dim(dim, x.ndim)
    moved = np.moveaxis(x, axis, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    vals = np.empty(rows.shape[0], x.dtype)
    idx = np.empty(rows.shape[0], np.int64)
    for r, row in enumerate(rows):
        vals[r], idx[r] = fn(row)
    vals, idx = vals.reshape(moved.shape[:-1]), idx.reshape(moved.shape[:-1])
    if keepdim:
        vals, idx = np.expand_dims(vals, axis), np.expand_dims(idx, axis)
    return vals, idx


# --- mode ------------------------------------------------------------------------------

def _mode_of(row):
    """The most frequent value (the smallest among ties; each NaN counts alone) and the
    index of its last occurrence."""
    order = np.argsort(row, kind="stable")
    s = row[order]
    starts = np.concatenate([[True], s[1:] != s[:-1]]) if s.size else np.zeros(0, bool)
    if np_inexact(s.dtype):
        starts |= np.isnan(s)
    bounds = np.append(np.nonzero(starts)[0], s.size)
    counts = np.diff(bounds)
    best = int(np.argmax(counts))              # first = smallest value among ties
    return s[bounds[best]], order[bounds[best]:bounds[best + 1]].max()


mode = named_tuple_op(defop(
    "mode(Tensor self, int dim=-1, bool keepdim=False) -> (Tensor values, Tensor indices)",
    meta=lambda self, dim, keepdim: _dim_select_meta(self, dim, keepdim, "mode"),
    reference=lambda x, dim, keepdim: _per_slice(_mode_of, x, dim, keepdim),
    derivative=lambda g, self, dim, keepdim, out: _select_grad(g[0], self, dim, keepdim,
                                                               out[1]),
    tags=R, method=True, saves=(),
    samples=lambda rng: [_sample(S.int_array(rng, 3, 6, low=0, high=3), 1),
                         S.Sample((np.round(S.randn(rng, 4, 3)), 0, True), grad=False,
                                  note="ties: finite differences change the mode"),
                         _sample(S.randn(rng, 4, 3), 0, True),
                         _sample(S.randn(rng), 0)],
    torch_ref="torch.mode",
))


# --- nanmedian -------------------------------------------------------------------------

def _nanmedian_of(row):
    """The lower median of the non-NaN values (NaN when all are NaN), and its index."""
    ok = ~np.isnan(row) if np_inexact(row.dtype) else np.ones(row.shape, bool)
    k = int(ok.sum())
    order = np.argsort(np.where(ok, row, np.inf) if np_inexact(row.dtype) else row,
                       kind="stable")
    if k == 0:
        return row[order[0]] if row.size else np.nan, order[0] if row.size else 0
    pick = order[(k - 1) // 2]
    return row[pick], pick


def _nanmedian_np(x):
    flat = x.reshape(-1)
    if flat.size == 0:
        return np.asarray(np.nan, x.dtype)
    return np.asarray(_nanmedian_of(flat)[0], x.dtype)


nanmedian_dim = named_tuple_op(defop(
    "nanmedian_dim(Tensor self, int dim, bool keepdim=False) -> (Tensor values, "
    "Tensor indices)",
    meta=lambda self, dim, keepdim: _dim_select_meta(self, dim, keepdim, "nanmedian"),
    reference=lambda x, dim, keepdim: _per_slice(_nanmedian_of, x, dim, keepdim),
    derivative=lambda g, self, dim, keepdim, out: _select_grad(g[0], self, dim, keepdim,
                                                               out[1]),
    tags=R, method=True, saves=(),
    samples=lambda rng: [_sample(_with_nans(rng, 3, 5), 1),
                         _sample(_with_nans(rng, 4, 3), 0, True), _sample(S.randn(rng), 0)],
    torch_ref="torch.nanmedian",
))


def _with_nans(rng, *shape):
    x = S.randn(rng, *shape)
    x[rng.random(shape) < 0.3] = np.nan
    return x


nanmedian = overloaded(defop(
    "nanmedian(Tensor self) -> Tensor",
    meta=median_meta("nanmedian"),
    reference=_nanmedian_np,
    derivative=lambda g, self, out: _extreme_derivative(g, self, None, False, out),
    tags=R, method=True,
    samples=lambda rng: [_sample(_with_nans(rng, 3, 5)), _sample(S.randn(rng, 4)),
                         _sample(S.randn(rng))],
    torch_ref="torch.nanmedian",
), "nanmedian_dim")


# --- histc -----------------------------------------------------------------------------

def _histc_range(x, bins, min, max):
    lo, hi = float(min), float(max)
    if lo == hi and x.size:
        lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    return lo, hi


def _histc_ref(x, bins, min, max):
    if min > max:
        raise ShapeError("torch.histc: max must be larger than min")
    lo, hi = _histc_range(x, bins, min, max)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ShapeError(f"torch.histc: range of [{lo}, {hi}] is not finite")
    flat = x.reshape(-1)
    keep = (flat >= lo) & (flat <= hi)
    # PyTorch's bin: floor((v - lo) * bins / (hi - lo)), the top edge in the last bin
    pos = ((flat[keep].astype(np.float64) - lo) * bins / (hi - lo)).astype(np.int64)
    counts = np.bincount(np.minimum(pos, bins - 1), minlength=bins)
    return counts.astype(x.dtype)


def _histc_meta(self, bins, min, max):
    if not self.dtype.is_floating_point:
        raise DTypeError(f"\"histogram_cpu\" not implemented for '{self.dtype.scalar_type_name}'")
    if bins <= 0:
        raise ShapeError(f"torch.histc: bins must be > 0, but got {bins} for dimension 0")
    return TensorMeta((bins,), self.dtype, str(self.device))


histc = defop(
    "histc(Tensor self, int bins=100, Scalar min=0, Scalar max=0) -> Tensor",
    meta=_histc_meta, reference=_histc_ref,
    derivative=NOT_DIFFERENTIABLE, method=True,
    samples=lambda rng: [_sample(S.randn(rng, 20), 5), _sample(S.randn(rng, 3, 4), 4, -1, 1),
                         _sample(np.ones(3, np.float32), 4)],
    torch_ref="torch.histc",
)


# --- histogramdd: bin edges, then counts -----------------------------------------------

def _dd_check(self, n_bins, range_, weight):
    if not self.dtype.is_floating_point:
        raise DTypeError(f"torch.histogramdd: input tensor and bins tensors should have the "
                         f"same dtype, and be floating point, got {self.dtype.name}")
    if self.ndim < 1:
        raise ShapeError("torch.histogramdd: input tensor should have at least 1 dimension, "
                         "but got 0")
    d = self.shape[-1]
    if n_bins is not None and n_bins != d:
        raise ShapeError(f"torch.histogramdd: expected {d} sequences of bin edges for each "
                         f"of the {d} input dimensions, but got {n_bins} bin edge tensors")
    if range_ is not None and len(range_) != 2 * d:
        raise ShapeError(f"torch.histogramdd: for a {d}-dimensional histogram range should "
                         f"have {2 * d} elements, but got {len(range_)}")
    if weight is not None and tuple(weight.shape) != tuple(self.shape[:-1]):
        raise ShapeError(f"torch.histogramdd: if weight tensor is provided it should have "
                         f"the same shape as the input tensor excluding its innermost "
                         f"dimension, but got input with shape {list(self.shape)} and weight "
                         f"with shape {list(weight.shape)}")


def _bin_edges_meta(self, bins, range, weight, density):
    _dd_check(self, len(bins), range, weight)
    for b in bins:
        if b <= 0:
            raise ShapeError(f"torch.histogramdd(): bins must be > 0, but got {b} for "
                             f"dimension 0")
    return [TensorMeta((b + 1,), self.dtype, str(self.device)) for b in bins]


def _bin_edges_ref(x, bins, range, weight, density):
    pts = x.reshape(-1, x.shape[-1])
    edges = []
    for k, b in enumerate(bins):
        if range is not None:
            lo, hi = float(range[2 * k]), float(range[2 * k + 1])
        elif pts.shape[0]:
            lo, hi = float(pts[:, k].min()), float(pts[:, k].max())
        else:           # no points: torch's edges span [0, 1]
            lo, hi = 0.0, 1.0
        if lo > hi:
            raise ShapeError(f"torch.histogramdd: expected upper bound of range to be greater "
                             f"than lower bound for dimension {k}, but got lower bound {lo} "
                             f"and upper bound {hi}")
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ShapeError(f"torch.histogramdd: range of [{lo}, {hi}] is not finite")
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges.append(np.linspace(lo, hi, b + 1).astype(x.dtype))
    return edges


_histogramdd_bin_edges = defop(
    "_histogramdd_bin_edges(Tensor self, int[] bins, *, float[]? range=None, "
    "Tensor? weight=None, bool density=False) -> Tensor[]",
    meta=_bin_edges_meta, reference=_bin_edges_ref,
    derivative=NOT_DIFFERENTIABLE,
    samples=lambda rng: [_sample(S.randn(rng, 6, 2), [3, 4]),
                         _sample(S.randn(rng, 5, 1), [2], range=[-1.0, 1.0])],
    torch_ref=lambda torch: torch.ops.aten._histogramdd_bin_edges,
    doc="The bin edges histogramdd uses: bins+1 evenly spaced points over range (default: "
        "the data's min and max, widened by 0.5 when they are equal).",
)


def _counts_meta(self, bins, weight, density):
    _dd_check(self, len(bins), None, weight)
    for b in bins:
        if b.ndim != 1 or b.shape[0] < 1:
            raise ShapeError("torch.histogramdd: bins tensor should have one dimension and "
                             "at least 1 element")
        if b.dtype is not self.dtype:
            raise DTypeError("torch.histogramdd: input tensor and bins tensors should have "
                             "the same dtype")
    if weight is not None and weight.dtype is not self.dtype:
        raise DTypeError("torch.histogramdd: if weight tensor is provided, input tensor and "
                         "weight tensor should have the same dtype")
    return TensorMeta(tuple(max(b.shape[0] - 1, 0) for b in bins), self.dtype,
                      str(self.device))


def _counts_ref(x, bins, weight, density):
    pts = x.reshape(-1, x.shape[-1])
    w = None if weight is None else weight.reshape(-1)
    shape = tuple(max(len(e) - 1, 0) for e in bins)
    inside = np.ones(pts.shape[0], bool)
    cell = []
    for k, edges in enumerate(bins):
        v = pts[:, k]
        # bin i holds edges[i] <= v < edges[i+1]; the last bin also holds its right edge
        pos = np.searchsorted(edges, v, side="right") - 1
        pos = np.where(v == edges[-1], len(edges) - 2, pos)
        inside &= (v >= edges[0]) & (v <= edges[-1]) & (pos >= 0) & (pos < len(edges) - 1)
        cell.append(pos)
    hist = np.zeros(shape, np.float64)
    if pts.shape[0] and all(shape):
        coords = tuple(c[inside] for c in cell)
        np.add.at(hist, coords, 1.0 if w is None else w[inside].astype(np.float64))
    if density:
        total = hist.sum()
        widths = np.ones(shape)
        for k, edges in enumerate(bins):
            size = [1] * len(bins)
            size[k] = shape[k]
            widths = widths * np.diff(edges.astype(np.float64)).reshape(size)
        with np.errstate(invalid="ignore", divide="ignore"):
            hist = hist / total / widths
    return hist.astype(x.dtype)


_histogramdd_from_bin_tensors = defop(
    "_histogramdd_from_bin_tensors(Tensor self, Tensor[] bins, *, Tensor? weight=None, "
    "bool density=False) -> Tensor",
    meta=_counts_meta, reference=_counts_ref,
    derivative=NOT_DIFFERENTIABLE,
    samples=lambda rng: [_sample(S.randn(rng, 8, 2), [np.linspace(-1, 1, 4, dtype=np.float32),
                                                      np.array([-2, 0, 2], np.float32)]),
                         _sample(S.randn(rng, 8, 1), [np.linspace(-1, 1, 3,
                                                                  dtype=np.float32)],
                                 density=True)],
    torch_ref=lambda torch: torch.ops.aten._histogramdd_from_bin_tensors,
    doc="histogramdd's counts (or density) of the points in the cells the bin edges make.",
)


# --- bincount --------------------------------------------------------------------------

def _bincount_meta(self, weights, minlength):
    if self.ndim != 1 or self.dtype.category is not dtypes.Category.INT or \
            self.dtype is dtypes.bool_:
        raise ShapeError("bincount only supports 1-d non-negative integral inputs.")
    if minlength < 0:
        raise ShapeError("minlength should be >= 0")
    if weights is not None and (weights.ndim != 1 or weights.shape[0] != self.shape[0]):
        raise ShapeError("weights should be 1-d and have the same length as input")
    values = concrete_values(self, "bincount")
    if values.size and values.min() < 0:
        raise ShapeError("bincount only supports 1-d non-negative integral inputs.")
    n = builtins_max(int(values.max()) + 1 if values.size else 0, minlength)
    if weights is None:
        dtype = dtypes.int64
    else:
        dtype = weights.dtype if weights.dtype in (dtypes.float32, dtypes.float16,
                                                   dtypes.bfloat16) else dtypes.float64
    return TensorMeta((n,), dtype, str(self.device))


def builtins_max(a, b):
    return a if a >= b else b


def _bincount_ref(x, weights, minlength):
    out = np.bincount(x, weights=None if weights is None else weights.astype(np.float64),
                      minlength=minlength)
    return out


bincount = defop(
    "bincount(Tensor self, Tensor? weights=None, int minlength=0) -> Tensor",
    meta=_bincount_meta, reference=_bincount_ref,
    derivative=NOT_DIFFERENTIABLE, method=True, tags={Tag.DYNAMIC_SHAPE},
    samples=lambda rng: [_sample(S.int_array(rng, 10, low=0, high=5)),
                         _sample(S.int_array(rng, 6, low=0, high=3), S.randn(rng, 6), 5)],
    torch_ref="torch.bincount",
)
