"""Elementwise quantized kernels: quantized add (and add + relu) on uint8 values, and uint8
max pooling over channels-last values (`qmaxpool`: 64 or 16 channels per vector, taps outside
the input skipped; exact, as any max is).

    real = fma(a, a_scale, a_scale * -a_zp) + fma(b, b_scale, b_scale * -b_zp)   (float32)
    real = max(real, 0) when relu
    q    = roundeven(real * float32(1/scale)) + zp, clamped to [0, 255]

which is the NumPy reference (ir/ops/quantized.py _add_ref: torch's quantized add kernel's
arithmetic) operation for operation, so results are equal bit for bit. The operands are walked in
memory order: the caller passes buffers of one layout (both contiguous or both
channels-last) and the result takes that layout. A 16-lane loop does the bulk and a
one-lane copy of the same body the tail; threads split the element range.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir

from ...runtime import lite_int8 as lite
from ...runtime.threads import default_pool
from . import irutil as u
from . import spin
from .jit import compile_built
from .target import Isa, host_isa, supported_isas, target_for

I8 = ir.IntType(8)
LANES = 16
_CHUNK = lite.QADD_CHUNK    # elements per thread-pool task unit


def available() -> bool:
    return host_isa() in (Isa.AVX512, Isa.AVX2) and Isa.AVX2 in supported_isas()


def _body(b, lanes, a_ptr, b_ptr, out_ptr, i, qp):
    """One step of `lanes` elements at index i (qp: the eight float64 parameters)."""
    vi, vf, vd = u.vec(u.I32, lanes), u.vec(u.F32, lanes), u.vec(u.F64, lanes)
    vb = u.vec(I8, lanes)

    def spl(x):
        return u.splat(b, x, lanes)

    def real_of(ptr, zp, scale):
        q = b.uitofp(b.load(b.gep(ptr, [i], source_etype=I8), typ=vb, align=1), vf)
        return dequantize_fma(b, q, zp, scale, lanes)

    a_zp, a_scale, b_zp, b_scale, inv, zp, lo, hi = qp
    real = b.fadd(real_of(a_ptr, a_zp, a_scale), real_of(b_ptr, b_zp, b_scale))
    q = add_requantize(b, real, inv, zp, lo, hi, lanes)
    b.store(b.trunc(b.fptosi(q, vi), vb), b.gep(out_ptr, [i], source_etype=I8), align=1)


def dequantize_fma(b, q, zp, scale, lanes: int):
    """torch's vectorized dequantize (ir/ops/quantized.py _dequantize_fma): q (float32
    vector of integers) * scale + float32(scale * -zp), one fma. zp and scale: float64
    scalars (the kernels' parameter words)."""
    s32 = b.fptrunc(scale, u.F32)
    premul = b.fmul(s32, b.fneg(b.fptrunc(zp, u.F32)))
    return u.fma(b, q, u.splat(b, s32, lanes), u.splat(b, premul, lanes))


def add_requantize(b, real, inv, zp, lo, hi, lanes: int):
    """quantized_add's requantization (ir/ops/quantized.py _add_ref): relu as a max with
    the floor `lo` (0, or -inf without relu), then rint(float32(real * float32(inv))) +
    zp, clamped to [0, hi]; float64 scalar parameters. The result: float32 integers."""
    vf = u.vec(u.F32, lanes)
    floor = u.splat(b, b.fptrunc(lo, u.F32), lanes)
    real = b.select(b.fcmp_ordered(">", real, floor), real, floor)    # maxnum's values
    scaled = b.fmul(real, u.splat(b, b.fptrunc(inv, u.F32), lanes))
    q = b.fadd(u.intrinsic(b, "roundeven", vf, scaled), u.splat(b, b.fptrunc(zp, u.F32), lanes))
    return u.clamp(b, q, ir.Constant(vf, [0.0] * lanes), u.splat(b, b.fptrunc(hi, u.F32), lanes))


def _emit(module: ir.Module) -> None:
    """qadd(c_begin, c_end, worker, a, b, out, n, qparams): elements of chunks
    [c_begin, c_end) of _CHUNK elements, clipped at n."""
    fn, b = u.define(module, "qadd", u.VOID, [
        ("c_begin", u.I64), ("c_end", u.I64), ("worker", u.I64), ("a", u.PTR), ("b", u.PTR),
        ("out", u.PTR), ("n", u.I64), ("qparams", u.PTR)], noalias_ptrs=False)
    c_begin, c_end, _, a_ptr, b_ptr, out_ptr, n, qptr = fn.args
    qp = [b.load(b.gep(qptr, [u.i64(j)], source_etype=u.F64), typ=u.F64) for j in range(8)]
    start = b.mul(c_begin, u.i64(_CHUNK))
    stop = u.imin(b, b.mul(c_end, u.i64(_CHUNK)), n)
    full = b.add(start, b.mul(b.sdiv(b.sub(stop, start), u.i64(LANES)), u.i64(LANES)))
    with u.counted_loop(b, start, full, LANES, "i") as i:
        _body(b, LANES, a_ptr, b_ptr, out_ptr, i, qp)
    with u.counted_loop(b, full, stop, 1, "j") as j:
        _body(b, 1, a_ptr, b_ptr, out_ptr, j, qp)
    b.ret_void()


def _quantize_body(b, lanes, x_ptr, out_ptr, i, qp):
    """quantize_array's steps on `lanes` float32 values at index i (qp: inv, zp, lo, hi)."""
    vf, vd, vi, vb = (u.vec(t, lanes) for t in (u.F32, u.F64, u.I32, I8))
    inv, zp = (u.splat(b, q, lanes) for q in qp[:2])
    lo, hi = (u.splat(b, b.fptrunc(q, u.F32), lanes) for q in qp[2:])
    x = b.load(b.gep(x_ptr, [i], source_etype=u.F32), typ=vf, align=4)
    if lanes > 1:   # float32 with the float64 fallback near halves: the same integers
        from .qgemm import round_requantized    # (qgemm imports this module)
        q = round_requantized(b, x, inv, zp, lanes)
    else:
        q = u.intrinsic(b, "roundeven", vf, b.fptrunc(u.fma(b, b.fpext(x, vd), inv, zp), vf))
    q = u.clamp(b, q, lo, hi)
    b.store(b.trunc(b.fptosi(q, vi), vb), b.gep(out_ptr, [i], source_etype=I8), align=1)


def _emit_quantize(module: ir.Module) -> None:
    """qquantize(c_begin, c_end, worker, x, out, n, qparams): quantize_per_tensor of
    float32 elements in chunks [c_begin, c_end) of _CHUNK, to 8-bit integers."""
    fn, b = u.define(module, "qquantize", u.VOID, [
        ("c_begin", u.I64), ("c_end", u.I64), ("worker", u.I64), ("x", u.PTR), ("out", u.PTR),
        ("n", u.I64), ("qparams", u.PTR)], noalias_ptrs=False)
    c_begin, c_end, _, x_ptr, out_ptr, n, qptr = fn.args
    qp = [b.load(b.gep(qptr, [u.i64(j)], source_etype=u.F64), typ=u.F64) for j in range(4)]
    start = b.mul(c_begin, u.i64(_CHUNK))
    stop = u.imin(b, b.mul(c_end, u.i64(_CHUNK)), n)
    full = b.add(start, b.mul(b.sdiv(b.sub(stop, start), u.i64(LANES)), u.i64(LANES)))
    with u.counted_loop(b, start, full, LANES, "i") as i:
        _quantize_body(b, LANES, x_ptr, out_ptr, i, qp)
    with u.counted_loop(b, full, stop, 1, "j") as j:
        _quantize_body(b, 1, x_ptr, out_ptr, j, qp)
    b.ret_void()


def _dequantize_body(b, lanes, q_ptr, out_ptr, i, zp, scale, signed: bool):
    """dequantize_array's steps on `lanes` 8-bit values at index i: float32(q) - zp, then
    times scale, each rounded to float32 (q - zp is exact there), no fma: the same floats."""
    vf, vb = u.vec(u.F32, lanes), u.vec(I8, lanes)
    q = b.load(b.gep(q_ptr, [i], source_etype=I8), typ=vb, align=1)
    real = (b.sitofp if signed else b.uitofp)(q, vf)
    real = b.fmul(b.fsub(real, u.splat(b, zp, lanes)), u.splat(b, scale, lanes))
    b.store(real, b.gep(out_ptr, [i], source_etype=u.F32), align=4)


def _emit_dequantize(module: ir.Module, signed: bool) -> None:
    """qdequantize_u8 / _i8(c_begin, c_end, worker, q, out, n, qparams): dequantize of
    8-bit elements in chunks [c_begin, c_end) of _CHUNK to float32 (qparams: zero point
    and scale as float64 words holding float32 values)."""
    fn, b = u.define(module, f"qdequantize_{'i8' if signed else 'u8'}", u.VOID, [
        ("c_begin", u.I64), ("c_end", u.I64), ("worker", u.I64), ("q", u.PTR), ("out", u.PTR),
        ("n", u.I64), ("qparams", u.PTR)], noalias_ptrs=False)
    c_begin, c_end, _, q_ptr, out_ptr, n, qptr = fn.args
    zp, scale = (b.fptrunc(b.load(b.gep(qptr, [u.i64(j)], source_etype=u.F64), typ=u.F64),
                           u.F32) for j in range(2))
    start = b.mul(c_begin, u.i64(_CHUNK))
    stop = u.imin(b, b.mul(c_end, u.i64(_CHUNK)), n)
    full = b.add(start, b.mul(b.sdiv(b.sub(stop, start), u.i64(LANES)), u.i64(LANES)))
    with u.counted_loop(b, start, full, LANES, "i") as i:
        _dequantize_body(b, LANES, q_ptr, out_ptr, i, zp, scale, signed)
    with u.counted_loop(b, full, stop, 1, "j") as j:
        _dequantize_body(b, 1, q_ptr, out_ptr, j, zp, scale, signed)
    b.ret_void()


def _relu_body(b, lanes, x_ptr, out_ptr, i):
    """relu's NumPy reference, np.maximum(x, 0), on `lanes` float32 values at index i: x
    where x > 0 or x is NaN (its payload kept), else +0.0 (-0.0 included)."""
    vf = u.vec(u.F32, lanes)
    x = b.load(b.gep(x_ptr, [i], source_etype=u.F32), typ=vf, align=4)
    zero = ir.Constant(vf, [0.0] * lanes)
    keep = b.fcmp_unordered(">", x, zero)
    b.store(b.select(keep, x, zero), b.gep(out_ptr, [i], source_etype=u.F32), align=4)


def _emit_relu(module: ir.Module) -> None:
    """relu_f32(c_begin, c_end, worker, x, out, n): relu of float32 elements in chunks
    [c_begin, c_end) of _CHUNK (a float op, here beside the quantized ones because a
    dynamically quantized model runs it between its int8 layers: NumPy's maximum takes
    80 us on 64 x 4096 values on this host, 4x a copy's time)."""
    fn, b = u.define(module, "relu_f32", u.VOID, [
        ("c_begin", u.I64), ("c_end", u.I64), ("worker", u.I64), ("x", u.PTR), ("out", u.PTR),
        ("n", u.I64)], noalias_ptrs=False)
    c_begin, c_end, _, x_ptr, out_ptr, n = fn.args
    start = b.mul(c_begin, u.i64(_CHUNK))
    stop = u.imin(b, b.mul(c_end, u.i64(_CHUNK)), n)
    full = b.add(start, b.mul(b.sdiv(b.sub(stop, start), u.i64(LANES)), u.i64(LANES)))
    with u.counted_loop(b, start, full, LANES, "i") as i:
        _relu_body(b, LANES, x_ptr, out_ptr, i)
    with u.counted_loop(b, full, stop, 1, "j") as j:
        _relu_body(b, 1, x_ptr, out_ptr, j)
    b.ret_void()


def _emit_maxpool(module: ir.Module) -> None:
    """qmaxpool(r_begin, r_end, worker, x, out, params): uint8 max pooling of a
    channels-last [N, H, W, C] input (C a multiple of 16) for output rows
    [r_begin, r_end) (row r: image r // OH, oy = r % OH); params = (h, w, c, oh, ow, kh,
    kw, sh, sw, ph, pw) as int64. Channels go 64 to a vector, the last C % 64 16 to a
    vector. Taps outside the input are skipped (PyTorch pads max pooling with -inf): each
    output pixel's tap ranges are clipped to the input once, and a window wholly inside
    the input of 2x2 or 3x3 taps (the common pools) takes an unrolled path with constant
    tap offsets (no per-tap loop or bounds test: at 16 channels a pixel, that loop
    control was most of the work)."""
    fn, b = u.define(module, "qmaxpool", u.VOID, [
        ("r_begin", u.I64), ("r_end", u.I64), ("worker", u.I64), ("x", u.PTR), ("out", u.PTR),
        ("params", u.PTR)], noalias_ptrs=False)
    r_begin, r_end, _, x, out, params = fn.args
    geo = _maxpool_geometry(b, params)
    _maxpool_rows(b, geo, x, out, r_begin, r_end, _maxpool_slots(b))
    b.ret_void()


_POOL_GEOMETRY = ("h", "w", "c", "oh", "ow", "kh", "kw", "sh", "sw", "ph", "pw")


def _maxpool_geometry(b, params) -> dict:
    return dict(zip(_POOL_GEOMETRY, (b.load(b.gep(params, [u.i64(i)], source_etype=u.I64),
                                            typ=u.I64) for i in range(len(_POOL_GEOMETRY)))))


def _maxpool_slots(b) -> dict:
    """The running maxima (made in the entry block: promoted to registers)."""
    return {width: b.alloca(u.vec(I8, width)) for width in (64, 16)}


def _maxpool_rows(b, geo, x, out, r_begin, r_end, slots) -> None:
    """qmaxpool's output rows [r_begin, r_end) (its docstring)."""
    c = geo["c"]
    c64 = b.mul(b.sdiv(c, u.i64(64)), u.i64(64))
    row_bytes = b.mul(geo["w"], c)
    square = {k: b.and_(b.icmp_signed("==", geo["kh"], u.i64(k)),
                        b.icmp_signed("==", geo["kw"], u.i64(k))) for k in (2, 3)}
    with u.counted_loop(b, r_begin, r_end, 1, "r") as row:
        img = b.sdiv(row, geo["oh"])            # one division per output row
        oy = b.sub(row, b.mul(img, geo["oh"]))
        iy0 = b.sub(b.mul(oy, geo["sh"]), geo["ph"])
        ky = _tap_range(b, iy0, geo["h"], geo["kh"])
        rows_inside = b.and_(b.icmp_signed("==", ky[0], u.i64(0)),
                             b.icmp_signed("==", ky[1], geo["kh"]))
        with u.counted_loop(b, u.i64(0), geo["ow"], 1, "ox") as ox:
            pix = b.add(b.mul(row, geo["ow"]), ox)
            ix0 = b.sub(b.mul(ox, geo["sw"]), geo["pw"])
            kx = _tap_range(b, ix0, geo["w"], geo["kw"])
            inside = b.and_(rows_inside, b.and_(b.icmp_signed("==", kx[0], u.i64(0)),
                                                b.icmp_signed("==", kx[1], geo["kw"])))
            corner = b.mul(b.add(b.mul(b.add(b.mul(img, geo["h"]), iy0), geo["w"]), ix0), c)
            win = dict(geo, pix=pix, corner=corner, row_bytes=row_bytes, ky=ky, kx=kx,
                       img=img, iy0=iy0, ix0=ix0)
            with b.if_else(b.and_(inside, square[2])) as (two, other):
                with two:
                    _pool_channels(b, x, out, c, c64, lambda w, ch: _unrolled(b, x, win, 2, w, ch))
                with other:
                    with b.if_else(b.and_(inside, square[3])) as (three, rest):
                        with three:
                            _pool_channels(b, x, out, c, c64,
                                           lambda w, ch: _unrolled(b, x, win, 3, w, ch))
                        with rest:
                            _pool_channels(b, x, out, c, c64,
                                           lambda w, ch: _clipped(b, x, win, slots[w], w, ch))


def _emit_maxpool_claimed(module: ir.Module) -> None:
    """qmaxpool_claimed(t_begin, t_end, worker, x, out, params): qmaxpool whose threads
    claim output rows from a counter (qgemm.claim_loop) instead of taking a static share:
    params = qmaxpool's 11 words, then the claim (chunk < 0: guided claims for -chunk
    threads, > 0 fixed ones), the counter (0 before the call) and the rows in all. A
    deferred pool (ThreadPool.defer) then ends on both threads at once: with static
    halves the worker's ran beside the caller's Python and the caller's after it."""
    from .qgemm import claim_loop       # (qgemm imports this module)
    fn, b = u.define(module, "qmaxpool_claimed", u.VOID, [
        ("t_begin", u.I64), ("t_end", u.I64), ("worker", u.I64), ("x", u.PTR),
        ("out", u.PTR), ("params", u.PTR)], noalias_ptrs=False)
    t_begin, t_end, _, x, out, params = fn.args
    geo = _maxpool_geometry(b, params)
    n = len(_POOL_GEOMETRY)
    chunk, total = (b.load(b.gep(params, [u.i64(i)], source_etype=u.I64), typ=u.I64)
                    for i in (n, n + 2))
    shared = b.gep(params, [u.i64(n + 1)], source_etype=u.I64)
    slots = _maxpool_slots(b)
    begin, end, head, done = claim_loop(b, shared, chunk, t_begin, t_end, total)
    _maxpool_rows(b, geo, x, out, begin, end, slots)
    b.branch(head)
    b.position_at_end(done)
    b.ret_void()


def pool_claims_module() -> ir.Module:
    """The LLVM module with `qmaxpool_claimed` (its own: module() is what ember.aot links)."""
    mod = ir.Module(name="ember_qmaxpool_claimed")
    _emit_maxpool_claimed(mod)
    return mod


def _emit_global_avg_pool(module: ir.Module) -> None:
    """qgap_u8(i_begin, i_end, worker, x, out, iparams, fparams): adaptive_avg_pool2d to
    1 x 1 of a channels-last uint8 [N, HW, C] for images [i_begin, i_end) into [N, C]
    uint8, as lite_int8.adaptive_average_quantized computes it: each channel's exact sum
    over the HW pixels (int32) less size * zero point, as float32 (exact: below 2**24),
    times float32 inv, plus float32 zp, rounded half to even and clamped to [lo, hi].
    iparams = (hw, c, size * zero point) as int64, fparams = (inv, zp, lo, hi) as
    float64 holding float32 values. 16 channels to a vector, the rest one at a time."""
    fn, b = u.define(module, "qgap_u8", u.VOID, [
        ("i_begin", u.I64), ("i_end", u.I64), ("worker", u.I64), ("x", u.PTR), ("out", u.PTR),
        ("iparams", u.PTR), ("fparams", u.PTR)], noalias_ptrs=False)
    i_begin, i_end, _, x, out, ip, fp = fn.args
    hw, c, size_zp = (b.load(b.gep(ip, [u.i64(j)], source_etype=u.I64), typ=u.I64)
                      for j in range(3))
    inv, zp, lo, hi = (b.fptrunc(b.load(b.gep(fp, [u.i64(j)], source_etype=u.F64),
                                        typ=u.F64), u.F32) for j in range(4))
    c16 = b.mul(b.sdiv(c, u.i64(LANES)), u.i64(LANES))
    slots = {lanes: b.alloca(u.vec(u.I32, lanes)) for lanes in (LANES, 1)}

    def channels(img, ch, lanes):
        vi, vf, vb = u.vec(u.I32, lanes), u.vec(u.F32, lanes), u.vec(I8, lanes)
        acc = slots[lanes]
        b.store(ir.Constant(vi, [0] * lanes), acc)
        base = b.add(b.mul(b.mul(img, hw), c), ch)
        with u.counted_loop(b, u.i64(0), hw, 1, "p") as p:
            q = b.load(b.gep(x, [b.add(base, b.mul(p, c))], source_etype=I8), typ=vb, align=1)
            b.store(b.add(b.load(acc, typ=vi), b.zext(q, vi)), acc)
        centered = b.sitofp(b.sub(b.load(acc, typ=vi),
                                  u.splat(b, b.trunc(size_zp, u.I32), lanes)), vf)
        q = b.fadd(b.fmul(centered, u.splat(b, inv, lanes)), u.splat(b, zp, lanes))
        q = u.clamp(b, u.intrinsic(b, "roundeven", vf, q), u.splat(b, lo, lanes),
                    u.splat(b, hi, lanes))
        b.store(b.trunc(b.fptosi(q, vi), vb),
                b.gep(out, [b.add(b.mul(img, c), ch)], source_etype=I8), align=1)
    with u.counted_loop(b, i_begin, i_end, 1, "img") as img:
        with u.counted_loop(b, u.i64(0), c16, LANES, "cb") as ch:
            channels(img, ch, LANES)
        with u.counted_loop(b, c16, c, 1, "ct") as ch:
            channels(img, ch, 1)
    b.ret_void()


def _tap_range(b, start, size, taps):
    """[lo, hi): the taps k of a window starting at `start` with 0 <= start + k < size."""
    lo = b.select(b.icmp_signed("<", start, u.i64(0)), b.neg(start), u.i64(0))
    return lo, u.imin(b, taps, b.sub(size, start))


def _pool_channels(b, x, out, c, c64, window_max) -> None:
    """out[pix, ch:ch + width] = window_max(width, ch), 64 then 16 channels a step."""
    for width, begin, end in ((64, u.i64(0), c64), (16, c64, c)):
        with u.counted_loop(b, begin, end, width, f"ch{width}") as ch:
            value, pix = window_max(width, ch)
            b.store(value, b.gep(out, [b.add(b.mul(pix, c), ch)], source_etype=I8), align=1)


def _load(b, x, at, width):
    return b.load(b.gep(x, [at], source_etype=I8), typ=u.vec(I8, width), align=1)


def _unrolled(b, x, win, k, width, ch):
    """The max over a k x k window inside the input: constant tap offsets."""
    base = b.add(win["corner"], ch)
    best = None
    for ky in range(k):
        row = b.add(base, b.mul(win["row_bytes"], u.i64(ky)))
        for kx in range(k):
            value = _load(b, x, b.add(row, b.mul(win["c"], u.i64(kx))), width)
            best = value if best is None else u.intrinsic(b, "umax", value.type, best, value)
    return best, win["pix"]


def _clipped(b, x, win, slot, width, ch):
    """The max over the window's taps inside the input (its ranges clipped beforehand)."""
    b.store(ir.Constant(u.vec(I8, width), None), slot)
    with u.counted_loop(b, win["ky"][0], win["ky"][1], 1, "ky") as ky:
        row = b.add(b.mul(win["img"], win["h"]), b.add(win["iy0"], ky))
        with u.counted_loop(b, win["kx"][0], win["kx"][1], 1, "kx") as kx:
            pixel = b.add(b.mul(row, win["w"]), b.add(win["ix0"], kx))
            value = _load(b, x, b.add(b.mul(pixel, win["c"]), ch), width)
            b.store(u.intrinsic(b, "umax", value.type, b.load(slot, typ=value.type), value),
                    slot)
    return b.load(slot, typ=u.vec(I8, width)), win["pix"]


PACK_CHANNELS = (2, 3, 4)     # the channel counts qpack_nhwc_c<C> interleaves
_PACK_PIXELS = 16


def _emit_pack(module: ir.Module, c: int) -> None:
    """qpack_nhwc_c<c>(r_begin, r_end, worker, src, dst, params): rows [r_begin, r_end) of
    a contiguous uint8 [N, c, H, W] value (row r = image r // H, y = r % H) written
    channels-last into dst: pixel (img, y, x) at dst + img * img_stride + y * row_stride
    + x * c; params = (h, w, img_stride, row_stride) as int64. 16 pixels a step: one
    16-byte load per channel plane, interleaved by one shuffle into 16 * c bytes (the
    stem's 3 channels: NumPy's strided copy moves them a byte at a time)."""
    fn, b = u.define(module, f"qpack_nhwc_c{c}", u.VOID, [
        ("r_begin", u.I64), ("r_end", u.I64), ("worker", u.I64), ("src", u.PTR),
        ("dst", u.PTR), ("params", u.PTR)], noalias_ptrs=False)
    r_begin, r_end, _, src, dst, params = fn.args
    h, w, img_stride, row_stride = (
        b.load(b.gep(params, [u.i64(i)], source_etype=u.I64), typ=u.I64) for i in range(4))
    lanes = _PACK_PIXELS
    plane = b.mul(h, w)
    full = b.mul(b.sdiv(w, u.i64(lanes)), u.i64(lanes))
    with u.counted_loop(b, r_begin, r_end, 1, "r") as r:
        img = b.sdiv(r, h)
        y = b.sub(r, b.mul(img, h))
        src_row = b.add(b.mul(b.mul(img, u.i64(c)), plane), b.mul(y, w))
        dst_row = b.add(b.mul(img, img_stride), b.mul(y, row_stride))
        with u.counted_loop(b, u.i64(0), full, lanes, "x") as x:
            parts = [b.load(b.gep(src, [b.add(b.add(src_row, b.mul(u.i64(ch), plane)), x)],
                                  source_etype=I8), typ=u.vec(I8, lanes), align=1)
                     for ch in range(c)]
            b.store(_interleave(b, parts, lanes),
                    b.gep(dst, [b.add(dst_row, b.mul(x, u.i64(c)))], source_etype=I8),
                    align=1)
        with u.counted_loop(b, full, w, 1, "t") as x:
            for ch in range(c):
                value = b.load(b.gep(src, [b.add(b.add(src_row, b.mul(u.i64(ch), plane)), x)],
                                     source_etype=I8), typ=I8)
                at = b.add(dst_row, b.add(b.mul(x, u.i64(c)), u.i64(ch)))
                b.store(value, b.gep(dst, [at], source_etype=I8))
    b.ret_void()


def _interleave(b, parts: list, lanes: int):
    """[p0[0], p1[0], .., p0[1], p1[1], ..]: the planes' bytes pixel by pixel."""
    c = len(parts)
    parts = parts + [ir.Constant(parts[0].type, None)] * (4 - c)     # 4 parts of `lanes`
    low = b.shuffle_vector(parts[0], parts[1], ir.Constant(u.vec(u.I32, 2 * lanes),
                                                           list(range(2 * lanes))))
    high = b.shuffle_vector(parts[2], parts[3], ir.Constant(u.vec(u.I32, 2 * lanes),
                                                            list(range(2 * lanes))))
    order = [ch * lanes + px for px in range(lanes) for ch in range(c)]
    return b.shuffle_vector(low, high, ir.Constant(u.vec(u.I32, lanes * c), order))


# qpad_nhwc's parameter block (int64 words; runtime/lite_int8.py PAD_FIELDS names them)
_PAD_WORDS = 11


def _emit_pad(module: ir.Module) -> None:
    """qpad_nhwc(r_begin, r_end, worker, params): rows [r_begin, r_end) of a convolution's
    padded channels-last input [N, Hp, Wp, C] (uint8, dense; row r = image r // Hp, padded
    row r % Hp): a border row is the zero point throughout; an inside row is `left` bytes
    of the zero point, the source row's `row` bytes (image img's row y at src + img *
    img_stride + y * row_stride, pixels contiguous), `right` bytes of the zero point.
    src = 0: the inside rows' middle bytes are left as they are (another kernel writes
    them: the stem's interleaving pack). params = (src, dst, h, hp, top, row, left, right,
    img_stride, row_stride, zero point) as int64. One memset / memcpy per stretch: the
    same bytes NumPy's slice assignments write, split over threads by rows."""
    fn, b = u.define(module, "qpad_nhwc", u.VOID, [
        ("r_begin", u.I64), ("r_end", u.I64), ("worker", u.I64), ("params", u.PTR)],
        noalias_ptrs=False)
    r_begin, r_end, _, params = fn.args
    src, dst, h, hp, top, row, left, right, img_stride, row_stride, zp = (
        b.load(b.gep(params, [u.i64(i)], source_etype=u.I64), typ=u.I64)
        for i in range(_PAD_WORDS))
    memcpy = module.declare_intrinsic("llvm.memcpy", [u.PTR, u.PTR, u.I64])
    memset = module.declare_intrinsic("llvm.memset", [u.PTR, u.I64])
    no = ir.Constant(u.I1, 0)
    fill = b.trunc(zp, I8)
    pitch = b.add(b.add(left, row), right)
    src_ptr, dst_ptr = b.inttoptr(src, u.PTR), b.inttoptr(dst, u.PTR)
    with u.counted_loop(b, r_begin, r_end, 1, "r") as r:
        img = b.sdiv(r, hp)
        y = b.sub(b.sub(r, b.mul(img, hp)), top)
        out = b.gep(dst_ptr, [b.mul(r, pitch)], source_etype=I8)
        inside = b.and_(b.icmp_signed(">=", y, u.i64(0)), b.icmp_signed("<", y, h))
        with b.if_else(inside) as (then, otherwise):
            with then:
                b.call(memset, [out, fill, left, no])
                with b.if_then(b.icmp_signed("!=", src, u.i64(0))):
                    at = b.add(b.mul(img, img_stride), b.mul(y, row_stride))
                    b.call(memcpy, [b.gep(out, [left], source_etype=I8),
                                    b.gep(src_ptr, [at], source_etype=I8), row, no])
                b.call(memset, [b.gep(out, [b.add(left, row)], source_etype=I8), fill,
                                right, no])
            with otherwise:
                b.call(memset, [out, fill, pitch, no])
    b.ret_void()


def pad_module() -> ir.Module:
    """The LLVM module with `qpad_nhwc` (its own: its memcpy / memset calls resolve to
    the C library's, which the JIT links; module() stays free of external symbols for
    the artifacts that link it)."""
    mod = ir.Module(name="ember_qpad")
    _emit_pad(mod)
    return mod


def module() -> ir.Module:
    """The LLVM module with `qadd`, `qmaxpool`, `qquantize`, `qdequantize_u8` / `_i8`,
    `relu_f32`, `qgap_u8` and `qpack_nhwc_c<C>` (also
    what ember.aot links)."""
    mod = ir.Module(name="ember_qelementwise")
    _emit(mod)
    _emit_maxpool(mod)
    _emit_quantize(mod)
    _emit_dequantize(mod, signed=False)
    _emit_dequantize(mod, signed=True)
    _emit_relu(mod)
    _emit_global_avg_pool(mod)
    for c in PACK_CHANNELS:
        _emit_pack(mod, c)
    return mod


@functools.lru_cache(maxsize=1)
def _kernel():
    # the host's best vector ISA (16-lane vectors split into two on AVX2)
    isa = Isa.AVX512 if host_isa() is Isa.AVX512 else Isa.AVX2
    lib = compile_built(module, target=target_for(isa))
    # the native hand-off, as the GEMMs install it: a converted model whose convolutions
    # all chose AMX tiles (chosen on disk, never timed against VNNI) compiled no kernel
    # that installed it, and no float GEMM ran in a process that loaded it, so every
    # two-thread kernel went through the workers' queues (and nothing could be deferred)
    spin.install()
    return lib, lib.function("qadd", None, *([ctypes.c_int64] * 3 + [ctypes.c_void_p] * 3 +
                                              [ctypes.c_int64, ctypes.c_void_p]))


@functools.lru_cache(maxsize=1)
def _maxpool_kernel():
    lib, _ = _kernel()
    return lib.function("qmaxpool", None, *([ctypes.c_int64] * 3 + [ctypes.c_void_p] * 3))


@functools.lru_cache(maxsize=1)
def _quantize_kernel():
    lib, _ = _kernel()
    return lib.function("qquantize", None, *([ctypes.c_int64] * 3 + [ctypes.c_void_p] * 2 +
                                             [ctypes.c_int64, ctypes.c_void_p]))


@functools.lru_cache(maxsize=1)
def _relu_kernel():
    lib, _ = _kernel()
    return lib.function("relu_f32", None, *([ctypes.c_int64] * 3 + [ctypes.c_void_p] * 2 +
                                            [ctypes.c_int64]))


@functools.lru_cache(maxsize=None)
def _dequantize_kernel(signed: bool):
    lib, _ = _kernel()
    return lib.function(f"qdequantize_{'i8' if signed else 'u8'}", None,
                        *([ctypes.c_int64] * 3 + [ctypes.c_void_p] * 2 +
                          [ctypes.c_int64, ctypes.c_void_p]))


@functools.lru_cache(maxsize=1)
def _gap_kernel():
    lib, _ = _kernel()
    return lib.function("qgap_u8", None, *([ctypes.c_int64] * 3 + [ctypes.c_void_p] * 4))


def global_avg_pool_nhwc(x: np.ndarray, zero_point: int,
                         out: np.ndarray | None = None) -> np.ndarray | None:
    """adaptive_avg_pool2d to 1 x 1 of a per-tensor quint8 value given as its channels-last
    view [N, H, W, C] (C-contiguous), requantized with its own qparams: [N, C] uint8, the
    integers lite_int8.adaptive_average_quantized gives, natively (NumPy's eight passes
    and their calls took 60-140 us after a convolution had evicted their code and data
    from the caches). Images split over the pool from GAP_PARALLEL_MIN_BYTES: hot, a
    global pool is ~10 us of work, but right after the convolution that wrote its input
    (half of it from the other core's cache) resnet18's 8 x 512 x 7 x 7 one took ~60 us
    on one thread. None where it does not apply (another dtype or layout, 2**16 pixels
    or more). out: a C-contiguous uint8 [N, C] to write (returned), else a new one."""
    n, h, w, c = x.shape
    if x.dtype != np.uint8 or not x.flags.c_contiguous or h * w >= 1 << 16 or not x.size:
        return None
    if out is not None and (out.shape != (n, c) or out.dtype != np.uint8 or
                            not out.flags.c_contiguous):
        raise ValueError(f"global_avg_pool_nhwc: out must be a contiguous uint8 {(n, c)}, "
                         f"got {out.dtype} {out.shape}")
    size = h * w
    multiplier = np.float32(1) / np.float32(size)       # adaptive_average_quantized's
    inv = np.float32(1) / (np.float32(1) / multiplier)
    ip = (ctypes.c_int64 * 3)(size, c, size * int(zero_point))
    fp = (ctypes.c_double * 4)(float(inv), float(np.float32(zero_point)), 0.0, 255.0)
    out = np.empty((n, c), np.uint8) if out is None else out
    args = (lite.address(x), lite.address(out), ctypes.addressof(ip), ctypes.addressof(fp))
    if x.nbytes < GAP_PARALLEL_MIN_BYTES or n < 2:
        default_pool().join()       # a deferred kernel writing x (ThreadPool.defer)
        _gap_kernel()(0, n, 0, *args)
    else:
        default_pool().parallel_for(_gap_kernel(), n, *args)
    return out


# a global average pool reading fewer bytes runs on the calling thread
GAP_PARALLEL_MIN_BYTES = 1 << 17


@functools.lru_cache(maxsize=1)
def _pad_kernel():
    isa = Isa.AVX512 if host_isa() is Isa.AVX512 else Isa.AVX2
    lib = compile_built(pad_module, target=target_for(isa))
    return lib.function("qpad_nhwc", None, *([ctypes.c_int64] * 3 + [ctypes.c_void_p]))


def pad_nhwc(src: np.ndarray | None, dst: np.ndarray, padding, zero_point: int) -> None:
    """dst (a dense uint8 [N, Hp, Wp, C]) = src ([N, H, W, C], pixels contiguous) padded
    spatially by `padding` with zero_point; src None: the border only."""
    lite.pad_nhwc_run(_pad_kernel(), default_pool(), src, dst, padding, zero_point)


@functools.lru_cache(maxsize=None)
def _pack_kernel(c: int):
    lib, _ = _kernel()
    return lib.function(f"qpack_nhwc_c{c}", None, *([ctypes.c_int64] * 3 +
                                                      [ctypes.c_void_p] * 3))


def pack_nhwc(x: np.ndarray, dst: np.ndarray) -> None:
    """dst[...] = a contiguous uint8 [N, C, H, W] x channels-last (dst: an [N, H, W, C]
    view, rows and images at any stride, pixels contiguous; C in PACK_CHANNELS)."""
    lite.pack_nhwc_run(_pack_kernel(x.shape[1]), default_pool(), x, dst)


def quantize(x: np.ndarray, scale: float, zero_point: int, np_dtype) -> np.ndarray:
    """quantize_per_tensor of a contiguous float32 array to uint8/int8, natively (the
    reference's steps: ir/quantized.py quantize_array)."""
    return lite.quantize_run(_quantize_kernel(), default_pool(), x, scale, zero_point, np_dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """dequantize of a contiguous uint8/int8 array to float32, natively (the reference's
    steps: ir/quantized.py dequantize_array; |zero_point| < 2**23)."""
    return lite.dequantize_run(_dequantize_kernel(q.dtype == np.int8), default_pool(), q,
                               scale, zero_point)


def relu_f32(x: np.ndarray) -> np.ndarray:
    """relu of a contiguous float32 array natively: np.maximum(x, 0)'s values bit for bit
    (NaN payloads kept, -0.0 to +0.0), into a new array of x's shape."""
    return lite.relu_run(_relu_kernel(), default_pool(), x)


def max_pool2d_nhwc(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """uint8 max pooling of channels-last [N, H, W, C] (C a multiple of 16) natively
    (split over the pool: rows claimed, lite.qmaxpool_claimed_run)."""
    return lite.qmaxpool_run(_maxpool_kernel(), default_pool(), x, kernel, stride, padding,
                             claimed=_maxpool_claimed_kernel)


@functools.lru_cache(maxsize=1)
def _maxpool_claimed_kernel():
    isa = Isa.AVX512 if host_isa() is Isa.AVX512 else Isa.AVX2
    lib = compile_built(pool_claims_module, target=target_for(isa))
    return lib.function("qmaxpool_claimed", None, *([ctypes.c_int64] * 3 +
                                                    [ctypes.c_void_p] * 3))


def qadd(a: np.ndarray, b: np.ndarray, a_qparams, b_qparams, scale: float, zero_point: int,
         relu: bool) -> np.ndarray:
    """uint8 a + b requantized to (scale, zero_point): flat buffers of one layout, same size."""
    _, fn = _kernel()
    return lite.qadd_run(fn, default_pool(), a, b, a_qparams, b_qparams, scale, zero_point, relu)
