"""Kernel descriptions: the loop-level IR that both backends (LLVM, Triton) read.

Lowering turns each fused group of the graph into one `Kernel`. A kernel is an
iteration space plus a short list of stages over flat buffers:

    Kernel(outer=(N,), inner=(D,), stages=[
        Reduce("mx",  "max", Load("x", idx)),                    # per outer point
        Reduce("den", "sum", exp(Load("x", idx) - ReduceRef("mx"))),
        Store("out", idx, exp(Load("x", idx) - ReduceRef("mx")) / ReduceRef("den")),
    ])

- `outer` is the parallel space (one kernel instance per point; backends split it
  across cores or thread blocks); `inner` is the space that `Reduce` stages
  reduce over and inner `Store`s write over. A pointwise kernel has no inner
  space; a plain reduction has one `Reduce` and a `Store` per outer point; softmax
  and layernorm are "persistent" rows: several reductions, then a store over the
  row, all in one pass over memory.
- Loop variables are numbered: 0..len(outer)-1 for the outer dims, then the inner
  dims. Every buffer is flat (element offsets); an `Affine` index gives the offset
  as `offset + sum(coeff[v] * var[v])`, so strides, broadcasts (coeff 0),
  permutes, slices and expands are all just coefficients. Backends read the
  coefficient of the innermost variable to choose vector loads (1), broadcasts
  (0) or gathers (anything else).
- Scalar expressions are a closed vocabulary (`SCALAR_OPS`): every backend
  implements each name once.

`evaluate(kernel, buffers)` runs a description with NumPy. It is the reference
semantics: lowering is tested against eager through it, and each backend is
tested against it, independently of each other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from ..ir.dtypes import DType, Category, bool_, float32, float64, int64

# --- the scalar vocabulary -----------------------------------------------------------------
# name -> arity. Comparisons return bool; `where(c, a, b)` selects.
SCALAR_OPS: dict[str, int] = {
    # arithmetic
    "add": 2, "sub": 2, "mul": 2, "div": 2, "neg": 1, "abs": 1, "maximum": 2, "minimum": 2,
    "pow": 2, "fmod": 2, "remainder": 2, "floor_divide": 2, "reciprocal": 1, "square": 1,
    # transcendental
    "exp": 1, "exp2": 1, "expm1": 1, "log": 1, "log2": 1, "log1p": 1, "sqrt": 1, "rsqrt": 1,
    "tanh": 1, "sigmoid": 1, "erf": 1, "sin": 1, "cos": 1, "tan": 1, "atan": 1,
    "asin": 1, "acos": 1, "sinh": 1, "cosh": 1, "atan2": 2,
    # rounding
    "floor": 1, "ceil": 1, "round": 1, "trunc": 1, "sign": 1,
    # comparison and logic
    "eq": 2, "ne": 2, "lt": 2, "le": 2, "gt": 2, "ge": 2,
    "logical_and": 2, "logical_or": 2, "logical_not": 1, "logical_xor": 2,
    "bitwise_and": 2, "bitwise_or": 2, "bitwise_xor": 2, "bitwise_not": 1,
    "isnan": 1, "isinf": 1,
    "where": 3,
}
COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
               "logical_not", "logical_xor", "isnan", "isinf"}

# combine name -> (numpy reduction, identity as a function of dtype)
REDUCTIONS = ("sum", "prod", "max", "min")


# --- index expressions ---------------------------------------------------------------------
_INT_ONLY = frozenset({int})


@dataclass(frozen=True)
class Affine:
    """offset + sum(coeffs[v] * var_v) over the kernel's loop variables."""
    coeffs: tuple[int, ...]
    offset: int = 0

    def __post_init__(self):
        # plain int tuples (nearly every index lowering builds) are kept as they are
        if type(self.coeffs) is not tuple or not _INT_ONLY.issuperset(map(type, self.coeffs)):
            object.__setattr__(self, "coeffs", tuple(int(c) for c in self.coeffs))
        if type(self.offset) is not int:
            object.__setattr__(self, "offset", int(self.offset))

    def coeff(self, var: int) -> int:
        return self.coeffs[var] if var < len(self.coeffs) else 0

    def __str__(self) -> str:
        terms = [f"{c}*v{v}" if c != 1 else f"v{v}" for v, c in enumerate(self.coeffs) if c]
        if self.offset or not terms:
            terms.append(str(self.offset))
        return " + ".join(terms)


def strided_index(strides, offset: int = 0, first_var: int = 0, n_vars: int | None = None) -> Affine:
    """The index of a tensor with `strides` whose dims map to vars first_var, first_var+1, ..."""
    n_vars = first_var + len(strides) if n_vars is None else n_vars
    coeffs = [0] * n_vars
    for i, s in enumerate(strides):
        coeffs[first_var + i] = s
    return Affine(tuple(coeffs), offset)


# --- scalar expressions --------------------------------------------------------------------
@dataclass(frozen=True)
class Load:
    buffer: str
    index: Affine
    dtype: DType

    def __str__(self):
        return f"{self.buffer}[{self.index}]"


@dataclass(frozen=True)
class MaskedLoad:
    """buffer[index] where `mask` holds, else `other` — and no memory access where it does
    not, so `index` may point outside the buffer there (padding, the parts of `cat`)."""
    buffer: str
    index: Affine
    dtype: DType
    mask: "Expr"
    other: Union[int, float, bool] = 0

    def __str__(self):
        return f"{self.buffer}[{self.index}] if {self.mask} else {self.other!r}"


@dataclass(frozen=True)
class Const:
    value: Union[int, float, bool]
    dtype: DType

    def __str__(self):
        return repr(self.value)


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple
    dtype: DType

    def __post_init__(self):
        arity = SCALAR_OPS.get(self.op)
        if arity is None:
            raise ValueError(f"unknown scalar op {self.op!r}")
        if arity != len(self.args):
            raise ValueError(f"scalar op {self.op} takes {arity} operands, got {len(self.args)}")

    def __str__(self):
        return f"{self.op}({', '.join(map(str, self.args))})"


@dataclass(frozen=True)
class Cast:
    value: "Expr"
    dtype: DType

    def __str__(self):
        return f"{self.dtype.short}({self.value})"


@dataclass(frozen=True)
class IndexValue:
    """An index expression used as a value (arange, masks built from positions)."""
    index: Affine
    dtype: DType = int64

    def __str__(self):
        return f"idx({self.index})"


@dataclass(frozen=True)
class ReduceRef:
    """The result of an earlier Reduce stage at the current outer point."""
    name: str
    dtype: DType

    def __str__(self):
        return f"%{self.name}"


Expr = Union[Load, MaskedLoad, Const, Call, Cast, IndexValue, ReduceRef]


# --- stages and kernels --------------------------------------------------------------------
@dataclass(frozen=True)
class Reduce:
    """name = combine over the inner space of `value`, accumulated in `acc_dtype`."""
    name: str
    combine: str
    value: Expr
    acc_dtype: DType

    def __post_init__(self):
        if self.combine not in REDUCTIONS:
            raise ValueError(f"unknown reduction {self.combine!r}; expected one of {REDUCTIONS}")


@dataclass(frozen=True)
class Store:
    """buffer[index] = value, once per outer point, or over the inner space if `over_inner`."""
    buffer: str
    index: Affine
    value: Expr
    over_inner: bool = False


@dataclass(frozen=True)
class BufferSpec:
    name: str
    dtype: DType
    numel: int           # elements reachable through the buffer (flat)


@dataclass
class Kernel:
    name: str
    outer: tuple[int, ...]
    inner: tuple[int, ...] = ()
    inputs: list[BufferSpec] = field(default_factory=list)
    outputs: list[BufferSpec] = field(default_factory=list)
    stages: list = field(default_factory=list)

    @property
    def n_vars(self) -> int:
        return len(self.outer) + len(self.inner)

    @property
    def is_reduction(self) -> bool:
        return any(isinstance(s, Reduce) for s in self.stages)

    def __str__(self) -> str:
        lines = [f"kernel {self.name} outer={list(self.outer)} inner={list(self.inner)}"]
        for b in self.inputs:
            lines.append(f"  in  {b.name}: {b.dtype.short}[{b.numel}]")
        for b in self.outputs:
            lines.append(f"  out {b.name}: {b.dtype.short}[{b.numel}]")
        for s in self.stages:
            if isinstance(s, Reduce):
                lines.append(f"  %{s.name} = {s.combine}<{s.acc_dtype.short}>({s.value})")
            else:
                scope = " over inner" if s.over_inner else ""
                lines.append(f"  {s.buffer}[{s.index}] = {s.value}{scope}")
        return "\n".join(lines)


def validate(kernel: Kernel) -> None:
    """Structural checks every backend may rely on (raise ValueError naming the problem)."""
    names = {b.name for b in kernel.inputs} | {b.name for b in kernel.outputs}
    outputs = {b.name for b in kernel.outputs}
    defined: set[str] = set()
    for stage in kernel.stages:
        for expr in _walk(stage.value):
            if isinstance(expr, (Load, MaskedLoad)) and expr.buffer not in names:
                raise ValueError(f"{kernel.name}: load from unknown buffer {expr.buffer}")
            if isinstance(expr, ReduceRef) and expr.name not in defined:
                raise ValueError(f"{kernel.name}: %{expr.name} used before its Reduce")
            if isinstance(expr, (Load, MaskedLoad, IndexValue)):
                _check_vars(kernel, expr, inner_allowed=isinstance(stage, Reduce) or
                            getattr(stage, "over_inner", False))
        if isinstance(stage, Reduce):
            if not kernel.inner:
                raise ValueError(f"{kernel.name}: Reduce {stage.name} in a kernel with no inner space")
            defined.add(stage.name)
        elif stage.buffer not in outputs:
            raise ValueError(f"{kernel.name}: store to {stage.buffer}, which is not an output")


def _check_vars(kernel: Kernel, expr, inner_allowed: bool) -> None:
    index = expr.index
    if len(index.coeffs) > kernel.n_vars:
        raise ValueError(f"{kernel.name}: index {index} uses more than {kernel.n_vars} variables")
    if not inner_allowed and any(index.coeff(v) for v in range(len(kernel.outer), kernel.n_vars)):
        raise ValueError(f"{kernel.name}: index {index} uses an inner variable outside the inner loop")


def _walk(expr, seen: set | None = None):
    """Each distinct subexpression once (descriptions are DAGs: shared loads stay shared),
    in depth-first pre-order, operands left to right. An explicit stack, not nested
    generators: lowering and source generation walk every expression several times."""
    seen = set() if seen is None else seen
    stack = [expr]
    while stack:
        expr = stack.pop()
        if id(expr) in seen:
            continue
        seen.add(id(expr))
        yield expr
        kind = type(expr)
        if kind is Call:
            stack.extend(reversed(expr.args))
        elif kind is Cast:
            stack.append(expr.value)
        elif kind is MaskedLoad:
            stack.append(expr.mask)


# --- reference semantics -------------------------------------------------------------------
def evaluate(kernel: Kernel, buffers: dict[str, np.ndarray]) -> None:
    """Run `kernel` with NumPy over flat arrays in `buffers` (outputs written in place)."""
    validate(kernel)
    n_outer = len(kernel.outer)
    grids = _grids(kernel.outer + kernel.inner)
    outer_grids = _grids(kernel.outer)
    reduced: dict[str, np.ndarray] = {}
    inner_axes = tuple(range(n_outer, kernel.n_vars))
    for stage in kernel.stages:
        if isinstance(stage, Reduce):
            values = _eval(stage.value, buffers, grids, reduced, n_outer, kernel.inner, {})
            values = np.broadcast_to(values, kernel.outer + kernel.inner).astype(
                stage.acc_dtype.np_dtype, copy=False)
            reduced[stage.name] = _reduce(stage.combine, values, inner_axes)
        else:
            scope = grids if stage.over_inner else outer_grids
            shape = kernel.outer + (kernel.inner if stage.over_inner else ())
            values = _eval(stage.value, buffers, scope, reduced, n_outer,
                           kernel.inner if stage.over_inner else (), {})
            offsets = _offsets(stage.index, scope)
            out = buffers[stage.buffer]
            out[np.broadcast_to(offsets, shape).ravel()] = \
                np.broadcast_to(values, shape).astype(out.dtype, copy=False).ravel()


def _grids(shape: tuple) -> list[np.ndarray]:
    return [np.arange(n).reshape([-1 if d == i else 1 for d in range(len(shape))])
            for i, n in enumerate(shape)] if shape else []


def _offsets(index: Affine, grids: list[np.ndarray]):
    total = np.int64(index.offset)
    for v, grid in enumerate(grids):
        c = index.coeff(v)
        if c:
            total = total + c * grid
    if any(index.coeff(v) for v in range(len(grids), len(index.coeffs))):
        raise ValueError(f"index {index} uses variables outside this stage's space")
    return total


def _reduce(combine: str, values: np.ndarray, axes: tuple) -> np.ndarray:
    if combine == "sum":
        return values.sum(axis=axes, dtype=values.dtype)
    if combine == "prod":
        return values.prod(axis=axes, dtype=values.dtype)
    if combine == "max":
        return values.max(axis=axes)
    return values.min(axis=axes)


def _eval(expr, buffers, grids, reduced, n_outer, inner, memo) -> np.ndarray:
    """Evaluate over index grids; `memo` (by object id) keeps shared subexpressions shared."""
    hit = memo.get(id(expr))
    if hit is None:
        hit = memo[id(expr)] = _eval_uncached(expr, buffers, grids, reduced, n_outer, inner,
                                              memo)
    return hit


def _eval_uncached(expr, buffers, grids, reduced, n_outer, inner, memo) -> np.ndarray:
    recurse = lambda e: _eval(e, buffers, grids, reduced, n_outer, inner, memo)  # noqa: E731
    if isinstance(expr, Load):
        return buffers[expr.buffer][_offsets(expr.index, grids)]
    if isinstance(expr, MaskedLoad):
        mask = np.asarray(recurse(expr.mask), dtype=bool)
        offsets = np.broadcast_arrays(_offsets(expr.index, grids), mask)[0]
        safe = np.where(mask, offsets, 0)
        values = buffers[expr.buffer][safe] if buffers[expr.buffer].size else \
            np.zeros(safe.shape, expr.dtype.np_dtype)
        return np.where(mask, values, np.asarray(expr.other, dtype=expr.dtype.np_dtype))
    if isinstance(expr, Const):
        return np.asarray(expr.value, dtype=expr.dtype.np_dtype)
    if isinstance(expr, IndexValue):
        return np.asarray(_offsets(expr.index, grids), dtype=expr.dtype.np_dtype)
    if isinstance(expr, ReduceRef):
        value = reduced[expr.name]
        return value.reshape(value.shape + (1,) * len(inner))
    if isinstance(expr, Cast):
        return recurse(expr.value).astype(expr.dtype.np_dtype)
    args = [recurse(a) for a in expr.args]
    with np.errstate(all="ignore"):
        result = SCALAR_NUMPY[expr.op](*args)
    return np.asarray(result).astype(expr.dtype.np_dtype, copy=False)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _round_half_even(x):
    return np.round(x)


def _floor_divide(a, b):
    return np.floor_divide(a, b)


SCALAR_NUMPY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "neg": np.negative, "abs": np.abs, "maximum": np.maximum, "minimum": np.minimum,
    "pow": np.power, "fmod": np.fmod, "remainder": np.remainder,
    "floor_divide": _floor_divide, "reciprocal": np.reciprocal, "square": np.square,
    "exp": np.exp, "exp2": np.exp2, "expm1": np.expm1, "log": np.log, "log2": np.log2,
    "log1p": np.log1p, "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x),
    "tanh": np.tanh, "sigmoid": _sigmoid, "erf": None, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "atan": np.arctan, "asin": np.arcsin, "acos": np.arccos,
    "sinh": np.sinh, "cosh": np.cosh, "atan2": np.arctan2,
    "floor": np.floor, "ceil": np.ceil, "round": _round_half_even, "trunc": np.trunc,
    "sign": lambda x: np.subtract(x > 0, x < 0, dtype=np.asarray(x).dtype),  # NaN -> 0
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
    "gt": np.greater, "ge": np.greater_equal,
    "logical_and": np.logical_and, "logical_or": np.logical_or,
    "logical_not": np.logical_not, "logical_xor": np.logical_xor,
    "bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or,
    "bitwise_xor": np.bitwise_xor, "bitwise_not": np.invert,
    "isnan": np.isnan, "isinf": np.isinf, "where": np.where,
}


def _erf(x):
    x = np.asarray(x)
    flat = np.array([math.erf(v) for v in x.astype(np.float64).ravel()])
    return flat.reshape(x.shape).astype(x.dtype if x.dtype.kind == "f" else np.float64)


SCALAR_NUMPY["erf"] = _erf
assert set(SCALAR_NUMPY) == set(SCALAR_OPS), set(SCALAR_OPS) ^ set(SCALAR_NUMPY)


# --- convenience constructors used by lowering and tests ------------------------------------
def call(op: str, *args, dtype: DType | None = None) -> Call:
    """A Call whose dtype defaults to bool for comparisons, else the first operand's dtype."""
    if dtype is None:
        dtype = bool_ if op in COMPARISONS else args[-1 if op == "where" else 0].dtype
    return Call(op, tuple(args), dtype)


def const(value, dtype: DType) -> Const:
    return Const(value, dtype)


def accumulator_dtype(dtype: DType) -> DType:
    """PyTorch accumulates low-precision floats in float32 and integers in int64."""
    if dtype.category == Category.FLOAT:
        return float64 if dtype == float64 else float32
    if dtype == bool_ or dtype.category == Category.INT:
        return int64
    return dtype
