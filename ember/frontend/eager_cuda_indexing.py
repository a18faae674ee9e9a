"""CUDA routes for the indexing, scatter, selection and loss ops ordinary training code runs
(accuracy counting, label handling, masks), which have no lowering rule of their own.
eager_cuda_training.run takes them from ROUTES (merged into its table). Each launches a
kernel of codegen/triton/indexing.py or rewrites the op exactly into ops that have CUDA
kernels:

- index (`x[idx]`, `x[i, j]`, `x[:, idx]`, `x[mask]`) and index_put (`x[idx] = v`,
  `index_put_(..., accumulate=True)`, and so index's backward): one kernel over strided
  operands; negative indices wrapped, then range-checked as gathers are (eagerly by
  reading the index's min and max back; inside a compiled step on the device). A bool
  mask becomes its nonzero coordinates (a read of the count, as PyTorch's nonzero);
- nonzero: one program carrying the running count (the count is read back first);
- scatter / scatter_add / scatter_reduce (sum, amax, amin, mean; include_self either
  way), and so gather's backward: a store or an atomic per index element; bincount: a
  scatter_add of ones (or the weights);
- cumsum / cumprod: one program a line carrying the running value between blocks;
- argmax / argmin / max(dim) / min(dim): amax/amin, then the first position holding it
  (a NaN counts as the extreme, as in PyTorch); topk: the stable sort kernel, cut to k;
  median(dim) / kthvalue: the sorted slice's element (NaN where a slice holds one);
  searchsorted / bucketize: a binary search per value (no `sorter`); unique (flattened):
  the sort, group heads, the heads' values, inverse and counts;
- one_hot: a comparison with the class numbers; any / all: counts of nonzero elements;
  sgn of real tensors: sign;
- mse_loss, l1_loss, smooth_l1_loss, huber_loss: their elementwise terms, then the mean
  or sum.

Atomic routes (accumulate, scatter_add, scatter_reduce) add repeats in the order the
atomics land, as PyTorch's CUDA kernels do; in deterministic mode they return None and the
op runs on the host, where the order is fixed.
"""
from __future__ import annotations

import math

from ..ir import dtypes
from ..ir.errors import EmberIndexError, LoweringError
from ..ir.meta import contiguous_strides
from ..ir.ops.rules import broadcast_shapes
from ..ir.registry import OPS
from . import eager_cuda
from .determinism import are_deterministic_algorithms_enabled
from .devices import empty_cuda
from .tensor import Tensor

INDEX_DTYPES = ("int64", "int32")
MASK_DTYPES = ("bool", "uint8")


def _dense(shape, dtype, index: int) -> Tensor:
    shape = tuple(shape)
    return empty_cuda(shape, contiguous_strides(shape), dtype, index)


def _dense_copy(t: Tensor, dtype, index: int) -> Tensor:
    out = _dense(t.shape, dtype, index)
    if out.numel():
        eager_cuda.copy_into(out, t)
    return out


def _as_meta(value, meta, index):
    from .eager_cuda_training import _as_meta
    return _as_meta(value, meta, index)


def _atomic_dtype(dtype):
    from .eager_cuda_training import _atomic_dtype
    return _atomic_dtype(dtype)


def _launch(generated, tensors, index):
    eager_cuda.launch(generated, tensors, index)


# --- index range checks ----------------------------------------------------------------
def _wrapped_checked(idx: Tensor, size: int, dim: int) -> Tensor:
    """`idx` with negative entries wrapped (+ size) and every entry checked to lie in range,
    same shape. Eagerly the check reads the min and max back and raises PyTorch's
    IndexError; inside a compiled step (deferred checks) a device kernel flags it."""
    from . import eager_cuda_training as T
    if T._DEFERRED[0]:
        wrapped = OPS["where"](idx < 0, idx + size, idx)
        return T._checked_on_device(wrapped.reshape([-1]).contiguous(), size,
                                    dim).reshape(list(idx.shape))
    if idx.numel():
        low, high = int(idx.amin().item()), int(idx.amax().item())
        bad = low if low < -size else high if high >= size else None
        if bad is not None:
            raise EmberIndexError(f"index {bad} is out of bounds for dimension {dim} with "
                                  f"size {size}")
        if low < 0:
            idx = OPS["where"](idx < 0, idx + size, idx)
    return idx


def _checked_in_range(idx: Tensor, size: int, dim: int) -> Tensor:
    """`idx` (never wrapped: scatter's contract) checked to lie in [0, size), same shape."""
    from . import eager_cuda_training as T
    return T._checked_rows(idx, size, dim).reshape(list(idx.shape))


# --- advanced indexing ---------------------------------------------------------------------
def _index_tensors(indices, ndim: int, index: int):
    """Per source dim, an integer index tensor or None (bool masks as their nonzero
    coordinates); None where a mask or index has a dtype this route does not take."""
    per_dim = []
    for idx in indices:
        if idx is None:
            per_dim.append(None)
        elif idx.dtype.name in MASK_DTYPES:
            mask = idx if idx.dtype.name == "bool" else idx != 0
            coords = _nonzero(mask, index)
            per_dim += [coords.select(1, j) for j in range(idx.ndim)]
        elif idx.dtype.name in INDEX_DTYPES:
            per_dim.append(idx)
        else:
            return None
    return per_dim + [None] * (ndim - len(per_dim))


def _index_plan(target: Tensor, per_dim: list):
    """(IndexPlan over `target`'s strides, the checked index tensors in source-dim order)."""
    from ..codegen.triton.indexing import IndexPlan
    adv = [d for d, t in enumerate(per_dim) if t is not None]
    bshape = broadcast_shapes(*[tuple(per_dim[d].shape) for d in adv])
    checked = [_wrapped_checked(per_dim[d], target.shape[d], d).expand(list(bshape))
               for d in adv]
    strides = target.stride()
    plain_dims = [d for d in range(target.ndim) if per_dim[d] is None]
    if adv == list(range(adv[0], adv[-1] + 1)):          # adjacent: B replaces them in place
        first = adv[0]
        bdims = list(range(first, first + len(bshape)))
        plain = [(d if d < first else d - len(adv) + len(bshape), strides[d])
                 for d in plain_dims]
        shape = tuple(target.shape[:first]) + bshape + tuple(target.shape[adv[-1] + 1:])
    else:                                                  # separated: B goes first
        bdims = list(range(len(bshape)))
        plain = [(len(bshape) + k, strides[d]) for k, d in enumerate(plain_dims)]
        shape = bshape + tuple(target.shape[d] for d in plain_dims)
    plan = IndexPlan(shape, plain, bdims, [t.stride() for t in checked],
                     [strides[d] for d in adv])
    return plan, checked


def _index(args, out_meta, index):
    from ..codegen.triton.indexing import indexed_gather
    src, indices = args
    per_dim = _index_tensors(indices, src.ndim, index)
    if per_dim is None or src.dtype.is_complex or all(t is None for t in per_dim):
        return None
    plan, checked = _index_plan(src, per_dim)
    out = _dense(plan.shape, src.dtype, index)
    if out.numel():
        _launch(indexed_gather(plan, src.dtype, [t.dtype for t in checked]),
                [src] + checked + [out], index)
    return _as_meta(out, out_meta, index)


def _index_put(args, out_meta, index):
    from ..codegen.triton.indexing import indexed_put
    target, indices, values, accumulate = args
    if accumulate and are_deterministic_algorithms_enabled():
        return None                         # atomics add repeated indices in any order
    if target.dtype.is_complex or not isinstance(values, Tensor):
        return None
    per_dim = _index_tensors(indices, target.ndim, index)
    if per_dim is None or all(t is None for t in per_dim):
        return None
    work = _atomic_dtype(target.dtype) if accumulate else target.dtype
    out = _dense_copy(target, work, index)
    plan, checked = _index_plan(out, per_dim)
    try:
        kernel = indexed_put(plan, _value_strides(values, plan.shape, work, index), work,
                             [t.dtype for t in checked], bool(accumulate))
    except LoweringError:
        return None
    if math.prod(plan.shape):
        _launch(kernel, [_values_for(values, plan.shape, work, index)] + checked + [out], index)
    return _as_meta(out, out_meta, index)


def _values_for(values: Tensor, shape: tuple, dtype, index: int) -> Tensor:
    """values cast to `dtype` and broadcast (a view) to the indexing result's shape."""
    extra = values.ndim - len(shape)
    if extra > 0:                                       # leading 1s PyTorch allows
        values = values.reshape(list(values.shape[extra:]))
    if values.dtype != dtype:
        values = values.to(dtype)
    return values.expand(list(shape))


def _value_strides(values, shape, dtype, index) -> tuple:
    return tuple(_values_for(values, shape, dtype, index).stride())


# --- nonzero -------------------------------------------------------------------------------
def _nonzero(x: Tensor, index: int) -> Tensor:
    return OPS["nonzero"](x)


def _nonzero_route(args, out_meta, index):
    from ..codegen.triton.indexing import nonzero_coordinates
    x = args[0]
    if x.dtype.is_complex:
        return None
    out = _dense(out_meta.shape, dtypes.int64, index)
    if out.numel():
        _launch(nonzero_coordinates(tuple(x.shape), tuple(x.stride()), x.dtype), [x, out],
                index)
    return _as_meta(out, out_meta, index)


# --- scatter -------------------------------------------------------------------------------
_IDENTITY = {"sum": 0, "mean": 0, "amax": -math.inf, "amin": math.inf}


def _identity(reduce: str, dtype):
    value = _IDENTITY[reduce]
    if dtype.is_floating_point or value == 0:
        return value
    import numpy as np
    info = np.iinfo(dtype.name)
    return info.min if value < 0 else info.max


def _scatter_into(target, dim, idx, src, reduce, include_self, out_meta, index):
    """target with src scattered along dim at idx (reduce None: stored; "sum", "amax",
    "amin", "mean": reduced, include_self saying whether target's values take part)."""
    from ..codegen.triton.indexing import scatter_along
    if target.ndim == 0 or target.dtype.is_complex or idx.dtype.name not in INDEX_DTYPES:
        return None
    if reduce is not None and are_deterministic_algorithms_enabled():
        return None                         # atomics combine repeated indices in any order
    if reduce == "mean" and not target.dtype.is_floating_point:
        return None                         # PyTorch floor-divides integer means
    dim %= target.ndim
    work = _atomic_dtype(target.dtype) if reduce is not None else target.dtype
    out = _dense_copy(target, work, index)
    if idx.numel() == 0:
        return _as_meta(out, out_meta, index)
    checked = _checked_in_range(idx, target.shape[dim], dim)
    atomic = "sum" if reduce == "mean" else reduce
    source = src.to(work) if isinstance(src, Tensor) and src.dtype != work else src
    src_strides = tuple(source.stride()) if isinstance(source, Tensor) else None
    try:
        kernel = scatter_along(tuple(idx.shape), dim, tuple(out.stride()),
                               tuple(checked.stride()), src_strides, work, checked.dtype, atomic)
    except LoweringError:
        return None
    if reduce is not None and not include_self:          # scattered positions start empty
        _scatter_value(out, dim, checked, _identity(reduce, work), index)
    if isinstance(source, Tensor):
        _launch(kernel, [source, checked, out], index)
    else:
        _launch(kernel, [checked, _scalar(source, work), out], index)
    if reduce == "mean":
        counts = _dense_copy(OPS["full_like"](out, 1 if include_self else 0), work, index)
        _scatter_value(counts, dim, checked, 1, index, "sum")
        out = out / OPS["masked_fill"](counts, counts == 0, 1)
    return _as_meta(out, out_meta, index)


def _scalar(value, dtype):
    value = value.item() if isinstance(value, Tensor) else value
    return float(value) if dtype.is_floating_point else int(value)


def _scatter_value(out, dim, checked, value, index, reduce=None):
    from ..codegen.triton.indexing import scatter_along
    kernel = scatter_along(tuple(checked.shape), dim, tuple(out.stride()),
                           tuple(checked.stride()), None, out.dtype, checked.dtype, reduce)
    _launch(kernel, [checked, _scalar(value, out.dtype), out], index)


def _scatter(args, out_meta, index):
    target, dim, idx, src, reduce = args
    reduce = {None: None, "add": "sum"}.get(reduce, "unsupported")
    if reduce == "unsupported":
        return None                          # "multiply": no atomic multiply
    return _scatter_into(target, dim, idx, src, reduce, True, out_meta, index)


def _scatter_add(args, out_meta, index):
    target, dim, idx, src = args
    return _scatter_into(target, dim, idx, src, "sum", True, out_meta, index)


def _scatter_reduce(args, out_meta, index):
    target, dim, idx, src, reduce, include_self = args
    if reduce not in _IDENTITY:
        return None                          # "prod": no atomic multiply
    return _scatter_into(target, dim, idx, src, reduce, include_self, out_meta, index)


def _bincount(args, out_meta, index):
    """bincount: scatter_add of ones (or the weights) into zeros of the meta's length."""
    x, weights, _ = args
    if x.ndim != 1 or x.dtype.name not in INDEX_DTYPES:
        return None
    zeros = _dense(out_meta.shape, out_meta.dtype, index)
    zeros = OPS["zeros_like"](zeros)
    src = OPS["ones_like"](x).to(out_meta.dtype) if weights is None else weights
    if x.numel() == 0:
        return _as_meta(zeros, out_meta, index)
    return _scatter_into(zeros, 0, x, src, "sum", True, out_meta, index)


# --- scans and selections ----------------------------------------------------------------
def _scan(combine: str):
    return lambda args, out_meta, index: _cumulative(args, out_meta, index, combine)


def _cumulative(args, out_meta, index, combine: str):
    from ..codegen.triton.indexing import scan_lines
    x, dim = args[0], args[1]
    if x.dtype.is_complex or out_meta.dtype.is_complex:
        return None
    shape = tuple(x.shape) or (1,)
    dim = dim % len(shape)
    out_dtype = out_meta.dtype
    work = dtypes.float32 if out_dtype.name in ("float16", "bfloat16") else out_dtype
    out = _dense(shape, out_dtype, index)
    if out.numel():
        outer, inner = math.prod(shape[:dim]), math.prod(shape[dim + 1:])
        _launch(scan_lines(outer, shape[dim], inner, x.dtype, out_dtype, work, combine),
                [x.contiguous().reshape(list(shape)), out], index)
    return _as_meta(out.reshape(list(out_meta.shape)), out_meta, index)


def _extreme_along(x: Tensor, dim: int, largest: bool):
    """(values, indices) of max/min along dim, keepdim=True: the first position holding
    the extreme (a NaN is the extreme of both, as in PyTorch)."""
    values = (OPS["amax"] if largest else OPS["amin"])(x, [dim], True)
    n = x.shape[dim]
    positions = OPS["arange"](0, n, device=x.device).reshape([n] + [1] * (x.ndim - dim - 1))
    hit = x == values
    if x.dtype.is_floating_point:
        hit = hit | OPS["isnan"](x)
    first = positions.expand(list(x.shape)).masked_fill(~hit, n)
    return values, OPS["amin"](first, [dim], True)


def _dim_extreme(largest: bool):
    def route(args, out_meta, index):
        x, dim, keepdim = args
        if x.ndim == 0 or x.numel() == 0 or x.dtype.is_complex or x.dtype.name == "bool":
            return None
        dim %= x.ndim
        values, positions = _extreme_along(x, dim, largest)
        if not keepdim:
            values, positions = values.squeeze(dim), positions.squeeze(dim)
        return tuple(_as_meta(t, m, index) for t, m in zip((values, positions), out_meta))
    return route


def _arg_extreme(largest: bool):
    def route(args, out_meta, index):
        x, dim, keepdim = args
        if x.numel() == 0 or x.dtype.is_complex or x.dtype.name == "bool":
            return None
        if dim is None or x.ndim == 0:
            x, dim = x.reshape([-1]), 0
        dim %= x.ndim
        positions = _extreme_along(x, dim, largest)[1]
        return _as_meta(positions.reshape(list(out_meta.shape)), out_meta, index)
    return route


def _topk(args, out_meta, index):
    from .eager_cuda_training import _sorted_along
    x, k, dim, largest = args[:4]
    if x.ndim == 0:
        return None
    found = _sorted_along(x, dim, bool(largest), index)
    if found is None:
        return None
    dim %= x.ndim
    return tuple(_as_meta(t.narrow(dim, 0, k), m, index) for t, m in zip(found, out_meta))


def _sorted_pick(x: Tensor, dim: int, position: int, keepdim: bool, index: int):
    """(values, indices) of the element at `position` of x sorted (stably) along dim, NaN
    and its first index where a slice holds NaN (PyTorch's median and kthvalue), or None."""
    from .eager_cuda_training import _sorted_along
    found = _sorted_along(x, dim, False, index)
    if found is None:
        return None
    values, indices = (t.narrow(dim, position, 1) for t in found)
    if x.dtype.is_floating_point:
        n = x.shape[dim]
        nan = OPS["isnan"](x)
        positions = OPS["arange"](0, n, device=x.device).reshape([n] + [1] * (x.ndim - dim - 1))
        first = OPS["amin"](positions.expand(list(x.shape)).masked_fill(~nan, n), [dim], True)
        has_nan = first < n
        values = OPS["where"](has_nan, OPS["full_like"](values, math.nan), values)
        indices = OPS["where"](has_nan, first, indices)
    if not keepdim:
        values, indices = values.squeeze(dim), indices.squeeze(dim)
    return values, indices


def _unique(args, out_meta, index):
    """unique of the flattened tensor: the stable sort, a flag where a sorted value differs
    from the one before, the flagged values; the inverse is each sorted element's group
    scattered back to its position, the counts the distances between group starts."""
    from .eager_cuda_training import _sorted_along
    x, dim = args[0], args[4]
    if dim is not None or x.dtype.is_complex or x.dtype.name == "bool" or x.numel() == 0:
        return None
    flat = x.reshape([-1])
    found = _sorted_along(flat, 0, False, index)
    if found is None:
        return None
    values, order = found
    n = flat.numel()
    first = OPS["full"]([1], True, dtype=dtypes.bool_, device=x.device)
    heads = OPS["cat"]([first, values[1:] != values[:-1]], 0)
    group = OPS["cumsum"](heads, 0) - 1
    inverse = OPS["zeros_like"](group).scatter(0, order, group).reshape(list(x.shape))
    starts = _nonzero(heads, index).reshape([-1])
    ends = OPS["cat"]([starts[1:], OPS["full"]([1], n, dtype=starts.dtype, device=x.device)], 0)
    results = (values[heads], inverse, ends - starts)
    return tuple(_as_meta(t, m, index) for t, m in zip(results, out_meta))


def _median_dim(args, out_meta, index):
    x, dim, keepdim = args
    if x.ndim == 0 or x.numel() == 0 or x.dtype.is_complex:
        return None
    dim %= x.ndim
    found = _sorted_pick(x, dim, (x.shape[dim] - 1) // 2, keepdim, index)
    return None if found is None else tuple(_as_meta(t, m, index)
                                            for t, m in zip(found, out_meta))


def _kthvalue(args, out_meta, index):
    x, k, dim, keepdim = args
    if x.ndim == 0 or x.numel() == 0 or x.dtype.is_complex:
        return None
    dim %= x.ndim
    found = _sorted_pick(x, dim, k - 1, keepdim, index)
    return None if found is None else tuple(_as_meta(t, m, index)
                                            for t, m in zip(found, out_meta))


def _searchsorted(args, out_meta, index):
    from ..codegen.triton.indexing import search_sorted
    from ..ir.dtypes import promote_types
    seq, values, _, right, side, sorter = args
    if sorter is not None or not isinstance(values, Tensor) or seq.dtype.is_complex or \
            values.dtype.is_complex or seq.dtype.name == "bool":
        return None
    right = bool(right) or side == "right"
    common = promote_types(seq.dtype, values.dtype)
    seq, values = seq.to(common).contiguous(), values.to(common).contiguous()
    n = seq.shape[-1]
    count = values.shape[-1] if values.ndim else 1
    out = _dense(out_meta.shape, out_meta.dtype, index)
    if out.numel():
        _launch(search_sorted(out.numel(), count, n, seq.ndim == 1, right, common, common,
                              out_meta.dtype), [seq, values, out], index)
    return _as_meta(out, out_meta, index)


# --- small rewrites ----------------------------------------------------------------------
def _one_hot(args, out_meta, index):
    labels = args[0]
    classes = out_meta.shape[-1]
    from . import eager_cuda_training as T
    if labels.numel() and not T._DEFERRED[0]:
        low, high = int(labels.amin().item()), int(labels.amax().item())
        if low < 0:
            raise EmberIndexError("one_hot: Class values must be non-negative.")
        if high >= classes:
            raise EmberIndexError("one_hot: Class values must be smaller than num_classes.")
    numbers = OPS["arange"](0, classes, device=labels.device)
    return _as_meta((labels.unsqueeze(-1) == numbers).to(dtypes.int64), out_meta, index)


def _count_reduce(nonzero_is_hit: bool):
    def route(args, out_meta, index):
        x, dim, keepdim = args
        if x.dtype.is_complex:
            return None
        hits = (x != 0) if nonzero_is_hit else (x == 0)
        counts = OPS["sum"](hits, dim, keepdim) if dim is not None else \
            OPS["sum"](hits, list(range(x.ndim)), keepdim)
        found = counts > 0 if nonzero_is_hit else counts == 0
        return _as_meta(found.to(out_meta.dtype).reshape(list(out_meta.shape)), out_meta, index)
    return route


def _sgn(args, out_meta, index):
    x = args[0]
    if x.dtype.is_complex:
        return None
    return _as_meta(x.clone() if x.dtype.name == "bool" else OPS["sign"](x), out_meta, index)


def _pair_loss(terms):
    def route(args, out_meta, index):
        x, target, reduction = args[:3]
        if x.dtype.is_complex:
            return None
        d = x - target
        e = terms(d, *args[3:])
        if reduction == "mean":
            e = e.mean()
        elif reduction == "sum":
            e = e.sum()
        return _as_meta(e.to(out_meta.dtype), out_meta, index)
    return route


def _smooth_l1(d, beta):
    a = d.abs()
    if beta == 0:
        return a
    return OPS["where"](a < beta, d * d * 0.5 / beta, a - 0.5 * beta)


def _huber(d, delta):
    a = d.abs()
    return OPS["where"](a < delta, d * d * 0.5, (a - 0.5 * delta) * delta)


ROUTES = {
    "index": _index, "index_put": _index_put, "nonzero": _nonzero_route,
    "scatter": _scatter, "scatter_add": _scatter_add, "bincount": _bincount, "scatter_reduce": _scatter_reduce,
    "cumsum": _scan("sum"), "cumprod": _scan("prod"), "topk": _topk, "one_hot": _one_hot,
    "unique": _unique, "median_dim": _median_dim, "kthvalue": _kthvalue, "searchsorted": _searchsorted,
    "max_dim": _dim_extreme(True), "min_dim": _dim_extreme(False),
    "argmax": _arg_extreme(True), "argmin": _arg_extreme(False),
    "any": _count_reduce(True), "all": _count_reduce(False), "sgn": _sgn,
    "mse_loss": _pair_loss(lambda d: d * d), "l1_loss": _pair_loss(lambda d: d.abs()),
    "smooth_l1_loss": _pair_loss(_smooth_l1), "huber_loss": _pair_loss(_huber),
}
