"""Gather and scatter through index tensors, every index bounds-checked.

One kernel shape serves gather, index_select, embedding, advanced indexing (`x[i, j]`),
scatter / scatter_add / scatter_reduce, index_add and index_put: a loop nest over an
*iteration space* of n dims, position p, with k index tensors

    gather:   dst[p . dst_st]                          = data[p . data_st + T(p)]
    scatter:  dst[p . dst_st + T(p)]  (reduce)=          data[p . data_st]   (or a constant)
    T(p) = sum_k wrap_k(idx_k[p . idx_st_k]) * target_st_k

where wrap_k checks 0 <= i < size_k (after adding size_k to a negative i where the op
counts negative indices from the end, as indexing and index_put do; gather, scatter,
index_select, index_add and embedding refuse negatives, as PyTorch's do). An index out
of range stops the kernel: it writes (index value, size, k) to its error record and
returns 1, which the plan's Python step, the in-process entry point and an artifact's
runtime turn into PyTorch's IndexError naming the op, the value and the size.

    i32 <name>(i64 begin, i64 end, i64 worker, ptr buffers, ptr geometry, ptr err)
    buffers  = [dst, data, idx_0, ..., idx_{k-1}] (+ int64 counts laid out as dst: mean)
    geometry = shape[n], dst_st[n], data_st[n], then per index: idx_st[n], target_st, size
    err      = [claimed, index value, size, which index] (claimed 0 before the call)

[begin, end) is a range of the iteration's first dim: a gather (each output element
written once) splits across threads there (`parallel`); a scatter runs whole, on one
thread. The first chunk to fail claims the record (compare-and-swap on `claimed`), so
the record is one index's, whichever chunk found it.

Strides are elements and arrive at run time, so one compiled kernel serves every shape
of a (mode, reduce, dtypes, n, k) kind. The nest runs serially in row-major order of p:
an element that several positions scatter into receives them in increasing order of
the scattered dim, which is the order PyTorch's CPU kernels add in (so float sums match
bit for bit). When no index moves along the last dim and the last dim is unit-stride in
dst and data (rows: embedding, index_select on dim 0, index_add, a GNN's scatter_add of
expanded indices), the last dim runs as a contiguous row loop with the indices loaded
once per row (LLVM vectorizes it).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from ...runtime.threads import default_pool
from . import irutil as u
from .jit import compile_built
from .target import host_isa, target_for

REDUCES = ("none", "add", "mul", "amax", "amin", "mean")
# a gather of this many elements or more splits across threads (as generated kernels
# do: compiler/native_program.py, PARALLEL_KERNEL_WORK)
PARALLEL_WORK = 1 << 18
_FLOATS = {"float32": u.F32, "float64": u.F64}
_INTS = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


@dataclass(frozen=True)
class IndexKernel:
    """What one compiled kernel is specialized on (all known from the graph's metas)."""
    mode: str                   # "gather" | "scatter"
    reduce: str                 # REDUCES; gather: "none"
    include_self: bool          # scatter_reduce's include_self=False: targets start empty
    dtype: str                  # numpy dtype name of dst/data
    index_dtypes: tuple         # numpy dtype name of each index tensor
    ndim: int                   # iteration dims (>= 1)
    negative: bool              # negative indices count from the end
    fill: float | int | None = None     # scatter of a constant instead of a data tensor
    alpha: float | int | None = None    # index_add's alpha: dst + alpha * src, fused

    @property
    def name(self) -> str:
        digest = hashlib.sha1(repr(self).encode()).hexdigest()[:10]
        return f"index_{self.mode}_{self.reduce}_{self.dtype}_{self.ndim}d_{digest}"

    def geometry_size(self) -> int:
        n, k = self.ndim, len(self.index_dtypes)
        return 3 * n + k * (n + 2)


def supported(mode: str, reduce: str, dtype: np.dtype) -> bool:
    """Whether a kernel exists for this dtype: any dtype moves (a copy), arithmetic
    (add/mul/amax/amin) needs float32/float64 or an integer type."""
    dtype = np.dtype(dtype)
    if reduce == "none":
        return dtype.itemsize in (1, 2, 4, 8, 16)
    return dtype.name in _FLOATS or dtype.name in _INTS


def index_supported(dtype: np.dtype) -> bool:
    return np.dtype(dtype).name in _INTS


def _elem_type(spec: IndexKernel) -> ir.Type:
    if spec.reduce != "none" and spec.dtype in _FLOATS:
        return _FLOATS[spec.dtype]
    return ir.IntType(np.dtype(spec.dtype).itemsize * 8)


def _const(spec: IndexKernel, ty: ir.Type, value) -> ir.Constant:
    if isinstance(ty, (ir.FloatType, ir.DoubleType)):
        return ir.Constant(ty, float(value))
    if spec.dtype in _FLOATS or spec.dtype in ("float16", "bfloat16", "complex64",
                                               "complex128", "bool"):
        # a copy moves bits: the constant's bit pattern in the data's dtype
        bits = np.asarray(value).astype(spec.dtype).reshape(1).view(f"u{ty.width // 8}")[0] \
            if ty.width <= 64 else int.from_bytes(np.asarray(value).astype(spec.dtype)
                                                  .tobytes(), "little")
        return ir.Constant(ty, int(bits))
    return ir.Constant(ty, int(np.asarray(value).astype(spec.dtype)) & ((1 << ty.width) - 1))


def _identity(spec: IndexKernel, ty: ir.Type) -> ir.Constant:
    """The value include_self=False starts a target from (PyTorch fills the same)."""
    info = np.finfo(spec.dtype) if spec.dtype in _FLOATS else np.iinfo(spec.dtype)
    start = {"add": 0, "mean": 0, "mul": 1,
             "amax": -np.inf if spec.dtype in _FLOATS else info.min,
             "amin": np.inf if spec.dtype in _FLOATS else info.max}[spec.reduce]
    return _const(spec, ty, start)


def _combine(b: ir.IRBuilder, spec: IndexKernel, old: ir.Value, v: ir.Value) -> ir.Value:
    floating = spec.dtype in _FLOATS
    if spec.reduce == "none":
        return v
    if spec.reduce == "add" and spec.alpha is not None:
        # src * alpha + dst with one rounding: PyTorch's add with alpha (Vectorized
        # fmadd) gives that on the CPU
        alpha = _const(spec, old.type, spec.alpha)
        return u.fma(b, v, alpha, old) if floating else b.add(old, b.mul(v, alpha))
    if spec.reduce in ("add", "mean"):
        return b.fadd(old, v) if floating else b.add(old, v)
    if spec.reduce == "mul":
        return b.fmul(old, v) if floating else b.mul(old, v)
    if floating:            # a NaN source wins; a NaN target stays (PyTorch's std::max)
        nan = b.fcmp_unordered("uno", v, v)
        better = b.fcmp_ordered("<", old, v) if spec.reduce == "amax" else \
            b.fcmp_ordered("<", v, old)
        return b.select(b.or_(nan, better), v, old)
    cmp = b.icmp_unsigned if spec.dtype.startswith("u") else b.icmp_signed
    better = cmp("<", old, v) if spec.reduce == "amax" else cmp("<", v, old)
    return b.select(better, v, old)


class _Emitter:
    def __init__(self, spec: IndexKernel):
        self.spec = spec
        self.module = ir.Module(name=spec.name)
        names = ("begin", "end", "worker", "buffers", "geom", "err")
        fn, self.b = u.define(self.module, spec.name, u.I32,
                              list(zip(names, (u.I64,) * 3 + (u.PTR,) * 3)),
                              noalias_ptrs=False)
        self.args = dict(zip(names, fn.args))
        self.elem = _elem_type(spec)
        b, n, k = self.b, spec.ndim, len(spec.index_dtypes)
        count = spec.reduce == "mean"         # a last buffer: int64 counts, dst's layout
        ptrs = [b.load(b.gep(self.args["buffers"], [u.i64(i)], source_etype=u.PTR), typ=u.PTR)
                for i in range(2 + k + count)]
        self.dst, self.data, self.idx = ptrs[0], ptrs[1], ptrs[2:2 + k]
        self.count = ptrs[-1] if count else None
        g = [b.load(b.gep(self.args["geom"], [u.i64(i)], source_etype=u.I64), typ=u.I64)
             for i in range(spec.geometry_size())]
        self.shape, self.dst_st, self.data_st = g[:n], g[n:2 * n], g[2 * n:3 * n]
        at = 3 * n
        self.idx_st, self.target_st, self.size = [], [], []
        for _ in range(k):
            self.idx_st.append(g[at:at + n])
            self.target_st.append(g[at + n])
            self.size.append(g[at + n + 1])
            at += n + 2

    def build(self) -> ir.Module:
        """Phases over the iteration space: `identity` (include_self=False: each target
        starts from the reduction's identity), `combine`, and for a mean `divide` (each
        target once: its count is cleared as it is divided)."""
        spec = self.spec
        if spec.mode == "scatter" and spec.reduce != "none" and not spec.include_self:
            self._nest("identity", row=False)
        self._phase("combine")
        if spec.reduce == "mean":
            self._phase("divide")
        self.b.ret(ir.Constant(u.I32, 0))
        return self.module

    def _phase(self, phase: str) -> None:
        """One pass, as rows when the last dim allows (checked at run time)."""
        spec, b = self.spec, self.b
        if spec.ndim < 2:
            self._nest(phase, row=False)
            return
        n = spec.ndim
        row = b.and_(b.icmp_signed("==", self.dst_st[n - 1], u.i64(1)),
                     b.icmp_signed("==", self.data_st[n - 1], u.i64(1))
                     if spec.fill is None else ir.Constant(u.I1, 1))
        for st in self.idx_st:
            row = b.and_(row, b.icmp_signed("==", st[n - 1], u.i64(0)))
        with b.if_else(row) as (rows, general):
            with rows:
                self._nest(phase, row=True)
            with general:
                self._nest(phase, row=False)

    def _nest(self, phase: str, row: bool) -> None:
        """Loops over the iteration space carrying each operand's offset; the last dim
        is a unit-stride row loop when `row` (indices loaded once per row)."""
        n, k = self.spec.ndim, len(self.idx)
        zero = u.i64(0)
        offsets = [zero, zero] + [zero] * k             # dst, data, idx_0..

        def level(d, offsets):
            if d == (n - 1 if row else n):
                self._body(offsets, phase, row)
                return
            strides = [self.dst_st[d], self.data_st[d]] + [st[d] for st in self.idx_st]
            start, stop = (self.args["begin"], self.args["end"]) if d == 0 else \
                (zero, self.shape[d])
            with u.counted_loop(self.b, start, stop, 1, f"d{d}") as i:
                level(d + 1, [self.b.add(o, self.b.mul(i, s)) for o, s in zip(offsets, strides)])
        level(0, offsets)

    def _target(self, idx_offsets) -> ir.Value:
        """sum_k checked(idx_k) * target_st_k; an index out of range returns 1."""
        b, spec = self.b, self.spec
        total = u.i64(0)
        for j, (ptr, off) in enumerate(zip(self.idx, idx_offsets)):
            ity = ir.IntType(np.dtype(spec.index_dtypes[j]).itemsize * 8)
            raw = b.load(b.gep(ptr, [off], source_etype=ity), typ=ity)
            unsigned = spec.index_dtypes[j].startswith("u")
            value = raw if ity.width == 64 else (b.zext(raw, u.I64) if unsigned
                                                 else b.sext(raw, u.I64))
            size = self.size[j]
            wrapped = value
            if spec.negative and not unsigned:
                wrapped = b.select(b.icmp_signed("<", value, u.i64(0)), b.add(value, size),
                                   value)
            bad = b.icmp_unsigned(">=", wrapped, size)  # negative -> huge unsigned
            with b.if_then(bad, likely=False):
                won = b.extract_value(b.cmpxchg(self.args["err"], u.i64(0), u.i64(1),
                                                "monotonic", "monotonic"), 1)
                with b.if_then(won):
                    for slot, item in enumerate((value, size, u.i64(j))):
                        b.store(item, b.gep(self.args["err"], [u.i64(slot + 1)],
                                            source_etype=u.I64))
                b.ret(ir.Constant(u.I32, 1))
            total = b.add(total, b.mul(wrapped, self.target_st[j]))
        return total

    def _body(self, offsets, phase: str, row: bool) -> None:
        b, spec = self.b, self.spec
        dst_off, data_off = offsets[0], offsets[1]
        target = self._target(offsets[2:])
        if spec.mode == "gather":
            src_base, dst_base = b.add(data_off, target), dst_off
        else:
            src_base, dst_base = data_off, b.add(dst_off, target)
        if not row:
            self._element(dst_base, src_base, phase)
            return
        with u.counted_loop(b, u.i64(0), self.shape[spec.ndim - 1], 1, "col") as j:
            self._element(b.add(dst_base, j), b.add(src_base, j), phase)

    def _element(self, dst_at, src_at, phase: str) -> None:
        b, spec, ty = self.b, self.spec, self.elem
        where = b.gep(self.dst, [dst_at], source_etype=ty)
        if phase == "identity":
            b.store(_identity(spec, ty), where)
            return
        if phase == "divide":
            self._divide(where, dst_at)
            return
        if spec.reduce == "mean":         # the count shares dst's layout
            count = b.gep(self.count, [dst_at], source_etype=u.I64)
            b.store(b.add(b.load(count, typ=u.I64), u.i64(1)), count)
        if spec.fill is not None:
            v = _const(spec, ty, spec.fill)
        else:
            v = b.load(b.gep(self.data, [src_at], source_etype=ty), typ=ty)
        if spec.mode == "scatter" and spec.reduce != "none":
            v = _combine(b, spec, b.load(where, typ=ty), v)
        b.store(v, where)


    def _divide(self, where, dst_at) -> None:
        """A mean's target: sum / (contributions + 1 when self counts), floor division
        for integers (torch's); its count is cleared so a repeat divides once."""
        b, spec, ty = self.b, self.spec, self.elem
        count_at = b.gep(self.count, [dst_at], source_etype=u.I64)
        count = b.load(count_at, typ=u.I64)
        with b.if_then(b.icmp_signed(">", count, u.i64(0))):
            total = b.add(count, u.i64(1)) if spec.include_self else count
            value = b.load(where, typ=ty)
            if spec.dtype in _FLOATS:
                b.store(b.fdiv(value, b.sitofp(total, ty)), where)
            elif spec.dtype.startswith("u"):
                b.store(b.udiv(value, b.trunc(total, ty) if ty.width < 64 else total), where)
            else:
                d = b.trunc(total, ty) if ty.width < 64 else total
                q = b.sdiv(value, d)
                inexact = b.icmp_signed("!=", b.srem(value, d), ir.Constant(ty, 0))
                negative = b.icmp_signed("<", value, ir.Constant(ty, 0))
                b.store(b.select(b.and_(inexact, negative), b.sub(q, ir.Constant(ty, 1)), q),
                        where)
            b.store(u.i64(0), count_at)


def index_module(spec: IndexKernel) -> ir.Module:
    return _Emitter(spec).build()


@functools.cache
def index_kernel(spec: IndexKernel):
    """The loaded kernel (a ctypes function) for `spec`, compiled once per process (and
    through the LLVM disk cache)."""
    lib = compile_built(index_module, spec, target=target_for(host_isa()))
    return lib.function(spec.name, ctypes.c_int32, *[ctypes.c_int64] * 3,
                        *[ctypes.c_void_p] * 3)


def parallel(spec: IndexKernel, geometry) -> bool:
    """Whether a call splits across threads: a gather large enough to repay it."""
    n = spec.ndim
    return spec.mode == "gather" and geometry[0] >= 2 and \
        int(np.prod(geometry[:n])) >= PARALLEL_WORK


def run_index(spec: IndexKernel, geometry, dst: np.ndarray, data, indices) -> tuple | None:
    """Run the kernel on arrays (data None for a constant fill); None on success, else
    the error record (index value, size, which index)."""
    geom = np.ascontiguousarray(geometry, dtype=np.int64)
    err = np.zeros(4, np.int64)
    arrays = [dst, dst if data is None else data, *indices]
    if spec.reduce == "mean":                   # counts laid out as dst
        counts = np.zeros_like(dst, dtype=np.int64)
        if tuple(s // 8 for s in counts.strides) != \
                tuple(s // dst.itemsize for s in dst.strides):
            raise ValueError("scatter_reduce mean: the result's layout has no int64 twin")
        arrays.append(counts)
    buffers = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
    args = (ctypes.addressof(buffers), geom.ctypes.data, err.ctypes.data)
    if parallel(spec, geometry):
        default_pool().parallel_for(index_kernel(spec), int(geom[0]), *args)
    else:
        index_kernel(spec)(0, int(geom[0]), 0, *args)
    return None if err[0] == 0 else tuple(int(v) for v in err[1:])
