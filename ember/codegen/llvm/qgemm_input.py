"""The dynamic linear's input pass, natively: a float32 input's range, then its
quantization with the qparams that range gives.

quantize_dynamic's Linear quantizes its input on every call, with qparams made from the
input's own min and max (ir/ops/quantized.py dynamic_input_qparams). NumPy's min and max
are two passes with a Python call each, and the quantization rounds in float64; here:

- qrange(c_begin, c_end, worker, params = [x, n, out]): min and max of the chunks'
  elements [c_begin * CHUNK, min(c_end * CHUNK, n)) into out[4 * worker ..] (float32:
  min, max, and 1.0 where some element is NaN), four 16-lane accumulators a step.
- qquantize_input(c_begin, c_end, worker, params = [x, out, n, qparams]): quantize_array's values
  clamp(roundeven(float32(double(x) * inv + zp)), lo, hi) (qparams: inv, zp, lo, hi as
  float64), with one float32 fma where that provably rounds alike
  (qgemm.round_requantized: float64 for the rare vector near a half-integer); the last
  partial vector masked.

Both take the thread pool's chunk signature with one parameter block (int64 words,
pointers as addresses), so a spinning worker takes its chunk natively; small inputs run on the calling thread (a
worker's wake-up costs more than its half). The results are the reference's bit for bit:
min and max are exact, the qparams come from the same Python formula
(dynamic_range_qparams), and the rounding is quantize_array's. An input with a NaN or an
infinity is left to the reference (None), which says what it does with them.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir

from ...ir.ops.quantized import dynamic_range_qparams
from ...runtime import lite_int8 as lite
from ...runtime.threads import default_pool, get_num_threads
from . import irutil as u
from . import qgemm as Q
from .jit import compile_built
from .target import Isa, host_isa, target_for

LANES = 16
CHUNK = 1 << 15              # elements a pool task covers (a multiple of 4 * LANES)
PARALLEL_MIN = 1 << 18       # below this many elements one thread does both passes
I8 = ir.IntType(8)


_CHUNK_ARGS = [("c_begin", u.I64), ("c_end", u.I64), ("worker", u.I64), ("params", u.PTR)]


def _fields(b, params, is_ptr):
    """The parameter block's words (pointers where is_ptr says so)."""
    out = []
    for i, ptr in enumerate(is_ptr):
        word = b.load(b.gep(params, [u.i64(i)], source_etype=u.I64), typ=u.I64)
        out.append(b.inttoptr(word, u.PTR) if ptr else word)
    return out


def _chunk_bounds(b, c_begin, c_end, n):
    start = b.mul(c_begin, u.i64(CHUNK))
    return start, u.imin(b, b.mul(c_end, u.i64(CHUNK)), n)


def _emit_range(module: ir.Module) -> None:
    fn, b = u.define(module, "qrange", u.VOID, _CHUNK_ARGS)
    c_begin, c_end, worker, params = fn.args
    x_ptr, n, out_ptr = _fields(b, params, (True, False, True))
    vf = u.vec(u.F32, LANES)
    mask_t = ir.IntType(LANES)
    start, stop = _chunk_bounds(b, c_begin, c_end, n)
    step = 4 * LANES
    full = b.add(start, b.mul(b.sdiv(b.sub(stop, start), u.i64(step)), u.i64(step)))
    inf = float("inf")

    def fold(values, x, x_hi=None):
        """values' bounds and NaN mask folded with x (x_hi, where given, for the max)."""
        lo, hi, nan = values
        x_hi = x if x_hi is None else x_hi
        # compare-and-select: a NaN lane never replaces a bound (it is counted apart)
        lo = b.select(b.fcmp_ordered("<", x, lo), x, lo)
        hi = b.select(b.fcmp_ordered(">", x_hi, hi), x_hi, hi)
        nan = b.or_(nan, b.bitcast(b.fcmp_unordered("uno", x, x), mask_t))
        return [lo, hi, nan]

    def body(i, flat):
        out = []
        for j in range(4):          # four independent accumulator sets: no chain of 4
            x = b.load(b.gep(x_ptr, [b.add(i, u.i64(j * LANES))], source_etype=u.F32),
                       typ=vf, align=4)
            out += fold(flat[3 * j:3 * j + 3], x)
        return out

    init = [ir.Constant(vf, [inf] * LANES), ir.Constant(vf, [-inf] * LANES),
            ir.Constant(mask_t, 0)] * 4
    steps = b.sdiv(b.sub(full, start), u.i64(step))
    acc = u.carried_loop(b, u.i64(0), steps,
                         init, lambda s, flat: body(b.add(start, b.mul(s, u.i64(step))), flat),
                         "r")
    lo, hi, nan = acc[0:3]
    for j in range(1, 4):
        lo, hi, nan = fold([lo, hi, nan], acc[3 * j], acc[3 * j + 1])
        nan = b.or_(nan, acc[3 * j + 2])
    # the tail: whole vectors, the last one masked (its other lanes load as +inf / -inf)
    tail = u.carried_loop(b, u.i64(0), b.sdiv(b.add(b.sub(stop, full), u.i64(LANES - 1)),
                                              u.i64(LANES)), [lo, hi, nan],
                          lambda t, vals: _tail_fold(b, fold, vals, x_ptr,
                                                     b.add(full, b.mul(t, u.i64(LANES))),
                                                     stop), "rt")
    lo, hi, nan = tail
    lo_s = b.call(_reduce(module, "fmin", vf), [lo])
    hi_s = b.call(_reduce(module, "fmax", vf), [hi])
    any_nan = b.icmp_unsigned("!=", nan, ir.Constant(mask_t, 0))
    base = b.mul(worker, u.i64(4))
    for j, value in enumerate((lo_s, hi_s, b.select(any_nan, ir.Constant(u.F32, 1.0),
                                                      ir.Constant(u.F32, 0.0)))):
        b.store(value, b.gep(out_ptr, [b.add(base, u.i64(j))], source_etype=u.F32))
    b.ret_void()


def _tail_fold(b, fold, vals, x_ptr, i, stop):
    vf = u.vec(u.F32, LANES)
    mask = Q._lanes_below(b, b.sub(stop, i), LANES)
    ptr = b.gep(x_ptr, [i], source_etype=u.F32)
    x = Q._masked_load(b, vf, ptr, mask, 4)
    inf = float("inf")
    lo_x = b.select(mask, x, ir.Constant(vf, [inf] * LANES))
    hi_x = b.select(mask, x, ir.Constant(vf, [-inf] * LANES))
    return fold(vals, lo_x, hi_x)


def _reduce(module, op: str, ty):
    """llvm.vector.reduce.fmin / fmax (the vectors hold no NaN: the fold skips them)."""
    name = f"llvm.vector.reduce.{op}.{u._mangle(ty)}"
    return module.globals.get(name) or ir.Function(
        module, ir.FunctionType(ty.element, [ty]), name=name)


def _emit_quantize(module: ir.Module) -> None:
    fn, b = u.define(module, "qquantize_input", u.VOID, _CHUNK_ARGS)
    c_begin, c_end, _, params = fn.args
    x_ptr, out_ptr, n, qptr = _fields(b, params, (True, True, False, True))
    vf, v32, vb = u.vec(u.F32, LANES), u.vec(u.I32, LANES), u.vec(I8, LANES)
    qp = [b.load(b.gep(qptr, [u.i64(j)], source_etype=u.F64), typ=u.F64) for j in range(4)]
    inv, zp = (u.splat(b, q, LANES) for q in qp[:2])
    lo, hi = (u.splat(b, b.fptrunc(q, u.F32), LANES) for q in qp[2:])
    start, stop = _chunk_bounds(b, c_begin, c_end, n)

    def values(x):
        q = u.clamp(b, Q.round_requantized(b, x, inv, zp, LANES), lo, hi)
        return b.trunc(b.fptosi(q, v32), vb)

    full = b.add(start, b.mul(b.sdiv(b.sub(stop, start), u.i64(LANES)), u.i64(LANES)))
    with u.counted_loop(b, start, full, LANES, "i") as i:
        x = b.load(b.gep(x_ptr, [i], source_etype=u.F32), typ=vf, align=4)
        b.store(values(x), b.gep(out_ptr, [i], source_etype=I8), align=1)
    left = b.icmp_signed("<", full, stop)
    with b.if_then(left):
        mask = Q._lanes_below(b, b.sub(stop, full), LANES)
        x = Q._masked_load(b, vf, b.gep(x_ptr, [full], source_etype=u.F32), mask, 4)
        Q._masked_store(b, values(x), b.gep(out_ptr, [full], source_etype=I8), mask, 1)
    b.ret_void()


def module() -> ir.Module:
    mod = ir.Module(name="ember_qgemm_input")
    _emit_range(mod)
    _emit_quantize(mod)
    return mod


def available() -> bool:
    return host_isa() is Isa.AVX512


@functools.lru_cache(maxsize=1)
def _kernels():
    lib = compile_built(module, target=target_for(Isa.AVX512))
    Q._kernels(Q.VNNI)       # installs the spinning hand-off the GEMM's calls use too
    args = [ctypes.c_int64] * 3 + [ctypes.c_void_p]
    return lib, lib.function("qrange", None, *args), lib.function("qquantize_input", None, *args)


# one call's int64 words: qrange's parameters [0, 3), qquantize_input's [3, 7), the range
# rows (float32, 4 a worker) from _STATS, the quantization's qparams (float64) at _QP
_RANGE, _QUANT, _QP, _STATS = 0, 3, 8, 12


def quantize_dynamic_input(x: np.ndarray, qmin: int = 0, qmax: int = 127, out=None):
    """(uint8 values, scale, zero point) of a contiguous float32 array quantized with
    dynamic_input_qparams' qparams, as quantize_array computes them; None where x holds
    a NaN or an infinity, or nothing (the caller's reference path handles those).
    out: a contiguous uint8 array of x's shape to write the values into (a layer's
    kept input buffer), else a new one."""
    n = x.size
    if not n:
        return None
    _, range_fn, quant_fn = _kernels()
    pool = default_pool()
    chunks = -(-n // CHUNK)
    # the threads a parallel_for uses now (set_num_threads' cap included): one alone
    # makes both passes direct calls
    workers = min(pool.n_threads, get_num_threads()) if n >= PARALLEL_MIN else 1
    words = np.empty(_STATS + 2 * workers, np.int64)    # one block: one address to read
    base = lite.address(words)      # (the buffer protocol: ~0.3 us against ~1.3)
    stats = words[_STATS:].view(np.float32).reshape(workers, 4)
    stats[:] = (np.inf, -np.inf, 0.0, 0.0)      # rows of workers given no chunk
    if out is None:
        out = lite._empty(x.shape, np.uint8)
    elif out.shape != x.shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"quantize_dynamic_input: out must be contiguous uint8 of shape "
                         f"{x.shape}, got {out.dtype} {out.shape}")
    x_address = lite.address(x)
    words[:_QP] = (x_address, n, base + 8 * _STATS, x_address, lite.address(out), n,
                   base + 8 * _QP, 0)
    if workers == 1:                # the calling thread alone: no pool round trip
        range_fn(0, chunks, 0, base + 8 * _RANGE)
        lo, hi, nan = stats[0, :3].tolist()
    else:
        pool.parallel_for(range_fn, chunks, base + 8 * _RANGE)
        rows = stats.tolist()       # a few rows: Python's min/max, not NumPy's reductions
        lo, hi = min(r[0] for r in rows), max(r[1] for r in rows)
        nan = any(r[2] for r in rows)
    if nan or lo == -np.inf or hi == np.inf:
        return None
    scale, zero_point = dynamic_range_qparams(lo, hi, qmin, qmax)
    words[_QP:_STATS].view(np.float64)[:] = (np.float32(1.0) / np.float32(scale),
                                             zero_point, 0.0, 255.0)
    if workers == 1:
        quant_fn(0, chunks, 0, base + 8 * _QUANT)
    else:
        pool.parallel_for(quant_fn, chunks, base + 8 * _QUANT)
    return out, scale, zero_point
