"""Selection ops with NumPy kernels: nonzero, nonzero_static, unique, unique_consecutive,
repeat_interleave's index form, searchsorted, and scatter_reduce.

Data-dependent shapes: nonzero, unique, unique_consecutive and repeat_interleave (without
output_size) return as many elements as their input's *values* ask for. Their meta
rules read those values when they exist (eager) and otherwise raise a ShapeError
saying so — the same contract as indexing with a bool mask — so tracing them
(ember.compile, jit.trace, vmap) fails at the user's line with a clear message. They
carry `Tag.DYNAMIC_SHAPE`.

The user-facing forms with PyTorch's Python-level options (`nonzero(as_tuple=)`,
`unique(return_inverse=, ...)`, `repeat_interleave(input, repeats, dim)`) are
composites in `frontend/composites/indexing.py` over these ops.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..errors import DTypeError, EmberIndexError, ShapeError
from ..meta import TensorMeta
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S
from .joining import _check_index_bounds, _fiber_coords, _gather_scatter_check, _same, \
    _src_grad, _unique_index, gather, scatter_add
from .rules import is_tensor_like, shape_of, wrap_dim

DYNAMIC = {Tag.DYNAMIC_SHAPE}


def concrete_values(t, what: str) -> np.ndarray:
    """t's values, for a meta rule whose output shape depends on them; a ShapeError while
    tracing (symbolic tensors have no values)."""
    if not hasattr(type(t), "__array__"):
        raise ShapeError(f"{what} has a data-dependent output shape, so it cannot be traced "
                         f"into a graph (ember.compile, jit.trace, vmap); call it eagerly")
    if not str(t.device).startswith("cpu"):
        t = t.cpu()     # the size must reach the host, as in PyTorch (a synchronizing copy)
    return np.asarray(t)


def _long(shape, like) -> TensorMeta:
    return TensorMeta(tuple(shape), dtypes.int64, str(like.device))


# --- nonzero ---------------------------------------------------------------------------

def _nonzero_ref(x):
    if x.ndim == 0:
        return np.zeros((int(x != 0), 0), np.int64)
    return np.stack(np.nonzero(x.reshape(x.shape or (1,))), axis=-1).reshape(-1, x.ndim) \
        .astype(np.int64)


nonzero = defop(
    "nonzero(Tensor self) -> Tensor",
    meta=lambda self: _long((int(np.count_nonzero(concrete_values(self, "nonzero"))),
                             self.ndim), self),
    reference=_nonzero_ref,
    derivative=NOT_DIFFERENTIABLE, tags=DYNAMIC,
    samples=lambda rng: [S.Sample((S.int_array(rng, 3, 4, low=-1, high=2),)),
                         S.Sample((S.randn(rng, 5) > 0,)),
                         S.Sample((np.array(2.5, np.float32),))],
    torch_ref="torch.nonzero",
    doc="Coordinates of the nonzero elements, one row each (row-major order).",
)


def _nonzero_static_meta(self, size, fill_value):
    if size < 0:
        raise ShapeError(f"nonzero_static: 'size' must be an non-negative integer, but got "
                         f"size: {size}")
    return _long((size, self.ndim), self)


def _nonzero_static_ref(x, size, fill_value):
    found = _nonzero_ref(x)[:size]
    out = np.full((size, x.ndim), fill_value, np.int64)
    out[:len(found)] = found
    return out


nonzero_static = defop(
    "nonzero_static(Tensor self, *, int size, int fill_value=-1) -> Tensor",
    meta=_nonzero_static_meta, reference=_nonzero_static_ref,
    derivative=NOT_DIFFERENTIABLE, method=True,
    samples=lambda rng: [S.Sample((S.int_array(rng, 3, 4, low=-1, high=2),), {"size": 4}),
                         S.Sample((S.randn(rng, 5) > 0,), {"size": 7, "fill_value": 9})],
    torch_ref="torch.nonzero_static",
    doc="nonzero with a fixed number of rows: truncated, or padded with fill_value.",
)


# --- repeat_interleave (the index form) ------------------------------------------------

def _repeats_values(repeats, output_size):
    if repeats.ndim > 1:
        raise ShapeError("repeat_interleave: repeats must be 0-dim or 1-dim tensor")
    if repeats.dtype not in (dtypes.int64, dtypes.int32):
        raise DTypeError("repeat_interleave: repeats has to be Long or Int tensor")


def _repeat_interleave_meta(repeats, output_size):
    _repeats_values(repeats, output_size)
    if output_size is not None:
        return _long((output_size,), repeats)
    counts = concrete_values(repeats, "repeat_interleave with a tensor of repeats and no "
                                      "output_size")
    if counts.size and counts.min() < 0:
        raise ShapeError("repeat_interleave: repeats can not be negative")
    return _long((int(counts.sum()),), repeats)


def _repeat_interleave_ref(repeats, output_size):
    counts = repeats.reshape(-1).astype(np.int64)
    if counts.size and counts.min() < 0:
        raise ShapeError("repeat_interleave: repeats can not be negative")
    out = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    if output_size is not None and out.size != output_size:
        raise ShapeError(f"repeat_interleave: allocated size does not match required size "
                         f"({output_size} vs {out.size})")
    return out


repeat_interleave = defop(
    "repeat_interleave(Tensor repeats, *, int? output_size=None) -> Tensor",
    meta=_repeat_interleave_meta, reference=_repeat_interleave_ref,
    derivative=NOT_DIFFERENTIABLE, tags=DYNAMIC,
    samples=lambda rng: [S.Sample((np.array([2, 0, 3]),)),
                         S.Sample((np.array([1, 2]),), {"output_size": 3})],
    torch_ref="torch.repeat_interleave",
    doc="repeat_interleave(repeats): index i repeated repeats[i] times.",
)


# --- unique / unique_consecutive -------------------------------------------------------

def _unique_dim(self, dim):
    if dim is None:
        return None
    if self.ndim == 0:
        raise EmberIndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    d = wrap_dim(dim, self.ndim)
    return d


def _unique_np(x, dim, consecutive):
    """(values, inverse, counts) over the flattened x, or over slices along dim."""
    if dim is None:
        flat = x.reshape(-1)
        if consecutive:
            values, inverse, counts = _consecutive_runs(flat, flat.size)
            return values, inverse.reshape(x.shape), counts
        # (each NaN is its own value, as PyTorch's sort-then-compare finds them)
        values, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True,
                                            equal_nan=False)
        return values, inverse.reshape(x.shape), counts
    if x.shape[dim] == 0 or x.size == 0 and not consecutive:
        moved = np.moveaxis(x, dim, 0)
        rows = moved.reshape(moved.shape[0], math.prod(moved.shape[1:]))
        if rows.shape[0] == 0 or rows.shape[1] == 0:
            n = min(rows.shape[0], 1) if rows.shape[1] == 0 else 0
            shape = list(x.shape)
            shape[dim] = n
            return (np.zeros(shape, x.dtype), np.zeros(x.shape[dim], np.int64),
                    np.full(n, x.shape[dim], np.int64))
    moved = np.moveaxis(x, dim, 0)
    rows = moved.reshape(moved.shape[0], math.prod(moved.shape[1:]))
    if consecutive:
        keys, inverse, counts = _consecutive_rows(rows)
    else:
        keys, inverse, counts = np.unique(rows, axis=0, return_inverse=True,
                                          return_counts=True)
    values = np.moveaxis(keys.reshape((-1,) + moved.shape[1:]), 0, dim)
    return values, inverse.reshape(-1), counts


def _consecutive_runs(flat, n):
    if n == 0:
        return flat[:0], np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.concatenate([[True], flat[1:] != flat[:-1]])
    run = np.cumsum(starts) - 1
    return flat[starts], run, np.diff(np.append(np.nonzero(starts)[0], n))


def _consecutive_rows(rows):
    n = rows.shape[0]
    if n == 0:
        return rows, np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.concatenate([[True], np.any(rows[1:] != rows[:-1], axis=1)])
    run = np.cumsum(starts) - 1
    return rows[starts], run, np.diff(np.append(np.nonzero(starts)[0], n))


def _unique_metas(self, dim, consecutive, name):
    values, inverse, counts = _unique_np(concrete_values(self, name), _unique_dim(self, dim),
                                         consecutive)
    return (TensorMeta(values.shape, self.dtype, str(self.device)),
            _long(inverse.shape, self), _long(counts.shape, self))


def _unique_ref(x, dim, consecutive):
    values, inverse, counts = _unique_np(x, _unique_dim(_Shape(x), dim), consecutive)
    return values, inverse.astype(np.int64), counts.astype(np.int64)


class _Shape:
    def __init__(self, a):
        self.shape, self.ndim = a.shape, a.ndim


unique = defop(
    "unique(Tensor self, bool sorted=True, bool return_inverse=False, "
    "bool return_counts=False, int? dim=None) -> (Tensor values, Tensor inverse, "
    "Tensor counts)",
    meta=lambda self, sorted, return_inverse, return_counts, dim: _unique_metas(
        self, dim, False, "unique"),
    reference=lambda x, sorted, return_inverse, return_counts, dim: _unique_ref(
        x, dim, False),
    derivative=NOT_DIFFERENTIABLE, tags=DYNAMIC,
    samples=lambda rng: [S.Sample((S.int_array(rng, 3, 4, low=0, high=4),)),
                         S.Sample((S.int_array(rng, 4, 2, low=0, high=2), True, True, True,
                                   0))],
    torch_ref=lambda torch: lambda x, *a: torch.unique(x, *a[:1], return_inverse=True,
                                                       return_counts=True,
                                                       dim=a[3] if len(a) > 3 else None),
    doc="Sorted distinct values (or slices along dim), with the inverse map and counts; "
        "ember.unique returns the parts asked for.",
)

unique_consecutive = defop(
    "unique_consecutive(Tensor self, bool return_inverse=False, bool return_counts=False, "
    "int? dim=None) -> (Tensor values, Tensor inverse, Tensor counts)",
    meta=lambda self, return_inverse, return_counts, dim: _unique_metas(
        self, dim, True, "unique_consecutive"),
    reference=lambda x, return_inverse, return_counts, dim: _unique_ref(x, dim, True),
    derivative=NOT_DIFFERENTIABLE, tags=DYNAMIC,
    samples=lambda rng: [S.Sample((np.array([1, 1, 2, 2, 3, 1, 1, 2]), True, True)),
                         S.Sample((np.array([[1, 2], [1, 2], [0, 2]]), True, True, 0))],
    torch_ref=lambda torch: lambda x, *a: torch.unique_consecutive(
        x, return_inverse=True, return_counts=True, dim=a[2] if len(a) > 2 else None),
    doc="Values (or slices along dim) with consecutive repeats collapsed, the inverse map "
        "and run lengths.",
)


# --- searchsorted ----------------------------------------------------------------------

def _searchsorted_side(right, side):
    if side is not None and side not in ("left", "right"):
        raise ShapeError(f"torch.searchsorted(): side can only be 'left' or 'right' but got "
                         f"{side}")
    if side == "left" and right:
        raise ShapeError("torch.searchsorted(): side and right can't be set to opposites, "
                         "got side of left while right was True")
    return "right" if right or side == "right" else "left"


def _searchsorted_meta(sorted_sequence, self, out_int32, right, side, sorter):
    _searchsorted_side(right, side)
    shape = shape_of(self)
    seq = tuple(sorted_sequence.shape)
    if len(seq) == 0:
        raise ShapeError("torch.searchsorted(): boundaries tensor should have positive "
                         "dimension, but got 0 dimension")
    if len(seq) > 1 and (len(seq) != len(shape) or seq[:-1] != shape[:-1]):
        raise ShapeError(f"torch.searchsorted(): boundaries tensor should be 1 dimension or "
                         f"the first N-1 dimensions of boundaries tensor and input value "
                         f"tensor must match, but we got boundaries tensor {list(seq)} and "
                         f"input value tensor {list(shape)}")
    if sorter is not None:
        if tuple(sorter.shape) != seq:
            raise ShapeError(f"torch.searchsorted(): boundary and sorter must have the same "
                             f"size, but got boundary tensor {list(seq)}and got sorter tensor "
                             f"{list(sorter.shape)}")
        if sorter.dtype is not dtypes.int64:
            raise DTypeError("torch.searchsorted(): sorter must be a tensor of long dtype but "
                             f"got dtype {sorter.dtype.name}")
    for t in (sorted_sequence, self):
        if is_tensor_like(t) and t.dtype.is_complex:
            raise DTypeError("torch.searchsorted(): complex tensors are not supported")
    return TensorMeta(shape, dtypes.int32 if out_int32 else dtypes.int64,
                      str(sorted_sequence.device))


def _searchsorted_ref(seq, values, out_int32, right, side, sorter):
    side = _searchsorted_side(right, side)
    values = np.asarray(values)
    if sorter is not None:
        if sorter.size and (sorter.min() < 0 or sorter.max() >= seq.shape[-1]):
            raise EmberIndexError("torch.searchsorted(): sorter index out of range")
        seq = np.take_along_axis(seq, sorter, axis=-1)
    kind = np.result_type(seq.dtype, values.dtype)
    seq, values = seq.astype(kind), values.astype(kind)
    if kind.kind == "f" and (np.isnan(seq).any() or np.isnan(values).any()):
        out = _bisect_as_pytorch(seq, values, side == "right")
        return np.asarray(out, np.int32 if out_int32 else np.int64)
    if seq.ndim == 1:
        out = np.searchsorted(seq, values, side=side)
    else:
        rows = math.prod(seq.shape[:-1])          # (-1 is ambiguous for empty shapes)
        rows_s = seq.reshape(rows, seq.shape[-1])
        rows_v = values.reshape(rows, values.shape[-1])
        out = np.zeros(rows_v.shape, np.int64)
        for r in range(rows):
            out[r] = np.searchsorted(rows_s[r], rows_v[r], side=side)
        out = out.reshape(values.shape)
    return np.asarray(out, np.int32 if out_int32 else np.int64)


def _bisect_as_pytorch(seq, values, right):
    """PyTorch's own binary search, for NaNs (which NumPy orders last, PyTorch's
    comparisons never): step right while not boundary >= value (left) or not boundary
    > value (right), so a NaN value lands past every boundary."""
    n = seq.shape[-1]
    flat_vals = values.reshape(-1, values.shape[-1]) if values.ndim else values.reshape(1, 1)
    rows = seq.reshape(-1, n) if seq.ndim > 1 else np.broadcast_to(seq, (len(flat_vals), n))
    start = np.zeros(flat_vals.shape, np.int64)
    end = np.full(flat_vals.shape, n, np.int64)
    row_index = np.arange(len(flat_vals))[:, None]
    with np.errstate(invalid="ignore"):
        while (start < end).any():
            active = start < end
            mid = start + ((end - start) >> 1)
            bound = rows[row_index, np.minimum(mid, n - 1)]
            ahead = bound > flat_vals if right else bound >= flat_vals
            start = np.where(active & ~ahead, mid + 1, start)
            end = np.where(active & ahead, mid, end)
    return start.reshape(values.shape)


searchsorted = defop(
    "searchsorted(Tensor sorted_sequence, Tensor self, *, bool out_int32=False, "
    "bool right=False, str? side=None, Tensor? sorter=None) -> Tensor",
    meta=_searchsorted_meta, reference=_searchsorted_ref,
    derivative=NOT_DIFFERENTIABLE,
    samples=lambda rng: [
        S.Sample((np.sort(S.randn(rng, 6)), S.randn(rng, 3, 4))),
        S.Sample((np.sort(S.randn(rng, 2, 5), -1), S.randn(rng, 2, 3)), {"right": True}),
        S.Sample((np.array([1, 3, 3, 5]), np.array([3, 0, 6])), {"side": "right",
                                                                   "out_int32": True})],
    torch_ref="torch.searchsorted",
)


# --- scatter_reduce --------------------------------------------------------------------

_REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _check_reduce(reduce):
    if reduce not in _REDUCTIONS:
        raise ShapeError(f"reduce argument must be either sum, prod, mean, amax or amin, got "
                         f"{reduce}")


def _identity(reduce, dtype):
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    if dtype.kind in "fc" or dtype.name == "bfloat16":   # (ml_dtypes' bfloat16: kind 'V')
        return -np.inf if reduce == "amax" else np.inf
    if dtype.kind == "b":
        return reduce == "amin"
    info = np.iinfo(dtype)
    return info.min if reduce == "amax" else info.max


_UFUNCS = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.fmax,
           "amin": np.fmin}


def _scatter_counts(shape, index, d):
    counts = np.zeros(shape, np.int64)
    np.add.at(counts, _fiber_coords(index, d), 1)
    return counts


def _scatter_reduce_ref(x, dim, index, src, reduce, include_self):
    _check_reduce(reduce)
    out = np.array(x, copy=True)
    d = wrap_dim(dim, x.ndim)
    o1, i1 = out.reshape(out.shape or (1,)), index.reshape(index.shape or (1,))
    _check_index_bounds(i1, o1.shape[d], d, False)
    s1 = np.asarray(src).reshape(np.shape(src) or (1,))
    vals = s1[tuple(slice(0, n) for n in i1.shape)].astype(out.dtype)
    counts = _scatter_counts(o1.shape, i1, d)
    if not include_self:
        o1[counts > 0] = _identity(reduce, out.dtype)
    coords = _fiber_coords(i1, d)
    if reduce in ("amax", "amin"):
        _propagate_nan_at(o1, coords, vals, reduce)
    else:
        _UFUNCS[reduce].at(o1, coords, vals)
    if reduce == "mean":
        n = np.maximum(counts + (1 if include_self else 0), 1)
        o1[...] = o1 // n if out.dtype.kind in "iub" else o1 / n
    return out


def _propagate_nan_at(o1, coords, vals, reduce):
    """amax/amin that, like PyTorch, let a NaN win (np.maximum.at does, fmax.at not)."""
    (np.maximum if reduce == "amax" else np.minimum).at(o1, coords, vals)


def _scatter_reduce_meta(self, dim, index, src, reduce, include_self):
    _check_reduce(reduce)
    _gather_scatter_check(self, dim, index, src, "scatter_reduce")
    if is_tensor_like(src) and src.dtype is not self.dtype:
        raise DTypeError(f"scatter_reduce(): Expected self.dtype to be equal to src.dtype, "
                         f"got {self.dtype.name} and {src.dtype.name}")
    return _same(self)


def _src_part(src, index):
    """The part of src that scatter reads: its leading index.shape block."""
    from .shape import slice_op
    if src.ndim == 0 or tuple(src.shape) == tuple(index.shape):
        return src
    for k, n in enumerate(index.shape):
        if src.shape[k] != n:
            src = slice_op(src, k, 0, n)
    return src


def _scatter_reduce_grad(g, self, dim, index, src, reduce, include_self, out):
    from . import pointwise as PW
    from .creation import full
    part = _src_part(src, index)
    ones = full(list(index.shape), 1, dtype=g.dtype)
    count = scatter_add(full(list(self.shape), 0, dtype=g.dtype), dim, index, ones)
    untouched = PW.eq(count, 0)
    keep_self = g if include_self else PW.where(untouched, g, g * 0)
    if reduce == "sum":
        return keep_self, None, _src_grad(gather(g, dim, index), src)
    if reduce == "mean":
        n = count + 1 if include_self else PW.maximum(count, full([], 1, dtype=g.dtype))
        gn = g / n
        return (gn if include_self else PW.where(untouched, g, g * 0)), None, \
            _src_grad(gather(gn, dim, index), src)
    if reduce == "prod":
        return _prod_grads(g, self, dim, index, src, part, include_self, untouched)
    return _extreme_grads(g, self, dim, index, src, part, include_self, untouched, out)


def _prod_grads(g, self, dim, index, src, part, include_self, untouched):
    """d out / d x = product of the other factors, exact when some factors are zero:
    count the zeros per output and take the product of the nonzero factors."""
    from . import pointwise as PW
    from .creation import full
    zero = full([], 0, dtype=g.dtype)
    one = full([], 1, dtype=g.dtype)
    self_zero = PW.eq(self, 0)
    src_zero = PW.eq(part, 0)
    zeros = scatter_add(PW.where(self_zero, one, zero) if include_self else
                        full(list(self.shape), 0, dtype=g.dtype), dim, index,
                        PW.where(src_zero, one, zero))
    base = PW.where(self_zero, one, self) if include_self else full(list(self.shape), 1,
                                                                     dtype=g.dtype)
    nonzero_prod = scatter_reduce(base, dim, index, PW.where(src_zero, one, part), "prod")
    g_self = PW.where(self_zero, PW.where(PW.eq(zeros, 1), nonzero_prod, zero),
                      PW.where(PW.eq(zeros, 0), nonzero_prod / PW.where(self_zero, one, self),
                               zero)) * g
    if not include_self:
        g_self = PW.where(untouched, g, zero)
    others_nz = gather(nonzero_prod, dim, index)
    nz_count = gather(zeros, dim, index)
    g_part = PW.where(src_zero, PW.where(PW.eq(nz_count, 1), others_nz, zero),
                      PW.where(PW.eq(nz_count, 0), others_nz / PW.where(src_zero, one, part),
                               zero)) * gather(g, dim, index)
    return g_self, None, _src_grad(g_part, src)


def _extreme_grads(g, self, dim, index, src, part, include_self, untouched, out):
    """amax/amin: the gradient is shared evenly among the elements equal to the result."""
    from . import pointwise as PW
    from .creation import full
    zero = full([], 0, dtype=g.dtype)
    hit_src = PW.convert_element_type(PW.eq(part, gather(out, dim, index)), g.dtype)
    hit_self = PW.convert_element_type(PW.eq(self, out), g.dtype) if include_self else \
        PW.convert_element_type(untouched, g.dtype)
    total = scatter_add(hit_self, dim, index, hit_src)
    share = g / PW.maximum(total, full([], 1, dtype=g.dtype))
    g_self = share * hit_self
    if not include_self:
        g_self = PW.where(untouched, g, zero)
    return g_self, None, _src_grad(gather(share, dim, index) * hit_src, src)


scatter_reduce = defop(
    "scatter_reduce(Tensor self, int dim, Tensor index, Tensor src, str reduce, *, "
    "bool include_self=True) -> Tensor",
    saves=("self", "index", "src"),
    meta=_scatter_reduce_meta, reference=_scatter_reduce_ref,
    derivative=_scatter_reduce_grad,
    tags={Tag.SHAPE}, method=True, inplace_variant=True,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 3, 4), 1, S.int_array(rng, 3, 5, low=0, high=4),
                  S.randn(rng, 3, 5), "sum")),
        S.Sample((S.randn(rng, 4, 2), 0, S.int_array(rng, 5, 2, low=0, high=4),
                  S.randn(rng, 5, 2), "mean"), {"include_self": False}),
        S.Sample((S.randn(rng, 4, 2), 0, S.int_array(rng, 5, 2, low=0, high=4),
                  S.randn(rng, 5, 2), "prod")),
        S.Sample((S.randn(rng, 4, 2), 0, S.int_array(rng, 5, 2, low=0, high=4),
                  S.randn(rng, 6, 3), "sum"), grad=False,
                 note="torch's gradient fails for a src larger than index"),
        S.Sample((S.randn(rng, 3, 4), 1, S.int_array(rng, 3, 3, low=0, high=4),
                  S.randn(rng, 3, 3), "amax"), {"include_self": False}),
        S.Sample((S.randn(rng, 5), 0, S.int_array(rng, 4, low=0, high=5),
                  S.randn(rng, 4), "amin"))],
    torch_ref="torch.scatter_reduce",
)
