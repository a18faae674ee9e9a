"""conv2d (groups=1, float32) as an implicit GEMM with a fused epilogue.

    conv = prepare_conv2d(w, bias, stride, padding, dilation, epilogue=Epilogue.RELU)
    conv(x, out, residual=None)      # x, out, residual: (N, C, H, W)-shaped, any strides

C[m, co] = sum_k A[m, k] * B[k, co] with rows m = (n, oh, ow) (output pixels), columns
co (output channels), and k = (kh, kw, c). Nothing materializes A (no im2col): the
microkernel's broadcast loads read the input itself. For each k segment (one tap, or
one kernel row of KW taps when (kw, c) is contiguous in the input) it points each of
its MR rows at the input pixel that row needs, or at a zero buffer where the tap falls
in the padding, and runs the channel loop with MR*NR/lanes accumulators in registers
(6x64 on AVX-512; narrower, taller tiles for few output channels, gemm.tile_for).
B, the weights, is packed once when the conv is prepared, into
NR-wide panels over all of K (zero past C_out), as the GEMM packs B.

The loop nest is the GEMM's (gemm.py) without the A packing: per thread (a range of
output rows), for each NC block of channels and each K block (about KC values of k:
several whole segments, or a chunk of one long segment), every MR x NR tile runs the
microkernel. Partial sums go to the output; the last K block adds the old partial
sum, then the epilogue: + bias[co], + residual[n, co, oh, ow], relu; and stores once.

The input needs its channels contiguous (stride 1). Otherwise (NCHW), or when C is
small (the 3-channel stem: runs of 3 floats would make the per-segment work dominate),
the input is first copied natively into a zero-padded NHWC scratch buffer; then a
segment is a whole kernel row of KW*C contiguous floats and there is no bounds check
left. The output may have any strides (NCHW or channels-last): contiguous channel runs
store whole vectors, others go through a stack tile and scalar stores.
"""
from __future__ import annotations

import contextlib
import ctypes
import enum
import functools
import threading
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from ...ir.errors import ShapeError
from ...runtime.threads import default_pool
from . import irutil as u
from . import winograd
from .gemm import GemmConfig, config, multiply_add, tile_for
from .jit import compile_built
from .target import Isa, host_isa, target_for
from .tiles import tuned_tiles


class Epilogue(enum.IntFlag):
    """What the tile store applies after the sum (bias is always added, zeros if none)."""
    NONE = 0
    RELU = 1
    RESIDUAL = 2          # + residual (same shape as the output), before relu


KC = 256                  # values of k per block (B block: KC x NC floats in L2)
NC = 512
MAX_KC = 8192             # with few output channels a block may take more k (_k_blocks)
PREFETCH_TILE = True      # _emit_tile_prefetch
WHOLE_K_FLOATS = 160 * 1024   # a B block of all of K up to 640 KiB: one K block
PANEL_FLOATS = 128 * 1024    # columns_first: one panel's partial sums up to 512 KiB
COLUMN_ITEMS = 16            # column_items: (panel, rows) items of a columns-first conv
SMALL_CHANNELS = 16       # below this, copy to a padded NHWC buffer and use row segments
_ROW_FIELDS = 4           # per tile row: input offset, ih0, iw0, output offset

# conv_rows(begin, end, worker, <pointers>, <dims>): output rows [begin, end) of N*OH*OW
_POINTERS = ("x", "wp", "out", "bias", "res", "zeros")
_DIMS = ("m", "ohw", "ow", "sh", "sw", "ph", "pw", "dh", "dw", "h", "w", "c",
         "xsn", "xsh", "xsw", "segw", "nseg", "seglen", "spb", "chunk", "k", "cout",
         "osn", "osc", "osh", "osw", "relu", "has_res")


# --- the kernel ----------------------------------------------------------------------------
def _emit_row_info(b, p, cfg: GemmConfig, m0, info) -> None:
    """info[r] = (input offset of (n, ih0, iw0), ih0, iw0, output offset) for row m0 + r;
    rows past the end repeat the last row (computed, never stored)."""
    last = b.sub(p["m"], u.i64(1))
    n, pix = b.sdiv(m0, p["ohw"]), b.srem(m0, p["ohw"])
    oh, ow = b.sdiv(pix, p["ow"]), b.srem(pix, p["ow"])      # divisions for row 0 only
    one, zero = u.i64(1), u.i64(0)
    for r in range(cfg.mr):
        if r:   # the next output pixel, or the same one again past the last row
            stay = b.icmp_signed(">", b.add(m0, u.i64(r)), last)
            ow1 = b.add(ow, one)
            wrap_w = b.icmp_signed("==", ow1, p["ow"])
            oh1 = b.select(wrap_w, b.add(oh, one), oh)
            wrap_h = b.icmp_signed("==", oh1, b.sdiv(p["ohw"], p["ow"]))
            ow = b.select(stay, ow, b.select(wrap_w, zero, ow1))
            n = b.select(stay, n, b.select(wrap_h, b.add(n, one), n))
            oh = b.select(stay, oh, b.select(wrap_h, zero, oh1))
        ih0 = b.sub(b.mul(oh, p["sh"]), p["ph"])
        iw0 = b.sub(b.mul(ow, p["sw"]), p["pw"])
        x_off = b.add(b.add(b.mul(n, p["xsn"]), b.mul(ih0, p["xsh"])), b.mul(iw0, p["xsw"]))
        o_off = b.add(b.add(b.mul(n, p["osn"]), b.mul(oh, p["osh"])), b.mul(ow, p["osw"]))
        for f, value in enumerate((x_off, ih0, iw0, o_off)):
            b.store(value, b.gep(info, [u.i64(r * _ROW_FIELDS + f)], source_etype=u.I64))


def _info(b, info, r, field):
    index = b.add(b.mul(r, u.i64(_ROW_FIELDS)), u.i64(field)) if isinstance(r, ir.Value) \
        else u.i64(r * _ROW_FIELDS + field)
    return b.load(b.gep(info, [index], source_etype=u.I64), typ=u.I64)


def _emit_segment_rows(b, p, cfg, info, s, c0):
    """Per tile row, a pointer to segment s's run (from channel c0), or to zeros."""
    kh, kw = b.sdiv(s, p["segw"]), b.srem(s, p["segw"])
    dy, dx = b.mul(kh, p["dh"]), b.mul(kw, p["dw"])
    shift = b.add(b.add(b.mul(dy, p["xsh"]), b.mul(dx, p["xsw"])), c0)
    ptrs = []
    for r in range(cfg.mr):
        ih, iw = b.add(_info(b, info, r, 1), dy), b.add(_info(b, info, r, 2), dx)
        inside = b.and_(b.and_(b.icmp_signed(">=", ih, u.i64(0)), b.icmp_signed("<", ih, p["h"])),
                        b.and_(b.icmp_signed(">=", iw, u.i64(0)), b.icmp_signed("<", iw, p["w"])))
        src = u.elem_ptr(b, p["x"], b.add(_info(b, info, r, 0), shift))
        ptrs.append(b.select(inside, src, p["zeros"]))
    return ptrs


def _emit_microkernel(module, cfg: GemmConfig) -> ir.Function:
    """tile(s0, s1, c0, clen, bpanel, col0, m_valid, n_valid, first, last, info, <p>)."""
    own = [("s0", u.I64), ("s1", u.I64), ("c0", u.I64), ("clen", u.I64), ("bpanel", u.PTR),
           ("col0", u.I64), ("m_valid", u.I64), ("n_valid", u.I64), ("first", u.I1),
           ("last", u.I1), ("info", u.PTR)]
    args = own + [(n, u.PTR) for n in _POINTERS] + [(d, u.I64) for d in _DIMS]
    fn, b = u.define(module, "conv_tile", u.VOID, args, noalias_ptrs=False)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    p = dict(zip([name for name, _ in args], fn.args))
    lanes, nv = cfg.lanes, cfg.nr // cfg.lanes
    vt = u.vec(u.F32, lanes)
    slots = [[b.alloca(vt) for _ in range(nv)] for _ in range(cfg.mr)]
    for row in slots:
        for slot in row:
            b.store(ir.Constant(vt, None), slot)
    if PREFETCH_TILE:
        _emit_tile_prefetch(b, cfg, p)
    with u.counted_loop(b, p["s0"], p["s1"], 1, "seg") as s:
        ptrs = _emit_segment_rows(b, p, cfg, p["info"], s, p["c0"])
        bseg = u.elem_ptr(b, p["bpanel"], b.mul(b.add(b.mul(s, p["seglen"]), p["c0"]),
                                                u.i64(cfg.nr)))
        _emit_channel_loop(b, cfg, p["clen"], ptrs, bseg, slots, vt)
    acc = [[b.load(slot, typ=vt) for slot in row] for row in slots]
    _emit_store(b, cfg, p, acc)
    b.ret_void()
    return fn


def _emit_tile_prefetch(b, cfg, p) -> None:
    """Ask for the tile's output rows (written, and re-read after the first K block) and,
    in the last K block, its residual rows before the channel loop: that loop runs long
    enough to hide the cache misses the store would otherwise wait on (a residual read
    from memory once, partial sums evicted from L2 by the B blocks between K blocks).
    Only for channels-last outputs, where a row's NR channels are NR*4 contiguous bytes;
    a prefetch never faults, so the rows past the end (repeats of the last) are safe."""
    fn = b.module.globals.get("llvm.prefetch.p0")
    if fn is None:
        fn = ir.Function(b.module, ir.FunctionType(ir.VoidType(), [u.PTR, u.I32, u.I32, u.I32]),
                         name="llvm.prefetch.p0")
    lines = range(0, cfg.nr, 16)         # 16 floats per 64-byte line

    def rows(base, write: int) -> None:
        for r in range(cfg.mr):
            start = b.add(_info(b, p["info"], r, 3), p["col0"])
            for j in lines:
                b.call(fn, [u.elem_ptr(b, base, b.add(start, u.i64(j))), ir.Constant(u.I32, write),
                            ir.Constant(u.I32, 3), ir.Constant(u.I32, 1)])
    with b.if_then(b.icmp_signed("==", p["osc"], u.i64(1))):
        rows(p["out"], 1)
        with b.if_then(b.and_(b.icmp_signed("!=", p["has_res"], u.i64(0)), p["last"])):
            rows(p["res"], 0)


def _emit_channel_loop(b, cfg, clen, ptrs, bseg, slots, vt) -> None:
    """The hot loop: acc[r][v] += x_r[i] * B[i, v*lanes ...] for i < clen."""
    nv = cfg.nr // cfg.lanes
    acc = [[b.load(slot, typ=vt) for slot in row] for row in slots]
    pre = b.block
    head, body, done = (b.append_basic_block(n) for n in ("ch.head", "ch.body", "ch.done"))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(u.I64, name="i")
    i.add_incoming(u.i64(0), pre)
    phis = [[b.phi(vt) for _ in range(nv)] for _ in range(cfg.mr)]
    for row, init in zip(phis, acc):
        for phi, value in zip(row, init):
            phi.add_incoming(value, pre)
    b.cbranch(b.icmp_signed("<", i, clen), body, done)
    b.position_at_end(body)
    bk = b.mul(i, u.i64(cfg.nr))
    b_vecs = [u.load_vec(b, bseg, b.add(bk, u.i64(v * cfg.lanes)), cfg.lanes) for v in range(nv)]
    for r, ptr in enumerate(ptrs):
        a = u.splat(b, b.load(u.elem_ptr(b, ptr, i), typ=u.F32), cfg.lanes)
        for v in range(nv):
            phis[r][v].add_incoming(multiply_add(b, cfg, a, b_vecs[v], phis[r][v]), body)
    i.add_incoming(b.add(i, u.i64(1)), body)
    b.branch(head)
    b.position_at_end(done)
    for row, slot_row in zip(phis, slots):
        for phi, slot in zip(row, slot_row):
            b.store(phi, slot)


def _epilogue(b, p, value, old, bias, res_index, lanes):
    """value (+ old unless first) and, in the last K block, + bias, + residual, relu."""
    total = b.select(p["first"], value, b.fadd(value, old))
    with_bias = b.fadd(total, bias)
    res = _load(b, p["res"], res_index, lanes)     # res is `out` itself when there is none
    with_res = b.select(b.icmp_signed("!=", p["has_res"], u.i64(0)), b.fadd(with_bias, res),
                        with_bias)
    zero = u.const_like(value.type, 0.0)
    # relu as torch: NaN stays NaN (the compare is false for NaN)
    relu = b.select(b.fcmp_ordered("<", with_res, zero), zero, with_res)
    finished = b.select(b.icmp_signed("!=", p["relu"], u.i64(0)), relu, with_res)
    return b.select(p["last"], finished, total)


def _load(b, base, index, lanes):
    """A vector (lanes > 1) or scalar load."""
    if lanes == 1:
        return b.load(u.elem_ptr(b, base, index), typ=u.F32)
    return u.load_vec(b, base, index, lanes)


def _emit_store(b, cfg, p, acc) -> None:
    full_rows = b.and_(b.icmp_signed("==", p["m_valid"], u.i64(cfg.mr)),
                       b.icmp_signed("==", p["osc"], u.i64(1)))
    with b.if_else(full_rows) as (vector, scalar):
        with vector:
            # a partial panel (C_out not a multiple of NR: the CIFAR tutorial's 6-channel
            # conv, 16-wide panels) stores its columns with masks, not element by element
            whole = b.icmp_signed("==", p["n_valid"], u.i64(cfg.nr))
            with b.if_else(whole) as (all_columns, some_columns):
                for masked, branch in ((False, all_columns), (True, some_columns)):
                    with branch:
                        _emit_vector_stores(b, cfg, p, acc, masked)
        with scalar:
            # NCHW output: a full tile's rows are consecutive pixels of one channel plane
            # (unless the tile crosses an image); store it column by column
            columns = b.and_(b.and_(b.icmp_signed("==", p["m_valid"], u.i64(cfg.mr)),
                                    b.icmp_signed("==", p["n_valid"], u.i64(cfg.nr))),
                             _rows_consecutive(b, cfg, p))
            with b.if_else(columns) as (by_column, by_element):
                with by_column:
                    _emit_column_store(b, cfg, p, acc)
                with by_element:
                    _emit_scalar_store(b, cfg, p, acc)


def _rows_consecutive(b, cfg, p):
    """The tile's MR output pixels sit at consecutive addresses of each channel plane."""
    ok = b.icmp_signed("!=", p["osc"], u.i64(1))
    offsets = [_info(b, p["info"], r, 3) for r in range(cfg.mr)]
    for before, after in zip(offsets, offsets[1:]):
        ok = b.and_(ok, b.icmp_signed("==", b.sub(after, before), u.i64(1)))
    return ok


def _emit_column_store(b, cfg, p, acc) -> None:
    """A full tile whose rows are consecutive in memory (NCHW output): each channel's MR
    values, gathered from the tile on the stack, go through the epilogue as one MR-lane
    vector (the same sums as _epilogue element by element) and one store."""
    tile = b.alloca(u.F32, size=cfg.mr * cfg.nr, name="ctile")
    for r, row in enumerate(acc):
        for v, value in enumerate(row):
            u.store_vec(b, value, tile, u.i64(r * cfg.nr + v * cfg.lanes))
    base = _info(b, p["info"], 0, 3)
    column_type = u.vec(u.F32, cfg.mr)
    for j in range(cfg.nr):
        column = ir.Constant(column_type, ir.Undefined)
        for r in range(cfg.mr):
            item = b.load(u.elem_ptr(b, tile, u.i64(r * cfg.nr + j)), typ=u.F32)
            column = b.insert_element(column, item, ir.Constant(u.I32, r))
        col = b.add(p["col0"], u.i64(j))
        index = b.add(base, b.mul(col, p["osc"]))
        old = u.load_vec(b, p["out"], index, cfg.mr)
        bias = u.splat(b, b.load(u.elem_ptr(b, p["bias"], col), typ=u.F32), cfg.mr)
        u.store_vec(b, _epilogue(b, p, column, old, bias, index, cfg.mr), p["out"], index)


def _emit_vector_stores(b, cfg, p, acc, masked: bool) -> None:
    """One copy per (first K block?, residual?): a tile reads the output's old partial
    sums only when it has some, and the residual only when there is one (an unused read
    of the output costs as much memory traffic as the store)."""
    with b.if_else(p["first"]) as (fresh, accumulate):
        for reads_old, branch in ((False, fresh), (True, accumulate)):
            with branch:
                has_res = b.icmp_signed("!=", p["has_res"], u.i64(0))
                with b.if_else(b.and_(has_res, p["last"])) as (residual, plain):
                    with residual:
                        _emit_vector_store(b, cfg, p, acc, reads_old, True, masked)
                    with plain:
                        _emit_vector_store(b, cfg, p, acc, reads_old, False, masked)


def _emit_vector_store(b, cfg, p, acc, reads_old: bool, reads_res: bool,
                       masked: bool = False) -> None:
    """Vector stores of a tile's rows with contiguous channels (all of them, or with
    `masked` the first n_valid: masked loads and stores, lanes past them untouched);
    the same sums as _epilogue's, without the loads a flag rules out."""
    lanes = cfg.lanes
    vt = u.vec(u.F32, lanes)
    masks = [None] * (cfg.nr // lanes)
    if masked:
        valid = u.splat(b, p["n_valid"], lanes)
        masks = [b.icmp_signed("<", ir.Constant(u.vec(u.I64, lanes),
                                                list(range(v * lanes, (v + 1) * lanes))), valid)
                 for v in range(cfg.nr // lanes)]

    def load(base, index, mask):
        if mask is None:
            return _load(b, base, index, lanes)
        return _masked(b, "load", vt, [u.elem_ptr(b, base, index), ir.Constant(u.I32, 4), mask,
                                       ir.Constant(vt, None)])
    for r, row in enumerate(acc):
        base = b.add(_info(b, p["info"], r, 3), p["col0"])
        for v, value in enumerate(row):
            index, mask = b.add(base, u.i64(v * lanes)), masks[v]
            total = b.fadd(value, load(p["out"], index, mask)) if reads_old else value
            bias = load(p["bias"], b.add(p["col0"], u.i64(v * lanes)), mask)
            with_bias = b.fadd(total, bias)
            with_res = b.fadd(with_bias, load(p["res"], index, mask)) if reads_res \
                else with_bias
            zero = u.const_like(value.type, 0.0)
            relu = b.select(b.fcmp_ordered("<", with_res, zero), zero, with_res)
            finished = b.select(b.icmp_signed("!=", p["relu"], u.i64(0)), relu, with_res)
            result = b.select(p["last"], finished, total)
            if mask is None:
                u.store_vec(b, result, p["out"], index)
            else:
                _masked(b, "store", vt, [result, u.elem_ptr(b, p["out"], index),
                                         ir.Constant(u.I32, 4), mask])


def _emit_scalar_store(b, cfg, p, acc) -> None:
    """Partial tiles and strided channels: the tile to the stack, then element by element."""
    tile = b.alloca(u.F32, size=cfg.mr * cfg.nr, name="tile")
    for r, row in enumerate(acc):
        for v, value in enumerate(row):
            u.store_vec(b, value, tile, u.i64(r * cfg.nr + v * cfg.lanes))
    with u.counted_loop(b, u.i64(0), p["m_valid"], 1, "r") as r:
        base = _info(b, p["info"], r, 3)
        with u.counted_loop(b, u.i64(0), p["n_valid"], 1, "j") as j:
            col = b.add(p["col0"], j)
            index = b.add(base, b.mul(col, p["osc"]))
            value = b.load(u.elem_ptr(b, tile, b.add(b.mul(r, u.i64(cfg.nr)), j)), typ=u.F32)
            old = b.load(u.elem_ptr(b, p["out"], index), typ=u.F32)
            bias = b.load(u.elem_ptr(b, p["bias"], col), typ=u.F32)
            b.store(_epilogue(b, p, value, old, bias, index, 1), u.elem_ptr(b, p["out"], index))


def _emit_rows_entry(module, cfg: GemmConfig, tile: ir.Function) -> ir.Function:
    """conv_rows(begin, end, ...): output rows [begin, end), every output channel."""
    fn, b, p = _define_entry(module, "conv_rows")
    _emit_blocks(b, cfg, tile, p, p["begin"], p["end"], u.i64(0), p["cout"], NC)
    b.ret_void()
    return fn


def _emit_cols_entry(module, cfg: GemmConfig, tile: ir.Function) -> ir.Function:
    """conv_cols(begin, end, ..., row_blocks, block_rows): items [begin, end) of
    panels x row_blocks, item i the NR-wide panel i // row_blocks over the output rows
    of block i % row_blocks (block_rows each, the last one shorter). For a conv with
    few output rows (columns_first): each K block of a panel's weights (up to
    WHOLE_K_FLOATS) serves all of the block's rows while in L2, and the panel's
    partial sums (rows x NR) stay there between K blocks; split across threads, each
    thread reads only its panels' weights (split by rows, every chunk of rows streams
    all of them: 9.4 MB for resnet18's layer-4 convs). Each output's sums are the same
    whatever the items (the same bits on any thread count)."""
    args = [("begin", u.I64), ("end", u.I64), ("worker", u.I64)] + \
        [(n, u.PTR) for n in _POINTERS] + [(d, u.I64) for d in _DIMS] + \
        [("row_blocks", u.I64), ("block_rows", u.I64)]
    fn, b = u.define(module, "conv_cols", u.VOID, args, noalias_ptrs=False)
    p = dict(zip([name for name, _ in args], fn.args))
    with u.counted_loop(b, p["begin"], p["end"], 1, "item") as item:
        panel, block = b.sdiv(item, p["row_blocks"]), b.srem(item, p["row_blocks"])
        row0 = b.mul(block, p["block_rows"])
        row1 = u.imin(b, b.add(row0, p["block_rows"]), p["m"])
        col0 = b.mul(panel, u.i64(cfg.nr))
        col1 = u.imin(b, b.add(col0, u.i64(cfg.nr)), p["cout"])
        _emit_blocks(b, cfg, tile, p, row0, row1, col0, col1, cfg.nr)
    b.ret_void()
    return fn


def _define_entry(module, name: str):
    args = [("begin", u.I64), ("end", u.I64), ("worker", u.I64)] + \
        [(n, u.PTR) for n in _POINTERS] + [(d, u.I64) for d in _DIMS]
    fn, b = u.define(module, name, u.VOID, args, noalias_ptrs=False)
    return fn, b, dict(zip([name for name, _ in args], fn.args))


def _emit_blocks(b, cfg, tile, p, row0, row1, col0_, col1, col_block: int) -> None:
    """For each block of col_block output channels in [col0_, col1), each K block, each
    MR-row tile of [row0, row1) and each NR panel of the block: the microkernel."""
    info = b.alloca(u.I64, size=cfg.mr * _ROW_FIELDS, name="info")
    rest = [p[n] for n in _POINTERS] + [p[d] for d in _DIMS]
    panel = b.mul(p["k"], u.i64(cfg.nr))                      # floats per B panel
    with u.counted_loop(b, col0_, col1, col_block, "jc") as jc:
        nc = u.imin(b, u.i64(col_block), b.sub(col1, jc))
        with _stepped_loop(b, u.i64(0), p["nseg"], p["spb"], "s0") as s0:
            s1 = u.imin(b, b.add(s0, p["spb"]), p["nseg"])
            with _stepped_loop(b, u.i64(0), p["seglen"], p["chunk"], "c0") as c0:
                clen = u.imin(b, p["chunk"], b.sub(p["seglen"], c0))
                first = b.and_(b.icmp_signed("==", s0, u.i64(0)), b.icmp_signed("==", c0, u.i64(0)))
                last = b.and_(b.icmp_signed("==", s1, p["nseg"]),
                              b.icmp_signed("==", b.add(c0, clen), p["seglen"]))
                with u.counted_loop(b, row0, row1, cfg.mr, "m0") as m0:
                    _emit_row_info(b, p, cfg, m0, info)
                    m_valid = u.imin(b, u.i64(cfg.mr), b.sub(row1, m0))
                    with u.counted_loop(b, u.i64(0), nc, cfg.nr, "jr") as jr:
                        col0 = b.add(jc, jr)
                        bpanel = u.elem_ptr(b, p["wp"], b.mul(b.sdiv(col0, u.i64(cfg.nr)), panel))
                        n_valid = u.imin(b, u.i64(cfg.nr), b.sub(nc, jr))
                        b.call(tile, [s0, s1, c0, clen, bpanel, col0, m_valid, n_valid, first,
                                      last, info] + rest)


@contextlib.contextmanager
def _stepped_loop(b, start, stop, step, name):
    """`for i in range(start, stop, step)` with a run-time step (> 0)."""
    pre = b.block
    head, body, done = (b.append_basic_block(f"{name}.{part}") for part in ("head", "body", "done"))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(u.I64, name=name)
    i.add_incoming(start, pre)
    b.cbranch(b.icmp_signed("<", i, stop), body, done)
    b.position_at_end(body)
    yield i
    i.add_incoming(b.add(i, step), b.block)
    b.branch(head)
    b.position_at_end(done)


def _emit_pad_copy(module) -> None:
    """pad_nhwc(begin, end, worker, src, dst, n, c, h, w, ph, pw, hp, wp, sn, sc, sh, sw):
    dst (N, Hp, Wp, C) contiguous = src (any strides) shifted by (ph, pw), zeros around;
    rows [begin, end) of N*Hp. NCHW sources loop channels outside (reads along rows)."""
    names = ("n", "c", "h", "w", "ph", "pw", "hp", "wp", "sn", "sc", "sh", "sw")
    args = [("begin", u.I64), ("end", u.I64), ("worker", u.I64), ("src", u.PTR),
            ("dst", u.PTR)] + [(n, u.I64) for n in names]
    fn, b = u.define(module, "pad_nhwc", u.VOID, args)
    p = dict(zip([name for name, _ in args], fn.args))
    zero = ir.Constant(u.F32, 0.0)
    row_len = b.mul(p["wp"], p["c"])
    with u.counted_loop(b, p["begin"], p["end"], 1, "row") as row:
        n, hp = b.sdiv(row, p["hp"]), b.srem(row, p["hp"])
        ih = b.sub(hp, p["ph"])
        dst_row = b.mul(row, row_len)
        with u.counted_loop(b, u.i64(0), row_len, 1, "z") as i:   # zeros first: padding
            b.store(zero, u.elem_ptr(b, p["dst"], b.add(dst_row, i)))
        inside = b.and_(b.icmp_signed(">=", ih, u.i64(0)), b.icmp_signed("<", ih, p["h"]))
        with b.if_then(inside):
            src_row = b.add(b.mul(n, p["sn"]), b.mul(ih, p["sh"]))
            channels_inner = b.icmp_signed("==", p["sc"], u.i64(1))
            with b.if_else(channels_inner) as (nhwc, nchw):
                with nhwc:
                    # a dense NHWC row (pixels C apart) is one run of W*C floats: a
                    # plain loop LLVM vectorizes (the stem's 8x224x224x3: 0.47 ms as
                    # element-by-element (w, c) loops)
                    with b.if_else(b.icmp_signed("==", p["sw"], p["c"])) as (dense, strided):
                        with dense:
                            _copy_run(b, p, src_row, b.add(dst_row, b.mul(p["pw"], p["c"])),
                                      b.mul(p["w"], p["c"]))
                        with strided:
                            _copy_row(b, p, src_row, dst_row, ("w", "c"))
                with nchw:
                    # rows contiguous along w: 8 channels x 8 pixels per step, transposed
                    # in registers; channels past a multiple of 8, and strided rows, go
                    # element by element
                    blocked = b.select(b.icmp_signed("==", p["sw"], u.i64(1)),
                                       b.mul(b.sdiv(p["c"], u.i64(_T)), u.i64(_T)), u.i64(0))
                    _copy_blocks_transposed(b, p, src_row, dst_row, blocked)
                    _copy_row(b, p, src_row, dst_row, ("c", "w"), start=blocked)
    b.ret_void()


def _copy_run(b, p, src_start, dst_start, count) -> None:
    with u.counted_loop(b, u.i64(0), count, 1, "run") as i:
        value = b.load(u.elem_ptr(b, p["src"], b.add(src_start, i)), typ=u.F32)
        b.store(value, u.elem_ptr(b, p["dst"], b.add(dst_start, i)))


_T = 8     # the NCHW -> NHWC copy's register transpose: 8 channels x 8 pixels


def _copy_blocks_transposed(b, p, src_row, dst_row, channels) -> None:
    """Channels [0, channels) (a multiple of _T) of one NCHW row (contiguous along w)
    into the NHWC row: per block of _T channels and up to _T pixels, _T masked vector
    loads (one per channel), an in-register transpose, one vector store per pixel (the
    small CNN's 64x16x14x14 pad: ~77 us element by element)."""
    from .gemm import _transpose
    vt = u.vec(u.F32, _T)
    lanes = ir.Constant(u.vec(u.I64, _T), list(range(_T)))
    four, zero = ir.Constant(u.I32, 4), ir.Constant(vt, [0.0] * _T)
    with u.counted_loop(b, u.i64(0), channels, _T, "cb") as c0:
        with u.counted_loop(b, u.i64(0), p["w"], _T, "wb") as w0:
            valid = u.imin(b, u.i64(_T), b.sub(p["w"], w0))
            mask = b.icmp_signed("<", lanes, u.splat(b, valid, _T))
            rows = []
            for j in range(_T):
                at = b.add(b.add(src_row, b.mul(b.add(c0, u.i64(j)), p["sc"])), w0)
                rows.append(_masked(b, "load", vt, [u.elem_ptr(b, p["src"], at), four, mask,
                                                    zero]))
            pixels = _transpose(b, rows, _T)
            for k in range(_T):
                with b.if_then(b.icmp_signed("<", u.i64(k), valid)):
                    at = b.add(dst_row, b.add(b.mul(b.add(b.add(w0, u.i64(k)), p["pw"]),
                                                    p["c"]), c0))
                    u.store_vec(b, pixels[k], p["dst"], at)


def _copy_row(b, p, src_row, dst_row, order, start=None) -> None:
    """Element by element; with `start`, the outer (channel) loop begins there."""
    with u.counted_loop(b, start if start is not None else u.i64(0), p[order[0]], 1,
                        f"{order[0]}o") as outer:
        with u.counted_loop(b, u.i64(0), p[order[1]], 1, f"{order[1]}i") as inner:
            iw, c = (outer, inner) if order[0] == "w" else (inner, outer)
            src = b.add(src_row, b.add(b.mul(iw, p["sw"]), b.mul(c, p["sc"])))
            dst = b.add(dst_row, b.add(b.mul(b.add(iw, p["pw"]), p["c"]), c))
            value = b.load(u.elem_ptr(b, p["src"], src), typ=u.F32)
            b.store(value, u.elem_ptr(b, p["dst"], dst))


def _masked(b, op: str, vt, args):
    """llvm.masked.load / llvm.masked.store on a <lanes x float> (masked-off lanes are
    never touched: a row's tail reads nothing past the buffer)."""
    name = f"llvm.masked.{op}.{u._mangle(vt)}.p0"
    fn = b.module.globals.get(name)
    if fn is None:
        mask_t = u.vec(u.I1, vt.count)
        sig = ir.FunctionType(vt, [u.PTR, u.I32, mask_t, vt]) if op == "load" else \
            ir.FunctionType(u.VOID, [vt, u.PTR, u.I32, mask_t])
        fn = ir.Function(b.module, sig, name=name)
    return b.call(fn, args)


def _emit_single_channel(module, cfg: GemmConfig) -> None:
    """conv_c1(begin, end, worker, <pointers>, <dims>): a one-input-channel conv, stride 1
    and dilation 1, over the zero-padded copy of its input (pad_nhwc: (N, Hp, Wp) rows),
    into an output whose rows are contiguous (osw = 1); output rows [begin, end) of
    N*OH. The implicit GEMM's K of KH*KW values gives each MR x NR tile more set-up
    than arithmetic; here LANES consecutive outputs of one channel are one vector:
    acc = fma(x[oh + i, ow + j : +LANES], w[co, i, j], acc) over (i, j) in the
    implicit GEMM's k order from zero, then + bias (+ residual), relu, one store: its
    sums, so its results bit for bit (K is one block: KH*KW <= MAX_KC). The kernel
    height and width are `nseg` and `seglen` (its merged kernel-row segments); 3x3 and
    5x5 kernels get unrolled copies with the channel's weights in registers."""
    args = [("begin", u.I64), ("end", u.I64), ("worker", u.I64)] + \
        [(n, u.PTR) for n in _POINTERS] + [(d, u.I64) for d in _DIMS]
    fn, b = u.define(module, "conv_c1", u.VOID, args, noalias_ptrs=False)
    p = dict(zip([name for name, _ in args], fn.args))
    for name in ("x", "wp", "bias"):        # read only, never the output (res may be)
        p[name].add_attribute("noalias")
    out_h = b.sdiv(p["ohw"], p["ow"])
    sizes = [(3, 3), (5, 5)]
    blocks = [b.append_basic_block(f"k{kh}x{kw}") for kh, kw in sizes]
    generic, done = b.append_basic_block("k_any"), b.append_basic_block("done")
    switch = b.switch(b.add(b.mul(p["nseg"], u.i64(1000)), p["seglen"]), generic)
    for (kh, kw), block in zip(sizes, blocks):
        switch.add_case(u.i64(kh * 1000 + kw), block)
    for taps, block in list(zip(sizes, blocks)) + [(None, generic)]:
        b.position_at_end(block)
        rows, channels = b.append_basic_block("w_rows"), b.append_basic_block("c_runs")
        joined = b.append_basic_block("joined")
        b.cbranch(b.icmp_signed("==", p["osw"], u.i64(1)), rows, channels)
        b.position_at_end(rows)
        _single_channel_rows(b, cfg, p, out_h, taps)
        b.branch(joined)
        b.position_at_end(channels)
        _single_channel_pixels(b, cfg, p, out_h, taps)
        b.branch(joined)
        b.position_at_end(joined)
        b.branch(done)
    b.position_at_end(done)
    b.ret_void()


def _single_channel_rows(b, cfg, p, out_h, taps) -> None:
    """conv_c1's loops; `taps` (KH, KW) known here (unrolled) or None (run-time loops)."""
    lanes = cfg.lanes
    vt, zero = u.vec(u.F32, lanes), ir.Constant(u.vec(u.F32, lanes), None)
    lane_ids = ir.Constant(u.vec(u.I64, lanes), list(range(lanes)))
    four = ir.Constant(u.I32, 4)
    with u.counted_loop(b, p["begin"], p["end"], 1, "row") as row:
        n, oh = b.sdiv(row, out_h), b.srem(row, out_h)
        x_row = b.add(b.mul(n, p["xsn"]), b.mul(oh, p["xsh"]))
        o_row = b.add(b.mul(n, p["osn"]), b.mul(oh, p["osh"]))
        with u.counted_loop(b, u.i64(0), p["cout"], 1, "co") as co:
            panel = b.mul(b.sdiv(co, u.i64(cfg.nr)), b.mul(p["k"], u.i64(cfg.nr)))
            w_co = b.add(panel, b.srem(co, u.i64(cfg.nr)))

            def weight(k):
                at = u.elem_ptr(b, p["wp"], b.add(w_co, b.mul(k, u.i64(cfg.nr))))
                return u.splat(b, b.load(at, typ=u.F32), lanes)
            weights = None if taps is None else \
                [weight(u.i64(k)) for k in range(taps[0] * taps[1])]
            bias = u.splat(b, b.load(u.elem_ptr(b, p["bias"], co), typ=u.F32), lanes)
            o_co = b.add(o_row, b.mul(co, p["osc"]))
            with u.counted_loop(b, u.i64(0), p["ow"], lanes, "ow") as ow0:
                mask = b.icmp_signed("<", lane_ids, u.splat(b, b.sub(p["ow"], ow0), lanes))

                def tap(ki, kj, acc, w):
                    at = b.add(b.add(b.add(x_row, b.mul(ki, p["xsh"])), ow0), kj)
                    x = _masked(b, "load", vt, [u.elem_ptr(b, p["x"], at), four, mask, zero])
                    return multiply_add(b, cfg, x, w, acc)
                acc = _sum_taps(b, p, taps, zero, tap, weight, weights)
                at = b.add(o_co, ow0)
                _store_epilogue(b, p, vt, at, acc, bias, mask)


def _single_channel_pixels(b, cfg, p, out_h, taps) -> None:
    """conv_c1 into an output whose channels are contiguous (osc = 1, channels-last):
    per output pixel, LANES channels per vector, acc = fma(x[oh + i, ow + j] broadcast,
    w[i, j, co : +LANES], acc) over (i, j) in the implicit GEMM's k order from zero, then
    + bias (+ residual), relu, one (masked) store: the same sums as conv_rows's. The
    weights of a channel block stay in registers over a row of pixels (3x3, 5x5)."""
    lanes = cfg.lanes
    vt, zero = u.vec(u.F32, lanes), ir.Constant(u.vec(u.F32, lanes), None)
    lane_ids = ir.Constant(u.vec(u.I64, lanes), list(range(lanes)))
    four = ir.Constant(u.I32, 4)
    with u.counted_loop(b, p["begin"], p["end"], 1, "row") as row:
        n, oh = b.sdiv(row, out_h), b.srem(row, out_h)
        x_row = b.add(b.mul(n, p["xsn"]), b.mul(oh, p["xsh"]))
        o_row = b.add(b.mul(n, p["osn"]), b.mul(oh, p["osh"]))
        with u.counted_loop(b, u.i64(0), p["cout"], lanes, "co") as co0:
            mask = b.icmp_signed("<", lane_ids, u.splat(b, b.sub(p["cout"], co0), lanes))
            # panels are NR wide (a multiple of LANES) and zero past C_out: whole loads
            panel = b.mul(b.sdiv(co0, u.i64(cfg.nr)), b.mul(p["k"], u.i64(cfg.nr)))
            w_co = b.add(panel, b.srem(co0, u.i64(cfg.nr)))

            def weight(k):
                at = u.elem_ptr(b, p["wp"], b.add(w_co, b.mul(k, u.i64(cfg.nr))))
                return b.load(at, typ=vt, align=4)
            weights = None if taps is None else \
                [weight(u.i64(k)) for k in range(taps[0] * taps[1])]
            bias = _masked(b, "load", vt, [u.elem_ptr(b, p["bias"], co0), four, mask, zero])
            o_co = b.add(o_row, co0)
            with u.counted_loop(b, u.i64(0), p["ow"], 1, "ow") as ow:
                def tap(ki, kj, acc, w):
                    at = b.add(b.add(b.add(x_row, b.mul(ki, p["xsh"])), ow), kj)
                    x = u.splat(b, b.load(u.elem_ptr(b, p["x"], at), typ=u.F32), lanes)
                    return multiply_add(b, cfg, x, w, acc)
                acc = _sum_taps(b, p, taps, zero, tap, weight, weights)
                at = b.add(o_co, b.mul(ow, p["osw"]))
                _store_epilogue(b, p, vt, at, acc, bias, mask)


def _sum_taps(b, p, taps, zero, tap, weight, weights):
    """acc = tap(i, j, acc, w[i, j]) over the kernel's taps in the implicit GEMM's k order,
    from zero: unrolled with the weights in registers for a known kernel size, else two
    counted loops over (segment, position in segment) loading each weight."""
    if taps is not None:
        acc = zero
        for i in range(taps[0]):
            for j in range(taps[1]):
                acc = tap(u.i64(i), u.i64(j), acc, weights[i * taps[1] + j])
        return acc
    return u.carried_loop(b, u.i64(0), p["nseg"], [zero], lambda ki, v: [
        u.carried_loop(b, u.i64(0), p["seglen"], v, lambda kj, w: [
            tap(ki, kj, w[0], weight(b.add(b.mul(ki, p["seglen"]), kj)))],
            name="kj")[0]], name="ki")[0]


def _store_epilogue(b, p, vt, at, acc, bias, mask) -> None:
    """out[at] = relu?(acc + bias (+ res[at] where has_res)), one masked vector store."""
    zero, four = ir.Constant(vt, None), ir.Constant(u.I32, 4)
    with_bias = b.fadd(acc, bias)
    res = _masked(b, "load", vt, [u.elem_ptr(b, p["res"], at), four, mask, zero])
    with_res = b.select(b.icmp_signed("!=", p["has_res"], u.i64(0)),
                        b.fadd(with_bias, res), with_bias)
    relu = b.select(b.fcmp_ordered("<", with_res, zero), zero, with_res)
    value = b.select(b.icmp_signed("!=", p["relu"], u.i64(0)), relu, with_res)
    _masked(b, "store", vt, [value, u.elem_ptr(b, p["out"], at), four, mask])


# conv_pool_rows(begin, end, worker, <pointers>, <dims>, <_POOL_ARGS>): the conv's rows
# into a per-thread ring of kh output rows, max-pooled from there (see _emit_conv_pool)
_POOL_ARGS = (("ring", u.PTR), ("ring_floats", u.I64), ("poh", u.I64), ("pow", u.I64),
              ("pkh", u.I64), ("pkw", u.I64), ("psh", u.I64), ("psw", u.I64), ("pph", u.I64),
              ("ppw", u.I64), ("posn", u.I64), ("posh", u.I64), ("posw", u.I64))


def _emit_conv_pool(module, cfg: GemmConfig, rows: ir.Function) -> None:
    """conv_pool_rows: max_pool2d (dilation 1) of a conv's output without the output.
    Items are pooled output rows (n, ph) of N*POH; for each, the conv rows its windows
    need that the thread's ring does not hold yet are computed by conv_rows into the
    ring (row oh in slot oh % pkh; the caller passes the conv's dims with osn = osh = 0,
    osw = C_out, osc = 1, so a row lands at the slot's start), then every pooled pixel
    takes IEEE `maximum` over its window's taps inside the conv output, from -inf, in
    row-major order: what the separate max_pool2d kernel computes over the stored
    output (padding reads -inf there), so the results are the same bits. resnet18's
    stem writes 25.7 MB and the pool reads it back; the ring (3 rows, 86 KB) stays in
    L2. A chunk recomputes at most the row its first windows share with the chunk
    before. Needs C_out a multiple of the vector width (channels-last output)."""
    args = [("begin", u.I64), ("end", u.I64), ("worker", u.I64)] + \
        [(n, u.PTR) for n in _POINTERS] + [(d, u.I64) for d in _DIMS] + list(_POOL_ARGS)
    fn, b = u.define(module, "conv_pool_rows", u.VOID, args, noalias_ptrs=False)
    p = dict(zip([name for name, _ in args], fn.args))
    lanes = cfg.lanes
    vt = u.vec(u.F32, lanes)
    zero, one = u.i64(0), u.i64(1)
    have_n, have_hi = b.alloca(u.I64), b.alloca(u.I64)
    b.store(u.i64(-1), have_n)
    b.store(zero, have_hi)
    ring = u.elem_ptr(b, p["ring"], b.mul(p["worker"], p["ring_floats"]))
    row_floats = b.mul(p["ow"], p["cout"])
    conv_h = b.sdiv(p["ohw"], p["ow"])
    conv_args = [p[n] for n in _POINTERS] + [p[d] for d in _DIMS]

    def slot_row(oh):
        return u.elem_ptr(b, ring, b.mul(b.srem(oh, p["pkh"]), row_floats))

    with u.counted_loop(b, p["begin"], p["end"], 1, "prow") as r:
        n, ph = b.sdiv(r, p["poh"]), b.srem(r, p["poh"])
        top = b.sub(b.mul(ph, p["psh"]), p["pph"])
        lo = b.select(b.icmp_signed("<", top, zero), zero, top)
        hi = u.imin(b, b.add(top, p["pkh"]), conv_h)
        held = b.load(have_hi)
        same = b.icmp_signed("==", b.load(have_n), n)
        start = b.select(b.and_(same, b.icmp_signed(">", held, lo)), held, lo)
        with u.counted_loop(b, start, hi, 1, "crow") as oh:
            m0 = b.mul(b.add(b.mul(n, conv_h), oh), p["ow"])
            b.call(rows, [m0, b.add(m0, p["ow"]), p["worker"], p["x"], p["wp"], slot_row(oh)]
                   + conv_args[3:])
        b.store(n, have_n)
        b.store(hi, have_hi)
        # the window rows' maximum into the ring's last row, then each window's columns
        vmax = u.elem_ptr(b, ring, b.mul(p["pkh"], row_floats))
        first = slot_row(lo)
        with u.counted_loop(b, zero, row_floats, lanes, "pv") as e:
            u.store_vec(b, u.load_vec(b, first, e, lanes), vmax, e)
        with u.counted_loop(b, b.add(lo, one), hi, 1, "prow2") as oh:
            row = slot_row(oh)
            with u.counted_loop(b, zero, row_floats, lanes, "pv2") as e:
                v = u.intrinsic(b, "maximum", vt, u.load_vec(b, vmax, e, lanes),
                                u.load_vec(b, row, e, lanes))
                u.store_vec(b, v, vmax, e)
        out_row = b.add(b.mul(n, p["posn"]), b.mul(ph, p["posh"]))
        with u.counted_loop(b, zero, p["pow"], 1, "pw") as pw:
            left = b.sub(b.mul(pw, p["psw"]), p["ppw"])
            jlo = b.select(b.icmp_signed("<", left, zero), zero, left)
            jhi = u.imin(b, b.add(left, p["pkw"]), p["ow"])
            out_at = b.add(out_row, b.mul(pw, p["posw"]))
            with u.counted_loop(b, zero, p["cout"], lanes, "pc") as c:
                acc = u.load_vec(b, vmax, b.add(b.mul(jlo, p["cout"]), c), lanes)
                acc = u.carried_loop(b, b.add(jlo, one), jhi, [acc], lambda j, a: [
                    u.intrinsic(b, "maximum", vt, a[0], u.load_vec(
                        b, vmax, b.add(b.mul(j, p["cout"]), c), lanes))], name="pj")[0]
                u.store_vec(b, acc, p["out"], b.add(out_at, c))
    b.ret_void()


def single_channel_fits(c: int, stride, dilation, out_strides) -> bool:
    """conv_c1 runs this conv (over the padded copy): one input channel, stride 1,
    dilation 1, output rows contiguous (NCHW) or channels contiguous (channels-last)."""
    return c == 1 and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and \
        (out_strides[3] == 1 or out_strides[1] == 1)


def conv_module(cfg: GemmConfig) -> ir.Module:
    """The LLVM module (exported: conv_rows, conv_cols, pad_nhwc, conv_c1, conv_pool_rows) for one
    register tile."""
    module = ir.Module(name=f"ember_implicit_conv_{cfg.isa.value}_{cfg.mr}x{cfg.nr}")
    tile = _emit_microkernel(module, cfg)
    rows = _emit_rows_entry(module, cfg, tile)
    _emit_cols_entry(module, cfg, tile)
    _emit_conv_pool(module, cfg, rows)
    _emit_pad_copy(module)
    _emit_single_channel(module, cfg)
    return module


@dataclass
class _Kernels:
    cfg: GemmConfig
    rows: object
    pad: object
    single_channel: object = None
    conv_pool: object = None
    cols: object = None


@functools.cache
def conv_kernels(isa: Isa, mr: int | None = None, nr: int | None = None) -> _Kernels:
    """Compiled once per process (and cached on disk) per ISA and register tile."""
    cfg = config(isa, mr, nr)
    lib = compile_built(conv_module, cfg, target=target_for(isa))
    rows = lib.function("conv_rows", None, *[ctypes.c_int64] * 3,
                        *[ctypes.c_void_p] * len(_POINTERS), *[ctypes.c_int64] * len(_DIMS))
    cols = lib.function("conv_cols", None, *[ctypes.c_int64] * 3,
                        *[ctypes.c_void_p] * len(_POINTERS), *[ctypes.c_int64] * len(_DIMS),
                        ctypes.c_int64, ctypes.c_int64)
    pad = lib.function("pad_nhwc", None, *[ctypes.c_int64] * 3, ctypes.c_void_p,
                       ctypes.c_void_p, *[ctypes.c_int64] * 12)
    single = lib.function("conv_c1", None, *[ctypes.c_int64] * 3,
                          *[ctypes.c_void_p] * len(_POINTERS), *[ctypes.c_int64] * len(_DIMS))
    pool = lib.function("conv_pool_rows", None, *[ctypes.c_int64] * 3,
                        *[ctypes.c_void_p] * len(_POINTERS), *[ctypes.c_int64] * len(_DIMS),
                        *[ctypes.c_void_p if t == u.PTR else ctypes.c_int64
                          for _, t in _POOL_ARGS])
    return _Kernels(cfg, rows, pad, single, pool, cols)


# --- the Python side -----------------------------------------------------------------------
_ZEROS = np.zeros(MAX_KC, np.float32)       # what taps in the padding read (never written)
_SCRATCH = threading.local()


def _scratch(n_floats: int) -> np.ndarray:
    """A per-thread buffer for padded inputs, grown but never shrunk (no page faults
    per call once it has its size)."""
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.size < n_floats:
        buf = _SCRATCH.buf = np.empty(n_floats, np.float32)
    return buf[:n_floats]


def pack_weights(w: np.ndarray, nr: int) -> np.ndarray:
    """(C_out, C, kH, kW) -> NR-wide panels over k = (kh, kw, c): wp[j, k, t] =
    w[j*nr + t, c, kh, kw], zero past C_out. Contiguous, 64-byte aligned. One strided
    copy of the whole panels (eager packs on every call: a (K, C_out) transposed copy
    first and a copy per panel after it cost ~1.6x as much)."""
    c_out, c, kh, kw = w.shape
    panels, k = -(-c_out // nr), c * kh * kw
    raw = np.empty(panels * k * nr + 16, np.float32)
    offset = (-raw.ctypes.data % 64) // 4
    wp = raw[offset:offset + panels * k * nr].reshape(panels, k, nr)
    full, rest = divmod(c_out, nr)
    if full:
        np.copyto(wp[:full].reshape(full, kh, kw, c, nr),
                  w[:full * nr].reshape(full, nr, c, kh, kw).transpose(0, 3, 4, 2, 1))
    if rest:
        tail = wp[full].reshape(kh, kw, c, nr)
        tail[..., rest:] = 0
        np.copyto(tail[..., :rest], w[full * nr:].transpose(2, 3, 1, 0))
    return wp


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[tuple[int, int], tuple[int, int]]     # (top, bottom), (left, right)
    dilation: tuple[int, int]

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        return tuple((size + sum(p) - d * (k - 1) - 1) // s + 1 for size, p, d, k, s in
                     zip((h, w), self.padding, self.dilation, self.kernel, self.stride))


def conv_tile(isa: Isa, c_in: int, c_out: int) -> tuple[int, int]:
    """(MR, NR) of a conv: gemm.tile_for(c_out), except that a conv with few input
    channels (the padded-copy path: the 7x7x3 stem's 21-float row segments) takes 4 rows
    instead of 6 unless `ember tune` recorded a tile: less per-segment set-up per
    tile, ~10% faster on resnet18's stem (Zen 5, one core). The tile never changes
    results."""
    mr, nr = tile_for(isa, c_out, conv=True)
    if c_in < SMALL_CHANNELS and (mr, nr) == (6, 64) and c_out not in tuned_tiles(isa):
        return 4, nr
    return mr, nr


def columns_first(m: int, k: int, c_out: int, nr: int, panel_floats: int = PANEL_FLOATS,
                  whole_k_floats: int = WHOLE_K_FLOATS) -> bool:
    """The conv runs panel by panel (conv_cols) rather than by rows: its M output rows
    of one NR panel, the partial sums kept between K blocks, fit in `panel_floats`
    (512 KiB, half the L2 of the cores measured), and its packed weights (K x C_out)
    do not fit in `whole_k_floats` (by rows, each chunk of rows reads them all again):
    resnet18's 3x3 convs of layers 3-4 at batch 8 (M = 1568 and 392, 2.4 and 9.4 MB).
    Its 1x1 downsamples (128 and 512 KiB of weights) stay by rows: panel by panel they
    took 4-10% longer (each panel reads the strided input rows again)."""
    return m * nr <= panel_floats and k * -(-c_out // nr) * nr > whole_k_floats


def k_block(k: int, c_out: int, nr: int, kc: int = KC, nc: int = NC,
            max_kc: int = MAX_KC, whole_k_floats: int = WHOLE_K_FLOATS,
            m: int | None = None, panel_floats: int = PANEL_FLOATS) -> int:
    """Values of k per K block of a conv whose K is k (and M output rows, when given):
    about KC x NC floats of packed weights per block (few output channels leave room
    for more k: fewer passes over the output's partial sums), or all of K when the
    block of all of K (k x the NC block's columns) fits in `whole_k_floats` (640 KiB,
    in the 1 MiB L2 of the cores measured). resnet18's 3x3 128 -> 128 convs (K = 1152)
    ran as blocks of 1024 and 128 values of k, a second pass over the output's partial
    sums for 128 of them; as one block: 7.10-7.48 against 7.39-7.90 ms per conv (one
    core, minima of interleaved runs, 3 of 4 runs; the fourth level). A conv run panel
    by panel (columns_first) holds one panel's weights, k x NR, so its blocks take up
    to whole_k_floats / NR values of k: all of resnet18's layer-3 K (2304), 2560 of
    layer 4's 4608 (against 512 and 256 by rows: 4-6% less time per conv, one core).
    Blocking never changes which products are summed, only where partial sums are
    stored between blocks."""
    if m is not None and columns_first(m, k, c_out, nr, panel_floats, whole_k_floats):
        return min(k, max_kc, max(kc, whole_k_floats // nr))
    cols = -(-c_out // nr) * nr
    base = min(max_kc, kc * max(1, nc // cols))
    if base < k <= max_kc and k * min(cols, nc) <= whole_k_floats:
        return k
    return base


def column_items(m: int, c_out: int, mr: int, nr: int) -> tuple[int, int, int]:
    """(items, row_blocks, block_rows) of a columns-first conv (conv_cols): each panel's
    rows in enough blocks of whole MR tiles for at least COLUMN_ITEMS items, so a few
    panels still split evenly across threads (resnet18's layer 3: 4 panels x 4 blocks
    of 392 rows; layer 4: 8 x 2 blocks of 196)."""
    panels = -(-c_out // nr)
    wanted = max(1, -(-COLUMN_ITEMS // panels))
    block_rows = -(-(-(-m // wanted)) // mr) * mr
    row_blocks = -(-m // block_rows)
    return panels * row_blocks, row_blocks, block_rows


class PreparedConv:
    """A groups=1 float32 conv2d with its weights packed (once) and a fixed epilogue.

    Call with (N, C, H, W)-shaped arrays of any strides: `conv(x, out, residual)`
    writes epilogue(conv(x) + bias [+ residual]) into `out`. Weights are copied at
    preparation: prepare again after changing them."""

    def __init__(self, w: np.ndarray, bias: np.ndarray | None, geometry: ConvGeometry,
                 epilogue: Epilogue = Epilogue.NONE, isa: Isa | None = None):
        isa = isa or host_isa()
        self.kernels = conv_kernels(isa, *conv_tile(isa, w.shape[1], w.shape[0]))
        self.geometry, self.epilogue = geometry, Epilogue(epilogue)
        self.c_out, self.c_in = w.shape[:2]
        self.wp = pack_weights(np.asarray(w, np.float32), self.kernels.cfg.nr)
        self.bias = np.zeros(self.c_out, np.float32) if bias is None else \
            np.ascontiguousarray(bias, np.float32)
        self.isa, self._winograd = isa, None
        self._wino_ok = self.winograd_applies(self.c_in, (winograd.OUT, winograd.OUT), 1, 1)

    def winograd(self) -> "winograd.Winograd | None":
        """The Winograd form (llvm/winograd.py), made on first use from the packed copy
        of the weights (only channels-last 3x3 stride-1 convs take it: eager's NCHW
        calls never pay for it); None for a conv that cannot take it (its geometry, or a
        NaN or infinite weight, which the transform would spread over whole tiles)."""
        if self._winograd is None and self._wino_ok:
            panels, _, nr = self.wp.shape
            kh, kw = self.geometry.kernel
            w = self.wp.reshape(panels, kh, kw, self.c_in, nr).transpose(0, 4, 3, 1, 2) \
                .reshape(panels * nr, self.c_in, kh, kw)[:self.c_out]
            wino = winograd.Winograd(w, self.isa)
            self._winograd, self._wino_ok = (wino, True) if wino.u is not None else (None, False)
        return self._winograd

    def winograd_applies(self, c: int, out_hw, x_channel_stride: int,
                         out_channel_stride: int) -> bool:
        g = self.geometry
        return winograd.applies(self.isa, g.kernel, g.stride, g.dilation, c, self.c_out,
                                out_hw, x_channel_stride, out_channel_stride)

    def __call__(self, x: np.ndarray, out: np.ndarray, residual: np.ndarray | None = None):
        n, c, h, w = x.shape
        oh, ow = self.geometry.out_hw(h, w)
        if c != self.c_in or out.shape != (n, self.c_out, oh, ow):
            raise ShapeError(f"conv2d: input {x.shape} and output {out.shape} do not fit "
                             f"weights ({self.c_out}, {self.c_in}, *{self.geometry.kernel}) "
                             f"with {self.geometry}")
        if (Epilogue.RESIDUAL in self.epilogue) != (residual is not None):
            raise ShapeError(f"conv2d: epilogue {self.epilogue!r} and residual "
                             f"{'given' if residual is not None else 'missing'} disagree")
        if residual is not None and not self._in_place(residual, out) and (
                residual.strides != out.strides or np.may_share_memory(residual, out)):
            # the kernel reads the residual at out's offsets, after partial sums in out
            residual = _like(out, residual)
        target = out if _whole_elements(out) else np.empty(out.shape, np.float32)
        if c == 0 or out.size == 0:      # an empty sum: the epilogue of zeros
            target[...] = self.bias[:, None, None] + (0 if residual is None else residual)
            if Epilogue.RELU in self.epilogue:
                np.maximum(target, 0, out=target, where=~np.isnan(target))
        else:
            self._run(x, target, residual)
        if target is not out:
            out[...] = target
        return out

    def _in_place(self, residual: np.ndarray, out: np.ndarray) -> bool:
        """The residual is the output itself (the memory planner's in-place epilogue)
        and all of K is one block: each tile reads its residual before storing there."""
        k = self.c_in * self.geometry.kernel[0] * self.geometry.kernel[1]
        m = out.shape[0] * out.shape[2] * out.shape[3]
        return residual.ctypes.data == out.ctypes.data and residual.strides == out.strides \
            and residual.shape == out.shape and \
            k_block(k, self.c_out, self.kernels.cfg.nr, m=m) >= k

    def _run(self, x, out, residual) -> None:
        g, cfg = self.geometry, self.kernels.cfg
        n, c, h, w = x.shape
        oh, ow = g.out_hw(h, w)
        (kh, kw), (ph, pw) = g.kernel, (g.padding[0][0], g.padding[1][0])  # top, left
        xs = [s // 4 for s in x.strides] if _whole_elements(x) else None
        padded = any(map(any, g.padding))
        os_ = [s // 4 for s in out.strides]
        wino = self.winograd() if xs is not None and self._wino_ok and \
            self.winograd_applies(c, (oh, ow), xs[1], os_[1]) else None
        if wino is not None:
            dims = wino.dims(n, h, w, oh, ow, ph, pw, xs, os_, Epilogue.RELU in self.epilogue,
                             residual is not None, cfg.nr)
            res = out if residual is None else residual
            wino.run(default_pool(), (x.ctypes.data, out.ctypes.data, self.bias.ctypes.data,
                                         res.ctypes.data, self.wp.ctypes.data), dims)
            return
        direct = xs is not None and xs[1] == 1 and (c >= SMALL_CHANNELS or not padded)
        if not direct:                   # padded NHWC copy: whole kernel rows are runs
            x, ph, pw, padded = self._padded(x), 0, 0, False
            h, w = x.shape[1:3]
            xs = [h * w * c, 1, w * c, c]
        # a kernel row's KW*C values are one run when (w, c) is contiguous and no tap
        # of the row can fall in the padding
        rows_merge = xs[3] == c and g.dilation[1] == 1 and not padded
        m = n * oh * ow
        segw, seglen, nseg, spb, chunk = self._k_blocks(c, rows_merge, m)
        os_ = [s // 4 for s in out.strides]
        flags = Epilogue.RELU in self.epilogue
        res = out if residual is None else residual
        dims = (m, oh * ow, ow, *g.stride, ph, pw, *g.dilation, h, w, c,
                xs[0], xs[2], xs[3], segw, nseg, seglen, spb, chunk, kh * kw * c, self.c_out,
                os_[0], os_[1], os_[2], os_[3], int(flags), int(residual is not None))
        pointers = (x.ctypes.data, self.wp.ctypes.data, out.ctypes.data,
                    self.bias.ctypes.data, res.ctypes.data, _ZEROS.ctypes.data)
        if columns_first(m, kh * kw * c, self.c_out, cfg.nr):
            items, row_blocks, block_rows = column_items(m, self.c_out, cfg.mr, cfg.nr)
            default_pool().parallel_for(self.kernels.cols, items, *pointers, *dims,
                                        row_blocks, block_rows, align=1)
            return
        default_pool().parallel_for(self.kernels.rows, m, *pointers, *dims, align=cfg.mr)

    def _k_blocks(self, c: int, rows_merge: bool, m: int) -> tuple[int, int, int, int, int]:
        """(taps per kernel row of a segment index, segment length, segments, segments
        per K block, chunk of a segment per K block)."""
        kh, kw = self.geometry.kernel
        segw, seglen = (1, kw * c) if rows_merge else (kw, c)
        nseg = kh if rows_merge else kh * kw
        # few output channels leave room in L2 for more k per B block (fewer passes
        # over the output's partial sums)
        kc = k_block(kh * kw * c, self.c_out, self.kernels.cfg.nr, m=m)
        spb, chunk = (max(1, kc // seglen), seglen) if seglen <= kc else (1, kc)
        return segw, seglen, nseg, spb, chunk

    def _padded(self, x: np.ndarray) -> np.ndarray:
        """x as a zero-padded, contiguous NHWC array (native copy, threaded by rows)."""
        if not _whole_elements(x):
            x = np.ascontiguousarray(x)
        n, c, h, w = x.shape
        (ph, bottom), (pw, right) = self.geometry.padding
        hp, wp = h + ph + bottom, w + pw + right
        dst = _scratch(n * hp * wp * c).reshape(n, hp, wp, c)
        sn, sc, sh, sw = (s // 4 for s in x.strides)
        default_pool().parallel_for(self.kernels.pad, n * hp, x.ctypes.data, dst.ctypes.data,
                                    n, c, h, w, ph, pw, hp, wp, sn, sc, sh, sw)
        return dst


def _whole_elements(a: np.ndarray) -> bool:
    return a.dtype == np.float32 and all(s % 4 == 0 for s in a.strides)


def _like(out: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A copy of `values` with out's strides (a fresh array with the same layout)."""
    order = np.argsort([-s for s in out.strides], kind="stable")
    fresh = np.empty([out.shape[i] for i in order], np.float32)
    view = fresh.transpose(np.argsort(order))
    view[...] = values
    return view


def prepare_conv2d(w: np.ndarray, bias: np.ndarray | None = None, stride=(1, 1),
                   padding=(0, 0), dilation=(1, 1),
                   epilogue: Epilogue = Epilogue.NONE, isa: Isa | None = None) -> PreparedConv:
    """A PreparedConv for int pairs (padding: (ph, pw), or ((top, bottom), (left, right)))."""
    pads = tuple((p, p) if isinstance(p, (int, np.integer)) else tuple(p) for p in padding)
    geometry = ConvGeometry(tuple(w.shape[2:]), tuple(stride), pads, tuple(dilation))
    return PreparedConv(w, bias, geometry, epilogue, isa)
