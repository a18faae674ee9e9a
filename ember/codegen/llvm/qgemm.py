"""int8 GEMM and implicit-GEMM convolution with the requantization fused in the epilogue.

    acc[m, n] = sum_k A[m, k] (uint8) * B[n, k] (int8)          (exact int32)

Two instruction sequences compute the 4-byte dot products, chosen by `Config`:
- AVX-512 VNNI: `vpdpbusd` (llvm.x86.avx512.vpdpbusd.512) multiplies 4 unsigned bytes of
  A by 4 signed bytes of B in each of 16 int32 lanes and adds the four products to the
  lane, without saturation; a 6 x 64 int32 tile lives in 24 zmm accumulators.
- AVX2: `vpmaddubsw` (u8 x s8 pairs summed to int16, saturating) then `vpmaddwd` against
  ones (int16 pairs to int32) and an add; a 4 x 16 tile in 8 ymm accumulators. The int16
  pair sum cannot saturate when every A byte is at most 127 (|2 * 127 * 128| < 2**15),
  which the caller checks (`exact_on`); then both paths give the same integers.

A is read through a gather: row m's group of 4 k bytes number kk is at

    a + row_base(m) + offs[kk],  row_base(m) = img * img_stride + oy * row_stride + ox * col_stride

with (img, oy, ox) = divmod of m over the output image (ohw pixels, ow per row). A linear
layer is the case ohw = ow = 1 (rows lda apart, offs[kk] = 4 * kk); a convolution reads a
channels-last (NHWC) uint8 input, spatially padded with its zero point and with channels
padded to a multiple of 4, so the k order is (kh, kw, c) and offs holds each tap's offset:
no im2col copy. Rows past the last (a partial 6-row tile) re-read the last row and write
into the output's padding rows.

B is packed once per weight (`PackedWeight`): for each block of NR output columns, for each
group of 4 k, NR columns x 4 bytes, so one k step loads NR * 4 contiguous bytes.

The epilogue is the NumPy reference's requantization (ir/ops/quantized.py `requantize`,
ir/quantized.py `requant_columns`: torch.ao's fbgemm arithmetic) operation for operation,
so results equal the reference, and torch.ao's quantized Linear, bit for bit:

    sum  = float32(acc - x_zp * colsum(B)[n])
    u8 output:  q = roundeven(fma(bias_term[n], factor, sum) * mult[n]) + zp, clamped to
                [lo, hi] (lo = zero_point when relu); mult = x_scale * w_scale / scale,
                bias_term = bias / (x_scale * w_scale) with factor 1 for per-channel
                weights, the bias itself with factor = 1 / (x_scale * w_scale) (qparams[0])
                for per-tensor ones; every step one float32 operation
    f32 output: clamp(fma(sum, mult[n], bias[n]), lo, hi) (lo = 0 when relu; the dynamic
                linear's float result, mult = x_scale * w_scale; one rounding, as fbgemm)

Weights must have zero points 0 (symmetric, as every default weight observer gives); the
caller takes the reference otherwise. Work is split across threads by (row tile, column
block) pairs, so a 64-channel convolution still uses every thread.
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from ...runtime import lite_int8 as lite
from ...runtime.threads import default_pool
from . import irutil as u
from . import qelementwise as QE
from . import spin
from .jit import compile_built
from .target import Isa, host_features, host_isa, supported_isas, target_for

I8 = ir.IntType(8)
I16 = ir.IntType(16)


@dataclass(frozen=True)
class Config:
    """One int8 kernel shape: the ISA, int32 lanes per vector, the MR x (NV * lanes) tile."""
    name: str
    isa: Isa
    lanes: int
    mr: int
    nv: int
    kq_align: int = 1       # packed k groups padded to a multiple of this (AMX tiles: 16)

    @property
    def nr(self) -> int:
        return self.nv * self.lanes

    @property
    def vnni(self) -> bool:
        """vpdpbusd on zmm (else AVX2's vpmaddubsw + vpmaddwd)."""
        return self.isa is Isa.AVX512


VNNI = Config("vnni", Isa.AVX512, 16, 6, 4)
AVX2 = Config("avx2", Isa.AVX2, 8, 4, 2)
# narrow tiles for GEMMs of at most 32 / 16 output columns (rows such that the
# accumulators and broadcast rows fit the 32 zmm registers without spills) (small convolutions): the wide
# tile would compute, requantize and store 2-4x the columns the layer has
VNNI_N32 = Config("vnni_n32", Isa.AVX512, 16, 8, 2)
VNNI_N16 = Config("vnni_n16", Isa.AVX512, 16, 12, 1)

# the int64 parameter block the kernels read (pointers as addresses)
FIELDS = lite.QGEMM_FIELDS
_F = {name: i for i, name in enumerate(FIELDS)}


def has_vnni() -> bool:
    feats = host_features()
    return bool(feats.get("avx512vnni")) and bool(feats.get("avx512bw"))


def active_config() -> Config | None:
    """The kernel this process uses: VNNI where the CPU has it (and EMBER_ISA does not force
    AVX2), else AVX2 where available, else None (the NumPy references run)."""
    isa = host_isa()
    if isa is Isa.AVX512 and has_vnni():
        return VNNI
    if Isa.AVX2 in supported_isas() and isa in (Isa.AVX512, Isa.AVX2):
        return AVX2
    return None


def tile_for(cfg: Config, n: int) -> Config:
    """The VNNI tile for a GEMM of n output columns: narrower where n fits in fewer
    vectors, or where the wide tile would pad n further (96 or 144 columns: 128 and 192
    computed, against 96 and 160 by 32-column blocks, which measured faster on every such
    shape, small k or large). The results are the same: integer sums are exact, the
    epilogue per element."""
    if cfg is not VNNI:
        return cfg
    if n <= 16:
        return VNNI_N16
    if n <= 32 or -(-n // VNNI_N32.nr) * VNNI_N32.nr < -(-n // VNNI.nr) * VNNI.nr:
        return VNNI_N32
    return VNNI


def exact_on(cfg: Config, a_max: int) -> bool:
    """Whether `cfg` computes exact dot products on A bytes up to `a_max` (AVX2's int16
    pair sums saturate above 127)."""
    return cfg.vnni or a_max <= 127


# --- IR ------------------------------------------------------------------------------------
def _dot(b: ir.IRBuilder, cfg: Config, acc, a_bcast, w):
    """acc (int32 x lanes) += 4-byte dot products of a_bcast (u8) and w (s8)."""
    v32 = u.vec(u.I32, cfg.lanes)
    if cfg.vnni:
        name = "llvm.x86.avx512.vpdpbusd.512"
        fn = b.module.globals.get(name) or ir.Function(
            b.module, ir.FunctionType(v32, [v32, v32, v32]), name=name)
        return b.call(fn, [acc, a_bcast, w])
    bytes_t, words_t = u.vec(I8, 4 * cfg.lanes), u.vec(I16, 2 * cfg.lanes)
    ub = b.module.globals.get("llvm.x86.avx2.pmadd.ub.sw") or ir.Function(
        b.module, ir.FunctionType(words_t, [bytes_t, bytes_t]), name="llvm.x86.avx2.pmadd.ub.sw")
    wd = b.module.globals.get("llvm.x86.avx2.pmadd.wd") or ir.Function(
        b.module, ir.FunctionType(v32, [words_t, words_t]), name="llvm.x86.avx2.pmadd.wd")
    pairs = b.call(ub, [b.bitcast(a_bcast, bytes_t), b.bitcast(w, bytes_t)])
    quads = b.call(wd, [pairs, ir.Constant(words_t, [1] * (2 * cfg.lanes))])
    return b.add(acc, quads)


def _field(b, params, name, as_ptr=False):
    value = b.load(b.gep(params, [u.i64(_F[name])], source_etype=u.I64), typ=u.I64)
    return b.inttoptr(value, u.PTR) if as_ptr else value


def _row_base(b, p, m):
    """Row m's (image, output row, output column). A linear layer's rows (ohw = 1: each
    row an image of one pixel) skip the two divisions, which a branch keeps out of its
    tiles (integer division is not speculated; a division by 1 took ~1/8 of a K=64
    tile's time)."""
    head = b.block
    divide = b.append_basic_block("row_base.divide")
    join = b.append_basic_block("row_base.join")
    b.cbranch(b.icmp_signed("==", p["ohw"], u.i64(1)), join, divide)
    b.position_at_end(divide)
    img = b.sdiv(m, p["ohw"])
    rem = b.sub(m, b.mul(img, p["ohw"]))
    oy = b.sdiv(rem, p["ow"])
    ox = b.sub(rem, b.mul(oy, p["ow"]))
    b.branch(join)
    b.position_at_end(join)
    out = []
    for value, single in ((img, m), (oy, u.i64(0)), (ox, u.i64(0))):
        phi = b.phi(u.I64)
        phi.add_incoming(single, head)
        phi.add_incoming(value, divide)
        out.append(phi)
    return tuple(out)


def _row_coords(b, cfg, p, m0, oh):
    """(image, output row, output column, past the last row) of the MR rows from m0: one
    division for the tile's first row, then a step along the output row (wrapping to
    the next row and image)."""
    img, oy, ox = _row_base(b, p, m0)
    last = b.sub(p["m"], u.i64(1))
    zero, one = u.i64(0), u.i64(1)
    coords = []
    for r in range(cfg.mr):
        if r:
            ox = b.add(ox, one)
            wrap = b.icmp_signed("==", ox, p["ow"])
            ox = b.select(wrap, zero, ox)
            oy = b.select(wrap, b.add(oy, one), oy)
            wrap = b.icmp_signed("==", oy, oh)
            oy = b.select(wrap, zero, oy)
            img = b.select(wrap, b.add(img, one), img)
        coords.append((img, oy, ox, b.icmp_signed(">", b.add(m0, u.i64(r)), last)))
    return coords


def _clamped(b, row, last_coords):
    """A row's (image, output row, output column), the last row's where it is past it
    (rows of a partial last tile re-read the last row)."""
    *xyz, past = row
    return tuple(b.select(past, lc, c) for c, lc in zip(xyz, last_coords))


def _offset(b, p, img, oy, ox):
    """A row's first A group's byte offset (the window origin's offset added: nonzero
    where the kernel reads the padding, conv_gather_unpadded)."""
    return b.add(b.add(b.add(b.mul(img, p["img_stride"]), b.mul(oy, p["row_stride"])),
                       b.mul(ox, p["col_stride"])), p["origin"])


def _row_bases(b, p, coords, last_base):
    """Byte offsets of the rows' first A group; rows past the last re-read the last row
    (last_base)."""
    return [b.select(past, last_base, _offset(b, p, img, oy, ox))
            for img, oy, ox, past in coords]


def _inside(b, p, coords, last_coords):
    """Whether the tile reads no padding: always where the host padded (the block's
    run_q is 0); else its first and (clamped) last rows' windows lie inside the image
    on the same output row (then so do the rows between; a tile that wraps to the next
    output row is taken as a border tile, which reads the image right too)."""
    first, last = coords[0][:3], _clamped(b, coords[-1], last_coords)

    def within(oy, ox):
        return b.and_(b.and_(b.icmp_signed(">=", oy, p["oy_lo"]),
                             b.icmp_signed("<", oy, p["oy_hi"])),
                      b.and_(b.icmp_signed(">=", ox, p["ox_lo"]),
                             b.icmp_signed("<", ox, p["ox_hi"])))
    one_row = b.and_(b.icmp_signed("==", first[0], last[0]),
                     b.icmp_signed("==", first[1], last[1]))
    padless = b.icmp_signed("==", p["run_q"], u.i64(0))
    return b.or_(padless, b.and_(one_row, b.and_(within(*first[1:]), within(*last[1:]))))


def _k_loop(b, cfg, p, bases, nb, init=None):
    """The MR x NV accumulator vectors of the tile at `bases`, column block nb, summed
    over k from `init` (per column vector; zeros when None)."""
    v32 = u.vec(u.I32, cfg.lanes)
    start = init or [ir.Constant(v32, None)] * cfg.nv

    def words(kk):
        off = b.load(b.gep(p["offs"], [kk], source_etype=u.I64), typ=u.I64)
        return [b.gep(p["a"], [b.add(base, off)], source_etype=I8) for base in bases]
    return _k_range(b, cfg, p, nb, u.i64(0), p["kq"], start * cfg.mr, words)


def _k_range(b, cfg, p, nb, k_begin, count, acc, word_ptrs):
    """acc (MR x NV vectors) plus the k groups [k_begin, k_begin + count) of column block
    nb; word_ptrs(kk) -> the MR rows' addresses of group kk."""
    v32 = u.vec(u.I32, cfg.lanes)
    panel_bytes = cfg.nr * 4
    block = b.mul(b.mul(nb, p["kq"]), u.i64(panel_bytes))

    def step(kk, flat):
        wbase = b.add(block, b.mul(kk, u.i64(panel_bytes)))
        panels = [b.load(b.gep(p["packed"], [b.add(wbase, u.i64(v * cfg.lanes * 4))],
                               source_etype=I8), typ=v32, align=4) for v in range(cfg.nv)]
        out = []
        for r, ptr in enumerate(word_ptrs(kk)):
            word = b.load(ptr, typ=u.I32, align=1)
            bcast = u.splat(b, word, cfg.lanes)
            out += [_dot(b, cfg, flat[r * cfg.nv + v], bcast, panels[v]) for v in range(cfg.nv)]
        return out

    # two k groups an iteration (the loop's own instructions halved), then the odd one
    pairs = b.sdiv(count, u.i64(2))
    acc = u.carried_loop(b, u.i64(0), pairs, acc,
                         lambda j, flat: step(b.add(k_begin, b.add(b.add(j, j), u.i64(1))),
                                              step(b.add(k_begin, b.add(j, j)), flat)), "kk2")
    return u.carried_loop(b, b.add(k_begin, b.add(pairs, pairs)), b.add(k_begin, count), acc,
                          step, "kk")


def _masked_store(b, value, ptr, mask, align: int) -> None:
    """llvm.masked.store: the lanes of `value` whose mask bit is on (the others' memory is
    not touched)."""
    name = f"llvm.masked.store.{u._mangle(value.type)}.p0"
    fn = b.module.globals.get(name) or ir.Function(
        b.module, ir.FunctionType(u.VOID, [value.type, u.PTR, u.I32, mask.type]), name=name)
    b.call(fn, [value, ptr, ir.Constant(u.I32, align), mask])


def _store(b, value, ptr, align: int, col, p, lanes: int) -> None:
    """Store a row's `lanes` columns from col; with an "n_valid" field in the parameter
    block, only the columns below it (the output's rows are then n_valid wide, unpadded:
    no copy to strip the padding afterwards), the full store where all are."""
    if "n_valid" not in p:
        b.store(value, ptr, align=align)
        return
    full = b.icmp_signed("<=", b.add(col, u.i64(lanes)), p["n_valid"])
    with b.if_else(full) as (whole, part):
        with whole:
            b.store(value, ptr, align=align)
        with part:
            cols = b.add(u.splat(b, col, lanes), ir.Constant(u.vec(u.I64, lanes),
                                                             list(range(lanes))))
            mask = b.icmp_signed("<", cols, u.splat(b, p["n_valid"], lanes))
            _masked_store(b, value, ptr, mask, align)


def epilogue_qparams(b, p, lanes: int):
    """The requantization's (factor, zero point, lo, hi) as vectors. A kernel with few
    live registers (the depthwise one) loads them once, before its loops, and passes
    them to _epilogue: loaded inside, next to the output stores (which LLVM cannot prove
    do not alias them), they are re-read and re-broadcast for every tile; the GEMM keeps
    that (its k loop holds 24 accumulators: four more live vectors would spill)."""
    qload = [b.load(b.gep(p["qparams"], [u.i64(i)], source_etype=u.F64), typ=u.F64)
             for i in range(4)]
    factor, zp = (u.splat(b, q, lanes) for q in qload[:2])
    lo, hi = (u.splat(b, b.fptrunc(q, u.F32), lanes) for q in qload[2:])
    return factor, zp, lo, hi


# a float32 fma's result whose distance to the nearest integer is below this is rounded
# to the same integer as the float64 formula's (round_requantized)
_NEAR_HALF = 0.5 - 2.0 ** -13


def _exact_in_f32(b, vector):
    """Whether lane 0 of a float64 vector (a splat) is a float32 value."""
    x = b.extract_element(vector, ir.Constant(u.I32, 0))
    return b.fcmp_ordered("==", b.fpext(b.fptrunc(x, u.F32), u.F64), x)


def round_requantized(b, real, inv, zp, lanes: int):
    """roundeven(float32(double(real) * inv + zp)) (inv, zp: float64 vectors),
    quantize_per_tensor's rounding (ir/quantized.py quantize_array) before its clamp, mostly
    in float32 (the input quantization's and the pointwise ops').

    The float64 formula rounds twice: real * inv is exact in float64 (two float32
    factors), the fma rounds to float64, then to float32. One float32 fma rounds once;
    the two results differ only where the float64 one lands on a midpoint between two
    float32 values, and they are then neighbours, so their nearest integers differ only
    where one of them is a half-integer (|x| < 512 here, where float32 steps are at most
    2**-14; beyond, both clamp alike). So the float32 result is used unless some lane lies
    within 2**-13 of a half-integer (about 1 lane in 4000 on spread-out data), or inv or zp
    is not a float32 value: that vector takes the float64 formula."""
    vf, vd = u.vec(u.F32, lanes), u.vec(u.F64, lanes)
    inv32, zp32 = b.fptrunc(inv, vf), b.fptrunc(zp, vf)
    scaled32 = u.fma(b, real, inv32, zp32)
    fast = u.intrinsic(b, "roundeven", vf, scaled32)
    dist = u.intrinsic(b, "fabs", vf, b.fsub(scaled32, fast))
    near = b.fcmp_ordered(">=", dist, ir.Constant(vf, [_NEAR_HALF] * lanes))
    any_near = b.icmp_unsigned("!=", b.bitcast(near, ir.IntType(lanes)),
                               ir.Constant(ir.IntType(lanes), 0))
    exact = b.and_(_exact_in_f32(b, inv), _exact_in_f32(b, zp))
    slow = b.or_(any_near, b.not_(exact))
    head = b.block
    slow_block = b.append_basic_block("requant.f64")
    join = b.append_basic_block("requant.join")
    b.cbranch(slow, slow_block, join)
    b.position_at_end(slow_block)
    scaled = u.fma(b, b.fpext(real, vd), inv, zp)
    exact_q = u.intrinsic(b, "roundeven", vf, b.fptrunc(scaled, vf))
    b.branch(join)
    b.position_at_end(join)
    q = b.phi(vf)
    q.add_incoming(fast, head)
    q.add_incoming(exact_q, slow_block)
    return q


def epilogue_columns(b, cfg, p, nb, corr: bool = True):
    """Column block nb's (corr, mult, bias) vectors, one triple per vector of the block
    (a kernel whose loop keeps nb fixed loads them once, outside it); corr None where
    the accumulators started from -corr (corr=False)."""
    lanes = cfg.lanes
    vf, v32 = u.vec(u.F32, lanes), u.vec(u.I32, lanes)
    out = []
    for v in range(cfg.nv):
        col = b.add(b.mul(nb, u.i64(cfg.nr)), u.i64(v * lanes))
        out.append((b.load(b.gep(p["corr"], [col], source_etype=u.I32), typ=v32, align=4)
                    if corr else None,
                    b.load(b.gep(p["mult"], [col], source_etype=u.F32), typ=vf, align=4),
                    b.load(b.gep(p["bias"], [col], source_etype=u.F32), typ=vf, align=4)))
    return out


def _residual_qparams(b, p):
    """The residual add's parameters (qparams[4:11] of a fused conv + add kernel, float64
    scalars): the conv result's scale, the other operand's zero point and scale, then the
    add's (1/scale, zero point, relu floor, hi)."""
    return [b.load(b.gep(p["qparams"], [u.i64(i)], source_etype=u.F64), typ=u.F64)
            for i in range(4, 11)]


def _masked_load(b, ty, ptr, mask, align: int, passthru=None):
    """llvm.masked.load: the lanes whose mask bit is on, passthru's (zeros) elsewhere (no
    memory past them is touched)."""
    name = f"llvm.masked.load.{u._mangle(ty)}.p0"
    fn = b.module.globals.get(name) or ir.Function(
        b.module, ir.FunctionType(ty, [u.PTR, u.I32, mask.type, ty]), name=name)
    return b.call(fn, [ptr, ir.Constant(u.I32, align), mask,
                       ir.Constant(ty, None) if passthru is None else passthru])


def _lanes_below(b, count, lanes: int):
    """The <lanes x i1> mask of lanes [0, count) (count an i64, any value), made as an
    integer bit mask: scalar work, where comparing a vector of column indices costs
    several vector instructions on every vector stored."""
    it = ir.IntType(lanes)
    clipped = u.imin(b, b.select(b.icmp_signed("<", count, u.i64(0)), u.i64(0), count),
                     u.i64(lanes))
    # (2 << (clipped - 1)) - 1 with clipped in [0, lanes]: no shift by the full width
    ones = b.sub(b.shl(ir.Constant(u.I64, 2), b.sub(clipped, u.i64(1))), u.i64(1))
    ones = b.select(b.icmp_signed("==", clipped, u.i64(0)), u.i64(0), ones)
    return b.bitcast(b.trunc(ones, it), u.vec(ir.IntType(1), lanes))


def _residual_add(b, p, q, c_zp, residual, row, col, lanes: int, ragged: bool = True):
    """The fused residual add on one vector: `q` holds the conv's requantized values (as
    float32, rounded and clamped) with zero point c_zp (float64 scalar); the result is
    quantized_add's (qelementwise: dequantize both operands by one fma, add, relu,
    requantize) step for step. `other` is [M, N] uint8 (channels-last, rows ldo apart);
    rows past M re-read row M - 1 (their results land in the output's padding rows) and
    columns past n_valid are not read (ragged: a masked load; else the caller knows the
    vector's columns are all valid and it is a plain load)."""
    c_scale, o_zp, o_scale, inv, zp, floor, hi = residual
    vf = u.vec(u.F32, lanes)
    orow = u.imin(b, row, b.sub(p["m"], u.i64(1)))
    ptr = b.gep(p["other"], [b.add(b.mul(orow, p["ldo"]), col)], source_etype=I8)
    if ragged:
        mask = _lanes_below(b, b.sub(p["n_valid"], col), lanes)
        other = _masked_load(b, u.vec(I8, lanes), ptr, mask, 1)
    else:
        other = b.load(ptr, typ=u.vec(I8, lanes), align=1)
    other = b.uitofp(other, vf)
    real = b.fadd(QE.dequantize_fma(b, q, c_zp, c_scale, lanes),
                  QE.dequantize_fma(b, other, o_zp, o_scale, lanes))
    return QE.add_requantize(b, real, inv, zp, floor, hi, lanes)


def _requantized(b, summed, mult, bias_term, factor, zp, lanes: int):
    """torch.ao's (fbgemm's) requantization of one vector of int32 sums converted to
    float32, before the clamp (ir/quantized.py requant_columns): roundeven(fma(bias_term,
    factor, summed) * mult) + zp. factor (qparams[0]) is 1 for per-channel weights, whose
    bias_term is already bias / (x_scale * w_scale), and the float32 reciprocal of
    x_scale * w_scale for per-tensor ones. Every step is one float32 operation, so the
    kernel equals the NumPy reference (and torch) bit for bit; adding the zero point after
    rounding is exact."""
    vf = u.vec(u.F32, lanes)
    raw = u.fma(b, bias_term, b.fptrunc(factor, vf), summed)
    return b.fadd(u.intrinsic(b, "roundeven", vf, b.fmul(raw, mult)), b.fptrunc(zp, vf))


def _round_to_int(b, x, lanes: int):
    """roundeven(x) as int32 in one instruction (vcvtps2dq with the rounding mode embedded:
    to nearest even, whatever MXCSR holds); x must lie within int32's range."""
    v32 = u.vec(u.I32, lanes)
    name = "llvm.x86.avx512.mask.cvtps2dq.512"
    fn = b.module.globals.get(name) or ir.Function(
        b.module, ir.FunctionType(v32, [x.type, v32, ir.IntType(16), u.I32]), name=name)
    return b.call(fn, [x, ir.Constant(v32, None), ir.Constant(ir.IntType(16), -1),
                       ir.Constant(u.I32, 8)])      # 8: {rn-sae}


def _bytes_of_row(b, ints):
    """Four int32 vectors of values in [0, 255] (a row's 64 columns, in order) as one
    64-byte vector: two signed packs to int16, one unsigned pack to bytes (each within
    128-bit lanes, saturating: the values pass unchanged), then a dword permutation that
    puts each vector's 16 bytes back in column order. Four vpmovdb stores cost more
    (two micro-ops each on these cores)."""
    v32, v16, v8 = u.vec(u.I32, 16), u.vec(I16, 32), u.vec(I8, 64)

    def packer(name, arg, res):
        return b.module.globals.get(name) or ir.Function(
            b.module, ir.FunctionType(res, [arg, arg]), name=name)
    ssdw = packer("llvm.x86.avx512.packssdw.512", v32, v16)
    uswb = packer("llvm.x86.avx512.packuswb.512", v16, v8)
    low, high = b.call(ssdw, ints[:2]), b.call(ssdw, ints[2:])
    # 128-bit lane i of the packed bytes holds dwords (v0, v1, v2, v3) of chunk i
    dwords = b.bitcast(b.call(uswb, [low, high]), v32)
    order = ir.Constant(u.vec(u.I32, 16), [4 * (j % 4) + j // 4 for j in range(16)])
    return b.bitcast(b.shuffle_vector(dwords, ir.Constant(v32, ir.Undefined), order), v8)


def _packed_row_epilogue(b, cfg, p, acc_at, m0, nb, columns, qparams,
                         dequant: bool = False) -> None:
    """The uint8 epilogue of a 64-column VNNI tile, a row at a time: each value is
    requantized as _requantized computes it (fma, multiply) and clamped *before* the
    rounding to [lo - zp, hi - zp], rounded to int32 (vcvtps2dq, to nearest even), the
    zero point added as an integer; the row's four vectors are packed to 64 bytes and
    stored by one masked store (the columns below n_valid: no branch per vector).

    The same bytes as rounding, adding the zero point and clamping in float32 (the
    other epilogues): rounding is monotonic and the bounds are integers, so clamping
    before or after it gives the same integer, and adding an integer zero point to an
    integer below 2**24 is exact either way; NaN becomes lo in both (the clamp's
    compare-and-select), +-inf the bound on its side.

    dequant (qgemm_u8_deq): the uint8 values are not stored but dequantized, as the
    native dequantize computes them, (float32(q) - zp) * scale with the output scale
    qparams[4] (a float32 value): float32(q) - zp is the rounded integer before the
    zero point was added, exactly, so each vector is one conversion and one multiply,
    stored as float32 (a masked store per vector: the columns below n_valid)."""
    lanes = cfg.lanes
    vf, v32 = u.vec(u.F32, lanes), u.vec(u.I32, lanes)
    factor, zp, lo, hi = qparams
    zp32 = b.fptrunc(zp, vf)
    lo_zp, hi_zp = b.fsub(lo, zp32), b.fsub(hi, zp32)
    zp_int = b.fptosi(zp32, v32)
    factor32 = b.fptrunc(factor, vf)
    col0 = b.mul(nb, u.i64(cfg.nr))
    if dequant:
        out_scale = u.splat(b, b.fptrunc(b.load(b.gep(p["qparams"], [u.i64(4)],
                                                      source_etype=u.F64), typ=u.F64),
                                         u.F32), lanes)
        masks = [_lanes_below(b, b.sub(p["n_valid"], b.add(col0, u.i64(v * lanes))), lanes)
                 for v in range(cfg.nv)]
    else:
        mask = _lanes_below(b, b.sub(p["n_valid"], col0), 64)
    for r in range(cfg.mr):
        ints = []
        row = b.add(m0, u.i64(r))
        for v in range(cfg.nv):
            corr, mult, bias = columns[v]
            centered = acc_at(r, v) if corr is None else b.sub(acc_at(r, v), corr)
            raw = u.fma(b, bias, factor32, b.sitofp(centered, vf))
            scaled = u.clamp(b, b.fmul(raw, mult), lo_zp, hi_zp)
            if dequant:
                real = b.fmul(b.sitofp(_round_to_int(b, scaled, lanes), vf), out_scale)
                at = b.add(b.mul(row, p["ldo"]), b.add(col0, u.i64(v * lanes)))
                _masked_store(b, real, b.gep(p["out"], [at], source_etype=u.F32), masks[v],
                              4)
                continue
            ints.append(b.add(_round_to_int(b, scaled, lanes), zp_int))
        if dequant:
            continue
        ptr = b.gep(p["out"], [b.add(b.mul(row, p["ldo"]), col0)], source_etype=I8)
        _masked_store(b, _bytes_of_row(b, ints), ptr, mask, 1)


def _epilogue(b, cfg, p, acc, m0, nb, u8_out: bool, qparams=None, columns=None,
              residual: bool = False, packed_rows: bool = False, dequant: bool = False):
    """Requantize the MR x NR tile at rows m0.., column block nb into the output; `acc`
    is the tile's int32 vectors (row-major, NV per row) or a function (r, v) -> vector.
    qparams / columns: epilogue_qparams / epilogue_columns made by the caller outside
    its loops (loaded here otherwise). residual: then add the "other" operand and
    requantize again (_residual_add: a conv + quantized_add pair in one pass).
    packed_rows: a uint8 result of a 64-column block whose parameter block has
    "n_valid" is stored a row at a time (_packed_row_epilogue); dequant: that result
    dequantized to float32 instead (only there)."""
    acc_at = acc if callable(acc) else (lambda r, v: acc[r * cfg.nv + v])
    lanes = cfg.lanes
    vf, vd, v32 = u.vec(u.F32, lanes), u.vec(u.F64, lanes), u.vec(u.I32, lanes)
    factor, zp, lo, hi = qparams or epilogue_qparams(b, p, lanes)
    columns = columns or epilogue_columns(b, cfg, p, nb)
    if packed_rows and u8_out and not residual and cfg.vnni and cfg.nr == 64 and \
            "n_valid" in p:
        _packed_row_epilogue(b, cfg, p, acc_at, m0, nb, columns, (factor, zp, lo, hi),
                             dequant)
        return
    if dequant:
        raise ValueError("qgemm: the dequantizing epilogue needs a 64-column VNNI tile")
    extra = _residual_qparams(b, p) if residual else None
    # loaded once, before the stores (which LLVM cannot prove leave it unchanged): the
    # residual add's constants derived from it are then computed once per tile too
    c_zp = b.load(b.gep(p["qparams"], [u.i64(1)], source_etype=u.F64), typ=u.F64) \
        if residual else None

    f32_masks: dict = {}

    def body(ragged: bool):
        for v in range(cfg.nv):
            col = b.add(b.mul(nb, u.i64(cfg.nr)), u.i64(v * lanes))
            corr, mult, bias = columns[v]
            reals = []
            for r in range(cfg.mr):
                centered = acc_at(r, v) if corr is None else b.sub(acc_at(r, v), corr)
                summed = b.sitofp(centered, vf)
                reals.append(_requantized(b, summed, mult, bias, factor, zp, lanes)
                             if u8_out else u.fma(b, summed, mult, bias))  # fbgemm's fma
            for r, real in enumerate(reals):
                row = b.add(m0, u.i64(r))
                idx = b.add(b.mul(row, p["ldo"]), col)
                if u8_out:
                    q = u.clamp(b, real, lo, hi)
                    if residual:
                        q = _residual_add(b, p, q, c_zp, extra, row, col, lanes, ragged)
                    value = b.trunc(b.fptosi(q, v32), u.vec(I8, lanes))
                    _store(b, value, b.gep(p["out"], [idx], source_etype=I8), 1, col, p,
                           lanes)
                elif packed_rows and cfg.vnni and "n_valid" in p:
                    # one masked store (the columns below n_valid), no branch a vector
                    if v not in f32_masks:
                        f32_masks[v] = _lanes_below(b, b.sub(p["n_valid"], col), lanes)
                    _masked_store(b, u.clamp(b, real, lo, hi),
                                  b.gep(p["out"], [idx], source_etype=u.F32), f32_masks[v], 4)
                else:
                    value = u.clamp(b, real, lo, hi)
                    _store(b, value, b.gep(p["out"], [idx], source_etype=u.F32), 4, col, p,
                           lanes)
    if not (residual and u8_out):
        body(ragged=True)
        return
    # the residual operand read by plain loads where the column block's columns are all
    # valid (every block but a ragged last one): a masked load on every vector made the
    # fused epilogue slower than the add's own pass on large planes
    whole = b.icmp_signed("<=", b.mul(b.add(nb, u.i64(1)), u.i64(cfg.nr)), p["n_valid"])
    with b.if_else(whole) as (plain, ragged):
        with plain:
            body(ragged=False)
        with ragged:
            body(ragged=True)


def claim_loop(b, shared, chunk, begin, end, total):
    """A claiming loop's head: yields (begin, end) task ranges until none is left.
    chunk > 0: `chunk` tasks at a time from the shared counter word `shared` (an atomic
    add) up to `total`, so a thread descheduled on a busy host leaves the tasks it has not
    claimed to the others; chunk == 0: one claim of [begin, end), from a private counter;
    chunk < 0: guided claims for -chunk threads (guided_claim). Returns (claimed begin,
    claimed end, the head block to branch back to, the exit)."""
    dynamic = b.icmp_signed("!=", chunk, u.i64(0))
    guided = b.icmp_signed("<", chunk, u.i64(0))
    private = b.alloca(u.I64)
    b.store(begin, private)
    counter = b.select(dynamic, shared, private)
    step = b.select(dynamic, chunk, b.sub(end, begin))
    limit = b.select(dynamic, total, end)
    head = b.append_basic_block("claim")
    fixed, ghead, gtry = (b.append_basic_block(n) for n in
                          ("claim.fixed", "claim.guided", "claim.guided.try"))
    body = b.append_basic_block("claim.body")
    done = b.append_basic_block("claim.done")
    b.branch(head)
    b.position_at_end(head)
    b.cbranch(guided, ghead, fixed)
    b.position_at_end(fixed)
    claimed = b.atomic_rmw("add", counter, step, "monotonic")
    fixed_end = u.imin(b, b.add(claimed, step), limit)
    b.cbranch(b.icmp_signed("<", claimed, limit), body, done)
    b.position_at_end(ghead)
    old = b.load_atomic(shared, "monotonic", 8, typ=u.I64)
    b.cbranch(b.icmp_signed("<", old, total), gtry, done)
    b.position_at_end(gtry)
    guided_end = b.add(old, guided_claim(b, b.neg(chunk), old, total))
    pair = b.cmpxchg(shared, old, guided_end, "monotonic", "monotonic")
    b.cbranch(b.extract_value(pair, 1), body, ghead)
    b.position_at_end(body)
    lo, hi = b.phi(u.I64), b.phi(u.I64)
    lo.add_incoming(claimed, fixed)
    hi.add_incoming(fixed_end, fixed)
    lo.add_incoming(old, gtry)
    hi.add_incoming(guided_end, gtry)
    return lo, hi, head, done


# guided claims: at most 1/(GUIDED_CLAIMS * threads) of the tasks, as the fixed chunk
GUIDED_CLAIMS = lite.CLAIMS_PER_THREAD


def guided_claim(b, threads, claimed, total):
    """Tasks a guided claim takes when `claimed` of `total` are gone, for `threads`
    threads: what is left over twice the threads (so the last claims shrink to one task
    and the threads finish within about one task of each other, where fixed chunks of
    1/16 of a GEMM's tasks could leave one thread idle for most of a chunk), at most the
    fixed chunk's total / (GUIDED_CLAIMS * threads) (consecutive tasks share a weight
    panel or a row tile), at least 1."""
    share = b.sdiv(b.sub(total, claimed), b.mul(threads, u.i64(2)))
    cap = b.sdiv(total, b.mul(threads, u.i64(GUIDED_CLAIMS)))
    size = u.imin(b, share, cap)
    return b.select(b.icmp_signed("<", size, u.i64(1)), u.i64(1), size)


def _claims(b, params, p, t_begin, t_end):
    """claim_loop over the GEMM's tiles (lite_int8.QGEMM_FIELDS: the parameter block's
    counter word, up to m_tiles * n_blocks)."""
    shared = b.gep(params, [u.i64(_F["counter"])], source_etype=u.I64)
    return claim_loop(b, shared, p["chunk"], t_begin, t_end,
                      b.mul(p["m_tiles"], p["n_blocks"]))


def tail_rows(cfg: Config) -> int:
    """Rows of the narrower tile a GEMM's last row tile takes when at most that many of
    its MR rows are left (64 rows: ten 6-row tiles, then a 4-row one instead of
    computing 66); 0: none."""
    r = 2 * cfg.mr // 3
    return r if 0 < r < cfg.mr else 0


_PTR_FIELDS = {"a", "offs", "packed", "out", "corr", "mult", "bias", "qparams", "other",
               "zp_row"}
# bytes of a border tile's row buffer (its kh runs) and the most kernel rows: what a
# kernel pads itself (lite.pads_in_kernel)
RUN_MAX, KH_MAX = lite.QGEMM_PAD_RUN_MAX, lite.QGEMM_PAD_KH_MAX


def _geometry(b, params):
    """The parameter block's fields, the output height, the last row's coordinates and
    A offset."""
    p = {f: _field(b, params, f, f in _PTR_FIELDS) for f in FIELDS if f != "counter"}
    oh = b.sdiv(p["ohw"], p["ow"])
    last_coords = _row_base(b, p, b.sub(p["m"], u.i64(1)))
    return p, oh, (last_coords, _offset(b, p, *last_coords))


def _tile(b, cfg: Config, p, m0, nb, oh, last, u8_out: bool, residual: bool,
          coords=None, dequant: bool = False) -> None:
    """One MR x NR tile: the k loop, then the epilogue. The sums start from -corr
    (integer sums: exact in any order), so the epilogue has no subtraction and holds no
    corr vectors beside the accumulators."""
    coords = coords or _row_coords(b, cfg, p, m0, oh)
    neg_corr = [b.neg(c[0]) for c in epilogue_columns(b, cfg, p, nb)]
    acc = _k_loop(b, cfg, p, _row_bases(b, p, coords, last[1]), nb, neg_corr)
    _epilogue(b, cfg, p, acc, m0, nb, u8_out, residual=residual,
              columns=epilogue_columns(b, cfg, p, nb, corr=False), packed_rows=True,
              dequant=dequant)


def _emit_tail(module: ir.Module, cfg: Config, name: str, u8_out: bool, residual: bool,
               dequant: bool = False):
    """<name>.tail(params, m0, nb): the tail_rows(cfg)-row tile, a function of its own
    (not inlined: one more copy of the tile inside the task loop tripled the module's
    compile time)."""
    fn, b = u.define(module, f"{name}.tail", u.VOID, [("params", u.PTR), ("m0", u.I64),
                                                      ("nb", u.I64)])
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    params, m0, nb = fn.args
    p, oh, last = _geometry(b, params)
    _tile(b, dataclasses.replace(cfg, mr=tail_rows(cfg)), p, m0, nb, oh, last, u8_out,
          residual, dequant=dequant)
    b.ret_void()
    return fn


def _bytes_below(b, count):
    """The i64 bit mask of bytes [0, count) of a 64-byte chunk (count any i64)."""
    clipped = u.imin(b, b.select(b.icmp_signed("<", count, u.i64(0)), u.i64(0), count),
                     u.i64(64))
    ones = b.sub(b.shl(u.i64(1), u.imin(b, clipped, u.i64(63))), u.i64(1))
    return b.select(b.icmp_signed("==", clipped, u.i64(64)), u.i64(-1), ones)


def _copy_run(b, p, src, dst, lo, hi, zp_bytes) -> None:
    """dst[0, run) = src's bytes [lo, hi) with the zero point elsewhere (an edge pixel's
    kernel row: the columns outside the image are padding), 64 bytes a step by masked
    loads (no byte outside [lo, hi) of src is read; up to 63 bytes past dst's run are
    written, the next run's, copied after it, or the buffer's slack)."""
    v8 = u.vec(I8, 64)
    chunks = b.sdiv(b.add(b.mul(p["run_q"], u.i64(4)), u.i64(63)), u.i64(64))
    with u.counted_loop(b, u.i64(0), chunks, 1, "run") as c:
        at = b.mul(c, u.i64(64))
        bits = b.and_(_bytes_below(b, b.sub(hi, at)), b.not_(_bytes_below(b, b.sub(lo, at))))
        mask = b.bitcast(bits, u.vec(ir.IntType(1), 64))
        value = _masked_load(b, v8, b.gep(src, [at], source_etype=I8), mask, 1, zp_bytes)
        b.store(value, u._as_pointer_to(b, b.gep(dst, [at], source_etype=I8), v8), align=1)


def _emit_border(module: ir.Module, cfg: Config, name: str, u8_out: bool, residual: bool):
    """<name>.border(params, m0, nb): an MR-row tile where some row's window leaves the
    image (conv_gather_unpadded: the padding read in the kernel). Before the k loop,
    each (tile row, kernel row) gets a pointer of its own: into the image where that
    kernel row is inside it, a row of the zero point above or below it, and at the left
    and right edges a copy of the run with the zero point in the columns outside the
    image (a stack buffer per tile row holding its kh runs); the k loop then runs kernel
    row by kernel row through those pointers, nothing but loads and dot products beside
    the accumulators. The padded copy held the zero point in the same places, so the
    sums are the same integers. A function of its own (not inlined), like the tail."""
    fn, b = u.define(module, f"{name}.border", u.VOID, [("params", u.PTR), ("m0", u.I64),
                                                        ("nb", u.I64)])
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    params, m0, nb = fn.args
    # (64 bytes more: a run's copy stores whole 64-byte chunks, the last one past it)
    buffer = b.alloca(I8, size=u.i64(cfg.mr * RUN_MAX + 64), name="rows")
    buffer.align = 64
    pointers = b.alloca(u.I64, size=u.i64(cfg.mr * KH_MAX), name="row_ptrs")
    p, oh, (last_coords, _) = _geometry(b, params)
    zp_bytes = b.load(p["zp_row"], typ=u.vec(I8, 64), align=64)
    run = b.mul(p["run_q"], u.i64(4))
    for r, row in enumerate(_row_coords(b, cfg, p, m0, oh)):
        img, oy, ox = _clamped(b, row, last_coords)
        y0 = b.sub(b.mul(oy, p["stride_h"]), p["pad_top"])
        x0 = b.sub(b.mul(ox, p["stride_w"]), p["pad_left"])
        edge = b.not_(b.and_(b.icmp_signed(">=", ox, p["ox_lo"]),
                             b.icmp_signed("<", ox, p["ox_hi"])))
        lo = b.mul(b.select(b.icmp_signed("<", x0, u.i64(0)), b.neg(x0), u.i64(0)), p["pix"])
        hi = b.mul(u.imin(b, p["span_w"], b.sub(p["in_w"], x0)), p["pix"])
        src = b.add(b.mul(img, p["img_stride"]), b.mul(x0, p["pix"]))
        with u.counted_loop(b, u.i64(0), p["kh"], 1, f"ky{r}") as ky:
            y = b.add(y0, b.mul(ky, p["dil_h"]))
            inside = b.and_(b.icmp_signed(">=", y, u.i64(0)), b.icmp_signed("<", y, p["in_h"]))
            image_row = b.gep(p["a"], [b.add(src, b.mul(y, p["pitch"]))], source_etype=I8)
            own = b.gep(buffer, [b.add(u.i64(r * RUN_MAX), b.mul(ky, run))], source_etype=I8)
            with b.if_then(b.and_(inside, edge)):
                _copy_run(b, p, image_row, own, lo, hi, zp_bytes)
            ptr = b.select(inside, b.select(edge, own, image_row), p["zp_row"])
            b.store(b.ptrtoint(ptr, u.I64),
                    b.gep(pointers, [b.add(b.mul(ky, u.i64(cfg.mr)), u.i64(r))],
                          source_etype=u.I64))
    start = [b.neg(c[0]) for c in epilogue_columns(b, cfg, p, nb)] * cfg.mr

    def kernel_row(ky, acc):
        ptrs = [b.inttoptr(b.load(b.gep(pointers, [b.add(b.mul(ky, u.i64(cfg.mr)), u.i64(r))],
                                        source_etype=u.I64), typ=u.I64), u.PTR)
                for r in range(cfg.mr)]
        k0 = b.mul(ky, p["run_q"])
        return _k_range(b, cfg, p, nb, k0, p["run_q"], acc, lambda kk: [
            b.gep(ptr, [b.mul(b.sub(kk, k0), u.i64(4))], source_etype=I8) for ptr in ptrs])
    acc = u.carried_loop(b, u.i64(0), p["kh"], start, kernel_row, "ky")
    _epilogue(b, cfg, p, acc, m0, nb, u8_out, residual=residual,
              columns=epilogue_columns(b, cfg, p, nb, corr=False), packed_rows=True)
    b.ret_void()
    return fn


def _emit(module: ir.Module, cfg: Config, u8_out: bool, residual: bool = False,
          dequant: bool = False) -> None:
    """qgemm_<u8|f32>(t_begin, t_end, worker, params): task t is one row tile x column
    block, row tiles inner when nb_outer (the thread pool's chunk signature); the tasks
    run are [t_begin, t_end) or claimed (_claims). residual: qgemm_u8_add, the uint8
    result added to the block's "other" operand in the epilogue (_residual_add). The
    uint8 VNNI kernels read a convolution's padding themselves where the block says so
    (tiles with a row outside the image: <name>.border). dequant: qgemm_u8_deq, the
    uint8 result dequantized to float32 in the epilogue (a Linear and the dequantize
    reading it: 64-column VNNI tiles, no padding read)."""
    name = "qgemm_u8_add" if residual else "qgemm_u8_deq" if dequant else \
        f"qgemm_{'u8' if u8_out else 'f32'}"
    tail = _emit_tail(module, cfg, name, u8_out, residual, dequant) if tail_rows(cfg) \
        else None
    border = _emit_border(module, cfg, name, u8_out, residual) \
        if u8_out and cfg.vnni and not dequant else None
    fn, b = u.define(module, name, u.VOID, [("t_begin", u.I64), ("t_end", u.I64),
                                            ("worker", u.I64), ("params", u.PTR)])
    t_begin, t_end, _, params = fn.args
    p, oh, last = _geometry(b, params)
    nb_outer = b.icmp_signed("!=", p["nb_outer"], u.i64(0))
    begin, end, claim_head, claims_done = _claims(b, params, p, t_begin, t_end)
    # the claim's first task split by one division, then stepped (a division a task
    # took ~1/20 of a K=64 tile's time)
    inner_count = b.select(nb_outer, p["m_tiles"], p["n_blocks"])
    first_outer = b.sdiv(begin, inner_count)
    first_inner = b.sub(begin, b.mul(first_outer, inner_count))

    def task(t, position):
        outer, inner = position
        mt, nb = b.select(nb_outer, inner, outer), b.select(nb_outer, outer, inner)
        m0 = b.mul(mt, u.i64(cfg.mr))
        coords = _row_coords(b, cfg, p, m0, oh)

        def inside_image():
            if tail is None:
                _tile(b, cfg, p, m0, nb, oh, last, u8_out, residual, coords, dequant)
                return
            # rows past M (a partial last tile) computed only as far as the tail's
            narrow = b.icmp_signed("<=", b.sub(p["m"], m0), u.i64(tail_rows(cfg)))
            with b.if_else(narrow) as (few, full):
                with few:
                    b.call(tail, [params, m0, nb])
                with full:
                    _tile(b, cfg, p, m0, nb, oh, last, u8_out, residual, coords, dequant)
        if border is None:
            inside_image()
        else:
            with b.if_else(_inside(b, p, coords, last[0])) as (inside, edge):
                with inside:
                    inside_image()
                with edge:
                    b.call(border, [params, m0, nb])
        following = b.add(inner, u.i64(1))
        wrap = b.icmp_signed("==", following, inner_count)
        return [b.select(wrap, b.add(outer, u.i64(1)), outer),
                b.select(wrap, u.i64(0), following)]
    u.carried_loop(b, begin, end, [first_outer, first_inner], task, "t")
    b.branch(claim_head)
    b.position_at_end(claims_done)
    b.ret_void()


def module_for(cfg: Config) -> ir.Module:
    """The LLVM module of cfg's kernels: qgemm_u8, qgemm_f32 and qgemm_u8_add (also what
    ember.aot links), and for 64-column VNNI tiles qgemm_u8_deq."""
    module = ir.Module(name=f"ember_qgemm_{cfg.name}")
    _emit(module, cfg, True)
    _emit(module, cfg, False)
    _emit(module, cfg, True, residual=True)
    if dequantizes(cfg):
        _emit(module, cfg, True, dequant=True)
    return module


KERNEL_NAMES = ("qgemm_u8", "qgemm_f32", "qgemm_u8_add")


def dequantizes(cfg: Config) -> bool:
    """Whether cfg's module has qgemm_u8_deq (the packed-row epilogue's tiles)."""
    return cfg.vnni and cfg.nr == 64


@functools.lru_cache(maxsize=None)
def _kernels(cfg: Config):
    """The compiled kernels by output kind: True (uint8), False (float32), "add" (uint8
    with the residual add), "deq" (uint8 dequantized to float32, where cfg has it)."""
    lib = compile_built(module_for, cfg, target=target_for(cfg.isa))
    spin.install()      # back-to-back GEMMs: the next one's chunk handed over natively
    argtypes = [ctypes.c_int64] * 3 + [ctypes.c_void_p]
    kernels = {True: lib.function("qgemm_u8", None, *argtypes),
               False: lib.function("qgemm_f32", None, *argtypes),
               "add": lib.function("qgemm_u8_add", None, *argtypes)}
    if dequantizes(cfg):
        kernels["deq"] = lib.function("qgemm_u8_deq", None, *argtypes)
    return lib, kernels


# --- host side -----------------------------------------------------------------------------
class PackedWeight:
    """int8 weights [N, K] (K in the kernel's k order, a multiple of 4 or zero padded) in
    the layout `cfg` reads, with their per-row sums (the zero-point correction)."""

    def __init__(self, w_q: np.ndarray, cfg: Config):
        w_q = np.asarray(w_q, np.int8)
        self.cfg = cfg
        self.n, self.k = w_q.shape
        self.kq = -(-(-(-self.k // 4)) // cfg.kq_align) * cfg.kq_align     # ceil, aligned
        self.n_pad = -(-self.n // cfg.nr) * cfg.nr
        padded = np.zeros((self.n_pad, self.kq * 4), np.int8)
        padded[:self.n, :self.k] = w_q
        # [n / NR, kq, NR, 4]
        # 64-byte aligned: each k step loads whole cache lines of it
        self.data = lite.aligned_copy(
            padded.reshape(self.n_pad // cfg.nr, cfg.nr, self.kq, 4).transpose(0, 2, 1, 3))
        self.row_sums = w_q.astype(np.int64).sum(axis=1)

    def column_vector(self, values, dtype) -> np.ndarray:
        """A per-output-column array padded to n_pad (what the epilogue loads)."""
        out = np.zeros(self.n_pad, dtype)
        out[:self.n] = values
        return out

    def epilogue_vectors(self, x_zero_point: int, mult, bias):
        """(corr, mult, bias) per output column for the epilogue: the zero-point correction
        x_zp * rowsum(W) as int32, the float32 multipliers and bias."""
        return (self.column_vector(np.int64(x_zero_point) * self.row_sums, np.int32),
                self.column_vector(mult, np.float32),
                self.column_vector(0.0 if bias is None else bias, np.float32))


# the row geometry and the driver are the lite runtime's (an artifact runs the same code)
Gather, linear_gather, conv_gather = lite.Gather, lite.linear_gather, lite.conv_gather


def run(gather: Gather, packed: PackedWeight, x_zero_point: int, mult: np.ndarray,
        bias: np.ndarray | None, qparams: tuple[float, float, float, float],
        u8_out: bool, threads: int | None = None) -> np.ndarray:
    """The fused GEMM: [M, N] uint8 (u8_out) or float32. `mult` and `bias` are float32 per
    output column; qparams = (factor, zero point, lo, hi) (see the docstring)."""
    return run_vectors(gather, packed, packed.epilogue_vectors(x_zero_point, mult, bias),
                       qparams, u8_out, threads)


def run_vectors(gather: Gather, packed: PackedWeight, vectors, qparams, u8_out: bool,
                threads: int | None = None) -> np.ndarray:
    """run with the epilogue's (corr, mult, bias) column vectors already made (callers
    that keep them between calls: they depend only on the operands' qparams)."""
    return prepare(gather, packed, vectors, qparams, u8_out)(gather.buffer, threads)


def prepare(gather: Gather, packed: PackedWeight, vectors, qparams, u8_out: bool,
            residual: bool = False, dequant_scale: float | None = None):
    """run_vectors in two steps: the parameter block made now, once; the returned
    function(buffer, threads=None) runs the GEMM on any input buffer of gather's
    geometry (its .on_one_thread(buffer) on the calling thread alone). residual: the
    fused residual add (qgemm_u8_add; qparams has its 11 entries, lite.residual_qparams),
    whose run takes other=[M, N] uint8. dequant_scale (u8_out, a tile that
    `dequantizes`): the uint8 result dequantized with that scale (as a float32) and
    qparams' zero point, float32 out (qgemm_u8_deq)."""
    corr, mult, bias = vectors
    kernels = _kernels(packed.cfg)[1]
    if dequant_scale is not None:
        if not (u8_out and dequantizes(packed.cfg)) or residual:
            raise ValueError(f"qgemm: no dequantizing kernel for the {packed.cfg.name} tile")
        fn, u8_out = kernels["deq"], False      # float32 out
        qparams = tuple(qparams[:4]) + (float(np.float32(dequant_scale)),)
    else:
        fn = kernels["add" if residual else u8_out]
    call = lite.QGemmCall(gather, packed.data, packed.kq, packed.n, packed.cfg.mr,
                          packed.cfg.nr, corr, mult, bias, qparams, u8_out,
                          claim=lite.GUIDED)
    run = functools.partial(_run_prepared, call, fn)
    run.on_one_thread = functools.partial(call.on_one_thread, fn)
    return run


def _run_prepared(call, fn, buffer, threads=None, corr=None, mult=None, other=None,
                  bias=None):
    return call(fn, default_pool(), buffer, threads, corr, mult, other, bias)
