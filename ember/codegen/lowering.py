"""Lowering: a graph of registry ops (one fused group) -> one `Kernel` description.

A group's graph has placeholders for its input buffers and returns its outputs.
Each node becomes a lazily indexed `Value`: a shape, a dtype and `load(index)`,
which builds the scalar expression for one element given the per-dimension index
(an `Affine` over the kernel's loop variables). Pointwise ops compose loads;
views rewrite the index; reductions add a `Reduce` stage and load back as its
result. Nothing is materialized between ops, which is the point of fusion.

Loads are memoized per index, so a value used twice is the same expression
object: descriptions are DAGs and backends emit each distinct object once.

The op -> rule table `RULES` is the codegen half of the registry's `lowering`
field: `lowering_rule(op)` finds it, and `can_lower(node)` tells fusion which
nodes may join a group. Ops without a rule (matmul, conv, sort, ...) run as
extern kernels.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..ir.dtypes import Category, DType, bool_, float32, int64, result_type
from ..ir.errors import LoweringError
from ..ir.fused import EPILOGUE_ANCHORS as _EPILOGUE_ANCHORS
from ..ir.graph import Graph, Node, OpKind, map_arg
from ..ir.meta import TensorMeta
from ..ir.registry import Promotion, is_op
from . import kernel as K

# --- affine index helpers ------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def var(v: int, n_vars: int) -> K.Affine:
    coeffs = [0] * n_vars
    coeffs[v] = 1
    return K.Affine(tuple(coeffs))


@functools.lru_cache(maxsize=64)
def zero(n_vars: int) -> K.Affine:
    return K.Affine((0,) * n_vars)


def linear(terms, offset: int, n_vars: int) -> K.Affine:
    """offset + sum(c * a) for (c, a) in terms, each a an Affine."""
    coeffs = [0] * n_vars
    total = offset
    for c, a in terms:
        if c == 0:
            continue
        for v, ac in enumerate(a.coeffs):
            coeffs[v] += c * ac
        total += c * a.offset
    return K.Affine(tuple(coeffs), total)


# --- values --------------------------------------------------------------------------------
@dataclass
class Strided:
    """A value that is still a plain strided view of an input buffer."""
    buffer: str
    strides: tuple[int, ...]
    offset: int = 0


@dataclass
class Value:
    shape: tuple[int, ...]
    dtype: DType
    _load: Callable
    strided: Strided | None = None
    _memo: dict = field(default_factory=dict)

    def load(self, index: tuple) -> K.Expr:
        index = tuple(index)
        expr = self._memo.get(index)
        if expr is None:
            expr = self._load(index)
            self._memo[index] = expr
        return expr


def strided_value(ctx: "LoweringContext", s: Strided, shape, dtype) -> Value:
    def load(index):
        return K.Load(s.buffer, linear(zip(s.strides, index), s.offset, ctx.n_vars), dtype)
    return Value(tuple(shape), dtype, load, s)


# --- the context ---------------------------------------------------------------------------
class LoweringContext:
    """The iteration space and the stages of the kernel being built."""

    def __init__(self, name: str, max_vars: int):
        self.name = name
        self.n_vars = max_vars          # loop variables are allocated up front, trimmed at the end
        self.outer: tuple[int, ...] | None = None
        self.inner: tuple[int, ...] | None = None
        self.reduced_input_shape: tuple[int, ...] | None = None
        self.reduce_dims: tuple[int, ...] = ()
        self.stages: list = []

    def reduce(self, combine: str, value: Value, dims, keepdim: bool, acc: DType) -> Value:
        dims = tuple(sorted(d % max(len(value.shape), 1) for d in dims)) if value.shape else ()
        if not dims:                    # a 0-d input: reducing one element is that element
            return Value(tuple(value.shape), acc, lambda i: cast(value.load(i), acc))
        kept = tuple(d for d in range(len(value.shape)) if d not in dims)
        shape = tuple(value.shape)
        if self.inner is None:
            self.outer = tuple(shape[d] for d in kept)
            self.inner = tuple(shape[d] for d in dims)
            self.reduced_input_shape, self.reduce_dims = shape, dims
        elif (shape, dims) != (self.reduced_input_shape, self.reduce_dims):
            raise LoweringError(
                f"{self.name}: a group reduces {list(shape)} over dims {list(dims)} after "
                f"reducing {list(self.reduced_input_shape)} over {list(self.reduce_dims)}; one "
                "kernel has one reduction space")
        name = f"r{len(self.stages)}"
        self.stages.append(K.Reduce(name, combine, cast(value.load(self.full_index()), acc), acc))
        out_shape = tuple(1 if d in dims else shape[d] for d in range(len(shape))) if keepdim \
            else tuple(shape[d] for d in kept)
        ref = K.ReduceRef(name, acc)
        n_outer = len(self.outer)

        def load(index):
            positions = [i for i, d in enumerate(range(len(shape))) if d not in dims] if keepdim \
                else list(range(n_outer))
            for k, pos in enumerate(positions):
                if self.outer[k] != 1 and index[pos] != var(k, self.n_vars):
                    raise LoweringError(f"{self.name}: a reduction result is read at another "
                                        "point than the one it was computed for")
            return ref
        return Value(out_shape, acc, load)

    def full_index(self) -> tuple:
        """The index of the reduced input: kept dims -> outer vars, reduced dims -> inner."""
        outer_vars = iter(range(len(self.outer)))
        inner_vars = iter(range(len(self.outer), len(self.outer) + len(self.inner)))
        return tuple(var(next(inner_vars) if d in self.reduce_dims else next(outer_vars),
                         self.n_vars) for d in range(len(self.reduced_input_shape)))


# --- expression helpers --------------------------------------------------------------------
def cast(expr: K.Expr, dtype: DType) -> K.Expr:
    if expr.dtype == dtype:
        return expr
    if isinstance(expr, K.Const):
        return K.Const(_python_value(expr.value, dtype), dtype)
    return K.Cast(expr, dtype)


def _python_value(value, dtype: DType):
    if dtype == bool_:
        return bool(value)
    if dtype.category == Category.INT:
        return int(value)
    return float(value)


def constant(value, dtype: DType) -> K.Const:
    return K.Const(_python_value(value, dtype), dtype)


def opmath(dtype: DType) -> DType:
    """Half-precision values compute in float32, as PyTorch's kernels do."""
    return float32 if dtype.name in ("float16", "bfloat16") else dtype


def broadcast_index(index: tuple, from_shape: tuple, to_shape: tuple, n_vars: int) -> tuple:
    if from_shape == to_shape and len(index) == len(to_shape):   # nothing is broadcast
        return tuple(index)
    lead = len(to_shape) - len(from_shape)
    return tuple(zero(n_vars) if size == 1 and to_shape[lead + i] != 1 else index[lead + i]
                 for i, size in enumerate(from_shape))


# --- pointwise rules -----------------------------------------------------------------------
def pointwise(fn: Callable, *, compute: str = "out"):
    """A rule for an elementwise op: `fn(*operand_exprs, **scalar_kwargs) -> Expr`.

    Operands (Values or Python scalars) broadcast to the output shape and are cast to
    the compute dtype: the output's ('out'), or the promoted inputs' ('promoted', for
    comparisons that return bool).
    """
    def rule(ctx: LoweringContext, node: Node, operands: list, **scalars):
        out: TensorMeta = node.meta["val"]
        promoted = result_type([_dtype_source(o) for o in operands]) \
            if compute == "promoted" else out.dtype
        dtype = opmath(promoted)
        shape = tuple(out.shape)
        if dtype != promoted and getattr(node.target, "name", None) not in _SCALAR_IN_OPMATH:
            # PyTorch casts a number to the half-precision dtype first (`1.001 - x` on
            # bfloat16 subtracts bf16(1.001)); mul/div/lerp keep it at float32
            operands = [float(np.asarray(o, promoted.np_dtype)) if type(o) in (int, float)
                        else o for o in operands]

        def load(index):
            args = [cast(o.load(broadcast_index(index, o.shape, shape, ctx.n_vars)), dtype)
                    if isinstance(o, Value) else constant(o, dtype) for o in operands]
            return cast(fn(*args, **scalars), out.dtype)
        return Value(shape, out.dtype, load)
    return rule


# ops whose PyTorch CPU kernels read a scalar operand unrounded (frontend/eager.py too)
_SCALAR_IN_OPMATH = frozenset({"mul", "div", "floor_divide", "lerp"})


def _dtype_source(operand):
    """What ir.dtypes.result_type takes: (dtype, ndim) for tensors, scalars as they are."""
    if isinstance(operand, Value):
        return (operand.dtype, len(operand.shape))
    return operand


def c(op: str, *args, dtype=None) -> K.Expr:
    return K.call(op, *args, dtype=dtype)


def _num(value, like: K.Expr) -> K.Const:
    return constant(value, like.dtype)


def _gelu(x, approximate="none"):
    half = _num(0.5, x)
    if approximate == "tanh":
        inner = c("mul", _num(math.sqrt(2 / math.pi), x),
                  c("add", x, c("mul", _num(0.044715, x), c("mul", x, c("mul", x, x)))))
        return c("mul", c("mul", half, x), c("add", _num(1.0, x), c("tanh", inner)))
    return c("mul", c("mul", half, x),
             c("add", _num(1.0, x), c("erf", c("mul", x, _num(1 / math.sqrt(2), x)))))


def _softplus(x, beta=1, threshold=20):
    bx = c("mul", x, _num(beta, x))
    soft = c("div", c("log1p", c("exp", bx)), _num(beta, x))
    return c("where", c("gt", bx, _num(threshold, x)), x, soft)


def _elu(x, alpha=1, scale=1, input_scale=1):
    neg = c("mul", _num(alpha, x), c("expm1", c("mul", x, _num(input_scale, x))))
    return c("mul", _num(scale, x), c("where", c("gt", x, _num(0, x)), x, neg))


def _clamp(x, lo, hi):
    if lo is not None:
        x = c("maximum", x, lo)
    if hi is not None:
        x = c("minimum", x, hi)
    return x


def _nan_preserving_max(a, b):
    return c("where", c("isnan", a), a, c("maximum", a, b))


POINTWISE_RULES: dict[str, Callable] = {
    "add": pointwise(lambda a, b, alpha=1: c("add", a, b if alpha == 1 else
                                             c("mul", b, _num(alpha, b)))),
    "sub": pointwise(lambda a, b, alpha=1: c("sub", a, b if alpha == 1 else
                                             c("mul", b, _num(alpha, b)))),
    "mul": pointwise(lambda a, b: c("mul", a, b)),
    "div": pointwise(lambda a, b, rounding_mode=None:
                     c("div", a, b) if rounding_mode is None else
                     c("floor" if rounding_mode == "floor" else "trunc", c("div", a, b))
                     if a.dtype.category == Category.FLOAT else
                     c("floor_divide", a, b) if rounding_mode == "floor" else
                     # integer truncation: a - fmod(a, b) is an exact multiple of b
                     c("floor_divide", c("sub", a, c("fmod", a, b)), b)),
    "neg": pointwise(lambda x: c("neg", x)),
    "abs": pointwise(lambda x: c("abs", x)),
    # `x <= 0 ? 0 : x`, not `x > 0 ? x : 0`: relu(nan) is nan in PyTorch
    "relu": pointwise(lambda x: c("where", c("le", x, _num(0, x)), _num(0, x), x)),
    "relu6": pointwise(lambda x: _clamp(x, _num(0, x), _num(6, x))),
    "hardtanh": pointwise(lambda x, min_val=-1, max_val=1:
                          _clamp(x, _num(min_val, x), _num(max_val, x))),
    "leaky_relu": pointwise(lambda x, negative_slope=0.01:
                            c("where", c("gt", x, _num(0, x)), x,
                              c("mul", x, _num(negative_slope, x)))),
    "elu": pointwise(_elu),
    "gelu": pointwise(_gelu),
    "silu": pointwise(lambda x: c("mul", x, c("sigmoid", x))),
    "sigmoid": pointwise(lambda x: c("sigmoid", x)),
    "hardsigmoid": pointwise(lambda x: c("div", _clamp(c("add", x, _num(3, x)), _num(0, x),
                                                       _num(6, x)), _num(6, x))),
    "hardswish": pointwise(lambda x: c("mul", x, c("div", _clamp(c("add", x, _num(3, x)),
                                                                 _num(0, x), _num(6, x)),
                                                   _num(6, x)))),
    "softplus": pointwise(_softplus),
    "mish": pointwise(lambda x: c("mul", x, c("tanh", _softplus(x)))),
    "log_sigmoid": pointwise(lambda x: c("neg", _softplus(c("neg", x)))),
    "softsign": pointwise(lambda x: c("div", x, c("add", _num(1, x), c("abs", x)))),
    "tanhshrink": pointwise(lambda x: c("sub", x, c("tanh", x))),
    "pow": pointwise(lambda a, b: c("square", a) if isinstance(b, K.Const) and b.value == 2
                     else c("pow", a, b)),
    "maximum": pointwise(lambda a, b: c("where", c("isnan", b), b, _nan_preserving_max(a, b))),
    "minimum": pointwise(lambda a, b: c("where", c("isnan", a), a,
                                        c("where", c("isnan", b), b, c("minimum", a, b)))),
    "where": pointwise(lambda cond, a, b: c("where", cast(cond, bool_), a, b)),
    # clamp's min and max are each optional: _lower_node binds them (_clamp_rule)
    "clamp": pointwise(_clamp),
    "masked_fill": pointwise(lambda x, mask, value: c("where", cast(mask, bool_), value, x)),
    "clamp_min": pointwise(lambda x, lo: c("maximum", x, lo)),
    "clamp_max": pointwise(lambda x, hi: c("minimum", x, hi)),
    "convert_element_type": pointwise(lambda x, dtype=None: x),
    "positive": pointwise(lambda x: x),
    "square": pointwise(lambda x: c("square", x)),
    "reciprocal": pointwise(lambda x: c("reciprocal", x)),
    "rsqrt": pointwise(lambda x: c("rsqrt", x)),
    "log10": pointwise(lambda x: c("mul", c("log", x), _num(1 / math.log(10), x))),
    "frac": pointwise(lambda x: c("sub", x, c("trunc", x))),
    "erfc": pointwise(lambda x: c("sub", _num(1, x), c("erf", x))),
    "lerp": pointwise(lambda a, b, w: c("add", a, c("mul", w, c("sub", b, a)))),
    "isfinite": pointwise(lambda x: c("logical_not", c("logical_or", c("isnan", x),
                                                       c("isinf", x))), compute="promoted"),
    "round": pointwise(lambda x, decimals=0: x if x.dtype.category != Category.FLOAT else
                       c("round", x) if decimals == 0 else
                       c("div", c("round", c("mul", x, _num(10.0 ** decimals, x))),
                         _num(10.0 ** decimals, x))),
    "hypot": pointwise(lambda a, b: c("sqrt", c("add", c("mul", a, a), c("mul", b, b)))),
}
for _name in ("exp", "exp2", "expm1", "log", "log2", "log1p", "sqrt", "tanh", "erf", "sin",
              "cos", "tan", "atan", "asin", "acos", "sinh", "cosh", "floor", "ceil",
              "trunc", "sign", "logical_not", "bitwise_not", "fmod", "remainder",
              "floor_divide", "atan2", "bitwise_and", "bitwise_or", "bitwise_xor"):
    POINTWISE_RULES[_name] = pointwise(lambda *xs, _op=_name: c(_op, *xs))
for _name in ("eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_xor",
              "isnan", "isinf"):
    POINTWISE_RULES[_name] = pointwise(lambda *xs, _op=_name: c(_op, *xs), compute="promoted")


# --- view rules (index rewrites) -------------------------------------------------------------
def _view(index_map: Callable, strides_map: Callable | None = None):
    """A rule for a movement op: `index_map(out_index, in_shape, out_shape, **args)`
    gives the input index; `strides_map` keeps a strided input strided."""
    def rule(ctx: LoweringContext, node: Node, operands: list, **args):
        src: Value = operands[0]
        shape = tuple(node.meta["val"].shape)
        if src.strided is not None and strides_map is not None:
            strides, offset = strides_map(src.strided.strides, src.shape, shape, **args)
            s = Strided(src.strided.buffer, tuple(strides), src.strided.offset + offset)
            return strided_value(ctx, s, shape, src.dtype)
        return Value(shape, src.dtype,
                     lambda index: src.load(index_map(tuple(index), src.shape, shape, ctx.n_vars,
                                                      **args)))
    return rule


def _flip_index(index, in_shape, out_shape, n_vars, dims):
    flipped = {d % len(in_shape) for d in dims}
    return tuple(linear([(-1, a)], in_shape[d] - 1, n_vars) if d in flipped else a
                 for d, a in enumerate(index))


def _flip_strides(strides, in_shape, out_shape, dims):
    """A flip reads its input backwards: negated strides from the last element."""
    flipped = {d % len(in_shape) for d in dims}
    offset = sum((in_shape[d] - 1) * strides[d] for d in flipped if in_shape[d] > 0)
    return [-st if d in flipped else st for d, st in enumerate(strides)], offset


def _perm(dims, n):
    return [d % n for d in dims]


def _permute_index(index, in_shape, out_shape, n_vars, dims):
    result = [None] * len(in_shape)
    for out_pos, d in enumerate(_perm(dims, len(in_shape))):
        result[d] = index[out_pos]
    return tuple(result)


def _permute_strides(strides, in_shape, out_shape, dims):
    return [strides[d] for d in _perm(dims, len(in_shape))], 0


def _transpose_dims(n, dim0, dim1):
    dims = list(range(n))
    dims[dim0 % n], dims[dim1 % n] = dims[dim1 % n], dims[dim0 % n]
    return dims


def _expand_index(index, in_shape, out_shape, n_vars, size=None):
    return broadcast_index(index, in_shape, out_shape, n_vars)


def _expand_strides(strides, in_shape, out_shape, size=None):
    lead = len(out_shape) - len(in_shape)
    return [0] * lead + [0 if s == 1 and out_shape[lead + i] != 1 else st
                         for i, (s, st) in enumerate(zip(in_shape, strides))], 0


def _drop_unit_dims_index(index, in_shape, out_shape, n_vars, **_):
    """squeeze/unsqueeze: align the non-unit dims; unit dims index 0."""
    it = iter([i for i, s in zip(index, out_shape) if s != 1])
    return tuple(zero(n_vars) if s == 1 else next(it) for s in in_shape)


def _drop_unit_dims_strides(strides, in_shape, out_shape, **_):
    it = iter([st for st, s in zip(strides, in_shape) if s != 1])
    return [0 if s == 1 else next(it) for s in out_shape], 0


def _slice_index(index, in_shape, out_shape, n_vars, dim=0, start=None, end=None, step=1):
    dim %= len(in_shape)
    start = _slice_start(start, in_shape[dim])
    moved = linear([(step, index[dim])], start, n_vars)
    return index[:dim] + (moved,) + index[dim + 1:]


def _slice_strides(strides, in_shape, out_shape, dim=0, start=None, end=None, step=1):
    dim %= len(in_shape)
    start = _slice_start(start, in_shape[dim])
    new = list(strides)
    new[dim] = strides[dim] * step
    return new, start * strides[dim]


def _slice_start(start, size):
    if start is None:
        return 0
    start = start + size if start < 0 else start
    return min(max(start, 0), size)


def _select_index(index, in_shape, out_shape, n_vars, dim, index_):
    dim %= len(in_shape)
    i = index_ + in_shape[dim] if index_ < 0 else index_
    return index[:dim] + (K.Affine((0,) * n_vars, i),) + index[dim:]


def _select_strides(strides, in_shape, out_shape, dim, index_):
    dim %= len(in_shape)
    i = index_ + in_shape[dim] if index_ < 0 else index_
    return list(strides[:dim]) + list(strides[dim + 1:]), i * strides[dim]


def _reshape_strides(strides, in_shape, out_shape, **_):
    new = _nocopy_reshape_strides(in_shape, strides, out_shape)
    if new is None:
        raise LoweringError("reshape of a non-viewable input inside a fused group")
    return new, 0


def _reshape_index(index, in_shape, out_shape, n_vars, **_):
    raise LoweringError(f"reshape {list(in_shape)} -> {list(out_shape)} of a computed value "
                        "inside a fused group (fusion should end the group here)")


def _nocopy_reshape_strides(shape, strides, new_shape):
    """Strides for viewing (shape, strides) as new_shape, or None (NumPy's algorithm)."""
    if 0 in shape:               # an empty tensor views as any shape of no elements
        return _row_major(new_shape)
    old = [(s, st) for s, st in zip(shape, strides) if s != 1]
    new_strides = [0] * len(new_shape)
    oi = ni = 0
    old_shape = [s for s, _ in old]
    old_strides = [st for _, st in old]
    new_nonunit = [(i, s) for i, s in enumerate(new_shape) if s != 1]
    ns = [s for _, s in new_nonunit]
    res = [0] * len(ns)
    while oi < len(old_shape) and ni < len(ns):
        np_, op_ = ns[ni], old_shape[oi]
        oj, nj = oi + 1, ni + 1
        while np_ != op_:
            if np_ < op_:
                np_ *= ns[nj]
                nj += 1
            else:
                op_ *= old_shape[oj]
                oj += 1
        for k in range(oi, oj - 1):
            if old_strides[k] != old_shape[k + 1] * old_strides[k + 1]:
                return None
        res[nj - 1] = old_strides[oj - 1]
        for k in range(nj - 1, ni, -1):
            res[k - 1] = res[k] * ns[k]
        oi, ni = oj, nj
    for (i, _), st in zip(new_nonunit, res):
        new_strides[i] = st
    return new_strides


def _row_major(shape) -> list[int]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return strides[::-1]


def _view_rules() -> dict[str, Callable]:
    perm = _view(_permute_index, _permute_strides)
    transpose = lambda ctx, node, ops, dim0, dim1: perm(  # noqa: E731
        ctx, node, ops, dims=_transpose_dims(len(ops[0].shape), dim0, dim1))
    t_rule = lambda ctx, node, ops: perm(  # noqa: E731
        ctx, node, ops, dims=list(range(len(ops[0].shape)))[::-1])
    reshape = _view(_reshape_index, _reshape_strides)
    unit = _view(_drop_unit_dims_index, _drop_unit_dims_strides)
    select = _view(_select_index, _select_strides)
    return {
        "permute": perm, "transpose": transpose, "swapaxes": transpose, "swapdims": transpose,
        "t": t_rule, "expand": _view(_expand_index, _expand_strides),
        "unsqueeze": unit, "squeeze": unit,
        "slice": _view(_slice_index, _slice_strides),
        "select": lambda ctx, node, ops, dim, index: select(ctx, node, ops, dim=dim,
                                                           index_=index),
        "view": reshape, "reshape": reshape, "flatten": reshape, "unflatten": reshape,
        "clone": _copy_rule, "contiguous": _copy_rule,
        "flip": _view(_flip_index, _flip_strides),
    }


def _copy_rule(ctx, node, operands, **_):
    src = operands[0]
    return Value(src.shape, src.dtype, src.load)


# --- reduction rules -----------------------------------------------------------------------
def _dims(dim, ndim):
    if dim is None or dim == []:
        return tuple(range(ndim))
    if isinstance(dim, int):
        return (dim % max(ndim, 1),)
    return tuple(d % max(ndim, 1) for d in dim)


def _finish(node: Node, value: Value, fn=lambda e: e) -> Value:
    out: TensorMeta = node.meta["val"]
    return Value(tuple(out.shape), out.dtype, lambda index: cast(fn(value.load(index)), out.dtype))


def _sum_rule(combine):
    def rule(ctx, node, operands, dim=None, keepdim=False, dtype=None):
        x = operands[0]
        out_dtype = node.meta["val"].dtype
        acc = K.accumulator_dtype(out_dtype if combine in ("sum", "prod") else x.dtype)
        if combine in ("max", "min"):
            acc = x.dtype
        return _finish(node, ctx.reduce(combine, x, _dims(dim, len(x.shape)), keepdim, acc))
    return rule


def _count(shape, dims) -> int:
    return math.prod(shape[d] for d in dims)


def _mean_rule(ctx, node, operands, dim=None, keepdim=False, dtype=None):
    x = operands[0]
    dims = _dims(dim, len(x.shape))
    acc = K.accumulator_dtype(node.meta["val"].dtype)
    total = ctx.reduce("sum", x, dims, keepdim, acc)
    n = _count(x.shape, dims)
    return _finish(node, total, lambda e: c("div", e, constant(n, e.dtype)))


def _moments(ctx, x: Value, dims, keepdim, correction):
    """(mean, var) over `dims` in two passes (mean first: numerically sound)."""
    acc = K.accumulator_dtype(x.dtype)
    n = _count(x.shape, dims)
    total = ctx.reduce("sum", x, dims, True, acc)
    mean = Value(total.shape, acc, lambda i: c("div", total.load(i), constant(n, acc)))
    x_shape = x.shape

    def centered_sq(index):
        d = c("sub", cast(x.load(index), acc),
              mean.load(broadcast_index(index, mean.shape, x_shape, ctx.n_vars)))
        return c("mul", d, d)
    sq = Value(x_shape, acc, centered_sq)
    ssq = ctx.reduce("sum", sq, dims, keepdim, acc)
    denom = max(n - correction, 0)
    var = Value(ssq.shape, acc, lambda i: c("div", ssq.load(i), constant(denom, acc)))
    if not keepdim:
        kept = tuple(s for d, s in enumerate(mean.shape) if d not in dims)
        mean = Value(kept, acc, lambda i, m=mean, dims=dims: m.load(
            _insert_zeros(i, dims, ctx.n_vars)))
    return mean, var


def _insert_zeros(index, dims, n_vars):
    out, it = [], iter(index)
    for d in range(len(index) + len(dims)):
        out.append(zero(n_vars) if d in dims else next(it))
    return tuple(out)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 0 if unbiased is False else 1


def _var_rule(sqrt: bool):
    def rule(ctx, node, operands, dim=None, unbiased=None, keepdim=False, correction=None):
        x = operands[0]
        _, var = _moments(ctx, x, _dims(dim, len(x.shape)), keepdim,
                          _correction(unbiased, correction))
        return _finish(node, var, (lambda e: c("sqrt", e)) if sqrt else (lambda e: e))
    return rule


def _softmax_rule(log: bool):
    def rule(ctx, node, operands, dim, dtype=None):
        x = operands[0]
        out_dtype = node.meta["val"].dtype
        acc = opmath(out_dtype)
        dims = _dims(dim, len(x.shape))
        xs = Value(x.shape, acc, lambda i: cast(x.load(i), acc))
        mx = ctx.reduce("max", xs, dims, True, acc)
        shape = x.shape

        def shifted(i):
            return c("sub", xs.load(i), mx.load(broadcast_index(i, mx.shape, shape, ctx.n_vars)))
        e = Value(shape, acc, lambda i: c("exp", shifted(i)))
        den = ctx.reduce("sum", e, dims, True, acc)

        def load(i):
            d = den.load(broadcast_index(i, den.shape, shape, ctx.n_vars))
            value = c("sub", shifted(i), c("log", d)) if log else c("div", e.load(i), d)
            return cast(value, out_dtype)
        return Value(shape, out_dtype, load)
    return rule


def _logsumexp_rule(ctx, node, operands, dim, keepdim=False):
    x = operands[0]
    acc = opmath(node.meta["val"].dtype)
    dims = _dims(dim, len(x.shape))
    xs = Value(x.shape, acc, lambda i: cast(x.load(i), acc))
    mx = ctx.reduce("max", xs, dims, True, acc)

    def safe_max(i):   # torch: an infinite max contributes 0 to the shift
        m = mx.load(i)
        return c("where", c("isinf", m), constant(0, acc), m)
    e = Value(x.shape, acc, lambda i: c("exp", c("sub", xs.load(i), safe_max(
        broadcast_index(i, mx.shape, x.shape, ctx.n_vars)))))
    total = ctx.reduce("sum", e, dims, keepdim, acc)
    mx_out = mx if keepdim else Value(total.shape, acc, lambda i: mx.load(
        _insert_zeros(i, dims, ctx.n_vars)))
    return _finish(node, Value(total.shape, acc,
                               lambda i: c("add", c("log", total.load(i)), safe_max_at(mx_out, i))))


def safe_max_at(mx: Value, index):
    m = mx.load(index)
    return c("where", c("isinf", m), constant(0, m.dtype), m)


def _layer_norm_rule(ctx, node, operands, normalized_shape, weight=None, bias=None, eps=1e-5):
    x = operands[0]
    k = len(normalized_shape)
    dims = tuple(range(len(x.shape) - k, len(x.shape)))
    mean, var = _moments(ctx, x, dims, True, 0)
    acc = mean.dtype
    out = node.meta["val"]
    shape = x.shape

    def load(i):
        bi = broadcast_index(i, mean.shape, shape, ctx.n_vars)
        y = c("mul", c("sub", cast(x.load(i), acc), mean.load(bi)),
              c("rsqrt", c("add", var.load(bi), constant(eps, acc))))
        tail = i[len(shape) - k:]
        if isinstance(weight, Value):
            y = c("mul", y, cast(weight.load(tail), acc))
        if isinstance(bias, Value):
            y = c("add", y, cast(bias.load(tail), acc))
        return cast(y, out.dtype)
    return Value(tuple(out.shape), out.dtype, load)


def _batch_norm_rule(ctx, node, operands, running_mean=None, running_var=None, weight=None,
                     bias=None, training=False, momentum=0.1, eps=1e-5):
    if training or not isinstance(running_mean, Value):
        raise LoweringError("batch_norm lowers in eval mode (running statistics) only")
    x = operands[0]
    out = node.meta["val"]
    acc = opmath(out.dtype)

    def channel(v: Value, i):
        return cast(v.load((i[1],)), acc)

    def load(i):
        y = c("mul", c("sub", cast(x.load(i), acc), channel(running_mean, i)),
              c("rsqrt", c("add", channel(running_var, i), constant(eps, acc))))
        if isinstance(weight, Value):
            y = c("mul", y, channel(weight, i))
        if isinstance(bias, Value):
            y = c("add", y, channel(bias, i))
        return cast(y, out.dtype)
    return Value(tuple(out.shape), out.dtype, load)


REDUCTION_RULES: dict[str, Callable] = {
    "sum": _sum_rule("sum"), "prod": _sum_rule("prod"),
    "amax": _sum_rule("max"), "amin": _sum_rule("min"),
    "mean": _mean_rule, "var": _var_rule(False), "std": _var_rule(True),
    "softmax": _softmax_rule(False), "log_softmax": _softmax_rule(True),
    "logsumexp": _logsumexp_rule, "layer_norm": _layer_norm_rule,
}

RULES: dict[str, Callable] = {**POINTWISE_RULES, **_view_rules(), **REDUCTION_RULES,
                              "batch_norm": _batch_norm_rule}
def _outer_rule(ctx, node, args: dict) -> Value:
    """outer(a, b)[i, j] = a[i] * b[j]."""
    a, b = args["self"], args["vec2"]
    out: TensorMeta = node.meta["val"]
    if out.dtype == bool_:
        raise LoweringError(f"{ctx.name}: outer of bool vectors is a logical and, not lowered")
    dtype = opmath(out.dtype)
    return Value(tuple(out.shape), out.dtype, lambda i: cast(c(
        "mul", cast(a.load((i[0],)), dtype), cast(b.load((i[1],)), dtype)), out.dtype))


# rules that take the op's bound arguments by name (lowering_windows.py adds its own)
ARG_RULES: dict[str, Callable] = {"outer": _outer_rule}


def lowering_rule(op) -> Callable | None:
    if not is_op(op):
        return None
    return RULES.get(op.name) or ARG_RULES.get(op.name)


def can_lower(node: Node) -> bool:
    """True when `node` may be part of a generated kernel (fusion's question)."""
    if node.op != OpKind.call_function or not is_op(node.target):
        return False
    if node.target.name not in RULES and node.target.name not in ARG_RULES:
        return False
    val = node.meta.get("val")
    if not isinstance(val, TensorMeta) or val.dtype.category == Category.COMPLEX:
        return False
    if node.target.name == "batch_norm":
        bound = node.target.schema.as_kwargs(node.target.schema.bind(node.args, node.kwargs))
        return not bound["training"] and bound["running_mean"] is not None
    return True


def is_reduction_rule(node: Node) -> bool:
    return is_op(node.target) and (node.target.name in REDUCTION_RULES or
                                   node.target.name in ("max_pool2d", "avg_pool2d",
                                                        "adaptive_avg_pool2d"))


# --- lowering a group ----------------------------------------------------------------------
@dataclass
class LoweredKernel:
    kernel: K.Kernel
    inputs: list[Node]       # the group graph's nodes each input buffer holds, in order
    outputs: list[Node]      # the group graph's output values, in buffer order
    anchor: Node | None = None   # an extern op (GEMM/conv) whose result the kernel reads


def lower_group(graph: Graph, name: str = "kernel", check_only: bool = False) -> LoweredKernel:
    """Lower a group graph (placeholders with meta['val'], registry ops, one output).

    `check_only` (fusion's group checker) stops once the stores are built and every index
    is known to stay in the kernel's loop space (`trim_vars`' one refusal): the loop-space
    cleanups (loop reordering, dim collapsing) and dropping unread inputs never reject a
    kernel, and `validate` checks lowering's own invariants (a ValueError, never a
    verdict; the full lowering of the chosen group still runs it), so the answer is the
    full lowering's at well under half its cost. The kernel it returns is not trimmed."""
    ndim = max([len(n.meta["val"].shape) for n in graph.nodes
                if isinstance(n.meta.get("val"), TensorMeta)] + [0])
    ctx = LoweringContext(name, 2 * ndim + 1)
    env: dict[Node, object] = {}
    anchor = None
    inputs, specs = [], []
    for node in graph.nodes:
        if node.op == OpKind.placeholder:
            meta: TensorMeta = node.meta["val"]
            buf = f"in{len(inputs)}"
            inputs.append(node)
            _bind_buffer(ctx, env, specs, node, buf, meta)
        elif _is_anchor(node):
            if anchor is not None:
                raise LoweringError(f"{name}: two extern ops ({anchor.target.name}, "
                                    f"{node.target.name}) in one group")
            anchor = node
            meta = node.meta["val"]
            inputs.append(node)
            _bind_buffer(ctx, env, specs, node, "acc", meta)
        elif node.op == OpKind.call_function:
            env[node] = _lower_node(ctx, node, env)
        elif node.op == OpKind.output:
            outputs = _flatten(node.args[0])
            if anchor is not None and anchor in outputs:
                raise LoweringError(f"{name}: the extern op's own result leaves the group")
            lowered = _finish_kernel(ctx, name, inputs, specs, outputs, env, check_only)
            if check_only:
                return lowered
            lowered.anchor = anchor
            return _drop_unread_inputs(lowered)
        else:
            raise LoweringError(f"{name}: cannot lower {node.op} node {node.name}")
    raise LoweringError(f"{name}: group graph has no output")


def has_anchor(graph: Graph) -> bool:
    """Whether lower_group could give `graph` an anchor (an extern GEMM/conv it finishes):
    asked before lowering a group only to look for one."""
    return any(_is_anchor(n) for n in graph.nodes)


def _is_anchor(node: Node) -> bool:
    return node.op == OpKind.call_function and is_op(node.target) and \
        node.target.name in _EPILOGUE_ANCHORS and node.target.name not in RULES


def _drop_unread_inputs(lowered: LoweredKernel) -> LoweredKernel:
    """Buffers no expression loads (an extern op's operands) are not kernel arguments."""
    read = set()
    for stage in lowered.kernel.stages:
        for e in K._walk(stage.value):
            if isinstance(e, (K.Load, K.MaskedLoad)):
                read.add(e.buffer)
    keep = [i for i, spec in enumerate(lowered.kernel.inputs) if spec.name in read]
    lowered.kernel.inputs = [lowered.kernel.inputs[i] for i in keep]
    lowered.inputs = [lowered.inputs[i] for i in keep]
    return lowered


def _flatten(value) -> list[Node]:
    if isinstance(value, Node):
        return [value]
    out = []
    for v in value:
        out += _flatten(v)
    return out


def _extent(meta: TensorMeta) -> int:
    """Elements spanned by a strided tensor (its buffer's length)."""
    if any(s == 0 for s in meta.shape):
        return 0
    return 1 + sum((s - 1) * st for s, st in zip(meta.shape, meta.strides))


def _bind_buffer(ctx, env: dict, specs: list, node, buf: str, meta) -> None:
    """A group's input (or its extern anchor's result, buffer "acc"): declared as a
    kernel buffer and read through its own strides."""
    specs.append(K.BufferSpec(buf, meta.dtype, _extent(meta)))
    env[node] = strided_value(ctx, Strided(buf, tuple(meta.strides)), meta.shape, meta.dtype)


def _lower_node(ctx: LoweringContext, node: Node, env: dict):
    op = node.target
    if op.name in ARG_RULES:
        bound = op.schema.bind(_resolved(node._args, env), _resolved(node._kwargs, env))
        return ARG_RULES[op.name](ctx, node, op.schema.as_kwargs(bound))
    rule = lowering_rule(op)
    if rule is None:
        where = f" (from {node.meta['loc']})" if node.meta.get("loc") else ""
        raise LoweringError(f"{ctx.name}: no lowering rule for {op!r} at {node.name}{where}")
    bound = op.schema.bind(_resolved(node._args, env), _resolved(node._kwargs, env))
    names, tensor_order, tensor_idx = _schema_facts(op.schema)
    operands = [bound[i] for i in tensor_order if bound[i] is not None
                and not isinstance(bound[i], (list, tuple))]
    scalars = {names[i]: v for i, v in enumerate(bound) if i not in tensor_idx}
    optional = {names[i]: v for i, v in enumerate(bound) if i in tensor_idx}
    if op.name in POINTWISE_RULES:
        operands = [bound[i] for i in tensor_order]
        if op.name == "clamp":
            return _clamp_rule(ctx, node, bound)
        return RULES[op.name](ctx, node, operands, **scalars)
    if op.name in ("layer_norm", "batch_norm"):
        extra = {k: v for k, v in optional.items() if k not in ("input", "self")}
        return RULES[op.name](ctx, node, [bound[0]], **extra, **scalars)
    return RULES[op.name](ctx, node, operands[:1], **scalars)


def _resolved(value, env: dict):
    """map_arg(value, env.__getitem__) (a node's args or kwargs: each Node to its lowered
    Value), with the flat tuple and dict of nearly every node done in one comprehension."""
    kind = type(value)
    if kind is tuple:
        return tuple([env[v] if type(v) is Node else
                      v if type(v) in _LEAVES else map_arg(v, env.__getitem__) for v in value])
    if kind is dict:
        return {k: env[v] if type(v) is Node else
                v if type(v) in _LEAVES else map_arg(v, env.__getitem__)
                for k, v in value.items()}
    return map_arg(value, env.__getitem__)


_LEAVES = frozenset({int, float, bool, str, type(None), complex})
_SCHEMA_FACTS: dict = {}


def _schema_facts(schema) -> tuple:
    """(argument names, tensor argument indices in order, and as a set) of a schema, once."""
    found = _SCHEMA_FACTS.get(id(schema))
    if found is None or found[0] is not schema:
        indices = tuple(sorted(set(schema.tensor_arg_indices)))
        found = _SCHEMA_FACTS[id(schema)] = (schema, [a.name for a in schema.args], indices,
                                             frozenset(indices))
    return found[1:]


def _clamp_rule(ctx, node, bound):
    x, lo, hi = bound
    operands = [x] + [v for v in (lo, hi) if v is not None]
    has_lo, has_hi = lo is not None, hi is not None

    def fn(xe, *bounds):
        it = iter(bounds)
        return _clamp(xe, next(it) if has_lo else None, next(it) if has_hi else None)
    return pointwise(fn)(ctx, node, operands)


def _finish_kernel(ctx, name, inputs, specs, outputs, env,
                   check_only: bool = False) -> LoweredKernel:
    values = [env[n] for n in outputs]
    out_specs, stores = [], []
    if ctx.inner is None:
        shape = tuple(values[0].shape)
        ctx.outer, ctx.inner = shape, ()
    for k, (node, value) in enumerate(zip(outputs, values)):
        meta: TensorMeta = node.meta["val"]
        buf = f"out{k}"
        out_specs.append(K.BufferSpec(buf, meta.dtype, _extent(meta)))
        stores.append(_store(ctx, name, buf, meta, value))
    kernel = K.Kernel(name, tuple(ctx.outer), tuple(ctx.inner), specs, out_specs,
                      ctx.stages + stores)
    if check_only:
        _check_vars_used(kernel)
        return LoweredKernel(kernel, inputs, list(outputs))
    kernel = collapse_dims(reorder_loops(collapse_dims(trim_vars(kernel))))
    K.validate(kernel)
    return LoweredKernel(kernel, inputs, list(outputs))


def _store(ctx, name, buf, meta: TensorMeta, value: Value) -> K.Store:
    shape = tuple(meta.shape)
    n = ctx.n_vars
    if not ctx.inner:
        if shape != tuple(ctx.outer):
            raise LoweringError(f"{name}: outputs of shapes {list(ctx.outer)} and {list(shape)} "
                                "cannot share one pointwise kernel")
        index = tuple(var(v, n) for v in range(len(shape)))
        expr = cast(value.load(index), meta.dtype)
        return K.Store(buf, linear(zip(meta.strides, index), 0, n), expr)
    if shape == tuple(ctx.reduced_input_shape):
        index = ctx.full_index()
        expr = cast(value.load(index), meta.dtype)
        return K.Store(buf, linear(zip(meta.strides, index), 0, n), expr, over_inner=True)
    index = _reduced_index(ctx, shape, name)
    expr = cast(value.load(index), meta.dtype)
    return K.Store(buf, linear(zip(meta.strides, index), 0, n), expr)


def _reduced_index(ctx, shape, name) -> tuple:
    """The outer-variable index of a reduction-shaped output (keepdim or not).

    The shape must match exactly: a store index has to enumerate every element of its
    output once. Matching by rank alone took a permuted full-size output such as
    [2,8,1,1] (of a reduction over [2,1,1,8]'s last dim) for the keepdim result
    [2,1,1,1] and stored only its first channel."""
    full = ctx.reduced_input_shape
    n = ctx.n_vars
    keepdim_shape = tuple(1 if d in ctx.reduce_dims else s for d, s in enumerate(full))
    if tuple(shape) == keepdim_shape:
        outer_vars = iter(range(len(ctx.outer)))
        return tuple(zero(n) if d in ctx.reduce_dims else var(next(outer_vars), n)
                     for d in range(len(full)))
    if tuple(shape) == tuple(ctx.outer):
        return tuple(var(v, n) for v in range(len(shape)))
    raise LoweringError(f"{name}: output shape {list(shape)} is neither the reduced input "
                        f"{list(full)} nor its reduction {list(ctx.outer)}")


# --- loop-space cleanups ---------------------------------------------------------------------
def _map_indices(kernel: K.Kernel, fn: Callable[[K.Affine], K.Affine]) -> list:
    memo: dict[int, K.Expr] = {}

    def expr(e):
        hit = memo.get(id(e))
        if hit is not None:
            return hit
        if isinstance(e, K.Load):
            new = K.Load(e.buffer, fn(e.index), e.dtype)
        elif isinstance(e, K.MaskedLoad):
            new = K.MaskedLoad(e.buffer, fn(e.index), e.dtype, expr(e.mask), e.other)
        elif isinstance(e, K.IndexValue):
            new = K.IndexValue(fn(e.index), e.dtype)
        elif isinstance(e, K.Call):
            new = K.Call(e.op, tuple(expr(a) for a in e.args), e.dtype)
        elif isinstance(e, K.Cast):
            new = K.Cast(expr(e.value), e.dtype)
        else:
            new = e
        memo[id(e)] = new
        return new

    stages = []
    for s in kernel.stages:
        if isinstance(s, K.Reduce):
            stages.append(K.Reduce(s.name, s.combine, expr(s.value), s.acc_dtype))
        else:
            stages.append(K.Store(s.buffer, fn(s.index), expr(s.value), s.over_inner))
    return stages


def trim_vars(kernel: K.Kernel) -> K.Kernel:
    """Drop the unused trailing loop variables the context allocated up front."""
    n = kernel.n_vars
    stages = _map_indices(kernel, lambda a: K.Affine(a.coeffs[:n], a.offset)
                          if not any(a.coeffs[n:]) else _bad(a))
    return K.Kernel(kernel.name, kernel.outer, kernel.inner, kernel.inputs, kernel.outputs, stages)


def _check_vars_used(kernel: K.Kernel) -> None:
    """trim_vars' refusal, without rebuilding the kernel."""
    n = kernel.n_vars
    for a in _all_indices(kernel):
        if any(a.coeffs[n:]):
            _bad(a)


def _bad(a):
    raise LoweringError(f"index {a} uses a loop variable outside the kernel's space")


def _all_indices(kernel: K.Kernel) -> list[K.Affine]:
    """Every index the kernel's loads, index values and stores use (a walk: nothing is
    rebuilt)."""
    found = []
    seen: set = set()
    for s in kernel.stages:
        if isinstance(s, K.Store):
            found.append(s.index)
        for e in K._walk(s.value, seen):
            if isinstance(e, (K.Load, K.MaskedLoad, K.IndexValue)):
                found.append(e.index)
    return found


def reorder_loops(kernel: K.Kernel) -> K.Kernel:
    """Loop order = memory order: outer loops follow the first output's strides (largest
    first), inner loops the strides their loads walk. A channels-last tensor is then
    walked with its channels innermost (contiguous vectors, and often one flat loop
    once collapsed), whatever the logical dim order was."""
    n_outer = len(kernel.outer)
    stores = [s for s in kernel.stages if isinstance(s, K.Store)]
    loads = [e for s in kernel.stages if isinstance(s, K.Reduce) for e in K._walk(s.value)
             if isinstance(e, (K.Load, K.MaskedLoad))]

    def weight(var: int) -> int:
        if var < n_outer:
            return max([abs(st.index.coeff(var)) for st in stores[:1]] + [0])
        return sum(abs(ld.index.coeff(var)) for ld in loads)
    outer = sorted(range(n_outer), key=lambda v: -weight(v))
    inner = sorted(range(n_outer, kernel.n_vars), key=lambda v: -weight(v))
    order = outer + inner                       # new position -> old var
    if order == list(range(kernel.n_vars)):
        return kernel
    new_of = {old: new for new, old in enumerate(order)}

    def permute(a: K.Affine) -> K.Affine:
        coeffs = [0] * kernel.n_vars
        for v, c in enumerate(a.coeffs):
            if c:
                coeffs[new_of[v]] = c
        return K.Affine(tuple(coeffs), a.offset)
    stages = _map_indices(kernel, permute)
    sizes = list(kernel.outer) + list(kernel.inner)
    return K.Kernel(kernel.name, tuple(sizes[v] for v in outer), tuple(sizes[v] for v in inner),
                    kernel.inputs, kernel.outputs, stages)


def collapse_dims(kernel: K.Kernel) -> K.Kernel:
    """Merge adjacent loop dims that every access walks contiguously (fewer, longer loops)."""
    for space in ("outer", "inner"):
        while True:
            merged = _try_merge(kernel, space)
            if merged is None:
                break
            kernel = merged
    return kernel


def _try_merge(kernel: K.Kernel, space: str):
    sizes = list(getattr(kernel, space))
    base = 0 if space == "outer" else len(kernel.outer)
    indices = _all_indices(kernel)
    for d in range(len(sizes) - 1):
        v, w = base + d, base + d + 1
        if all(a.coeff(v) == a.coeff(w) * sizes[d + 1] for a in indices):
            new_sizes = sizes[:d] + [sizes[d] * sizes[d + 1]] + sizes[d + 2:]

            def fn(a, v=v, w=w):
                coeffs = list(a.coeffs) + [0] * (kernel.n_vars - len(a.coeffs))
                coeffs[v] = coeffs[w]
                del coeffs[w]
                return K.Affine(tuple(coeffs), a.offset)
            stages = _map_indices(kernel, fn)
            outer = tuple(new_sizes) if space == "outer" else kernel.outer
            inner = tuple(new_sizes) if space == "inner" else kernel.inner
            return K.Kernel(kernel.name, outer, inner, kernel.inputs, kernel.outputs, stages)
    return None


# --- registration: the registry's `lowering` field and fusion's group checker -----------------
def _why_not_one_kernel(graph: Graph) -> str | None:
    try:
        lower_group(graph, "candidate", check_only=True)
    except LoweringError as err:
        return str(err)
    return None


def _why_not_these_nodes(nodes: list[Node], inputs: list[Node],
                         outputs: list[Node]) -> str | None:
    """_why_not_one_kernel of the group graph fusion would extract from `nodes` (external
    `inputs` as its placeholders, in order; `outputs` leave it), lowered from the nodes
    themselves: what lower_group reads of a node (op, target, arguments through the
    environment, meta["val"] and "loc") is the same object in the graph's copy."""
    try:
        _lower_nodes(nodes, inputs, outputs)
    except LoweringError as err:
        return str(err)
    return None


def _lower_nodes(nodes, inputs, outputs) -> None:
    """lower_group(extract_group(nodes)[0], "candidate", check_only=True), step for step."""
    name = "candidate"
    ndim = max([len(n.meta["val"].shape) for n in inputs + nodes
                if isinstance(n.meta.get("val"), TensorMeta)] + [0])
    ctx = LoweringContext(name, 2 * ndim + 1)
    env: dict[Node, object] = {}
    specs = []
    for node in inputs:
        meta: TensorMeta = node.meta["val"]
        buf = f"in{len(specs)}"
        _bind_buffer(ctx, env, specs, node, buf, meta)
    order = list(inputs)
    anchor = None
    for node in nodes:
        if _is_anchor(node):
            if anchor is not None:
                raise LoweringError(f"{name}: two extern ops ({anchor.target.name}, "
                                    f"{node.target.name}) in one group")
            anchor = node
            meta = node.meta["val"]
            order.append(node)
            _bind_buffer(ctx, env, specs, node, "acc", meta)
        elif node.op == OpKind.call_function:
            env[node] = _lower_node(ctx, node, env)
        else:
            raise LoweringError(f"{name}: cannot lower {node.op} node {node.name}")
    if anchor is not None and anchor in outputs:
        raise LoweringError(f"{name}: the extern op's own result leaves the group")
    _finish_kernel(ctx, name, order, specs, outputs, env, True)


def _register() -> None:
    from ..ir.fused import register_group_checker
    from ..ir.registry import OPS
    from .lowering_windows import ARG_RULES as windowed
    from .lowering_math import MATH_RULES
    ARG_RULES.update(windowed)
    POINTWISE_RULES.update(MATH_RULES)
    RULES.update(MATH_RULES)
    for name, rule in {**RULES, **ARG_RULES}.items():
        if name in OPS:
            OPS[name].lowering = rule
    _why_not_one_kernel.on_nodes = _why_not_these_nodes
    register_group_checker(_why_not_one_kernel)


_register()
