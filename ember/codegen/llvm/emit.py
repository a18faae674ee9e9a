"""Kernel descriptions (codegen/kernel.py) -> LLVM IR -> native code.

One generated function per kernel:

    void <name>(i64 begin, i64 end, i64 worker, ptr* buffers)

runs the iterations [begin, end) of the kernel's first outer dimension (the runtime
thread pool hands each thread one chunk; see runtime/threads.py), over the buffers
listed in `buffers` (inputs then outputs, in the kernel's order).

Vectorization is explicit, along one loop variable, `W` lanes at a time (16 float32
lanes on AVX-512, 8 on AVX2), with a one-lane remainder loop:
- OUTER mode: the last outer variable is vectorized; every value at a point is a
  W-lane vector (pointwise kernels, and reductions whose data is contiguous along
  the outer dimension, such as summing over dim 0: W outputs accumulate at once).
- INNER mode: for each outer point, the stages' loops over the inner space are
  vectorized along the last inner variable (row reductions: softmax, layernorm,
  sum over the last dim). A sum keeps one W-lane vector accumulator (each lane adds
  n / W terms) and ends with a pairwise horizontal reduction; a max/min (exact in any
  order) keeps EXACT_ACCUMULATORS of them, so a row's vectors do not wait for each
  other. A row store whose expression contains an earlier Reduce's value (softmax's
  exp(x - max), divided by the sum) reads back what the Reduce stage stored in the
  output instead of computing it again (_stash_plan), and a max only subtracted before
  exp is x86's plain max, not IEEE `maximum` (_shift_only_maxima).
INNER mode is chosen when more loads walk the last inner variable contiguously than
the last outer one, except when the inner loop is shorter than a vector (a pooling
window's 2 or 3 columns): then the outputs are vectorized if every load reads them at
a stride of at most MAX_SHUFFLED_STRIDE, with half-width vectors for output rows
shorter than a register (a 14-wide pooled row). Loads whose lanes are 1..4 elements
apart are one `llvm.masked.load` (plus a shuffle keeping every stride-th element);
masked loads (windows over padding) mask the lanes off, so nothing outside the
buffer is read; wider strides load lane by lane.
Values that do not depend on the vectorized variable stay scalar ("uniform") and
are splatted only where they meet a vector, so per-channel constants (batchnorm's
rsqrt(var + eps)) are computed once per row.

Descriptions are DAGs: each distinct expression object is emitted once per loop body.
Transcendentals use `vecmath` (inlined polynomials) where it has the function, else
LLVM intrinsics, else per-lane libm calls.
"""
from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

from ...ir.dtypes import Category, DType
from ...ir.errors import LoweringError
from .. import kernel as K
from . import irutil as U
from .jit import compile_ir
from .target import host_isa

# --- types ---------------------------------------------------------------------------------
_F16 = ir.HalfType()


def llvm_type(dtype: DType) -> ir.Type:
    """Register type of a dtype (bool is i1 in registers, i8 in memory)."""
    name = dtype.name
    if name == "float32":
        return U.F32
    if name == "float64":
        return U.F64
    if name == "float16":
        return U.F32          # computed in float32; memory type is half
    if name == "bool":
        return U.I1
    if dtype.category == Category.INT:
        return ir.IntType(dtype.itemsize * 8)
    raise LoweringError(f"the LLVM backend has no {dtype.name} support")


def memory_type(dtype: DType) -> ir.Type:
    if dtype.name == "bool":
        return ir.IntType(8)
    if dtype.name == "float16":
        return _F16
    return llvm_type(dtype)


def _is_float(dtype: DType) -> bool:
    return dtype.category == Category.FLOAT


def _unsigned(dtype: DType) -> bool:
    return dtype.name in ("uint8", "bool")


def lanes_for(dtype_bytes: int = 4) -> int:
    """Vector lanes per register for the host ISA (float32: 16 on AVX-512, 8 on AVX2)."""
    width_bits = 512 if host_isa().name.startswith("AVX512") else 256
    return max(1, width_bits // (8 * dtype_bytes))


def _bytes(ty: ir.Type) -> int:
    return 2 if ty == _F16 else max(1, ty.width // 8) if isinstance(ty, ir.IntType) else \
        (8 if ty == U.F64 else 4)


def _load_vec(b, base, index, lanes: int, elem: ir.Type):
    ptr = b.gep(base, [index], source_etype=elem)
    return b.load(ptr, typ=U.vec(elem, lanes), align=_bytes(elem))


def _store_vec(b, value, base, index, elem: ir.Type) -> None:
    b.store(value, b.gep(base, [index], source_etype=elem), align=_bytes(elem))


# a load whose lanes are `coeff` elements apart reads one wide masked vector and keeps
# every coeff-th element (a stride-2 pooling window, an NCHW conv's strided row) when
# coeff is at most this; wider strides load lane by lane
MAX_SHUFFLED_STRIDE = 4


def _masked_vec_load(b, base, index, lanes: int, coeff: int, elem: ir.Type, mask):
    """Elements base[index + i * coeff] for i < lanes (1 <= coeff <= MAX_SHUFFLED_STRIDE)
    as one vector; lanes whose `mask` bit (a <lanes x i1>, or None: all on) is off are
    not read (llvm.masked.load never touches a masked-off element, so a window over the
    padding or a buffer's end cannot fault) and hold undefined values."""
    wide = lanes * coeff
    if mask is None and coeff == 1:
        return _load_vec(b, base, index, lanes, elem)
    if mask is None:
        bits = ir.Constant(U.vec(U.I1, wide), [j % coeff == 0 for j in range(wide)])
    elif coeff == 1:
        bits = mask
    else:   # lane i's bit at position i * coeff, every other position off
        spread = b.shuffle_vector(mask, ir.Constant(mask.type, ir.Undefined), ir.Constant(
            U.vec(U.I32, wide), [j // coeff for j in range(wide)]))
        keep = ir.Constant(U.vec(U.I1, wide), [j % coeff == 0 for j in range(wide)])
        bits = b.and_(spread, keep)
    vt = U.vec(elem, wide)
    name = f"llvm.masked.load.{U._mangle(vt)}.p0"
    fn = b.module.globals.get(name)
    if fn is None:
        fn = ir.Function(b.module, ir.FunctionType(vt, [U.PTR, U.I32, bits.type, vt]), name=name)
    raw = b.call(fn, [b.gep(base, [index], source_etype=elem), ir.Constant(U.I32, _bytes(elem)),
                      bits, ir.Constant(vt, ir.Undefined)])
    if coeff == 1:
        return raw
    return b.shuffle_vector(raw, ir.Constant(vt, ir.Undefined), ir.Constant(
        U.vec(U.I32, lanes), [i * coeff for i in range(lanes)]))


MIN_LANES = 4


def _narrowed(lanes: int, extent: int) -> int:
    """Fewer lanes (not below MIN_LANES) for a vectorized loop shorter than a register
    (a 14-wide pooled row): half-width vectors instead of a scalar loop only."""
    while lanes > MIN_LANES and extent < lanes:
        lanes //= 2
    return lanes


# --- emitted values: scalar (uniform across lanes) or W-lane vectors -------------------------
@dataclass
class Val:
    value: ir.Value
    dtype: DType
    vector: bool


class Point:
    """Where expressions are evaluated: scalar loop variables, the vectorized variable's
    base, the lane count, and the Reduce results in scope."""

    def __init__(self, emitter: "KernelEmitter", scalars: dict, vvar: int | None, base,
                 lanes: int, reduced: dict):
        self.e, self.scalars, self.vvar, self.base, self.lanes = emitter, scalars, vvar, base, lanes
        self.reduced = reduced
        self.memo: dict[int, Val] = {}
        self.acc = 0            # which of a Reduce's accumulators this point adds into


# --- the emitter ---------------------------------------------------------------------------
class KernelEmitter:
    def __init__(self, kernel: K.Kernel, lanes: int | None = None):
        K.validate(kernel)
        self.k = kernel
        self.n_outer = len(kernel.outer)
        self.buffers = [b for b in kernel.inputs] + [b for b in kernel.outputs]
        self.buffer_index = {b.name: i for i, b in enumerate(self.buffers)}
        self.buffer_dtype = {b.name: b.dtype for b in self.buffers}
        for b in self.buffers:
            llvm_type(b.dtype)                      # refuse unsupported dtypes early
        self.mode = self._choose_mode()
        widest = max([b.dtype.itemsize for b in self.buffers] + [4])
        self.lanes = lanes or lanes_for(min(widest, 8))
        if lanes is None and self.mode == "outer":
            self.lanes = _narrowed(self.lanes, self.k.outer[-1])
        self.module = ir.Module(name=kernel.name)
        self.libm: dict[str, ir.Function] = {}
        self.stash = _stash_plan(kernel) if self.mode == "inner" else {}
        self.shift_max = _shift_only_maxima(kernel) if self.mode == "inner" else set()

    # -- mode and split ---------------------------------------------------------------------
    def _choose_mode(self) -> str:
        k = self.k
        if not k.inner:
            return "outer" if self.n_outer else "scalar"
        if self.n_outer == 0:
            return "inner"
        last_inner, last_outer = k.n_vars - 1, self.n_outer - 1
        loads = [e for s in k.stages for e in K._walk(s.value)
                 if isinstance(e, (K.Load, K.MaskedLoad))]
        inner_unit = sum(1 for ld in loads if ld.index.coeff(last_inner) == 1)
        outer_unit = sum(1 for ld in loads if ld.index.coeff(last_outer) == 1)
        if outer_unit > inner_unit:
            return "outer"
        # an inner loop shorter than a vector (a pooling window's 2 or 3 columns) never
        # runs its vector body: vectorize the outputs instead when every load reads them
        # at a short stride (both modes add each output's terms in the same order)
        outer_coeffs = [abs(ld.index.coeff(last_outer)) for ld in loads]
        if k.inner[-1] < lanes_for(4) and k.outer[-1] >= MIN_LANES and any(outer_coeffs) \
                and all(c <= MAX_SHUFFLED_STRIDE for c in outer_coeffs):
            return "outer"
        return "inner"

    @property
    def split_extent(self) -> int:
        return self.k.outer[0] if self.n_outer else 1

    @property
    def split_align(self) -> int:
        return self.lanes if self.mode == "outer" and self.n_outer == 1 else 1

    # -- building -----------------------------------------------------------------------------
    def build(self) -> ir.Module:
        fn, b = U.define(self.module, self.k.name, U.VOID,
                         [("begin", U.I64), ("end", U.I64), ("worker", U.I64), ("bufs", U.PTR)],
                         noalias_ptrs=False)
        self.b = b
        self.entry = b.block
        begin, end, _, bufs = fn.args
        self.ptrs = {}
        for name, i in self.buffer_index.items():
            slot = b.gep(bufs, [U.i64(i)], source_etype=U.PTR)
            self.ptrs[name] = b.load(slot, typ=U.PTR, name=f"p_{name}")
        if self.mode == "scalar":
            self._point_body({}, None, None, 1)
        elif self.mode == "inner":
            self._outer_loops(0, {}, begin, end, vectorize_last=False)
        else:
            self._outer_loops(0, {}, begin, end, vectorize_last=True)
        b.ret_void()
        return self.module

    def _outer_loops(self, d: int, scalars: dict, begin, end, vectorize_last: bool) -> None:
        """Nest loops over outer dims d..; the first is [begin, end), the rest full."""
        if d == self.n_outer:
            self._point_body(scalars, None, None, 1)
            return
        lo = begin if d == 0 else U.i64(0)
        hi = end if d == 0 else U.i64(self.k.outer[d])
        if d == self.n_outer - 1 and vectorize_last:
            self._vector_loop(lo, hi, lambda base, lanes: self._point_body(scalars, d, base, lanes),
                              narrower_tails=True)
            return
        with U.counted_loop(self.b, lo, hi, name=f"o{d}") as i:
            self._outer_loops(d + 1, {**scalars, d: i}, begin, end, vectorize_last)

    def _vector_loop(self, lo, hi, body, narrower_tails: bool = False, unroll: int = 1) -> None:
        """body(base, W) for full vectors, then body(i, 1) for the remainder. With
        `narrower_tails` (OUTER mode, where every output is computed on its own), the
        remainder first takes one vector of each narrower width down to 2 lanes: a
        pooled row of 14 is 8 + 4 + 2 lanes instead of 8 lanes and 6 scalars, one of 7
        is 4 + 2 lanes and 1 scalar (max_pool2d 2x2 on 64x16x28x28, one thread: 290 ->
        134 us; on 64x32x14x14: 174 -> 126 us). With `unroll` > 1 the full vectors go
        `unroll` at a time first, body(base, W, k) for k < unroll (a max reduction's k-th
        accumulator), then one at a time with k = 0."""
        b = self.b
        count = b.sub(hi, lo)
        full = b.add(lo, b.mul(b.sdiv(count, U.i64(self.lanes)), U.i64(self.lanes)))
        if self.lanes > 1 and unroll > 1:
            step = self.lanes * unroll
            group_end = b.add(lo, b.mul(b.sdiv(count, U.i64(step)), U.i64(step)))
            with U.counted_loop(b, lo, group_end, step=step, name="vu") as i:
                for k in range(unroll):
                    body(b.add(i, U.i64(k * self.lanes)), self.lanes, k)
            lo = group_end
        if self.lanes > 1:
            with U.counted_loop(b, lo, full, step=self.lanes, name="v") as i:
                body(i, self.lanes)
        width = self.lanes // 2
        while narrower_tails and width >= 2:
            # at most one vector of this width: what is left is below twice it
            end = b.add(full, b.mul(b.sdiv(b.sub(hi, full), U.i64(width)), U.i64(width)))
            with U.counted_loop(b, full, end, step=width, name=f"v{width}") as i:
                body(i, width)
            full, width = end, width // 2
        with U.counted_loop(b, full, hi, name="r") as i:
            body(i, 1)

    # -- one outer point (or W outer points in OUTER mode) ------------------------------------
    def _point_body(self, scalars: dict, vvar, base, lanes: int) -> None:
        reduced: dict[str, Val] = {}
        point = Point(self, scalars, vvar, base, lanes, reduced)
        for stage in self.k.stages:
            if isinstance(stage, K.Reduce):
                reduced[stage.name] = self._reduce(stage, point)
                point.memo.clear()      # later expressions may read the new result
            elif stage.over_inner and id(stage) in self.stash.get("loads", {}):
                self._inner_loops(point, lambda p, s=stage: self._store_stashed(s, p))
            elif stage.over_inner:
                self._inner_loops(point, lambda p, s=stage: self._store(s, p))
            else:
                self._store(stage, point)

    def _inner_loops(self, outer: Point, body, carried=None, unroll: int = 1) -> None:
        """Loop over the inner space from an outer point; body(point) per inner point
        (`unroll`: full vectors of the last inner variable `unroll` at a time, each
        point's `acc` saying which of them it is)."""
        n_inner = len(self.k.inner)
        vectorize = self.mode == "inner"

        def vector_point(scalars, var, base, lanes, acc=0):
            point = Point(self, scalars, var, base, lanes, outer.reduced)
            point.acc = acc
            body(point)

        def nest(j: int, scalars: dict):
            var = self.n_outer + j
            size = U.i64(self.k.inner[j])
            if j == n_inner - 1 and vectorize:
                self._vector_loop(U.i64(0), size, lambda base, lanes, acc=0: vector_point(
                    scalars, var, base, lanes, acc), unroll=unroll)
                return
            with U.counted_loop(self.b, U.i64(0), size, name=f"i{j}") as i:
                inner_scalars = {**scalars, var: i}
                if j == n_inner - 1:
                    body(Point(self, inner_scalars, outer.vvar, outer.base, outer.lanes,
                               outer.reduced))
                else:
                    nest(j + 1, inner_scalars)
        nest(0, dict(outer.scalars))

    # -- stages -------------------------------------------------------------------------------
    def _store(self, stage: K.Store, point: Point) -> None:
        dtype = self.buffer_dtype[stage.buffer]
        val = self.cast(self.expr(stage.value, point), dtype, point)
        coeff = stage.index.coeff(point.vvar) if point.vvar is not None else 0
        offset = self.offset(stage.index, point)
        mem = memory_type(dtype)
        ptr = self.ptrs[stage.buffer]
        if point.lanes == 1 or not val.vector and coeff == 0:
            self.b.store(self.to_memory(self.scalar_of(val), dtype),
                         U.elem_ptr(self.b, ptr, offset, mem))
            return
        vec = self.to_memory(self.vector_of(val, point.lanes), dtype)
        if coeff == 1:
            _store_vec(self.b, vec, ptr, offset, mem)
        else:
            for lane in range(point.lanes):
                item = self.b.extract_element(vec, ir.Constant(U.I32, lane))
                at = self.b.add(offset, U.i64(lane * coeff))
                self.b.store(item, U.elem_ptr(self.b, ptr, at, mem))

    def _reduce(self, stage: K.Reduce, outer: Point) -> Val:
        """Accumulate over the inner space; the result is per outer point (a vector of
        W outer points in OUTER mode).

        In INNER mode a max/min (and an integer sum/product) keeps EXACT_ACCUMULATORS
        vector accumulators, combined at the end: one accumulator makes every vector of
        the row wait for the one before (a float `maximum` is ~6 dependent instructions
        on x86), several let the row's vectors go in parallel. These combines are exact
        and order-free, so the result is the same bits; a float sum keeps one
        accumulator (its order is its result)."""
        b = self.b
        acc_t = llvm_type(stage.acc_dtype)
        width = self.lanes if self.mode == "inner" else outer.lanes
        vt = U.vec(acc_t, width) if width > 1 else acc_t
        identity = self._identity(stage.combine, stage.acc_dtype)
        n_acc = EXACT_ACCUMULATORS if self.mode == "inner" and width > 1 and \
            _order_free(stage.combine, stage.acc_dtype) else 1
        # a max only subtracted before exp (softmax's shift): x86's one-instruction max
        combine = "shift_max" if stage.name in self.shift_max else stage.combine
        with b.goto_block(self.entry):
            slots_v = [b.alloca(vt, name=f"{stage.name}.acc{k}") for k in range(n_acc)]
            slot_s = b.alloca(acc_t, name=f"{stage.name}.rem")
        for slot in slots_v:
            b.store(U.const_like(vt, identity), slot)
        b.store(ir.Constant(acc_t, identity), slot_s)
        stash = self.stash.get("stores", {}).get(id(stage))
        # the plain max skips NaNs: whether one was seen is kept beside it (an OR of
        # masks, off the max's dependency chain), and makes the result NaN at the end
        nans = self._nan_slots(stage, n_acc, width) if combine == "shift_max" else None

        def accumulate(point: Point):
            raw = self.expr(stage.value, point)
            if stash is not None:       # keep the value for the row's store (see _stash_plan)
                self._store(stash, point)
            val = self.cast(raw, stage.acc_dtype, point)
            vector_slot = self.mode == "outer" or point.lanes > 1
            slot, ty = (slots_v[point.acc], vt) if vector_slot else (slot_s, acc_t)
            old = b.load(slot, typ=ty)
            value = self.vector_of(val, width) if width > 1 and vector_slot else \
                self.scalar_of(val)
            new = self.combine(combine, old, value, stage.acc_dtype)
            b.store(new, slot)
            if nans is not None:
                seen = nans[0][point.acc] if vector_slot and width > 1 else nans[1]
                b.store(b.or_(b.load(seen, typ=seen.allocated_type),
                              b.fcmp_unordered("uno", value, value)), seen)
        self._inner_loops(outer, accumulate, unroll=n_acc)
        accs = [b.load(slot, typ=vt) for slot in slots_v]
        while len(accs) > 1:        # pairwise: (a0 . a1) . (a2 . a3)
            accs = [self.combine(combine, accs[i], accs[i + 1], stage.acc_dtype)
                    for i in range(0, len(accs), 2)]
        vector_acc = accs[0]
        scalar_acc = b.load(slot_s, typ=acc_t)
        if self.mode == "inner":
            total = self.combine(combine, self.horizontal(combine, vector_acc, width,
                                                          stage.acc_dtype),
                                 scalar_acc, stage.acc_dtype) if width > 1 else \
                self.combine(combine, vector_acc, scalar_acc, stage.acc_dtype)
            if nans is not None:
                total = b.select(self._any_nan(nans, width), ir.Constant(acc_t, math.nan),
                                 total)
            return Val(total, stage.acc_dtype, False)
        return Val(vector_acc, stage.acc_dtype, width > 1)

    def _nan_slots(self, stage: K.Reduce, n_acc: int, width: int) -> tuple:
        """([<width x i1> per accumulator], i1 for the remainder), all false."""
        b = self.b
        mask_t = U.vec(U.I1, width) if width > 1 else U.I1
        with b.goto_block(self.entry):
            vectors = [b.alloca(mask_t, name=f"{stage.name}.nan{k}") for k in range(n_acc)]
            scalar = b.alloca(U.I1, name=f"{stage.name}.nanrem")
        for slot in vectors:
            b.store(ir.Constant(mask_t, None), slot)
        b.store(ir.Constant(U.I1, 0), scalar)
        return vectors, scalar

    def _any_nan(self, nans: tuple, width: int):
        b = self.b
        vectors, scalar = nans
        found = b.load(scalar, typ=U.I1)
        if width > 1:
            mask_t = U.vec(U.I1, width)
            merged = b.load(vectors[0], typ=mask_t)
            for slot in vectors[1:]:
                merged = b.or_(merged, b.load(slot, typ=mask_t))
            name = f"llvm.vector.reduce.or.v{width}i1"
            fn = self.module.globals.get(name) or ir.Function(
                self.module, ir.FunctionType(U.I1, [mask_t]), name=name)
            found = b.or_(found, b.call(fn, [merged]))
        return found

    def _store_stashed(self, stage: K.Store, point: Point) -> None:
        """A row store whose expression contains a value an earlier Reduce stored in the
        output (softmax's exp(x - max)): read it back instead of computing it again."""
        load, targets = self.stash["loads"][id(stage)]
        kept = self.load(load, point)
        for target in targets:
            point.memo[target] = kept
        self._store(stage, point)

    # -- expressions --------------------------------------------------------------------------
    def expr(self, e, point: Point) -> Val:
        hit = point.memo.get(id(e))
        if hit is None:
            hit = point.memo[id(e)] = self._expr(e, point)
        return hit

    def _expr(self, e, point: Point) -> Val:
        if isinstance(e, K.Load):
            return self.load(e, point)
        if isinstance(e, K.MaskedLoad):
            return self.masked_load(e, point)
        if isinstance(e, K.Const):
            return Val(self.constant(e.value, e.dtype), e.dtype, False)
        if isinstance(e, K.ReduceRef):
            return point.reduced[e.name]
        if isinstance(e, K.IndexValue):
            return self.index_value(e, point)
        if isinstance(e, K.Cast):
            return self.cast(self.expr(e.value, point), e.dtype, point)
        args = [self.expr(a, point) for a in e.args]
        if e.op == "div" and _is_row_constant(e.args[1]) and args[0].vector and \
                not args[1].vector and _is_float(e.dtype):
            # softmax's x / sum: one reciprocal per row, a multiply per element (as ATen)
            one = self.constant(1.0, args[1].dtype)
            inverse = Val(self.b.fdiv(one, args[1].value), args[1].dtype, False)
            return Val(self.scalar_op("mul", [args[0], Val(self.vector_of(inverse, point.lanes),
                                                            inverse.dtype, True)], e.dtype),
                       e.dtype, True)
        if any(a.vector for a in args):
            args = [Val(self.vector_of(a, point.lanes), a.dtype, True) for a in args]
        vector = any(a.vector for a in args)
        return Val(self.scalar_op(e.op, args, e.dtype), e.dtype, vector)

    def offset(self, index: K.Affine, point: Point):
        b = self.b
        total = U.i64(index.offset)
        for v, c in enumerate(index.coeffs):
            if not c:
                continue
            value = point.base if v == point.vvar else point.scalars.get(v)
            if value is None:
                raise LoweringError(f"{self.k.name}: index {index} uses variable v{v} "
                                    "outside its loop")
            total = b.add(total, value if c == 1 else b.mul(value, U.i64(c)))
        return total

    def load(self, e: K.Load, point: Point) -> Val:
        b = self.b
        coeff = e.index.coeff(point.vvar) if point.vvar is not None else 0
        offset = self.offset(e.index, point)
        mem = memory_type(e.dtype)
        ptr = self.ptrs[e.buffer]
        if point.lanes == 1 or coeff == 0:
            raw = b.load(U.elem_ptr(b, ptr, offset, mem), typ=mem)
            return Val(self.from_memory(raw, e.dtype), e.dtype, False)
        if 1 <= coeff <= MAX_SHUFFLED_STRIDE:
            raw = _masked_vec_load(b, ptr, offset, point.lanes, coeff, mem, None)
        else:
            raw = ir.Constant(U.vec(mem, point.lanes), ir.Undefined)
            for lane in range(point.lanes):
                at = b.add(offset, U.i64(lane * coeff))
                item = b.load(U.elem_ptr(b, ptr, at, mem), typ=mem)
                raw = b.insert_element(raw, item, ir.Constant(U.I32, lane))
        return Val(self.from_memory(raw, e.dtype), e.dtype, True)

    def masked_load(self, e: K.MaskedLoad, point: Point) -> Val:
        """Lanes whose mask is off read element 0 (always valid) and take `other`."""
        b = self.b
        mask = self.expr(e.mask, point)
        offset = self.offset(e.index, point)
        coeff = e.index.coeff(point.vvar) if point.vvar is not None else 0
        mem = memory_type(e.dtype)
        ptr = self.ptrs[e.buffer]
        other = self.constant(e.other, e.dtype)
        if not mask.vector and (point.lanes == 1 or coeff == 0):
            safe = b.select(mask.value, offset, U.i64(0))
            raw = b.load(b.gep(ptr, [safe], source_etype=mem), typ=mem)
            return Val(b.select(mask.value, self.from_memory(raw, e.dtype), other), e.dtype, False)
        lanes = point.lanes
        mask_vec = self.vector_of(mask, lanes)
        if 1 <= coeff <= MAX_SHUFFLED_STRIDE:
            raw = _masked_vec_load(b, ptr, offset, lanes, coeff, mem, mask_vec)
            value = self.from_memory(raw, e.dtype)
            return Val(b.select(mask_vec, value, U.splat(b, other, lanes)), e.dtype, True)
        steps = ir.Constant(U.vec(U.I64, lanes), [i * coeff for i in range(lanes)])
        offsets = b.add(U.splat(b, offset, lanes), steps)
        safe = b.select(mask_vec, offsets, ir.Constant(U.vec(U.I64, lanes), [0] * lanes))
        raw = ir.Constant(U.vec(mem, lanes), ir.Undefined)
        for lane in range(lanes):
            idx = ir.Constant(U.I32, lane)
            item = b.load(b.gep(ptr, [b.extract_element(safe, idx)], source_etype=mem), typ=mem)
            raw = b.insert_element(raw, item, idx)
        value = self.from_memory(raw, e.dtype)
        return Val(b.select(mask_vec, value, U.splat(b, other, lanes)), e.dtype, True)

    def index_value(self, e: K.IndexValue, point: Point) -> Val:
        offset = self.offset(e.index, point)
        coeff = e.index.coeff(point.vvar) if point.vvar is not None else 0
        ty = llvm_type(e.dtype)
        if point.lanes == 1 or coeff == 0:
            return Val(self._int_resize(offset, ty), e.dtype, False)
        lanes = ir.Constant(U.vec(U.I64, point.lanes), [i * coeff for i in range(point.lanes)])
        vec = self.b.add(U.splat(self.b, offset, point.lanes), lanes)
        return Val(self._int_resize(vec, U.vec(ty, point.lanes)), e.dtype, True)

    def _int_resize(self, value, ty):
        src = value.type.element if isinstance(value.type, ir.VectorType) else value.type
        dst = ty.element if isinstance(ty, ir.VectorType) else ty
        if src.width == dst.width:
            return value
        return self.b.trunc(value, ty) if src.width > dst.width else self.b.sext(value, ty)

    # -- memory <-> registers -----------------------------------------------------------------
    def from_memory(self, raw, dtype: DType):
        b = self.b
        if dtype.name == "bool":
            return b.icmp_unsigned("!=", raw, U.const_like(raw.type, 0))
        if dtype.name == "float16":
            ty = U.vec(U.F32, raw.type.count) if isinstance(raw.type, ir.VectorType) else U.F32
            return b.fpext(raw, ty)
        return raw

    def to_memory(self, value, dtype: DType):
        b = self.b
        n = value.type.count if isinstance(value.type, ir.VectorType) else None
        if dtype.name == "bool":
            return b.zext(value, U.vec(ir.IntType(8), n) if n else ir.IntType(8))
        if dtype.name == "float16":
            return b.fptrunc(value, U.vec(_F16, n) if n else _F16)
        return value

    def scalar_of(self, v: Val):
        if v.vector:
            raise LoweringError(f"{self.k.name}: a vector value reached a scalar store")
        return v.value

    def vector_of(self, v: Val, lanes: int):
        return v.value if v.vector else U.splat(self.b, v.value, lanes)

    def constant(self, value, dtype: DType):
        ty = llvm_type(dtype)
        if dtype.name == "bool":
            return ir.Constant(ty, int(bool(value)))
        if _is_float(dtype):
            return ir.Constant(ty, float(value))
        return ir.Constant(ty, int(value))

    # -- casts ----------------------------------------------------------------------------------
    def cast(self, v: Val, dtype: DType, point: Point) -> Val:
        if v.dtype == dtype:
            return v
        b = self.b
        src, dst = v.dtype, dtype
        ty = llvm_type(dst)
        if v.vector:
            ty = U.vec(ty, v.value.type.count)
        x = v.value
        if dst.name == "bool":
            zero = U.const_like(x.type, 0.0 if _is_float(src) else 0)
            out = b.fcmp_unordered("!=", x, zero) if _is_float(src) else \
                b.icmp_unsigned("!=", x, zero)
        elif _is_float(src) and _is_float(dst):
            sw, dw = _fbits(src), _fbits(dst)
            out = x if sw == dw else (b.fpext(x, ty) if dw > sw else b.fptrunc(x, ty))
        elif _is_float(dst):
            out = b.uitofp(x, ty) if _unsigned(src) else b.sitofp(x, ty)
        elif _is_float(src):
            out = b.fptoui(x, ty) if _unsigned(dst) else b.fptosi(x, ty)
        else:
            sw, dw = x.type.element.width if v.vector else x.type.width, \
                (ty.element if v.vector else ty).width
            if sw == dw:
                out = x
            elif dw < sw:
                out = b.trunc(x, ty)
            else:
                out = b.zext(x, ty) if _unsigned(src) else b.sext(x, ty)
        return Val(out, dtype, v.vector)

    # -- scalar ops -----------------------------------------------------------------------------
    def scalar_op(self, op: str, args: list[Val], dtype: DType):
        b = self.b
        xs = [a.value for a in args]
        in_dtype = args[0].dtype if args else dtype
        if op == "where":
            return b.select(xs[0], xs[1], xs[2])
        if _is_float(in_dtype) or op in ("isnan", "isinf") and _is_float(in_dtype):
            return self._float_op(op, xs, in_dtype)
        return self._int_op(op, xs, in_dtype)

    def _float_op(self, op: str, xs, dtype: DType):
        b = self.b
        ty = xs[0].type
        binary = {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}
        if op in binary:
            return binary[op](xs[0], xs[1])
        compares = {"eq": "==", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
        if op in compares:
            return b.fcmp_ordered(compares[op], xs[0], xs[1])
        if op == "ne":
            return b.fcmp_unordered("!=", xs[0], xs[1])
        one = U.const_like(ty, 1.0)
        fast = _vecmath(op, dtype)
        if fast is not None and len(xs) == 1:
            return fast(b, xs[0])
        simple = {
            "neg": lambda x: b.fneg(x),
            "abs": lambda x: U.intrinsic(b, "fabs", ty, x),
            "square": lambda x: b.fmul(x, x),
            "reciprocal": lambda x: b.fdiv(one, x),
            "sqrt": lambda x: U.intrinsic(b, "sqrt", ty, x),
            "rsqrt": lambda x: b.fdiv(one, U.intrinsic(b, "sqrt", ty, x)),
            "floor": lambda x: U.intrinsic(b, "floor", ty, x),
            "ceil": lambda x: U.intrinsic(b, "ceil", ty, x),
            "trunc": lambda x: U.intrinsic(b, "trunc", ty, x),
            "round": lambda x: U.intrinsic(b, "roundeven", ty, x),
            "isnan": lambda x: b.fcmp_unordered("uno", x, x),
            "isinf": lambda x: b.fcmp_ordered("==", U.intrinsic(b, "fabs", ty, x),
                                              U.const_like(ty, math.inf)),
            "sign": lambda x: b.select(b.fcmp_ordered(">", x, U.const_like(ty, 0.0)), one,
                                       b.select(b.fcmp_ordered("<", x, U.const_like(ty, 0.0)),
                                                U.const_like(ty, -1.0), U.const_like(ty, 0.0))),
            "sigmoid": lambda x: b.fdiv(one, b.fadd(one, self._math("exp", b.fneg(x), dtype=dtype))),
            "logical_not": lambda x: b.fcmp_ordered("==", x, U.const_like(ty, 0.0)),
        }
        if op in simple:
            return simple[op](xs[0])
        if op in ("maximum", "minimum"):
            return U.intrinsic(b, op, ty, xs[0], xs[1])
        if op == "pow":
            return U.intrinsic(b, "pow", ty, xs[0], xs[1])
        if op in ("logical_and", "logical_or", "logical_xor"):
            zero = U.const_like(ty, 0.0)
            l, r = b.fcmp_unordered("!=", xs[0], zero), b.fcmp_unordered("!=", xs[1], zero)
            return {"logical_and": b.and_, "logical_or": b.or_, "logical_xor": b.xor}[op](l, r)
        if op in ("floor_divide", "remainder", "fmod"):
            q = b.fdiv(xs[0], xs[1])
            if op == "floor_divide":
                return U.intrinsic(b, "floor", ty, q)
            base = U.intrinsic(b, "floor" if op == "remainder" else "trunc", ty, q)
            return b.fsub(xs[0], b.fmul(base, xs[1]))
        return self._math(op, *xs, dtype=dtype)

    def _math(self, op: str, *xs, dtype: DType):
        """Transcendentals: vecmath polynomials, else an LLVM intrinsic, else libm per lane."""
        b = self.b
        ty = xs[0].type
        fast = _vecmath(op, dtype)
        if fast is not None:
            return fast(b, *xs)
        if op in ("exp", "exp2", "log", "log2", "sin", "cos"):
            return U.intrinsic(b, op, ty, *xs)
        return self._libm(op, xs, dtype)

    def _libm(self, op: str, xs, dtype: DType):
        b = self.b
        name = {"atan2": "atan2", "erf": "erf", "tanh": "tanh", "expm1": "expm1",
                "log1p": "log1p", "tan": "tan", "atan": "atan", "asin": "asin", "acos": "acos",
                "sinh": "sinh", "cosh": "cosh"}.get(op)
        if name is None:
            raise LoweringError(f"{self.k.name}: no LLVM lowering for scalar op {op!r}")
        scalar_t = U.F64 if dtype.name == "float64" else U.F32
        name = name if scalar_t is U.F64 else name + "f"
        fn = self.libm.get(name)
        if fn is None:
            fn = self.libm[name] = ir.Function(
                self.module, ir.FunctionType(scalar_t, [scalar_t] * len(xs)), name=name)
        ty = xs[0].type
        if not isinstance(ty, ir.VectorType):
            return b.call(fn, list(xs))
        out = ir.Constant(ty, ir.Undefined)
        for lane in range(ty.count):
            idx = ir.Constant(U.I32, lane)
            out = b.insert_element(out, b.call(fn, [b.extract_element(x, idx) for x in xs]), idx)
        return out

    def _int_op(self, op: str, xs, dtype: DType):
        b = self.b
        signed = not _unsigned(dtype)
        table = {"add": b.add, "sub": b.sub, "mul": b.mul, "bitwise_and": b.and_,
                 "bitwise_or": b.or_, "bitwise_xor": b.xor,
                 "logical_and": b.and_, "logical_or": b.or_, "logical_xor": b.xor}
        if op in table:
            x, y = xs
            if op.startswith("logical") and x.type != U.I1 and \
                    getattr(x.type, "element", None) != U.I1:
                zero = U.const_like(x.type, 0)
                x, y = b.icmp_unsigned("!=", x, zero), b.icmp_unsigned("!=", y, zero)
            return table[op](x, y)
        compares = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
        if op in compares:
            cmp = b.icmp_signed if signed else b.icmp_unsigned
            return cmp(compares[op], xs[0], xs[1])
        ty = xs[0].type
        if op == "neg":
            return b.neg(xs[0])
        if op == "abs":
            return b.select(b.icmp_signed("<", xs[0], U.const_like(ty, 0)), b.neg(xs[0]), xs[0])
        if op == "square":
            return b.mul(xs[0], xs[0])
        if op in ("bitwise_not", "logical_not"):
            if op == "logical_not":
                return b.icmp_unsigned("==", xs[0], U.const_like(ty, 0))
            return b.not_(xs[0])
        if op in ("maximum", "minimum"):
            name = ("s" if signed else "u") + ("max" if op == "maximum" else "min")
            return U.intrinsic(b, name, ty, xs[0], xs[1])
        if op in ("floor_divide", "remainder", "fmod"):
            return self._int_division(op, xs[0], xs[1], signed)
        if op == "sign":
            zero = U.const_like(ty, 0)
            pos = b.zext(b.icmp_signed(">", xs[0], zero), ty)
            neg = b.zext(b.icmp_signed("<", xs[0], zero), ty)
            return b.sub(pos, neg)
        if op in ("isnan", "isinf"):
            return b.icmp_unsigned("!=", xs[0], xs[0])      # never true for integers
        raise LoweringError(f"{self.k.name}: no integer lowering for scalar op {op!r}")

    def _int_division(self, op, x, y, signed: bool):
        b = self.b
        if not signed:
            return b.udiv(x, y) if op == "floor_divide" else b.urem(x, y)
        q, r = b.sdiv(x, y), b.srem(x, y)
        if op == "fmod":
            return r
        zero = U.const_like(x.type, 0)
        # floor semantics: adjust when the remainder is nonzero and the signs differ
        adjust = b.and_(b.icmp_signed("!=", r, zero),
                        b.icmp_signed("!=", b.icmp_signed("<", r, zero),
                                      b.icmp_signed("<", y, zero)))
        if op == "floor_divide":
            return b.sub(q, b.zext(adjust, x.type))
        return b.select(adjust, b.add(r, y), r)

    # -- reductions -----------------------------------------------------------------------------
    def _identity(self, combine: str, dtype: DType):
        if combine == "sum":
            return 0.0 if _is_float(dtype) else 0
        if combine == "prod":
            return 1.0 if _is_float(dtype) else 1
        if _is_float(dtype):
            return -math.inf if combine == "max" else math.inf
        info = np.iinfo(dtype.np_dtype) if dtype.name != "bool" else None
        if info is None:
            return 0 if combine == "max" else 1
        return int(info.min) if combine == "max" else int(info.max)

    def combine(self, combine: str, x, y, dtype: DType):
        b = self.b
        if combine == "shift_max":      # y where y > x, else x: a NaN y is skipped
            return b.select(b.fcmp_ordered(">", y, x), y, x)
        if _is_float(dtype):
            if combine == "sum":
                return b.fadd(x, y)
            if combine == "prod":
                return b.fmul(x, y)
            return U.intrinsic(b, "maximum" if combine == "max" else "minimum", x.type, x, y)
        if combine == "sum":
            return b.add(x, y)
        if combine == "prod":
            return b.mul(x, y)
        signed = not _unsigned(dtype)
        name = ("s" if signed else "u") + ("max" if combine == "max" else "min")
        return U.intrinsic(b, name, x.type, x, y)

    def horizontal(self, combine: str, vec, lanes: int, dtype: DType):
        """Pairwise reduction of a vector's lanes (log2(W) steps)."""
        b = self.b
        while lanes > 1:
            half = lanes // 2
            lo = b.shuffle_vector(vec, vec, ir.Constant(U.vec(U.I32, half), list(range(half))))
            hi = b.shuffle_vector(vec, vec, ir.Constant(U.vec(U.I32, half),
                                                        list(range(half, lanes))))
            vec = self.combine(combine, lo, hi, dtype)
            lanes = half
        return b.extract_element(vec, ir.Constant(U.I32, 0))


# vector accumulators of an INNER-mode max/min (a power of two: combined pairwise)
EXACT_ACCUMULATORS = 4


def _order_free(combine: str, dtype: DType) -> bool:
    """Whether a reduction's result is the same bits in any order: max/min always (a
    float `maximum` propagates NaN and orders -0 < +0 whatever comes first), an
    integer sum or product (wrapping arithmetic is associative)."""
    return combine in ("max", "min") or not _is_float(dtype)


def _shift_only_maxima(kernel: K.Kernel) -> set:
    """Names of float max Reduces whose result is only ever subtracted from something
    whose difference only feeds exp (softmax's exp(x - max)). Such a max may pick either
    zero when +0 and -0 tie: a max of +0 or -0 shifts every x by zero (x - 0 is x, and
    exp(+0) = exp(-0) = 1), so every result is the same. So it runs as x86's
    one-instruction max (select(y > x, y, x)) instead of IEEE `maximum` (six dependent
    instructions), with NaNs tracked beside it (a row with a NaN has a NaN max, as
    `maximum` gives)."""
    parents: dict = {}
    nodes: dict = {}
    seen: set = set()

    def visit(e):
        if id(e) in seen:
            return
        seen.add(id(e))
        children = e.args if isinstance(e, K.Call) else (e.value,) if isinstance(
            e, K.Cast) else (e.mask,) if isinstance(e, K.MaskedLoad) else ()
        for j, child in enumerate(children):
            parents.setdefault(id(child), []).append((e, j))
            nodes[id(child)] = child
            visit(child)
    roots = {id(stage.value) for stage in kernel.stages}
    for stage in kernel.stages:
        visit(stage.value)

    def only_into_exp(e) -> bool:
        return id(e) not in roots and all(isinstance(p, K.Call) and p.op == "exp"
                                          for p, _ in parents.get(id(e), []))
    found = set()
    for stage in kernel.stages:
        if not isinstance(stage, K.Reduce) or stage.combine != "max" or \
                not _is_float(stage.acc_dtype):
            continue
        refs = [n for n in nodes.values() if isinstance(n, K.ReduceRef) and n.name == stage.name]
        if refs and all(id(r) not in roots and all(
                isinstance(p, K.Call) and p.op == "sub" and j == 1 and only_into_exp(p)
                for p, j in parents[id(r)]) for r in refs):
            found.add(stage.name)
    return found


def _stash_plan(kernel: K.Kernel) -> dict:
    """Row stores that can reuse a value an earlier Reduce computed (softmax: the sum
    stage computes exp(x - max) per element and the store divides the same exp by the
    sum; computing the exp twice was half of the kernel's time).

    The Reduce stage then also writes its value into the store's output (at the
    store's own index), and the store reads it back. Only where that is safe and
    exact: the output's register and memory types are the value's (no rounding on
    the way), the store's index gives every inner point its own element, nothing else
    is stored to that buffer, and the rest of the store's expression loads nothing (so
    an output that shares memory with an input is not read after being overwritten).
    Returns {"stores": {id(reduce): Store}, "loads": {id(store): (Load, [ids])}}.
    """
    stores, loads = {}, {}
    written = [s.buffer for s in kernel.stages if isinstance(s, K.Store)]
    dtypes = {b.name: b.dtype for b in kernel.outputs}
    for j, stage in enumerate(kernel.stages):
        if not isinstance(stage, K.Store) or not stage.over_inner or \
                written.count(stage.buffer) != 1 or not _distinct_inner(kernel, stage.index):
            continue
        dtype = dtypes[stage.buffer]
        if dtype.name in ("float16", "bfloat16") or llvm_type(dtype) != memory_type(dtype):
            continue
        for r in reversed(kernel.stages[:j]):
            if not isinstance(r, K.Reduce) or id(r) in stores or \
                    isinstance(r.value, (K.Load, K.MaskedLoad, K.Const, K.ReduceRef)) or \
                    getattr(r.value, "dtype", None) != dtype:
                continue
            targets = [id(e) for e in K._walk(stage.value) if e == r.value]
            if targets and not _loads_outside(stage.value, r.value):
                stores[id(r)] = K.Store(stage.buffer, stage.index, r.value, True)
                loads[id(stage)] = (K.Load(stage.buffer, stage.index, dtype), targets)
                break
    return {"stores": stores, "loads": loads} if stores else {}


def _distinct_inner(kernel: K.Kernel, index: K.Affine) -> bool:
    """Whether `index` maps distinct inner points (at one outer point) to distinct
    elements: unit stride along the last inner variable, and each earlier inner
    variable's stride past everything the later ones reach."""
    first = kernel.n_vars - len(kernel.inner)
    reach = 0
    for v in reversed(range(first, kernel.n_vars)):
        c = index.coeff(v)
        if (v == kernel.n_vars - 1 and c != 1) or c <= reach:
            return False
        reach += c * (kernel.inner[v - first] - 1)
    return True


def _loads_outside(expr, skip) -> bool:
    """Whether `expr` reads memory anywhere but inside subexpressions equal to `skip`."""
    if expr == skip:
        return False
    if isinstance(expr, (K.Load, K.MaskedLoad)):
        return True
    if isinstance(expr, K.Call):
        return any(_loads_outside(a, skip) for a in expr.args)
    if isinstance(expr, K.Cast):
        return _loads_outside(expr.value, skip)
    return False


def _is_row_constant(e) -> bool:
    """A reduction's result (possibly cast): the same for every element of a row."""
    while isinstance(e, K.Cast):
        e = e.value
    return isinstance(e, K.ReduceRef)


def _fbits(dtype: DType) -> int:
    return {"float16": 32, "bfloat16": 32, "float32": 32, "float64": 64}[dtype.name]


def _vecmath(op: str, dtype: DType):
    """The vecmath emitter for `op` (float32 only: its polynomials are float32 fits)."""
    from .vecmath import EMITTERS
    if dtype.name not in ("float32", "float16"):
        return None
    return EMITTERS.get(op)


# --- compiled kernels ------------------------------------------------------------------------
_KERNEL_FN = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                              ctypes.c_void_p)

# below this many element-steps a kernel runs on the calling thread alone
PARALLEL_THRESHOLD = 1 << 16


@dataclass
class CompiledKernel:
    kernel: K.Kernel
    fn: object
    split_extent: int
    split_align: int
    work: int
    library: object = None
    _ptrs: object = field(default=None, repr=False)

    def __call__(self, buffers: list[np.ndarray], pool=None) -> None:
        """Run over `buffers` (inputs then outputs, flat views of the kernel's buffers)."""
        ptrs = (ctypes.c_void_p * len(buffers))(*[a.ctypes.data for a in buffers])
        address = ctypes.addressof(ptrs)
        if self.work < PARALLEL_THRESHOLD or self.split_extent < 2:
            self.fn(0, self.split_extent, 0, address)
            return
        from ...runtime.threads import default_pool
        (pool or default_pool()).parallel_for(self.fn, self.split_extent, address,
                                              align=self.split_align)


def compile_kernel(kernel: K.Kernel, lanes: int | None = None) -> CompiledKernel:
    emitter = KernelEmitter(kernel, lanes)
    module = emitter.build()
    library = compile_ir(module)
    fn = library.function(kernel.name, None, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                          ctypes.c_void_p)
    work = math.prod(kernel.outer) * max(1, math.prod(kernel.inner)) * max(1, len(kernel.stages))
    return CompiledKernel(kernel, fn, emitter.split_extent, emitter.split_align, work, library)
