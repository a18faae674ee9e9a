"""Sums that read earlier sums, rewritten as sums that read none: one walk of the input.

A looped reduction walks the reduced space once per level of Reduce stages (a Reduce's
level is one more than the deepest Reduce its value reads). BatchNorm's training
statistics are two levels (the variance sums (x - mean)^2), its backward two as well
(the mean's gradient sums terms scaled by the variance's gradient), so at resnet18's
stem each walked a 205 MB activation twice before the normalizing pass.

A sum is linear: when a level-1 Reduce's value is a polynomial in inner values whose
coefficients are per-kept-point values (earlier Reduce results, per-channel loads,
constants),

    sum_r (c1 * u1[r] + c2 * u2[r] + c0)  =  c1 * sum_r u1 + c2 * sum_r u2 + R * c0,

so the stage becomes level-0 sums of the inner terms `u` (read in the same walk as the
other level-0 sums) and an expression over their results that later stages read instead
of the old Reduce. Products of two inner terms (the variance's square) expand to sums
of products. Such an expansion cancels where the inner values share a large common
part (sum(x^2) - R * mean^2 when |mean| >> std), so each plain load x it expands is
shifted by a value of its own column, x[first reduced point]: x = (x - x0) + x0, and the
sums are of x - x0 (the shifted-data variance), which is as accurate as the two-pass
form when x0 is within a few standard deviations of the mean.

Only float32 sums of float32 arithmetic (add, sub, neg, mul, div by a kept-point value,
square) are rewritten; anything else (a max, a where over an earlier result, a cast)
keeps its level.

Then every float32 sum is factored (`factor_sums`): kept-point factors of a product or
quotient leave the loop, sum_r (c * u[r]) = c * sum_r u, and sums of the same inner term
become one accumulator. BatchNorm's backward summed dy, dy * x-hat, -(dy * w) * (x -
mean) / (var + eps)^1.5, dy * w / std and x - mean: five accumulators with three IEEE
divisions per element in the loop, which at 16 warps needed more than the 128 registers
a thread may have there (ptxas spilled 700 bytes a thread). Factored they are sums of dy,
dy * (x - mean) and x - mean: three accumulators, no division in the loop. Only
multiplicative factors move: a sum of x - mean keeps the subtraction inside (sum(x) -
R * mean would cancel).
"""
from __future__ import annotations

import math

from ...ir.dtypes import float32
from .. import kernel as K

MAX_TERMS = 12          # inner terms one rewritten Reduce may become


def flatten_levels(kernel: K.Kernel) -> K.Kernel:
    """`kernel` with every rewritable higher-level sum as level-0 sums and every float32
    sum factored (`factor_sums`); the same kernel when nothing changes."""
    return factor_sums(_flatten(kernel))


def _flatten(kernel: K.Kernel) -> K.Kernel:
    if not kernel.inner or not any(isinstance(s, K.Reduce) and _refs(s.value)
                                   for s in kernel.stages):
        return kernel
    n_outer, r = len(kernel.outer), math.prod(kernel.inner)
    replaced: dict[str, object] = {}          # old Reduce name -> its expression
    memo: dict = {}     # one for every stage: a subexpression stages share stays one object
    stages: list = []
    changed = False
    for stage in kernel.stages:
        value = _substitute(stage.value, replaced, memo)
        if isinstance(stage, K.Reduce) and _refs(value) and stage.combine == "sum" and \
                stage.acc_dtype == float32:
            terms = _linear(value, n_outer, kernel.n_vars)
            if terms is not None and len(terms) <= MAX_TERMS:
                sums, expr = _as_sums(stage.name, terms, r)
                stages.extend(sums)
                replaced[stage.name] = expr
                changed = True
                continue
        stages.append(_with_value(stage, value))
    if not changed:
        return kernel
    return K.Kernel(kernel.name, kernel.outer, kernel.inner, kernel.inputs, kernel.outputs,
                    stages)


def _refs(value) -> bool:
    return any(isinstance(e, K.ReduceRef) for e in K._walk(value))


def _with_value(stage, value):
    if value is stage.value:
        return stage
    if isinstance(stage, K.Reduce):
        return K.Reduce(stage.name, stage.combine, value, stage.acc_dtype)
    return K.Store(stage.buffer, stage.index, value, stage.over_inner)


def _substitute(e, replaced: dict, memo: dict):
    """e with ReduceRefs of rewritten stages replaced by their expressions (DAG kept).
    One memo serves every stage of a kernel: a stage reads only Reduces before it, whose
    rewriting is settled by then, so a shared subexpression's substitute is the same for
    every stage, and stays one object (one variable in the generated source: BatchNorm's
    forward stored its output and its ReLU mask each computing x-hat, with a division an
    element each, when every stage had its own memo)."""
    if not replaced:
        return e
    hit = memo.get(id(e))
    if hit is not None:
        return hit
    out = e
    if isinstance(e, K.ReduceRef) and e.name in replaced:
        out = replaced[e.name]
    elif isinstance(e, K.Call):
        args = tuple(_substitute(a, replaced, memo) for a in e.args)
        if any(a is not b for a, b in zip(args, e.args)):
            out = K.Call(e.op, args, e.dtype)
    elif isinstance(e, K.Cast):
        inner = _substitute(e.value, replaced, memo)
        if inner is not e.value:
            out = K.Cast(inner, e.dtype)
    elif isinstance(e, K.MaskedLoad):
        mask = _substitute(e.mask, replaced, memo)
        if mask is not e.mask:
            out = K.MaskedLoad(e.buffer, e.index, e.dtype, mask, e.other)
    memo[id(e)] = out
    return out


# --- linear forms: [(coefficient or None for 1, inner term or None for 1)] -----------------
def _walks_inner(e, n_outer: int, n_vars: int) -> bool:
    for x in K._walk(e):
        if isinstance(x, (K.Load, K.MaskedLoad, K.IndexValue)) and \
                any(x.index.coeff(v) for v in range(n_outer, n_vars)):
            return True
    return False


def _linear(e, n_outer: int, n_vars: int):
    """e as a list of (coefficient, inner term) pairs whose products sum to e, or None.
    Coefficients hold no inner value; inner terms hold no earlier Reduce's result."""
    if not _walks_inner(e, n_outer, n_vars):
        return [(e, None)]
    if not _refs(e):
        if isinstance(e, K.Load) and e.dtype == float32:
            first = K.Load(e.buffer, K.Affine(tuple(c if v < n_outer else 0
                                                   for v, c in enumerate(e.index.coeffs)),
                                                  e.index.offset), e.dtype)
            return [(None, K.Call("sub", (e, first), float32)), (first, None)]
        return [(None, e)]
    if not isinstance(e, K.Call) or e.dtype != float32:
        return None
    args = e.args
    if e.op in ("add", "sub"):
        a, b = _linear(args[0], n_outer, n_vars), _linear(args[1], n_outer, n_vars)
        if a is None or b is None:
            return None
        return _collect(a + (b if e.op == "add" else [(_neg(c), u) for c, u in b]))
    if e.op == "neg":
        a = _linear(args[0], n_outer, n_vars)
        return None if a is None else [(_neg(c), u) for c, u in a]
    if e.op == "div" and not _walks_inner(args[1], n_outer, n_vars):
        a = _linear(args[0], n_outer, n_vars)
        return None if a is None else [(_scale(c, args[1], "div"), u) for c, u in a]
    if e.op in ("mul", "square"):
        left, right = (args[0], args[1]) if e.op == "mul" else (args[0], args[0])
        a, b = _linear(left, n_outer, n_vars), _linear(right, n_outer, n_vars)
        if a is None or b is None or len(a) * len(b) > MAX_TERMS:
            return None
        return [(_times(ca, cb), _times(ua, ub)) for ca, ua in a for cb, ub in b]
    return None


def _collect(terms: list) -> list:
    """Terms of one inner value (and the kept-point terms) merged by adding their
    coefficients first: (x - x0) + (x0 - mean) keeps x0 - mean as one coefficient, so a
    square expands to (x0 - mean)^2, not x0^2 - 2 x0 mean + mean^2 (which cancels)."""
    merged: dict[str, list] = {}
    for c, u in terms:
        entry = merged.setdefault("" if u is None else str(u), [None, u, False])
        if not entry[2]:
            entry[0], entry[2] = c, True
        else:
            base = K.Const(1.0, float32) if entry[0] is None else entry[0]
            add = K.Const(1.0, float32) if c is None else c
            entry[0] = K.Call("add", (base, add), float32)
    return [(c, u) for c, u, _ in merged.values()]


def _neg(c):
    return K.Const(-1.0, float32) if c is None else K.Call("neg", (c,), float32)


def _scale(c, by, op: str):
    base = K.Const(1.0, float32) if c is None else c
    return K.Call(op, (base, by), float32)


def _times(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return K.Call("mul", (a, b), float32)


def _as_sums(name: str, terms: list, r: int) -> tuple[list, object]:
    """Level-0 Reduce stages for the distinct inner terms, and the expression over their
    results (and the kept-point terms times R) that replaces the old Reduce's."""
    by_term: dict[str, list] = {}
    constant = []
    for c, u in terms:
        if u is None:
            constant.append(c)
        else:
            by_term.setdefault(str(u), [u, []])[1].append(c)
    sums, parts = [], []
    for i, (u, coefs) in enumerate(by_term.values()):
        stage = K.Reduce(f"{name}_t{i}", "sum", u, float32)
        sums.append(stage)
        ref = K.ReduceRef(stage.name, float32)
        coef = None
        for c in coefs:
            c = K.Const(1.0, float32) if c is None else c
            coef = c if coef is None else K.Call("add", (coef, c), float32)
        parts.append(K.Call("mul", (coef, ref), float32))
    for c in constant:
        parts.append(K.Call("mul", (c, K.Const(float(r), float32)), float32))
    expr = parts[0]
    for p in parts[1:]:
        expr = K.Call("add", (expr, p), float32)
    return sums, expr


# --- kept-point factors out of the loop; one accumulator per inner term ----------------------
def factor_sums(kernel: K.Kernel) -> K.Kernel:
    """`kernel` with each float32 sum of (kept-point factor) x (inner term) summing the
    inner term only, multiplied by the factor after the loop, and sums of one inner term
    (after factoring) merged into one Reduce; the same kernel when nothing changes."""
    if not kernel.inner:
        return kernel
    n_outer = len(kernel.outer)
    replaced: dict[str, object] = {}      # old Reduce name -> its expression
    memo: dict = {}                       # shared by the stages, as in _flatten
    by_term: dict[str, K.Reduce] = {}     # str(inner term) -> the Reduce that sums it
    stages: list = []
    changed = False
    for stage in kernel.stages:
        value = _substitute(stage.value, replaced, memo)
        if not (isinstance(stage, K.Reduce) and stage.combine == "sum" and
                stage.acc_dtype == float32 and value.dtype == float32):
            stages.append(_with_value(stage, value))
            continue
        coef, term = _factor(value, n_outer, kernel.n_vars)
        if term is None:                  # a kept-point value summed: R * value
            coef, term = None, value
        shared = by_term.get(str(term))
        if shared is None and coef is None:
            stage = _with_value(stage, value)
            by_term[str(term)] = stage
            stages.append(stage)
            continue
        if shared is None:
            shared = K.Reduce(stage.name, "sum", term, float32)
            by_term[str(term)] = shared
            stages.append(shared)
        ref = K.ReduceRef(shared.name, float32)
        replaced[stage.name] = ref if coef is None else K.Call("mul", (coef, ref), float32)
        changed = True
    if not changed:
        return kernel
    return K.Kernel(kernel.name, kernel.outer, kernel.inner, kernel.inputs, kernel.outputs,
                    stages)


def _factor(e, n_outer: int, n_vars: int) -> tuple:
    """(kept-point factor or None for 1, inner term or None for 1) whose product is e:
    the factors of products, quotients by kept-point values and negations."""
    if not _walks_inner(e, n_outer, n_vars):
        return e, None
    if not isinstance(e, K.Call) or e.dtype != float32:
        return None, e
    if e.op == "mul":
        ca, ua = _factor(e.args[0], n_outer, n_vars)
        cb, ub = _factor(e.args[1], n_outer, n_vars)
        return _times(ca, cb), _times(ua, ub)
    if e.op == "div" and not _walks_inner(e.args[1], n_outer, n_vars):
        c, u = _factor(e.args[0], n_outer, n_vars)
        return _scale(c, e.args[1], "div"), u
    if e.op == "neg":
        c, u = _factor(e.args[0], n_outer, n_vars)
        return _neg(c), u
    return None, e
