"""Lowering rules for ops that read windows or pieces of their inputs: pooling, padding
(every mode), concatenation and stacking. They read through masked loads
(`kernel.MaskedLoad`): where a window hangs over the border, or an output position belongs
to another piece, nothing is read and a fill value is used instead.

Each rule gets the op's bound arguments by name (tensors as lowering `Value`s). Inputs
read through masks must be buffers (strided values): a computed value would be
evaluated at the masked-off positions too, so fusion keeps such producers in their own
kernel (the group checker refuses the merge).
"""
from __future__ import annotations

import math
from itertools import product

from ..ir.dtypes import Category, DType, bool_, int64
from ..ir.errors import LoweringError
from ..ir.meta import TensorMeta
from ..ir.ops.joining import _pad_index
from ..ir.ops.pooling import PoolParams
from ..ir.ops.pooling_adaptive import adaptive_out as _adaptive_out
from . import kernel as K
from .lowering import (LoweringContext, Value, broadcast_index, c, cast, constant, linear,
                       opmath)


def _buffer_load(ctx: LoweringContext, x: Value, index: tuple, mask: K.Expr | None,
                 other) -> K.Expr:
    if x.strided is None:
        raise LoweringError(f"{ctx.name}: a windowed read needs its input in a buffer, not a "
                            "value computed in the same kernel")
    s = x.strided
    at = linear(zip(s.strides, index), s.offset, ctx.n_vars)
    if mask is None:        # known to be in bounds
        return K.Load(s.buffer, at, x.dtype)
    return K.MaskedLoad(s.buffer, at, x.dtype, mask, other)


def _within(ctx, position: K.Affine, lo: int, hi: int) -> K.Expr:
    """lo <= position < hi, as a bool expression."""
    value = K.IndexValue(position, int64)
    return c("logical_and", c("ge", value, constant(lo, int64)), c("lt", value, constant(hi, int64)))


def _all(exprs: list) -> K.Expr:
    out = exprs[0]
    for e in exprs[1:]:
        out = c("logical_and", out, e)
    return out


def _lowest(dtype: DType):
    return -math.inf if dtype.category == Category.FLOAT else int(_iinfo_min(dtype))


def _iinfo_min(dtype: DType):
    import numpy as np
    return np.iinfo(dtype.np_dtype).min


def window_reduce(ctx: LoweringContext, combine: str, out_shape: tuple, window: tuple,
                  expr_fn, acc: DType) -> Value:
    """Reduce expr_fn(outer_index, window_index) over `window` for each output point."""
    virtual = tuple(out_shape) + tuple(window)
    n = len(out_shape)
    values = Value(virtual, acc, lambda idx: cast(expr_fn(idx[:n], idx[n:]), acc))
    return ctx.reduce(combine, values, tuple(range(n, len(virtual))), False, acc)


def _window_positions(ctx, p: PoolParams, outer, window):
    """Input rows/cols read by window element (i, j) of output (oh, ow)."""
    oh, ow = outer[-2:]
    i, j = window
    ih = linear([(p.s[0], oh), (p.d[0], i)], -p.p[0], ctx.n_vars)
    iw = linear([(p.s[1], ow), (p.d[1], j)], -p.p[1], ctx.n_vars)
    return ih, iw


def _pool_params(x: Value, *args) -> PoolParams:
    return PoolParams(TensorMeta(x.shape, x.dtype), *args)


def _window_element(ctx, x: Value, p: PoolParams, fill):
    """element(outer, window): x at the window position, masked to `fill` in the padding."""
    h, w = p.spatial

    inside = _windows_inside(p)

    def element(outer, window):
        ih, iw = _window_positions(ctx, p, outer, window)
        if inside:      # no test per element: plain (vector) loads
            return _buffer_load(ctx, x, tuple(outer[:-2]) + (ih, iw), None, fill)
        mask = _all([_within(ctx, ih, 0, h), _within(ctx, iw, 0, w)])
        return _buffer_load(ctx, x, tuple(outer[:-2]) + (ih, iw), mask, fill)
    return element


def _windows_inside(p: PoolParams) -> bool:
    """Every window lies inside the input (no padding, and ceil_mode's last window does
    not hang over the end)."""
    return not any(p.p) and all((o - 1) * s + d * (k - 1) < n for o, s, d, k, n in
                                zip(p.out, p.s, p.d, p.k, p.spatial))


def _max_pool(ctx, node, args: dict) -> Value:
    x: Value = args["self"]
    p = _pool_params(x, args["kernel_size"], args["stride"], args["padding"], args["dilation"],
                     args["ceil_mode"])
    out: TensorMeta = node.meta["val"]
    acc = opmath(x.dtype)
    element = _window_element(ctx, x, p, fill=_lowest(x.dtype))
    result = window_reduce(ctx, "max", tuple(out.shape), p.k, element, acc)
    return Value(tuple(out.shape), out.dtype, lambda i: cast(result.load(i), out.dtype))


def _avg(ctx, node, x: Value, p: PoolParams, count_include_pad: bool, divisor) -> Value:
    out: TensorMeta = node.meta["val"]
    acc = opmath(x.dtype)
    element = _window_element(ctx, x, p, fill=0)
    h, w = p.spatial

    def counted(outer, window):   # which window elements the divisor counts
        ih, iw = _window_positions(ctx, p, outer, window)
        lo_h, hi_h = (-p.p[0], h + p.p[0]) if count_include_pad else (0, h)
        lo_w, hi_w = (-p.p[1], w + p.p[1]) if count_include_pad else (0, w)
        return cast(_all([_within(ctx, ih, lo_h, hi_h), _within(ctx, iw, lo_w, hi_w)]), acc)
    total = window_reduce(ctx, "sum", tuple(out.shape), p.k, element, acc)
    if divisor:
        count = Value(total.shape, acc, lambda i: constant(divisor, acc))
    else:
        count = window_reduce(ctx, "sum", tuple(out.shape), p.k, counted, acc)
    return Value(tuple(out.shape), out.dtype,
                 lambda i: cast(c("div", total.load(i), count.load(i)), out.dtype))


def _avg_pool(ctx, node, args: dict) -> Value:
    x: Value = args["self"]
    p = _pool_params(x, args["kernel_size"], args["stride"], args["padding"], 1,
                     args["ceil_mode"])
    return _avg(ctx, node, x, p, args["count_include_pad"], args["divisor_override"])


def _adaptive_avg_pool(ctx, node, args: dict) -> Value:
    x: Value = args["self"]
    oh, ow = _adaptive_out(TensorMeta(x.shape, x.dtype), args["output_size"])
    h, w = x.shape[-2:]
    if h % oh or w % ow:
        raise LoweringError(f"{ctx.name}: adaptive_avg_pool2d lowers when the output size "
                            f"divides the input size ({h}x{w} -> {oh}x{ow} does not)")
    kernel = (h // oh, w // ow)
    p = _pool_params(x, kernel, kernel, 0, 1, False)
    return _avg(ctx, node, x, p, True, kernel[0] * kernel[1])


def _pad(ctx, node, args: dict) -> Value:
    x: Value = args["self"]
    if args["mode"] != "constant":
        return _index_mapped_pad(ctx, node, x, list(args["pad"]), args["mode"])
    out: TensorMeta = node.meta["val"]
    pads = list(args["pad"])
    fill = args["value"] if args["value"] is not None else 0
    befores = [0] * len(x.shape)
    for k in range(len(pads) // 2):
        befores[len(x.shape) - 1 - k] = pads[2 * k]

    def load(index):
        source = tuple(linear([(1, a)], -b, ctx.n_vars) for a, b in zip(index, befores))
        mask = _all([_within(ctx, s, 0, size) for s, size, b in zip(source, x.shape, befores)
                     if b or True])
        return cast(_buffer_load(ctx, x, source, mask, fill), out.dtype)
    return Value(tuple(out.shape), out.dtype, load)


def _affine_runs(source) -> list[tuple[int, int, int, int]]:
    """Split an output -> input position map into runs (start, end, first source, step)
    on which the source moves by a constant step (reflect walks back, replicate stands)."""
    runs, start = [], 0
    n = len(source)
    while start < n:
        step = int(source[start + 1] - source[start]) if start + 1 < n else 1
        end = start + 1
        while end < n and source[end] - source[end - 1] == step:
            end += 1
        if end == start + 1:
            step = 1
        runs.append((start, end, int(source[start]), step))
        start = end
    return runs


def _index_mapped_pad(ctx, node, x: Value, pads: list, mode: str) -> Value:
    """reflect / replicate / circular padding: along each padded dim the source position
    is piecewise affine in the output position (ir.ops.joining._pad_index gives it), so
    the output is a sum of masked loads, one per combination of pieces (at most 3 per dim)."""
    out: TensorMeta = node.meta["val"]
    ndim = len(x.shape)
    per_dim = []
    for d in range(ndim):
        k = ndim - 1 - d
        if k < len(pads) // 2:
            per_dim.append(_affine_runs(_pad_index(x.shape[d], pads[2 * k], pads[2 * k + 1],
                                                   mode)))
        else:
            per_dim.append(None)
    padded = [d for d in range(ndim) if per_dim[d] is not None]

    def load(index):
        value = constant(0, out.dtype)
        for pieces in product(*(per_dim[d] for d in padded)):
            source, masks = list(index), []
            for d, (start, end, first, step) in zip(padded, pieces):
                source[d] = linear([(step, index[d])], first - step * start, ctx.n_vars)
                masks.append(_within(ctx, index[d], start, end))
            mask = _all(masks) if masks else constant(True, bool_)
            piece = cast(_buffer_load(ctx, x, tuple(source), mask, 0), out.dtype)
            value = c("where", mask, piece, value) if masks else piece
        return value
    return Value(tuple(out.shape), out.dtype, load)


def _stack(ctx, node, args: dict) -> Value:
    """stack: output position k along the new dim reads piece k (a masked load, so each
    element reads one piece; computed pieces, which cannot be masked, are selected)."""
    pieces: list[Value] = list(args["tensors"])
    out: TensorMeta = node.meta["val"]
    dim = args["dim"] % len(out.shape)

    def load(index):
        rest = index[:dim] + index[dim + 1:]
        value = constant(0, out.dtype)
        for k in reversed(range(len(pieces))):
            mask = _within(ctx, index[dim], k, k + 1)
            v = pieces[k]
            piece = _buffer_load(ctx, v, rest, mask, 0) if v.strided is not None else \
                v.load(rest)
            value = c("where", mask, cast(piece, out.dtype), value)
        return value
    return Value(tuple(out.shape), out.dtype, load)


def _cat(ctx, node, args: dict) -> Value:
    pieces: list[Value] = [v for v in args["tensors"] if isinstance(v, Value)]
    out: TensorMeta = node.meta["val"]
    dim = args["dim"] % len(out.shape)
    pieces = [v for v in pieces if len(v.shape) == len(out.shape)]   # torch skips 1-d empties
    starts = [0]
    for v in pieces:
        starts.append(starts[-1] + v.shape[dim])

    def load(index):
        value = constant(0, out.dtype)
        for v, start in reversed(list(zip(pieces, starts))):
            along = index[dim]
            shifted = index[:dim] + (linear([(1, along)], -start, ctx.n_vars),) + index[dim + 1:]
            mask = _within(ctx, along, start, start + v.shape[dim])
            piece = cast(_buffer_load(ctx, v, shifted, mask, 0), out.dtype)
            value = c("where", mask, piece, value)
        return value
    return Value(tuple(out.shape), out.dtype, load)


def _slice_bounds(size: int, start, end) -> tuple[int, int]:
    """start/end of a step-1 slice along a dim of `size`, as Python slicing clamps them."""
    start, end, _ = slice(start, end).indices(size)
    return start, max(start, end)


def _slice_scatter(ctx, node, args: dict) -> Value:
    """slice_scatter(self, src, dim, start, end, 1): src where the slice runs, self
    elsewhere; autograd's gradient of a narrow/slice (src into zeros), so the sum of the
    q/k/v gradients of a packed projection fuses into the kernel that reads it."""
    base: Value = args["self"]
    src: Value = args["src"]
    out: TensorMeta = node.meta["val"]
    if args["step"] not in (None, 1):
        raise LoweringError(f"{ctx.name}: slice_scatter lowers with step 1, got {args['step']}")
    dim = args["dim"] % len(out.shape)
    start, end = _slice_bounds(out.shape[dim], args["start"], args["end"])

    def load(index):
        along = index[dim]
        shifted = index[:dim] + (linear([(1, along)], -start, ctx.n_vars),) + index[dim + 1:]
        mask = _within(ctx, along, start, end)
        piece = cast(_buffer_load(ctx, src, shifted, mask, 0), out.dtype)
        if base.strided is not None:            # a buffer: read only outside the slice
            kept = _buffer_load(ctx, base, index, c("logical_not", mask), 0)
        else:
            kept = base.load(index)
        return c("where", mask, piece, cast(kept, out.dtype))
    return Value(tuple(out.shape), out.dtype, load)


def _select_scatter(ctx, node, args: dict) -> Value:
    """select_scatter(self, src, dim, index): src at `index` along `dim`, self elsewhere;
    what functionalization writes for `y[i] = v` and `y[:, i] += v`, so such updates
    compile (and package) as one kernel instead of an eager in-place step."""
    base: Value = args["self"]
    src: Value = args["src"]
    out: TensorMeta = node.meta["val"]
    dim = args["dim"] % len(out.shape)
    at = args["index"] % out.shape[dim]

    def load(index):
        mask = _within(ctx, index[dim], at, at + 1)
        piece = cast(_buffer_load(ctx, src, index[:dim] + index[dim + 1:], mask, 0),
                     out.dtype)
        if base.strided is not None:            # a buffer: read only off the index
            kept = _buffer_load(ctx, base, index, c("logical_not", mask), 0)
        else:
            kept = base.load(index)
        return c("where", mask, piece, cast(kept, out.dtype))
    return Value(tuple(out.shape), out.dtype, load)


def _copy(ctx, node, args: dict) -> Value:
    """copy(self, src): src broadcast to self's shape in self's dtype (the functional
    form of `copy_`; self's values are not read)."""
    src: Value = args["src"]
    out: TensorMeta = node.meta["val"]
    shape = tuple(out.shape)
    return Value(shape, out.dtype, lambda index: cast(
        src.load(broadcast_index(index, src.shape, shape, ctx.n_vars)), out.dtype))


ARG_RULES = {
    "select_scatter": _select_scatter, "copy": _copy,
    "max_pool2d": _max_pool, "avg_pool2d": _avg_pool, "adaptive_avg_pool2d": _adaptive_avg_pool,
    "pad": _pad, "cat": _cat, "stack": _stack, "slice_scatter": _slice_scatter,
}
