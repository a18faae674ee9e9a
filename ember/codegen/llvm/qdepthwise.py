"""Depthwise int8 convolution (groups == in channels == out channels) over channels-last
uint8, with the int8 GEMM's requantizing epilogue (qgemm.py `_epilogue`).

A depthwise layer does kh * kw multiply-adds per output value and reuses no input across
channels, so it is memory-bound: an implicit GEMM per channel would waste its dot-product
width on a k of 9. This kernel walks the output pixel by pixel, 32 channels per step:

    acc[pix, c] = sum over taps t of  x[pix's window + tap_offs[t], c] * w[t, c]   (int32)

the 32 input bytes zero-extended to int16 and multiplied by the tap's int16 weights
(u8 * s8 fits int16: |255 * -128| < 2**15, so the product is exact), sign-extended to two
int32 x 16 accumulators. The input is padded spatially with its zero point (as the GEMM's
is) and the zero point is taken off in the epilogue as `x_zp * sum_t w[t, c]`, so
`acc - corr` is the centered sum exactly and the requantization is the GEMM's, operation
for operation: results equal the NumPy reference bit for bit.

The padding is read in the kernel, not copied: the input is the unpadded channels-last
value (the previous convolution's result, as it is). Output pixels whose window lies
inside the image (rows [oy_lo, oy_hi), columns [ox_lo, ox_hi)) read their taps at fixed
offsets from the window's origin; the others (the border) check each tap against the
image and read a tap outside it from `zp_row`, a row of the zero point: the bytes the
padded copy would have had there, so the sums are the same. A host that pads (an
artifact packaged before this, or C not a multiple of 32: the last block reads past the
input's end) passes the padded input with no padding left (every pixel inside).

Channels are read in blocks of 32 from each pixel: where C is not a multiple of 32 the
last block reads into the next pixel's channels (the caller leaves readable bytes past
the input's end) against zero weights, and its stores are masked to the C columns.
Threads claim the output rows (image, output row) a few at a time from a shared counter
(lite_int8.QDepthwiseCall sets the chunk), as the GEMM claims its tiles.
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir

from ...runtime import lite_int8 as lite
from ...runtime.threads import default_pool
from . import irutil as u
from . import qgemm as Q
from . import spin
from .jit import compile_built
from .target import Isa, host_isa, supported_isas, target_for

I8, I16 = ir.IntType(8), ir.IntType(16)
BLOCK = lite.DW_BLOCK               # channels per step (two 16-lane int32 accumulators)
# the epilogue's view of a step: one row (pixel), two vectors of 16 columns (channels)
TILE = Q.Config("depthwise", Isa.AVX512, 16, 1, BLOCK // 16)
TILE_AVX2 = Q.Config("depthwise_avx2", Isa.AVX2, 8, 1, BLOCK // 8)
FIELDS = lite.QDW_FIELDS
_F = {name: i for i, name in enumerate(FIELDS)}
_PTRS = {"x", "tap_offs", "weights", "out", "corr", "mult", "bias", "qparams", "tap_dy",
         "tap_dx", "zp_row"}


def available() -> bool:
    return host_isa() in (Isa.AVX512, Isa.AVX2) and Isa.AVX2 in supported_isas()


def _pmaddwd(b, x16, w16, lanes: int):
    """int16 pairs multiplied and summed to int32 (vpmaddwd: exact for these operands)."""
    words, dwords = u.vec(I16, 2 * lanes), u.vec(u.I32, lanes)
    name = "llvm.x86.avx512.pmaddw.d.512" if lanes == 16 else "llvm.x86.avx2.pmadd.wd"
    fn = b.module.globals.get(name) or ir.Function(
        b.module, ir.FunctionType(dwords, [words, words]), name=name)
    return b.call(fn, [x16, w16])


def _index(tap):
    """A tap index as an IR value (the unrolled steps give Python ints)."""
    return u.i64(tap) if isinstance(tap, int) else tap


def _inside_taps(b, p, base, offsets=None):
    """address(tap) of a pixel whose window is inside the image: the tap's fixed offset
    from the window's origin `base` (bytes into x, the channel block's included);
    offsets: the taps' offsets already loaded (a constant tap index picks one)."""
    def address(tap):
        off = offsets[tap] if offsets is not None else \
            b.load(b.gep(p["tap_offs"], [_index(tap)], source_etype=u.I64), typ=u.I64)
        return b.gep(p["x"], [b.add(base, off)], source_etype=I8)
    return address


def _border_taps(b, p, img_base, iy0, ix0, c0):
    """address(tap) of a border pixel (window origin at row iy0, column ix0 of the image,
    maybe outside it): the tap's bytes where it is inside the image, else the zero
    point's row (what the padded copy holds there)."""
    def address(tap):
        tap = _index(tap)
        iy = b.add(iy0, b.load(b.gep(p["tap_dy"], [tap], source_etype=u.I64), typ=u.I64))
        ix = b.add(ix0, b.load(b.gep(p["tap_dx"], [tap], source_etype=u.I64), typ=u.I64))
        inside = b.and_(b.icmp_unsigned("<", iy, p["h"]), b.icmp_unsigned("<", ix, p["w"]))
        off = b.add(b.add(img_base, b.mul(iy, p["pitch_row"])),
                    b.add(b.mul(ix, p["pitch_col"]), c0))
        return b.select(inside, b.gep(p["x"], [off], source_etype=I8),
                        b.gep(p["zp_row"], [c0], source_etype=I8))
    return address


def _weight_pairs(b, p, j, c0, lanes: int) -> list:
    """Tap pair j's int16 weight vectors (BLOCK // lanes of them) for the channel block
    from c0."""
    pairs_t = u.vec(I16, 2 * lanes)
    wbase = b.mul(b.add(b.mul(j, p["w_stride"]), c0), u.i64(2))
    return [b.load(b.gep(p["weights"], [b.add(wbase, u.i64(2 * lanes * v))],
                         source_etype=I16), typ=pairs_t, align=2)
            for v in range(BLOCK // lanes)]


def _taps(b, p, address, c0, lanes: int, weights=None):
    """The int32 accumulators (BLOCK // lanes vectors) of one pixel's 32 channels from c0,
    tap t's bytes at address(t): two taps a step, their input bytes interleaved channel
    by channel and widened to int16 pairs against the weights' (tap 2j, tap 2j + 1)
    pairs, so one vpmaddwd does two taps of `lanes` channels. weights: every pair's
    weight vectors loaded already (_weight_pairs, one list a pair): the steps are then
    unrolled, tap indices constants (a 3x3 layer's five pairs, the loads and the loop
    control out of the pixel loop); else a loop over the pairs loading them."""
    bytes_t = u.vec(I8, BLOCK)
    pairs_t = u.vec(I16, 2 * lanes)
    interleave = [v for c in range(BLOCK) for v in (c, BLOCK + c)]

    def step(j, acc, w_pair=None):
        taps = (2 * j, 2 * j + 1) if isinstance(j, int) else \
            (b.add(j, j), b.add(b.add(j, j), u.i64(1)))
        xs = [b.load(address(t), typ=bytes_t, align=1) for t in taps]
        both = b.shuffle_vector(xs[0], xs[1], ir.Constant(u.vec(u.I32, 2 * BLOCK),
                                                          interleave))
        w_pair = w_pair or _weight_pairs(b, p, j, c0, lanes)
        out = []
        for v, (a, w) in enumerate(zip(acc, w_pair)):
            part = b.shuffle_vector(both, both, ir.Constant(
                u.vec(u.I32, 2 * lanes), list(range(2 * lanes * v, 2 * lanes * (v + 1)))))
            out.append(b.add(a, _pmaddwd(b, b.zext(part, pairs_t), w, lanes)))
        return out
    zero = ir.Constant(u.vec(u.I32, lanes), None)
    if weights is not None:
        acc = [zero] * (BLOCK // lanes)
        for j, w_pair in enumerate(weights):
            acc = step(j, acc, w_pair)
        return acc
    n_pairs = b.sdiv(b.add(p["taps"], u.i64(1)), u.i64(2))
    return u.carried_loop(b, u.i64(0), n_pairs, [zero] * (BLOCK // lanes), step, "tap")


# tap counts whose pixels take unrolled steps with their weights and inside offsets loaded
# once per channel block and row (_taps' weights): 3x3, MobileNet's depthwise kernels
UNROLLED_TAPS = (9,)


def _claims(b, params, p, r_begin, r_end):
    """qgemm's claim_loop over output rows (lite_int8.QDW_FIELDS: the parameter block's
    counter word, up to `rows`)."""
    shared = b.gep(params, [u.i64(_F["counter"])], source_etype=u.I64)
    return Q.claim_loop(b, shared, p["chunk"], r_begin, r_end, p["rows"])


def _emit(module: ir.Module, lanes: int) -> None:
    """qdepthwise_u8(r_begin, r_end, worker, params): output rows (image, oy) [r_begin,
    r_end) or claimed (_claims), every channel block and output column of each; int32
    vectors of `lanes`."""
    fn, b = u.define(module, "qdepthwise_u8", u.VOID, [
        ("r_begin", u.I64), ("r_end", u.I64), ("worker", u.I64), ("params", u.PTR)])
    r_begin, r_end, _, params = fn.args
    p = {}
    for f in FIELDS:
        if f == "counter":
            continue
        value = b.load(b.gep(params, [u.i64(_F[f])], source_etype=u.I64), typ=u.I64)
        p[f] = b.inttoptr(value, u.PTR) if f in _PTRS else value
    tile = TILE if lanes == 16 else TILE_AVX2
    qparams = Q.epilogue_qparams(b, p, lanes)
    begin, end, claim_head, claims_done = _claims(b, params, p, r_begin, r_end)
    with u.counted_loop(b, begin, end, 1, "row") as row:
        img = b.sdiv(row, p["oh"])
        oy = b.sub(row, b.mul(img, p["oh"]))
        img_base = b.mul(img, p["img_stride"])
        # the window origin's byte offset (negative at a padded border: read only
        # through the inside path, where it is not)
        row_base = b.add(b.add(img_base, b.mul(oy, p["row_stride"])), p["origin"])
        row_inside = b.and_(b.icmp_signed(">=", oy, p["oy_lo"]),
                            b.icmp_signed("<", oy, p["oy_hi"]))
        iy0 = b.sub(b.mul(oy, p["stride_h"]), p["pad_top"])
        with u.counted_loop(b, u.i64(0), p["c_blocks"], 1, "cb") as cb:
            c0 = b.mul(cb, u.i64(BLOCK))
            columns = Q.epilogue_columns(b, tile, p, cb)

            def pixels(weights=None, offsets=None):
                with u.counted_loop(b, u.i64(0), p["ow"], 1, "ox") as ox:
                    inside = b.and_(row_inside, b.and_(b.icmp_signed(">=", ox, p["ox_lo"]),
                                                       b.icmp_signed("<", ox, p["ox_hi"])))
                    inner, border, merge = (fn.append_basic_block(n) for n in
                                            ("inner", "border", "pixel"))
                    b.cbranch(inside, inner, border)
                    b.position_at_end(inner)
                    base = b.add(b.add(row_base, b.mul(ox, p["col_stride"])), c0)
                    acc_in = _taps(b, p, _inside_taps(b, p, base, offsets), c0, lanes,
                                   weights)
                    inner_end = b.block
                    b.branch(merge)
                    b.position_at_end(border)
                    ix0 = b.sub(b.mul(ox, p["stride_w"]), p["pad_left"])
                    acc_border = _taps(b, p, _border_taps(b, p, img_base, iy0, ix0, c0),
                                       c0, lanes, weights)
                    border_end = b.block
                    b.branch(merge)
                    b.position_at_end(merge)
                    acc = []
                    for v_in, v_border in zip(acc_in, acc_border):
                        phi = b.phi(v_in.type)
                        phi.add_incoming(v_in, inner_end)
                        phi.add_incoming(v_border, border_end)
                        acc.append(phi)
                    Q._epilogue(b, tile, p, acc, b.add(b.mul(row, p["ow"]), ox), cb, True,
                                qparams, columns)
            unrolled = b.icmp_signed("==", p["taps"], u.i64(UNROLLED_TAPS[0]))
            with b.if_else(unrolled) as (fixed, general):
                with fixed:     # the taps' offsets and weights loaded once for the row
                    n_pairs = (UNROLLED_TAPS[0] + 1) // 2
                    offsets = [b.load(b.gep(p["tap_offs"], [u.i64(t)], source_etype=u.I64),
                                      typ=u.I64) for t in range(2 * n_pairs)]
                    pixels([_weight_pairs(b, p, u.i64(j), c0, lanes) for j in range(n_pairs)],
                           offsets)
                with general:
                    pixels()
    b.branch(claim_head)
    b.position_at_end(claims_done)
    b.ret_void()


def module(isa: Isa) -> ir.Module:
    """The LLVM module of the depthwise kernel (qdepthwise_u8) for AVX-512 or AVX2."""
    mod = ir.Module(name="ember_qdepthwise")
    _emit(mod, 16 if isa is Isa.AVX512 else 8)
    return mod


@functools.lru_cache(maxsize=1)
def _kernel():
    isa = Isa.AVX512 if host_isa() is Isa.AVX512 else Isa.AVX2
    lib = compile_built(module, isa, target=target_for(isa))
    spin.install()
    return lib, lib.function("qdepthwise_u8", None, *([ctypes.c_int64] * 3 + [ctypes.c_void_p]))


class PackedDepthwise:
    """Depthwise weights [C, 1, KH, KW] int8 as the kernel reads them: [tap pairs, C padded
    to a multiple of 32, 2] int16 (zero past C and in an odd count's last pair), with the
    per-channel tap sums (the zero-point correction)."""

    def __init__(self, w_q: np.ndarray):
        c, _, kh, kw = w_q.shape
        self.n, self.kernel = c, (kh, kw)
        self.c_pad = -(-c // BLOCK) * BLOCK
        n_pairs = -(-kh * kw // 2)
        taps = np.zeros((2 * n_pairs, self.c_pad), np.int16)     # an odd count: a zero tap
        taps[:kh * kw, :c] = np.asarray(w_q, np.int8).reshape(c, kh * kw).T
        # [pairs, C_pad, 2]: tap 2j and 2j + 1 of each channel side by side
        self.data = lite.aligned_copy(taps.reshape(n_pairs, 2, self.c_pad).transpose(0, 2, 1))
        self.row_sums = np.asarray(w_q, np.int64).reshape(c, -1).sum(axis=1)

    epilogue_vectors = Q.PackedWeight.epilogue_vectors
    column_vector = Q.PackedWeight.column_vector

    @property
    def n_pad(self) -> int:
        return self.c_pad


def prepare(x_nhwc_shape, packed: PackedDepthwise, stride, dilation, out_hw, vectors,
            qparams, padding=(0, 0), zero_point: int = 0):
    """The kernel's parameter block for one input geometry; the returned function(buffer)
    runs it on a channels-last input of that shape (lite.QDepthwiseCall): unpadded, the
    kernel reading `padding` as zero_point, or padded by the caller (padding (0, 0))."""
    call = lite.QDepthwiseCall(x_nhwc_shape, packed.data, packed.kernel, stride, dilation,
                               out_hw, *vectors, qparams, padding=padding,
                               zero_point=zero_point)
    fn = _kernel()[1]
    return lambda buffer, threads=None: call(fn, default_pool(), buffer, threads)
