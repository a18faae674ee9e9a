"""The row-pair input of a stride-2 convolution over few channels (resnet's stem: 3
channels, 7x7, stride 2): its padded image with each two consecutive rows interleaved
pixel by pixel, so that AMX tiles read its k steps in place (lite_int8.row_pairs_applies).

    dst[img, R, X, r, ch] = padded image row 2R + r, padded column X, channel ch

A pair-row holds Wp pixels of 2 * C bytes: for C = 3 a 7-wide window over two kernel rows
is 7 * 6 = 42 contiguous bytes, so k step g of output pixel (oy, ox) (kernel rows 2g and
2g + 1) is the 64 bytes at pair-row oy + g, pixel ox * stride: no A row is copied (the
plain channels-last layout's 21-byte kernel-row runs packed every A row at ~12 ns a row).
Rows and columns outside the image hold the zero point (the quantized 0.0).

Two sources, one kernel each: `qpairs_u8_c<C>` from the quantized uint8 [N, C, H, W]
image, and `qpairs_f32_c<C>` from the float32 one, quantized on the way (quantize_per_tensor's
steps, qelementwise's `qquantize` operation for operation: the same integers), which makes
the model's input quantize and the stem's input copy one pass over the float image.
"""
from __future__ import annotations

import ctypes
import functools

from llvmlite import ir

from . import irutil as u
from . import spin
from .jit import compile_built
from .target import Isa, host_isa, supported_isas, target_for

I8 = ir.IntType(8)
LANES = 16          # pixels a step
CHANNELS = (1, 2, 3, 4)     # the channel counts it is compiled for (2 * C * 7 <= 64)


def available() -> bool:
    return host_isa() is Isa.AVX512 and Isa.AVX512 in supported_isas()


def _quantized(b, x, fp, lanes: int):
    """quantize_per_tensor of float32 lanes to uint8 (qelementwise._quantize_body's steps:
    the float32 fma with the float64 fallback near halves, then the clamp)."""
    inv, zp = (u.splat(b, q, lanes) for q in fp[:2])
    lo, hi = fp[2:]
    vf, vd, vi = u.vec(u.F32, lanes), u.vec(u.F64, lanes), u.vec(u.I32, lanes)
    if lanes > 1:
        from .qgemm import round_requantized    # (qgemm imports qelementwise)
        q = round_requantized(b, x, inv, zp, lanes)
    else:
        q = u.intrinsic(b, "roundeven", vf, b.fptrunc(u.fma(b, b.fpext(x, vd), inv, zp), vf))
    q = u.clamp(b, q, u.splat(b, b.fptrunc(lo, u.F32), lanes),
                u.splat(b, b.fptrunc(hi, u.F32), lanes))
    return b.trunc(b.fptosi(q, vi), u.vec(I8, lanes))


def _interleave(b, parts: list, lanes: int):
    """[p0[0], p1[0], .., p0[1], p1[1], ..]: the parts' bytes position by position."""
    count = len(parts)
    vecs = list(parts)
    while len(vecs) & (len(vecs) - 1):      # a power of two, for the halving concatenations
        vecs.append(ir.Constant(parts[0].type, None))
    width = lanes
    while len(vecs) > 1:
        mask = ir.Constant(u.vec(u.I32, 2 * width), list(range(2 * width)))
        vecs = [b.shuffle_vector(vecs[i], vecs[i + 1], mask) for i in range(0, len(vecs), 2)]
        width *= 2
    order = [part * lanes + px for px in range(lanes) for part in range(count)]
    if count == 1:
        return vecs[0]
    return b.shuffle_vector(vecs[0], ir.Constant(vecs[0].type, None),
                            ir.Constant(u.vec(u.I32, lanes * count), order))


def _emit(module: ir.Module, c: int, float_src: bool) -> None:
    """qpairs_<u8|f32>_c<c>(r_begin, r_end, worker, src, dst, iparams, fparams): pair-rows
    [r_begin, r_end) of dst (row r: image r // hp2, pair-row r % hp2), from the contiguous
    [N, c, H, W] src. iparams = (h, w, hp2, wp, top, left, zero point) as int64 (top,
    left: the padding); fparams = quantize_run's (inv, zp, lo, hi) as float64 (f32 only).
    A row outside the image is read from a row inside it and replaced by the zero point
    (a select: no branch per row)."""
    fn, b = u.define(module, f"qpairs_{'f32' if float_src else 'u8'}_c{c}", u.VOID, [
        ("r_begin", u.I64), ("r_end", u.I64), ("worker", u.I64), ("src", u.PTR),
        ("dst", u.PTR), ("iparams", u.PTR), ("fparams", u.PTR)], noalias_ptrs=False)
    r_begin, r_end, _, src, dst, ip, fpp = fn.args
    h, w, hp2, wp, top, left, zp = (
        b.load(b.gep(ip, [u.i64(i)], source_etype=u.I64), typ=u.I64) for i in range(7))
    fp = [b.load(b.gep(fpp, [u.i64(i)], source_etype=u.F64), typ=u.F64) for i in range(4)] \
        if float_src else None
    elem = u.F32 if float_src else I8
    zp8 = b.trunc(zp, I8)
    pix = 2 * c
    plane = b.mul(h, w)
    full = b.mul(b.sdiv(w, u.i64(LANES)), u.i64(LANES))
    memset = module.declare_intrinsic("llvm.memset", [u.PTR, u.I64])
    no = ir.Constant(u.I1, 0)
    pitch = b.mul(wp, u.i64(pix))
    with u.counted_loop(b, r_begin, r_end, 1, "r") as r:
        img = b.sdiv(r, hp2)
        pair = b.sub(r, b.mul(img, hp2))
        out = b.gep(dst, [b.mul(r, pitch)], source_etype=I8)
        # the border columns (and the right slack up to the pitch)
        right = b.mul(b.add(left, w), u.i64(pix))
        b.call(memset, [out, zp8, b.mul(left, u.i64(pix)), no])
        b.call(memset, [b.gep(out, [right], source_etype=I8), zp8, b.sub(pitch, right), no])
        rows, valid = [], []
        for half in (0, 1):
            y = b.sub(b.add(b.mul(pair, u.i64(2)), u.i64(half)), top)
            inside = b.and_(b.icmp_signed(">=", y, u.i64(0)), b.icmp_signed("<", y, h))
            y = u.imin(b, b.select(b.icmp_signed("<", y, u.i64(0)), u.i64(0), y),
                       b.sub(h, u.i64(1)))
            rows.append(b.add(b.mul(b.mul(img, u.i64(c)), plane), b.mul(y, w)))
            valid.append(inside)
        body = b.gep(out, [b.mul(left, u.i64(pix))], source_etype=I8)

        def step(x, lanes):
            parts = []
            for half in (0, 1):
                for ch in range(c):
                    at = b.add(b.add(rows[half], b.mul(u.i64(ch), plane)), x)
                    value = b.load(b.gep(src, [at], source_etype=elem),
                                   typ=u.vec(elem, lanes), align=4 if float_src else 1)
                    if float_src:
                        value = _quantized(b, value, fp, lanes)
                    parts.append(b.select(valid[half], value, u.splat(b, zp8, lanes)))
            b.store(_interleave(b, parts, lanes),
                    b.gep(body, [b.mul(x, u.i64(pix))], source_etype=I8), align=1)
        with u.counted_loop(b, u.i64(0), full, LANES, "x") as x:
            step(x, LANES)
        with u.counted_loop(b, full, w, 1, "t") as x:
            step(x, 1)
    b.ret_void()


def module() -> ir.Module:
    """The LLVM module with qpairs_u8_c<C> and qpairs_f32_c<C> (a module of its own: its
    memset calls resolve to the C library's, which the JIT links)."""
    mod = ir.Module(name="ember_qrow_pairs")
    for c in CHANNELS:
        _emit(mod, c, False)
        _emit(mod, c, True)
    return mod


@functools.lru_cache(maxsize=1)
def _library():
    lib = compile_built(module, target=target_for(Isa.AVX512))
    spin.install()      # the native hand-off (qelementwise._kernel's reasons)
    return lib


@functools.lru_cache(maxsize=None)
def kernel(c: int, float_src: bool):
    return _library().function(f"qpairs_{'f32' if float_src else 'u8'}_c{c}", None,
                               *([ctypes.c_int64] * 3 + [ctypes.c_void_p] * 4))
