"""int8 GEMM on AMX tiles (Sapphire Rapids and later): the same gather, epilogue and
results as qgemm.py, with `tdpbusd` doing the dot products.

An AMX tile multiply C[16 x 16 int32] += A[16 x 64 uint8] . B[16 groups of 4 k x 16
columns] does 16K multiply-adds in one instruction, several times what `vpdpbusd` on zmm
registers does (oneDNN's brgemm, which torch.ao's x86 backend runs here, uses it). Tiles
load rows at a fixed stride. A convolution's task is a row block of whole 32-row tiles
(lite.amx_row_blocks); each 16-row half of a tile whose rows lie on one output row,
their windows inside the image, is read in place (rows col_stride apart, the k steps at
k_offs within the window: lite.amx_in_place); the other halves are first copied through
the gather (`row_base(m)` plus each contiguous segment of k bytes: a kernel row's run, a
tap's channels, a whole linear row; 64-byte vectors, the tail's load masked) into a
per-thread buffer (k bytes past the weight's meet its zero padding). A stride-1
convolution whose output has its input's size and which reads its padding here has
its windows col_stride apart across rows and images (lite.amx_in_place's direct 2):
any 16 rows then read each 64-byte k step in place, only the steps where a row's
window leaves the image copied (_pack_linear_half). Then, for every column block of
32, each tile of the block in turn (or, where k has more than lite.AMX_K_BLOCK_MIN
steps and a tile is a block, each k block of the tile over every column block, the C
tiles kept in the scratch between them: _k_blocked_tile):

    tiles 0..3  C: rows 0-15 / 16-31 x columns 0-15 / 16-31      (tilezero)
    tiles 4, 5  A: rows 0-15 and 16-31, packed or in place (64 k bytes each step)
    tiles 6, 7  B: columns 0-15 and 16-31 of the packed weight (qgemm.PackedWeight with
                NR = 32 and k groups padded to 16: 16 rows of 128 bytes, stride 128)

and stores the C tiles to the thread's buffer, from which qgemm's epilogue requantizes
(bit for bit the same arithmetic). The integer sums are exact on both paths, so results
equal the VNNI kernel's and the NumPy reference's.

Linux hands a process the AMX register state only on request
(arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)); `available()` asks once and is
False where the CPU, the kernel or LLVM says no, or EMBER_QGEMM=vnni.
"""
from __future__ import annotations

import ctypes
import functools
import os

import numpy as np
from llvmlite import ir

from ...runtime import lite_int8 as lite
from ...runtime.threads import default_pool
from . import irutil as u
from . import qgemm as Q
from . import spin
from .jit import compile_built
from .target import Isa, host_features, target_for

AMX = Q.Config("amx", Isa.AVX512, 16, 32, 2, kq_align=16)
FIELDS = lite.QGEMM_AMX_FIELDS
I8 = ir.IntType(8)


@functools.cache
def available() -> bool:
    """AMX-INT8 usable by this process (see the module docstring)."""
    if os.environ.get("EMBER_QGEMM", "").lower() == "vnni":
        return False
    feats = host_features()
    if not (feats.get("amx-int8") and feats.get("amx-tile")):
        return False
    return lite.amx_permission()


def _amx(b: ir.IRBuilder, name: str, *args):
    """Call llvm.x86.<name> (void; tile numbers are immediate i8 constants)."""
    full = f"llvm.x86.{name}"
    fn = b.module.globals.get(full)
    if fn is None:
        fn = ir.Function(b.module, ir.FunctionType(u.VOID, [a.type for a in args]), name=full)
    return b.call(fn, list(args))


def _tile(t: int) -> ir.Constant:
    return ir.Constant(I8, t)


def _masked(b, name: str, ty, *args):
    full = f"llvm.masked.{name}.v64i8.p0"
    fn = b.module.globals.get(full)
    if fn is None:
        mask_t = u.vec(ir.IntType(1), 64)
        params = [u.PTR, u.I32, mask_t, ty] if name == "load" else [ty, u.PTR, u.I32, mask_t]
        fn = ir.Function(b.module, ir.FunctionType(ty if name == "load" else u.VOID, params),
                         name=full)
    return b.call(fn, list(args))


def _segment_copy(b, length):
    """_copy_bytes' loop-invariant parts for segments of `length` bytes (made once, in
    the kernel's entry: the stem's 24-byte runs made the tail mask per run, seven a row)."""
    v64 = u.vec(I8, 64)
    full = b.sdiv(length, u.i64(64))
    left = b.sub(length, b.mul(full, u.i64(64)))
    iota = ir.Constant(v64, list(range(64)))
    mask = b.icmp_unsigned("<", iota, u.splat(b, b.trunc(left, I8), 64))
    return length, full, b.icmp_signed("!=", left, u.i64(0)), mask


def _copy_bytes(b, src, dst, segment):
    """dst[:length] = src[:length] (segment: _segment_copy's for that length): 64-byte
    vectors, the tail's load masked (no byte of src past length is read); up to 63
    bytes of dst past length are overwritten (with zeros), so segments and rows are
    packed in order, each over the previous one's spill, and a packed block has at
    least 64 bytes after it (the C tiles' buffer)."""
    v64 = u.vec(I8, 64)
    _, full, tail, mask = segment
    with u.counted_loop(b, u.i64(0), full, 1, "c") as c:
        off = b.mul(c, u.i64(64))
        value = b.load(b.gep(src, [off], source_etype=I8), typ=v64, align=1)
        b.store(value, b.gep(dst, [off], source_etype=I8), align=1)
    # no masked load where the length is whole vectors (resnet's runs of 64 * c bytes);
    # the tail's vector is stored whole: the bytes past the length are the next
    # segment's or row's (packed after it) or past the row's k (meeting zero weights)
    with b.if_then(tail):
        off = b.mul(full, u.i64(64))
        value = _masked(b, "load", v64, b.gep(src, [off], source_etype=I8),
                        ir.Constant(u.I32, 1), mask, ir.Constant(v64, None))
        b.store(value, b.gep(dst, [off], source_etype=I8), align=1)


def _pack_a(b, p, m0, apack, kpad, rows: int = AMX.mr):
    """The `rows` A rows from m0, gathered into apack (row r at r * kpad bytes) as whole
    segments (a kernel row's run, a tap's channels, a linear row); the bytes from kq
    groups to kq_pad are left as they are (they meet the weight's zero padding: any
    byte times zero adds nothing; the stem's zero fill was 6 stores a row); rows past
    the last re-read the last. A convolution whose padding
    the kernel reads (lite.conv_gather_unpadded's block) copies the runs of a row whose
    window leaves the image with the zero point outside it (_pack_padded_row): the bytes
    a padded copy of the input would have given. The rows' (image, output row, output
    column) step from m0's (two divisions a tile, not a row: they were about a third of
    the packing's time on resnet18's 56x56 convs)."""
    last = b.sub(p["m"], u.i64(1))
    coords = [_entry_alloca(b, u.I64) for _ in range(3)]
    for slot, value in zip(coords, Q._row_base(b, p, u.imin(b, m0, last))):
        b.store(value, slot)
    with u.counted_loop(b, u.i64(0), u.i64(rows), 1, "r") as r:
        img, oy, ox = (b.load(slot, typ=u.I64) for slot in coords)
        base = b.add(b.add(b.mul(img, p["img_stride"]), b.mul(oy, p["row_stride"])),
                     b.mul(ox, p["col_stride"]))
        row = b.mul(r, kpad)
        # a row whose window lies inside the image (every row where the host padded:
        # origin 0, the whole range inside) copies its segments whole from the origin
        inside = b.and_(b.and_(b.icmp_signed(">=", oy, p["oy_lo"]),
                               b.icmp_signed("<", oy, p["oy_hi"])),
                        b.and_(b.icmp_signed(">=", ox, p["ox_lo"]),
                               b.icmp_signed("<", ox, p["ox_hi"])))
        with b.if_else(inside) as (plain, edge):
            with plain:
                origin = b.add(base, p["origin"])
                with u.counted_loop(b, u.i64(0), p["n_segs"], 1, "s") as seg:
                    off = b.load(b.gep(p["seg_offs"], [seg], source_etype=u.I64), typ=u.I64)
                    src = b.gep(p["a"], [b.add(origin, off)], source_etype=I8)
                    dst = b.gep(apack, [b.add(row, b.mul(seg, p["seg_len"]))],
                                source_etype=I8)
                    _copy_bytes(b, src, dst, p["segment"])
            with edge:
                _pack_padded_row(b, p, apack, row, base, oy, ox)
        _next_row(b, p, coords, b.icmp_signed("<", b.add(m0, r), last))


def _entry_alloca(b, ty):
    """A stack slot made in the function's entry block (where LLVM promotes slots to
    registers; one made inside a loop would be a fresh stack allocation each trip)."""
    here = b.block
    entry = b.function.entry_basic_block
    if entry.terminator is not None:
        b.position_before(entry.terminator)
    else:
        b.position_at_end(entry)
    slot = b.alloca(ty)
    b.position_at_end(here)
    return slot


def _next_row(b, p, coords, step) -> None:
    """(image, output row, output column) in their slots moved one row on where `step`
    (along the output row, wrapping to the next row and image); kept where not (the
    rows past the last re-read it)."""
    img, oy, ox = (b.load(slot, typ=u.I64) for slot in coords)
    one, zero = u.i64(1), u.i64(0)
    nx = b.add(ox, one)
    wrap_x = b.icmp_signed("==", nx, p["ow"])
    ny = b.select(wrap_x, b.add(oy, one), oy)
    wrap_y = b.icmp_signed("==", b.mul(ny, p["ow"]), p["ohw"])
    values = (b.select(wrap_y, b.add(img, one), img), b.select(wrap_y, zero, ny),
              b.select(wrap_x, zero, nx))
    for slot, old, new in zip(coords, (img, oy, ox), values):
        b.store(b.select(step, new, old), slot)


def _pack_padded_row(b, p, apack, row, base, oy, ox):
    """One A row of a convolution over its unpadded channels-last input: kernel row ky's
    run is the image's bytes from the window origin (oy * stride - pad_top + ky * dil,
    ox * stride - pad_left), copied whole where it lies inside the image, else with the
    zero point in the columns left or right of it (and in all of it above or below the
    image, and in a run's bytes past the window: those meet zero weights)."""
    y0 = b.sub(b.mul(oy, p["stride_h"]), p["pad_top"])
    x0 = b.sub(b.mul(ox, p["stride_w"]), p["pad_left"])
    lo = b.mul(b.select(b.icmp_signed("<", x0, u.i64(0)), b.neg(x0), u.i64(0)), p["pix"])
    hi = b.mul(u.imin(b, p["span_w"], b.sub(p["in_w"], x0)), p["pix"])
    whole_x = b.and_(b.icmp_signed("==", lo, u.i64(0)),
                     b.icmp_signed(">=", hi, p["seg_len"]))
    origin = b.gep(p["a"], [b.add(base, p["origin"])], source_etype=I8)
    with u.counted_loop(b, u.i64(0), p["n_segs"], 1, "ky") as ky:
        y = b.add(y0, b.mul(ky, p["dil_h"]))
        inside = b.and_(b.icmp_signed(">=", y, u.i64(0)), b.icmp_signed("<", y, p["in_h"]))
        off = b.load(b.gep(p["seg_offs"], [ky], source_etype=u.I64), typ=u.I64)
        src = b.gep(origin, [off], source_etype=I8)
        dst = b.gep(apack, [b.add(row, b.mul(ky, p["seg_len"]))], source_etype=I8)
        with b.if_else(b.and_(inside, whole_x)) as (whole, edge):
            with whole:
                _copy_bytes(b, src, dst, p["segment"])
            with edge:
                zero = u.i64(0)
                _copy_window(b, src, dst, p["seg_len"], b.select(inside, lo, zero),
                             b.select(inside, hi, zero), p["zp_row"])


def _copy_window(b, src, dst, length, lo, hi, zp_row):
    """dst[:length] = src's bytes [lo, hi), the zero point (zp_row's bytes) elsewhere, by
    64-byte masked loads: no byte of src outside [lo, hi) is read, none of dst past
    length written."""
    v64 = u.vec(I8, 64)
    zp = b.load(zp_row, typ=v64, align=64)
    mask_t = u.vec(ir.IntType(1), 64)
    chunks = b.sdiv(b.add(length, u.i64(63)), u.i64(64))
    with u.counted_loop(b, u.i64(0), chunks, 1, "w") as c:
        at = b.mul(c, u.i64(64))
        read = b.and_(Q._bytes_below(b, b.sub(hi, at)), b.not_(Q._bytes_below(b, b.sub(lo, at))))
        value = _masked(b, "load", v64, b.gep(src, [at], source_etype=I8),
                        ir.Constant(u.I32, 1), b.bitcast(read, mask_t), zp)
        _masked(b, "store", v64, value, b.gep(dst, [at], source_etype=I8),
                ir.Constant(u.I32, 1), b.bitcast(Q._bytes_below(b, b.sub(length, at)), mask_t))


_HALF = 16      # rows of an A tile


def _half_in_place(b, p, m0):
    """(in place, byte offset of its first row's window) of the 16 rows from m0: their A
    tile is read from the input itself, rows col_stride apart, where the block allows it
    (lite.amx_in_place: whole 64-byte k steps within segments, no k padding), all 16
    rows lie in the GEMM and on one output row, and their windows inside the image (every
    row where the host padded). Such a half packs nothing: resnet18's stride-1 3x3
    convs read most of their tiles so (the packing copied each input byte ~9 times)."""
    last = b.sub(p["m"], u.i64(1))
    img, oy, ox = Q._row_base(b, p, u.imin(b, m0, last))
    end_x = b.add(ox, u.i64(_HALF - 1))
    ok = b.and_(b.icmp_signed("!=", p["direct"], u.i64(0)),
                b.icmp_signed("<=", b.add(m0, u.i64(_HALF - 1)), last))
    ok = b.and_(ok, b.icmp_signed("<", end_x, p["ow"]))
    ok = b.and_(ok, b.and_(b.icmp_signed(">=", oy, p["oy_lo"]),
                           b.icmp_signed("<", oy, p["oy_hi"])))
    ok = b.and_(ok, b.and_(b.icmp_signed(">=", ox, p["ox_lo"]),
                           b.icmp_signed("<", end_x, p["ox_hi"])))
    base = b.add(b.add(b.add(b.mul(img, p["img_stride"]), b.mul(oy, p["row_stride"])),
                       b.mul(ox, p["col_stride"])), p["origin"])
    return ok, base


def _pack_tile(b, p, m0, apack, kpad, table, steps, linear: bool) -> None:
    """The row tile's A rows into apack (rows kpad bytes apart), the halves and k steps
    read in place left out; each half's window offset, kind and (kind 2) a byte per k
    step (1: packed, 0: in place) into table (lite.amx_halves_bytes' layout: the tiles'
    geometry is worked out once a block, not once per column block: its divisions were
    ~5% of a 56x56 conv's). linear (direct 2, lite.amx_in_place: windows col_stride
    apart across rows): per k step (_pack_linear_half); else per half (_half_in_place).
    The caller runs one or the other over its block's tiles (the choice made once a
    block)."""
    for h in range(AMX.mr // _HALF):
        m_h = b.add(m0, u.i64(h * _HALF))
        rows = b.gep(apack, [b.mul(kpad, u.i64(h * _HALF))], source_etype=I8)
        base_slot = b.gep(table, [u.i64(8 * h)], source_etype=I8)
        kind_slot = b.gep(table, [u.i64(16 + h)], source_etype=I8)
        if linear:
            flags = b.gep(table, [b.add(u.i64(_FLAGS_AT), b.mul(steps, u.i64(h)))],
                          source_etype=I8)
            base = b.add(b.mul(m_h, p["col_stride"]), p["origin"])
            b.store(base, base_slot)
            b.store(_pack_linear_half(b, p, m_h, rows, kpad, flags, steps, base), kind_slot)
        else:
            in_place, base = _half_in_place(b, p, m_h)
            b.store(base, base_slot)
            b.store(b.zext(b.not_(in_place), I8), kind_slot)     # no per-step flags
            with b.if_then(b.not_(in_place)):
                _pack_a(b, p, m_h, rows, kpad, _HALF)


# a tile's halves table (lite.amx_halves_bytes): the halves' window offsets (int64), their
# kinds (a byte each: 0 every k step in place, 1 every step packed, 2 some of each), the
# per-step flags from _FLAGS_AT (written for kind 2 only)
_FLAGS_AT = 32
_IOTA16 = ir.Constant(u.vec(u.I32, _HALF), list(range(_HALF)))


def _linear_coords(b, p, m0):
    """The 16 rows from m0's output (row, column) as <16 x i32> vectors, stepped from
    m0's (two divisions a half): columns past the row's end wrap to the next row (as
    many times as 16 rows span), rows past the image's last to the next image's first."""
    v16 = u.vec(u.I32, _HALF)
    _, oy, ox = Q._row_base(b, p, u.imin(b, m0, b.sub(p["m"], u.i64(1))))
    xs, ys = _entry_alloca(b, v16), _entry_alloca(b, v16)
    b.store(b.add(u.splat(b, b.trunc(ox, u.I32), _HALF), _IOTA16), xs)
    b.store(u.splat(b, b.trunc(oy, u.I32), _HALF), ys)
    ow = u.splat(b, b.trunc(p["ow"], u.I32), _HALF)
    oh = u.splat(b, b.trunc(p["in_h"], u.I32), _HALF)     # the output's (direct 2)
    one = u.splat(b, ir.Constant(u.I32, 1), _HALF)
    wraps = b.sdiv(b.add(ox, u.i64(_HALF - 1)), p["ow"])
    with u.counted_loop(b, u.i64(0), wraps, 1, "wrap"):
        x, y = b.load(xs, typ=v16), b.load(ys, typ=v16)
        over = b.icmp_signed(">=", x, ow)
        y = b.select(over, b.add(y, one), y)
        b.store(b.select(over, b.sub(x, ow), x), xs)
        b.store(b.select(b.icmp_signed(">=", y, oh), b.sub(y, oh), y), ys)
    return b.load(ys, typ=v16), b.load(xs, typ=v16)


def _pack_linear_half(b, p, m0, rows, kpad, flags, steps, base):
    """direct 2: the 16 rows from m0 have their windows at base + r * col_stride; k step
    kt is read in place (flags[kt] = 0) where every row's window lies inside the image
    there (lite.amx_linear_steps: the step's input row and first and last column, per
    output pixel) and inside the GEMM; else it is copied into the packed rows, the zero
    point for the rows it leaves the image in (or past the last row). Of a 56x56 3x3
    conv's half-steps ~1/5 are copied so (the edge columns' taps; per half, ~3/7 of
    its halves were packed whole), of a 28x28 one's ~2/5 (5/7). Returns the half's kind
    (_FLAGS_AT's comment)."""
    v16 = u.vec(u.I32, _HALF)
    oy, ox = _linear_coords(b, p, m0)
    count = _entry_alloca(b, u.I64)
    b.store(u.i64(0), count)
    zero = ir.Constant(v16, None)
    in_h = u.splat(b, b.trunc(p["in_h"], u.I32), _HALF)
    in_w = u.splat(b, b.trunc(p["in_w"], u.I32), _HALF)
    left = b.sub(p["m"], m0)          # rows of the GEMM from m0 (may be under 16)
    in_gemm = b.icmp_signed("<", _IOTA16,
                            u.splat(b, b.trunc(u.imin(b, left, u.i64(_HALF)), u.I32), _HALF))
    src0 = b.gep(p["a"], [base], source_etype=I8)
    size = b.mul(p["m"], p["col_stride"])     # the input's bytes (direct 2)

    def step_table(kt, part):
        at = b.add(b.mul(steps, u.i64(part)), kt)
        value = b.load(b.gep(p["k_offs"], [at], source_etype=u.I64), typ=u.I64)
        return value if part == 0 else u.splat(b, b.trunc(value, u.I32), _HALF)
    with u.counted_loop(b, u.i64(0), steps, 1, "ks") as kt:
        y = b.add(oy, step_table(kt, 1))
        first, last = b.add(ox, step_table(kt, 2)), b.add(ox, step_table(kt, 3))
        valid = b.and_(b.and_(in_gemm, b.and_(b.icmp_signed(">=", y, zero),
                                              b.icmp_signed("<", y, in_h))),
                       b.and_(b.icmp_signed(">=", first, zero),
                              b.icmp_signed("<", last, in_w)))
        packed = b.icmp_signed("!=", b.bitcast(valid, ir.IntType(_HALF)),
                               ir.Constant(ir.IntType(_HALF), -1))
        b.store(b.zext(packed, I8), b.gep(flags, [kt], source_etype=I8))
        b.store(b.add(b.load(count, typ=u.I64), b.zext(packed, u.I64)), count)
        with b.if_then(packed):
            window = step_table(kt, 0)
            dst = b.gep(rows, [b.mul(kt, u.i64(64))], source_etype=I8)
            _copy_step(b, p, b.gep(src0, [window], source_etype=I8), dst, kpad, valid,
                       b.add(base, window), size)
    packed_steps = b.load(count, typ=u.I64)
    return b.select(b.icmp_signed("==", packed_steps, u.i64(0)), ir.Constant(I8, 0),
                    b.select(b.icmp_signed("==", packed_steps, steps), ir.Constant(I8, 1),
                             ir.Constant(I8, 2)))


def _copy_step(b, p, src, dst, kpad, valid, first, size) -> None:
    """A k step's 16 rows (src, col_stride apart) to dst (kpad apart), the zero point in
    the rows `valid` leaves out. Where every row's 64 bytes lie in the input (first:
    row 0's byte offset; size: the input's bytes) all are copied, then the left-out
    rows (mostly one: an edge column's) overwritten; else (the batch's first and last
    rows) each row's source is chosen, the left-out rows' never read."""
    v64 = u.vec(I8, 64)
    stride = p["col_stride"]
    last = b.add(b.add(first, b.mul(stride, u.i64(_HALF - 1))), u.i64(64))
    inside = b.and_(b.icmp_signed(">=", first, u.i64(0)), b.icmp_signed("<=", last, size))

    def row_src(r):
        return b.gep(src, [b.mul(stride, u.i64(r))], source_etype=I8)

    def row_dst(r):
        return b.gep(dst, [b.mul(kpad, r if isinstance(r, ir.Value) else u.i64(r))],
                     source_etype=I8)
    with b.if_else(inside) as (whole, edge):
        with whole:
            for r in range(_HALF):
                b.store(b.load(row_src(r), typ=v64, align=1), row_dst(r), align=1)
            zp = b.load(p["zp_row"], typ=v64, align=64)
            i16 = ir.IntType(_HALF)
            left = _entry_alloca(b, i16)
            b.store(b.not_(b.bitcast(valid, i16)), left)
            head = b.append_basic_block("zp_rows.head")
            body = b.append_basic_block("zp_rows.body")
            done = b.append_basic_block("zp_rows.done")
            b.branch(head)
            b.position_at_end(head)
            bits = b.load(left, typ=i16)
            b.cbranch(b.icmp_unsigned("!=", bits, ir.Constant(i16, 0)), body, done)
            b.position_at_end(body)
            r = b.call(_cttz(b, i16), [bits, ir.Constant(u.I1, 1)])
            b.store(zp, row_dst(b.zext(r, u.I64)), align=1)
            b.store(b.and_(bits, b.sub(bits, ir.Constant(i16, 1))), left)
            b.branch(head)
            b.position_at_end(done)
        with edge:
            for r in range(_HALF):
                # the row's bytes, or the zero point's where its window leaves the image
                # (its address is never loaded from: it may lie outside the input)
                at = b.select(b.extract_element(valid, ir.Constant(u.I32, r)), row_src(r),
                              p["zp_row"])
                b.store(b.load(at, typ=v64, align=1), row_dst(r), align=1)


def _cttz(b, ty):
    name = f"llvm.cttz.i{ty.width}"
    fn = b.module.globals.get(name)
    if fn is None:
        fn = ir.Function(b.module, ir.FunctionType(ty, [ty, u.I1]), name=name)
    return fn


def _memset(b, ptr, length) -> None:
    fn = b.module.globals.get("llvm.memset.p0.i64") or \
        b.module.declare_intrinsic("llvm.memset", [u.PTR, u.I64])
    b.call(fn, [ptr, ir.Constant(I8, 0), length, ir.Constant(u.I1, 0)])


def _a_halves(b, p, table, apack, kpad, steps):
    """Each half's (window offset's address in the input, its packed rows, its per-step
    flags, its kind) from _pack_tile's table."""
    halves = []
    for h in range(AMX.mr // _HALF):
        base = b.load(b.gep(table, [u.i64(8 * h)], source_etype=I8), typ=u.I64)
        halves.append((b.gep(p["a"], [base], source_etype=I8),
                       b.gep(apack, [b.mul(kpad, u.i64(h * _HALF))], source_etype=I8),
                       b.gep(table, [b.add(u.i64(_FLAGS_AT), b.mul(steps, u.i64(h)))],
                             source_etype=I8),
                       b.load(b.gep(table, [u.i64(16 + h)], source_etype=I8), typ=I8)))
    return halves


def _block(b, p, halves, cbuf, nb, kpad, k_range=None):
    """C tiles of column block nb over all k, stored to cbuf (32 rows of 128 bytes);
    halves: _a_halves' A tiles, each k step's read in place (the window + k_offs[kt],
    rows col_stride apart) or from the packed rows (kpad apart) as its flag says.
    k_range = (first step, end step, whether to start from cbuf's tiles): the steps of
    one k block, the C tiles carried over in cbuf (_k_blocked_tile)."""
    if k_range is None:
        k_range = (u.i64(0), b.sdiv(p["kq_pad"], u.i64(16)), None)
    k_first, k_end, carried = k_range
    if carried is None:
        for t in range(4):
            _amx(b, "tilezero", _tile(t))
    else:
        with b.if_else(carried) as (load, zero):
            with load:
                _load_c_tiles(b, cbuf)
            with zero:
                for t in range(4):
                    _amx(b, "tilezero", _tile(t))
    panel = b.mul(b.mul(nb, p["kq_pad"]), u.i64(AMX.nr * 4))
    # both halves whole (every step in place or every step packed: all but the halves
    # holding an edge pixel), each half's source and stride chosen once, not per step
    mixed = b.or_(*(b.icmp_unsigned(">", kind, ir.Constant(I8, 1)) for *_, kind in halves))
    with b.if_else(mixed) as (per_step, whole):
        with per_step:
            with u.counted_loop(b, k_first, k_end, 1, "kt") as kt:
                step = b.mul(kt, u.i64(64))
                window = b.load(b.gep(p["k_offs"], [kt], source_etype=u.I64), typ=u.I64)
                for t, (origin, rows, flags, kind) in zip((4, 5), halves):
                    # a whole half's kind is its every step's flag (its flags unwritten)
                    flag = b.select(b.icmp_unsigned(">", kind, ir.Constant(I8, 1)),
                                    b.load(b.gep(flags, [kt], source_etype=I8), typ=I8), kind)
                    packed = b.icmp_signed("!=", flag, ir.Constant(I8, 0))
                    _amx(b, "tileloadd64", _tile(t),
                         b.select(packed, b.gep(rows, [step], source_etype=I8),
                                  b.gep(origin, [window], source_etype=I8)),
                         b.select(packed, kpad, p["col_stride"]))
                _multiply_panel_k_tile(b, p, panel, kt)
        with whole:
            sources = []
            for origin, rows, _, kind in halves:
                packed = b.icmp_signed("!=", kind, ir.Constant(I8, 0))
                sources.append((packed, b.select(packed, rows, origin),
                                b.select(packed, kpad, p["col_stride"])))
            with u.counted_loop(b, k_first, k_end, 1, "kw") as kt:
                step = b.mul(kt, u.i64(64))
                window = b.load(b.gep(p["k_offs"], [kt], source_etype=u.I64), typ=u.I64)
                for t, (packed, start, stride) in zip((4, 5), sources):
                    _amx(b, "tileloadd64", _tile(t),
                         b.gep(start, [b.select(packed, step, window)], source_etype=I8),
                         stride)
                _multiply_panel_k_tile(b, p, panel, kt)
    _store_c_tiles(b, cbuf)


def _emit(module: ir.Module, u8_out: bool, residual: bool = False) -> None:
    """qgemm_amx_<u8|f32>(t_begin, t_end, worker, params): row blocks of whole row tiles
    (32 rows), block j the tiles [j * m_tiles // row_blocks, (j + 1) * m_tiles //
    row_blocks) (row_blocks 0: one tile a block); a task packs its block's A rows once,
    then walks every column block, running each of its row tiles on that weight panel in
    turn (so a weight larger than L2 streams from memory once per block, not once per
    tile: resnet18's 3x3 x 512 convs took ~40% longer so). The blocks run are
    [t_begin, t_end) (chunk 0) or claimed from the block's counter (qgemm.claim_loop:
    chunk > 0 fixed claims, < 0 guided ones for -chunk threads), so a thread that
    starts late leaves its blocks to the other. col_split > 0: every thread walks every
    row block, packing its tiles once into rows the threads share and claiming its
    column blocks (_column_claims), for weights too large for a thread's L2.
    residual: qgemm_amx_u8_add, the uint8 result added to the block's "other" operand in
    the epilogue (qgemm._residual_add: the conv + quantized_add pair's integers); its
    output rows are ldo = n_valid wide (the operand's pitch), the columns past n_valid
    not stored."""
    name = "qgemm_amx_u8_add" if residual else f"qgemm_amx_{'u8' if u8_out else 'f32'}"
    fn, b = u.define(module, name, u.VOID, [("t_begin", u.I64), ("t_end", u.I64),
                                            ("worker", u.I64), ("params", u.PTR)])
    t_begin, t_end, worker, params = fn.args
    ptrs = {"a", "offs", "packed", "out", "corr", "mult", "bias", "qparams", "scratch",
            "tilecfg", "seg_offs", "other", "zp_row", "k_offs"}
    p = {f: b.load(b.gep(params, [u.i64(i)], source_etype=u.I64), typ=u.I64)
         for i, f in enumerate(FIELDS) if f != "counter"}
    # in FIELDS order, not the set's: the module's text is the disk cache's key, and a
    # set of strings iterates in a per-process order (a recompile in every process)
    p.update({f: b.inttoptr(p[f], u.PTR) for f in FIELDS if f in ptrs})
    if not residual:        # plain stores, as before the residual kernel existed
        del p["n_valid"], p["other"]
    p["segment"] = _segment_copy(b, p["seg_len"])
    _amx(b, "ldtilecfg", p["tilecfg"])
    kpad = b.mul(p["kq_pad"], u.i64(4))
    tile_bytes = b.mul(kpad, u.i64(AMX.mr))
    steps = b.sdiv(p["kq_pad"], u.i64(16))
    # lite.amx_halves_bytes
    halves_bytes = b.add(u.i64(_FLAGS_AT), b.mul(b.sdiv(b.add(b.mul(steps, u.i64(2)), u.i64(15)),
                                                 u.i64(16)), u.i64(16)))
    apack = b.gep(p["scratch"], [b.mul(worker, p["scratch_stride"])], source_etype=I8)
    # the C tiles after the packed rows of the largest block (the thread's last 4 KiB);
    # k blocks: a column block's each (lite.amx_scratch_stride)
    cbuf = b.gep(apack, [b.sub(p["scratch_stride"], u.i64(lite.AMX_C_BYTES))],
                 source_etype=I8)
    cbufs = b.gep(apack, [b.sub(p["scratch_stride"],
                                b.mul(p["n_blocks"], u.i64(lite.AMX_C_BYTES)))],
                  source_etype=I8)
    m_tiles = p["m_tiles"]
    blocks = b.select(b.icmp_signed(">", p["row_blocks"], u.i64(0)), p["row_blocks"], m_tiles)
    # the halves' table after the largest block's packed rows and their spill
    # (lite.amx_scratch_stride's layout)
    most = b.sdiv(b.add(m_tiles, b.sub(blocks, u.i64(1))), blocks)
    tables = b.gep(apack, [b.add(b.mul(most, tile_bytes), u.i64(lite.AMX_PACK_SPILL))],
                   source_etype=I8)
    def layout(apack, tables, cbuf):
        """(pack_tile, walk) over packed rows at apack, halves tables at tables, C tiles
        at cbuf; tile mt's rows at (mt - base) tiles from apack."""
        def rows_of(mt, base):
            return b.gep(apack, [b.mul(b.sub(mt, base), tile_bytes)], source_etype=I8)

        def table_of(mt, base):
            return b.gep(tables, [b.mul(b.sub(mt, base), halves_bytes)], source_etype=I8)

        def pack_tile(mt, base):
            with b.if_else(b.icmp_signed("==", p["direct"], u.i64(2))) as (by_step, by_half):
                for linear, branch in ((True, by_step), (False, by_half)):
                    with branch:
                        _pack_tile(b, p, b.mul(mt, u.i64(AMX.mr)), rows_of(mt, base), kpad,
                                   table_of(mt, base), steps, linear)

        def walk(first, stop, base, nb_begin, nb_end):
            """Column blocks [nb_begin, nb_end) over tiles [first, stop) (whole k)."""
            with u.counted_loop(b, nb_begin, nb_end, 1, "nb") as nb:
                with u.counted_loop(b, first, stop, 1, "mt") as mt:
                    _block(b, p, _a_halves(b, p, table_of(mt, base), rows_of(mt, base), kpad,
                                           steps), cbuf, nb, kpad)
                    Q._epilogue(b, AMX, p, _acc_from(b, cbuf), b.mul(mt, u.i64(AMX.mr)),
                                nb, u8_out, residual=residual)
        return rows_of, table_of, pack_tile, walk

    def block_range(rb):
        return (b.sdiv(b.mul(rb, m_tiles), blocks),
                b.sdiv(b.mul(b.add(rb, u.i64(1)), m_tiles), blocks))
    with b.if_else(b.icmp_signed(">", p["col_split"], u.i64(0))) as (by_cols, by_rows):
        with by_cols:
            # lite.amx_col_scratch's layout: every tile's packed rows, their spill, their
            # tables (shared by the threads), then each thread's C tiles
            shared_rows = p["scratch"]
            shared_tables = b.gep(shared_rows, [b.add(b.mul(m_tiles, tile_bytes),
                                                      u.i64(lite.AMX_PACK_SPILL))],
                                  source_etype=I8)
            used = b.add(b.mul(m_tiles, b.add(tile_bytes, halves_bytes)),
                         u.i64(lite.AMX_PACK_SPILL + 63))
            own_c = b.add(b.and_(used, u.i64(-64)), b.mul(worker, u.i64(lite.AMX_C_BYTES)))
            _, _, pack_tile, walk = layout(shared_rows, shared_tables,
                                           b.gep(shared_rows, [own_c], source_etype=I8))
            _column_claims(b, p, params, worker, blocks, block_range, pack_tile, walk)
        with by_rows:
            rows_of, table_of, pack_tile, walk = layout(apack, tables, cbuf)
            _row_claims(b, params, p, t_begin, t_end, blocks, block_range, pack_tile, walk,
                        rows_of, table_of, cbufs, kpad, steps, u8_out, residual)
    _amx(b, "tilerelease")
    b.ret_void()


def _row_claims(b, params, p, t_begin, t_end, blocks, block_range, pack_tile, walk,
                rows_of, table_of, cbufs, kpad, steps, u8_out, residual):
    """Row blocks claimed whole (the block's "counter"): each packed into the thread's
    scratch, then every column block walked over its tiles (or, k blocks, each tile
    over every column block)."""
    shared = b.gep(params, [u.i64(FIELDS.index("counter"))], source_etype=u.I64)
    begin, end, claim_head, claims_done = Q.claim_loop(b, shared, p["chunk"], t_begin, t_end,
                                                       blocks)
    with u.counted_loop(b, begin, end, 1, "rb") as rb:
        first, stop = block_range(rb)
        with u.counted_loop(b, first, stop, 1, "pt") as mt:
            pack_tile(mt, first)
        with b.if_else(b.icmp_signed(">", p["k_block"], u.i64(0))) as (k_blocked, whole_k):
            with k_blocked:
                with u.counted_loop(b, first, stop, 1, "kmt") as mt:
                    halves = _a_halves(b, p, table_of(mt, first), rows_of(mt, first), kpad,
                                       steps)
                    _k_blocked_tile(b, p, halves, cbufs, kpad, steps)
                    with u.counted_loop(b, u.i64(0), p["n_blocks"], 1, "knb") as nb:
                        c_nb = b.gep(cbufs, [b.mul(nb, u.i64(lite.AMX_C_BYTES))],
                                     source_etype=I8)
                        Q._epilogue(b, AMX, p, _acc_from(b, c_nb), b.mul(mt, u.i64(AMX.mr)),
                                    nb, u8_out, residual=residual)
            with whole_k:
                walk(first, stop, first, u.i64(0), p["n_blocks"])
    b.branch(claim_head)
    b.position_at_end(claims_done)


# the column split's counter words per row block, after the block's fields: the column
# claims (front in the low 32 bits, back in the high), the tiles claimed for packing, the
# tiles packed (lite.AMX_COL_WORDS)
_COLS, _PACK_CLAIMED, _PACKED = range(3)
PACK_WAIT_TICKS = 20_000       # ~8 us at the 2-4 GHz the cycle counters tick at


def _column_claims(b, p, params, worker, blocks, block_range, pack_tile, walk):
    """Column split (col_split > 0, lite.amx_col_split): every thread walks every row
    block. At each where column blocks are left, the threads claim its tiles to pack into
    the shared rows one at a time (so a thread that comes late finds them packed), wait
    until all are, then claim column blocks one at a time, even workers from the front,
    odd ones from the back (a claim is valid while the two ends' counts sum under
    n_blocks). So each thread streams only the weight panels it claims, mostly the same
    ones at every row block (its end of the weight, which stays in its L2), and whichever
    thread comes first takes more of them."""
    n = p["n_blocks"]
    back = b.icmp_signed("!=", b.and_(worker, u.i64(1)), u.i64(0))
    step = b.select(back, u.i64(1 << 32), u.i64(1))

    def taken(word):
        return b.add(b.and_(word, u.i64(0xFFFFFFFF)), b.lshr(word, u.i64(32)))

    def loop(name):
        return tuple(b.append_basic_block(f"{name}.{part}") for part in ("head", "body", "done"))
    with u.counted_loop(b, u.i64(0), blocks, 1, "crb") as rb:
        first, stop = block_range(rb)
        at = b.add(b.mul(rb, u.i64(3)), u.i64(len(FIELDS)))
        word = {k: b.gep(params, [b.add(at, u.i64(k))], source_etype=u.I64)
                for k in (_COLS, _PACK_CLAIMED, _PACKED)}
        left = b.icmp_signed("<", taken(b.load_atomic(word[_COLS], "monotonic", 8,
                                                      typ=u.I64)), n)
        with b.if_then(left):
            head, body, done = loop("pack")
            b.branch(head)
            b.position_at_end(head)
            mt = b.add(first, b.atomic_rmw("add", word[_PACK_CLAIMED], u.i64(1), "monotonic"))
            b.cbranch(b.icmp_signed("<", mt, stop), body, done)
            b.position_at_end(body)
            pack_tile(mt, u.i64(0))
            b.atomic_rmw("add", word[_PACKED], u.i64(1), "release")
            b.branch(head)
            b.position_at_end(done)
            # every tile of the block packed (by either thread) before any is read (a
            # tile's packing: ~7 us); past PACK_WAIT_TICKS the packer is taken to be
            # descheduled (a busy host) and each step yields the core
            started = spin._ticks(b)
            head, body, done = loop("wait")
            b.branch(head)
            b.position_at_end(head)
            packed = b.load_atomic(word[_PACKED], "acquire", 8, typ=u.I64)
            b.cbranch(b.icmp_signed("<", packed, b.sub(stop, first)), body, done)
            b.position_at_end(body)
            spin._pause(b)
            late = b.icmp_unsigned(">", b.sub(spin._ticks(b), started), u.i64(PACK_WAIT_TICKS))
            with b.if_then(late):
                spin._sched_yield(b)
            b.branch(head)
            b.position_at_end(done)
            head, body, done = loop("col")
            b.branch(head)
            b.position_at_end(head)
            old = b.atomic_rmw("add", word[_COLS], step, "monotonic")
            nb = b.select(back, b.sub(b.sub(n, u.i64(1)), b.lshr(old, u.i64(32))),
                          b.and_(old, u.i64(0xFFFFFFFF)))
            b.cbranch(b.icmp_signed("<", taken(old), n), body, done)
            b.position_at_end(body)
            walk(first, stop, u.i64(0), nb, b.add(nb, u.i64(1)))
            b.branch(head)
            b.position_at_end(done)


# --- linear layers: A read in place, column blocks outer, tasks claimed -------------------
LINEAR_KINDS = ("u8", "f32", "deq")
_LINEAR_ROWS = 2 * 16          # rows of a task: two A tiles
# the most bytes of A a linear kernel packs into tile order on each thread's stack (rows
# padded to 32, k to 64 bytes); larger inputs are read in place
LINEAR_PACK_BYTES = 1 << 18


def _packs(m: int, k: int) -> bool:
    return -(-m // _LINEAR_ROWS) * _LINEAR_ROWS * -(-k // 64) * 64 <= LINEAR_PACK_BYTES


def linear_applies(m: int, k: int) -> bool:
    """Whether qgemm_amx_lin_* runs a linear layer of m rows and k inputs: A packed into
    tile order where it fits LINEAR_PACK_BYTES (any m and k), else read in place, which
    needs whole tiles (m a multiple of 32, k of 64: no load past A)."""
    if m <= 0 or k <= 0:
        return False
    return _packs(m, k) or m % _LINEAR_ROWS == 0 and k % 64 == 0


def _tile_config(b):
    """ldtilecfg's 64 bytes on the stack (lite.amx_tile_config's: palette 1, eight tiles
    of 16 rows x 64 bytes), so the linear kernels need no scratch from the host."""
    raw = bytes(lite.amx_tile_config())
    ty = ir.ArrayType(I8, 64)
    slot = b.alloca(ty)
    slot.align = 64
    b.store(ir.Constant(ty, bytearray(raw)), slot)
    return slot


def _linear_block(b, p, a_tiles, cbuf, nb):
    """C tiles of a row tile x column block nb over all k, stored to cbuf (32 rows of 128
    bytes). a_tiles = (address of k step 0's upper and lower A tile, bytes from one k
    step's tiles to the next's, the tiles' row stride)."""
    upper, lower, k_step, stride = a_tiles
    for t in range(4):
        _amx(b, "tilezero", _tile(t))
    panel = b.mul(b.mul(nb, p["kq"]), u.i64(AMX.nr * 4))
    with u.counted_loop(b, u.i64(0), b.sdiv(p["kq"], u.i64(16)), 1, "kt") as kt:
        a_off = b.mul(kt, k_step)
        _amx(b, "tileloadd64", _tile(4), b.gep(upper, [a_off], source_etype=I8), stride)
        _amx(b, "tileloadd64", _tile(5), b.gep(lower, [a_off], source_etype=I8), stride)
        _multiply_panel_k_tile(b, p, panel, kt)
    _store_c_tiles(b, cbuf)


def _pack_rows(b, p, lda, steps):
    """(buffer, condition): where A fits LINEAR_PACK_BYTES, each thread first copies it
    into a stack buffer in tile order, [row tile][k step][upper / lower][16 rows][64
    bytes], so a tile load reads 1 KiB in a row (rows read in place are lda bytes
    apart: with k = 4096 each row in its own page, which the prefetchers followed worse:
    the 64 x 4096 x 1024 GEMM took ~20% longer). A row's bytes past k (to whole 64-byte
    steps) are zero, as are the rows of a partial last tile past m (their results land
    in padding rows), so nothing past A is read."""
    m = p["m"]
    tiles = b.sdiv(b.add(m, u.i64(AMX.mr - 1)), u.i64(AMX.mr))
    size = b.mul(b.mul(tiles, steps), u.i64(2 * 1024))
    fits = b.icmp_signed("<=", size, u.i64(LINEAR_PACK_BYTES))
    slot = b.alloca(I8, size=b.select(fits, size, u.i64(0)))
    slot.align = 64
    buf = b.inttoptr(b.ptrtoint(slot, u.I64), u.PTR)      # an opaque pointer
    v64 = u.vec(I8, 64)
    iota = ir.Constant(v64, list(range(64)))
    with b.if_then(fits):
        partial = b.icmp_signed("!=", b.srem(m, u.i64(AMX.mr)), u.i64(0))
        with b.if_then(partial):
            last = b.mul(b.sub(tiles, u.i64(1)), b.mul(steps, u.i64(2 * 1024)))
            _memset(b, b.gep(buf, [last], source_etype=I8), b.mul(steps, u.i64(2 * 1024)))
        with u.counted_loop(b, u.i64(0), m, 1, "pr") as r:
            mt, rr = b.sdiv(r, u.i64(AMX.mr)), b.srem(r, u.i64(AMX.mr))
            dst0 = b.add(b.mul(b.mul(mt, steps), u.i64(2 * 1024)),
                         b.add(b.mul(b.sdiv(rr, u.i64(16)), u.i64(1024)),
                               b.mul(b.srem(rr, u.i64(16)), u.i64(64))))
            src = b.gep(p["a"], [b.mul(r, lda)], source_etype=I8)
            with u.counted_loop(b, u.i64(0), steps, 1, "pk") as kt:
                left = b.sub(lda, b.mul(kt, u.i64(64)))
                at = b.gep(src, [b.mul(kt, u.i64(64))], source_etype=I8)
                # the bytes of this step that lie in the row (a masked load: none past it)
                n = b.trunc(u.imin(b, b.select(b.icmp_signed("<", left, u.i64(0)), u.i64(0),
                                               left), u.i64(64)), I8)
                mask = b.icmp_unsigned("<", iota, u.splat(b, n, 64))
                value = _masked(b, "load", v64, at, ir.Constant(u.I32, 1), mask,
                                ir.Constant(v64, None))
                b.store(value, b.gep(buf, [b.add(dst0, b.mul(kt, u.i64(2 * 1024)))],
                                     source_etype=I8), align=64)
    return buf, fits


def _emit_linear(module: ir.Module, kind: str) -> None:
    """qgemm_amx_lin_<u8|f32|deq>(t_begin, t_end, worker, params): a linear layer's GEMM
    on qgemm's parameter block (lite.QGEMM_FIELDS, so lite.QGemmCall drives it: claimed
    tasks, a kept block, per-call corr / mult / bias). Task t is column block t / m_tiles
    x row tile t % m_tiles (32 x 32): consecutive tasks share a weight panel, so each
    weight byte comes from memory once per call (the row-tile kernel above streams the
    whole weight once per 32 rows: twice for a batch of 64). A is packed into tile
    order on each thread (_pack_rows) or, too large for that, read in place (row m at a
    + m * img_stride: whole tiles, linear_applies). kq is the packed weight's (k groups
    padded to 16). deq: the uint8 result dequantized to float32 in the epilogue
    (qgemm_u8_deq's arithmetic)."""
    fn, b = u.define(module, f"qgemm_amx_lin_{kind}", u.VOID,
                     [("t_begin", u.I64), ("t_end", u.I64), ("worker", u.I64),
                      ("params", u.PTR)])
    t_begin, t_end, _, params = fn.args
    p = {f: Q._field(b, params, f, f in Q._PTR_FIELDS) for f in Q.FIELDS if f != "counter"}
    _amx(b, "ldtilecfg", _tile_config(b))
    cbuf = b.alloca(ir.ArrayType(I8, lite.AMX_C_BYTES))
    cbuf.align = 64
    v32 = u.vec(u.I32, AMX.lanes)

    def acc_at(r, v):
        return b.load(b.gep(cbuf, [u.i64(r * 128 + v * 64)], source_etype=I8), typ=v32,
                      align=64)
    lda, steps = p["img_stride"], b.sdiv(p["kq"], u.i64(16))
    packed, fits = _pack_rows(b, p, lda, steps)
    begin, end, claim_head, claims_done = Q._claims(b, params, p, t_begin, t_end)
    with u.counted_loop(b, begin, end, 1, "t") as t:
        nb = b.sdiv(t, p["m_tiles"])
        mt = b.sub(t, b.mul(nb, p["m_tiles"]))
        m0 = b.mul(mt, u.i64(AMX.mr))
        in_place = b.gep(p["a"], [b.mul(m0, lda)], source_etype=I8)
        upper = b.select(fits, b.gep(packed, [b.mul(b.mul(mt, steps), u.i64(2 * 1024))],
                                     source_etype=I8), in_place)
        lower = b.gep(upper, [b.select(fits, u.i64(1024), b.mul(lda, u.i64(16)))],
                      source_etype=I8)
        _linear_block(b, p, (upper, lower, b.select(fits, u.i64(2 * 1024), u.i64(64)),
                             b.select(fits, u.i64(64), lda)), cbuf, nb)
        if kind == "deq":
            Q._packed_row_epilogue(b, AMX, p, acc_at, m0, nb, Q.epilogue_columns(b, AMX, p, nb),
                                   Q.epilogue_qparams(b, p, AMX.lanes), dequant=True)
        else:
            Q._epilogue(b, AMX, p, acc_at, m0, nb, kind == "u8", packed_rows=True)
    b.branch(claim_head)
    b.position_at_end(claims_done)
    _amx(b, "tilerelease")
    b.ret_void()


def _multiply_panel_k_tile(b, p, panel, kt):
    """Weight tiles 6 and 7 (the panel's two 16-column halves at k tile kt) times A tiles
    4 and 5 (the row tile's upper and lower 16 rows) into C tiles 0-3."""
    w_off = b.add(panel, b.mul(kt, u.i64(16 * AMX.nr * 4)))
    for t, col in ((6, 0), (7, 64)):
        _amx(b, "tileloadd64", _tile(t),
             b.gep(p["packed"], [b.add(w_off, u.i64(col))], source_etype=I8),
             u.i64(AMX.nr * 4))
    for c, a, w in ((0, 4, 6), (1, 4, 7), (2, 5, 6), (3, 5, 7)):
        _amx(b, "tdpbusd", _tile(c), _tile(a), _tile(w))


def _acc_from(b, cbuf):
    """The epilogue's acc(r, v): row r's int32 vector v of a 32 x 32 C buffer."""
    v32 = u.vec(u.I32, AMX.lanes)

    def acc_at(r, v):
        return b.load(b.gep(cbuf, [u.i64(r * 128 + v * 64)], source_etype=I8), typ=v32,
                      align=64)
    return acc_at


def _k_blocked_tile(b, p, halves, cbufs, kpad, steps):
    """A row tile's C tiles for every column block (column block nb's in cbufs + nb *
    4 KiB), k_block steps at a time: each k block of A (in place or packed) is walked
    over every weight panel's k block before the next, so it stays in L1 while the
    weight streams from L2 (a 14x14 x 256 conv's 2304 k bytes: 72 KiB of A and 72 KiB
    of each panel per tile, both from L2 with whole-k blocks)."""
    k_block = p["k_block"]
    blocks = b.sdiv(b.add(steps, b.sub(k_block, u.i64(1))), k_block)
    with u.counted_loop(b, u.i64(0), blocks, 1, "kb") as kb:
        k_first = b.mul(kb, k_block)
        k_end = u.imin(b, b.add(k_first, k_block), steps)
        carried = b.icmp_signed(">", kb, u.i64(0))
        with u.counted_loop(b, u.i64(0), p["n_blocks"], 1, "kbn") as nb:
            c_nb = b.gep(cbufs, [b.mul(nb, u.i64(lite.AMX_C_BYTES))], source_etype=I8)
            _block(b, p, halves, c_nb, nb, kpad, (k_first, k_end, carried))


def _load_c_tiles(b, cbuf):
    """C tiles 0-3 from a 32 x 32 int32 buffer (_store_c_tiles' layout)."""
    for t, off in ((0, 0), (1, 64), (2, 16 * 128), (3, 16 * 128 + 64)):
        _amx(b, "tileloadd64", _tile(t), b.gep(cbuf, [u.i64(off)], source_etype=I8),
             u.i64(128))


def _store_c_tiles(b, cbuf):
    """C tiles 0-3 to the thread's 32 x 32 int32 buffer (rows 128 bytes apart)."""
    for t, off in ((0, 0), (1, 64), (2, 16 * 128), (3, 16 * 128 + 64)):
        _amx(b, "tilestored64", _tile(t), b.gep(cbuf, [u.i64(off)], source_etype=I8),
             u.i64(128))


def module_for() -> ir.Module:
    module = ir.Module(name="ember_qgemm_amx")
    _emit(module, True)
    _emit(module, False)
    _emit(module, True, residual=True)
    for kind in LINEAR_KINDS:
        _emit_linear(module, kind)
    return module


@functools.lru_cache(maxsize=1)
def _kernels():
    lib = compile_built(module_for, target=target_for(Isa.AVX512))
    argtypes = [ctypes.c_int64] * 3 + [ctypes.c_void_p]
    kernels = {True: lib.function("qgemm_amx_u8", None, *argtypes),
               False: lib.function("qgemm_amx_f32", None, *argtypes),
               "add": lib.function("qgemm_amx_u8_add", None, *argtypes)}
    for kind in LINEAR_KINDS:
        kernels[kind] = lib.function(f"qgemm_amx_lin_{kind}", None, *argtypes)
    return lib, kernels


def run(gather, packed: Q.PackedWeight, x_zero_point: int, mult, bias, qparams,
        u8_out: bool, threads: int | None = None) -> np.ndarray:
    """qgemm.run on AMX tiles (same arguments, same results); the driver is the lite
    runtime's, as for the vector kernels."""
    return run_vectors(gather, packed, packed.epilogue_vectors(x_zero_point, mult, bias),
                       qparams, u8_out, threads)


def run_vectors(gather, packed: Q.PackedWeight, vectors, qparams, u8_out: bool,
                threads: int | None = None) -> np.ndarray:
    """qgemm.run_vectors on AMX tiles."""
    corr, mult, bias = vectors
    _, fns = _kernels()
    return lite.qgemm_amx_run(fns[u8_out], default_pool(), gather, packed.data, packed.kq,
                              packed.n, corr, mult, bias, qparams, u8_out, threads)


def prepare_linear(gather, packed: Q.PackedWeight, vectors, qparams, u8_out: bool,
                   dequant_scale: float | None = None):
    """qgemm.prepare for a linear layer on AMX tiles (linear_applies to the gather's rows
    and the weight's k): the same function(buffer, threads=None, corr=, mult=, bias=)
    and the same results, qgemm_amx_lin_* driven by lite.QGemmCall. dequant_scale: the
    uint8 result dequantized (qgemm.prepare's)."""
    corr, mult, bias = vectors
    k = gather.img_stride         # A's rows: contiguous, k bytes each (linear_rows)
    if not (gather.ohw == 1 and linear_applies(gather.m, k) and len(gather.offs) == packed.kq
            and 4 * packed.kq - k in range(64)):
        raise ValueError(f"qgemm_amx: no linear kernel for {gather.m} rows of {k} bytes "
                         f"and a weight of {4 * packed.kq} k bytes")
    kernels = _kernels()[1]
    if dequant_scale is not None:
        fn, u8_out = kernels["deq"], False
        qparams = tuple(qparams[:4]) + (float(np.float32(dequant_scale)),)
    else:
        fn = kernels["u8" if u8_out else "f32"]
    call = lite.QGemmCall(gather, packed.data, packed.kq, packed.n, AMX.mr, AMX.nr, corr,
                          mult, bias, qparams, u8_out, claim=lite.GUIDED)
    run = functools.partial(_run_prepared, call, fn)
    run.on_one_thread = functools.partial(call.on_one_thread, fn)
    return run


def linear_rows(m: int, k: int, packed: Q.PackedWeight) -> lite.Gather:
    """The gather of prepare_linear for a contiguous uint8 [m, k] input: rows k bytes
    apart read in place, the weight's padded k groups (no zero padded copy of A)."""
    return lite.Gather(None, m, np.arange(packed.kq, dtype=np.int64) * 4, img_stride=k)


def _run_prepared(call, fn, buffer, threads=None, corr=None, mult=None, other=None,
                  bias=None):
    return call(fn, default_pool(), buffer, threads, corr, mult, other, bias)


def prepare(gather, packed: Q.PackedWeight, vectors, qparams, u8_out: bool,
            residual: bool = False):
    """run_vectors in two steps (qgemm.prepare's contract): the parameter block and the
    threads' scratch made now, once; the returned function(buffer, other=None) runs the
    GEMM on any input buffer of gather's geometry. residual: the fused residual add
    (qgemm_amx_u8_add; qparams has its 11 entries, lite.residual_qparams), whose run
    takes other=[M, N] uint8."""
    corr, mult, bias = vectors
    _, fns = _kernels()
    call = lite.QAmxCall(gather, packed.data, packed.kq, packed.n, corr, mult, bias, qparams,
                         u8_out, residual=residual)
    fn = fns["add" if residual else u8_out]
    return functools.partial(_run_call, call, fn)


def _run_call(call, fn, buffer, other=None):
    return call(fn, default_pool(), buffer, other)
