"""float32 GEMM: C = A @ B (+ beta*C), packed and register-blocked, split across cores.

The structure is the BLIS/GotoBLAS one (Goto & van de Geijn, "Anatomy of
High-Performance Matrix Multiplication", 2008):

    for jc in N by NC:                      # B block  (KC x NC) stays in L2
      for pc in K by KC:
        pack B[pc:pc+KC, jc:jc+NC] into NR-wide column panels (zero-padded)
        for ic in rows by MC:
          pack A[ic:ic+MC, pc:pc+KC] into MR-tall row panels (zero-padded)
          for ir in MC by MR:               # A micro-panel (MR x KC) stays in L1
            for jr in NC by NR:
              microkernel: C[ir:ir+MR, jr:jr+NR] (+)= Apanel @ Bpanel

The microkernel keeps an MR x NR tile of C in vector registers (MR*NR/lanes
accumulators) and does one broadcast of A and NR/lanes loads of B per FMA row:
6x64 on AVX-512 (24 of 32 zmm registers), 6x16 on AVX2 (12 of 16 ymm), 4x8 with
4-lane vectors on the portable path. Partial tiles (any M, N) go through a stack
tile; K has no edge (packing pads with zeros only in M and N).

Any element strides are accepted for A and B (a transposed view costs nothing but a
slower packing loop), so B given K-major is just `gemm(a, w.T)`. Threads split the
rows of C (or its columns when C has few rows); each thread packs into its own slice
of a workspace that is allocated once per process, so steady-state calls allocate
nothing large.
"""
from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from ...ir.errors import DTypeError, ShapeError
from ...runtime.threads import ThreadPool, default_pool, get_num_threads
from . import irutil as u
from . import spin
from .jit import Library, compile_built
from .target import Isa, host_isa, target_for
from .tiles import tuned_tiles


@dataclass(frozen=True)
class GemmConfig:
    """Register tile (MR x NR) and cache blocks (MC, KC, NC) for one ISA."""
    isa: Isa
    mr: int
    nr: int
    mc: int
    kc: int
    nc: int

    @property
    def lanes(self) -> int:
        return self.isa.lanes

    @property
    def workspace_floats(self) -> int:
        """Floats of packing space one thread needs: an A block and a B block."""
        return self.mc * self.kc + self.kc * self.nc


CONFIGS = {
    # KC*NR*4 bytes of B micro-panel and MR*KC*4 of A stream through L1/L2 per tile;
    # a KC x NC block of B (512 KiB) sits in Zen 4's / Skylake-X's 1 MiB L2.
    # 6x64 beat 14x32 by ~5-10% against OpenBLAS on a 2-core Sapphire Rapids slice
    # (interleaved runs); it also fits conv's N = 64 output channels in one tile.
    Isa.AVX512: GemmConfig(Isa.AVX512, mr=6, nr=64, mc=6 * 24, kc=256, nc=512),
    Isa.AVX2: GemmConfig(Isa.AVX2, mr=6, nr=16, mc=6 * 24, kc=256, nc=512),
    Isa.PORTABLE: GemmConfig(Isa.PORTABLE, mr=4, nr=8, mc=4 * 32, kc=256, nc=256),
}

# gemm_rows / gemm_cols(begin, end, worker, m, n, k, a, rsa, csa, b, rsb, csb, c, ldc,
#                      accumulate, workspace, workspace_stride, b_packed); strides in
# elements. b_packed: null, or B already in NR-wide panels over all of K (PackedB).
_ENTRY_ARGS = [("begin", u.I64), ("end", u.I64), ("worker", u.I64),
               ("m", u.I64), ("n", u.I64), ("k", u.I64),
               ("a", u.PTR), ("rsa", u.I64), ("csa", u.I64),
               ("b", u.PTR), ("rsb", u.I64), ("csb", u.I64),
               ("c", u.PTR), ("ldc", u.I64), ("accumulate", u.I32),
               ("ws", u.PTR), ("ws_stride", u.I64), ("b_packed", u.PTR)]
_ENTRY_CTYPES = [ctypes.c_int64] * 6 + [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64] * 2 \
    + [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int64,
       ctypes.c_void_p]


# --- packing -------------------------------------------------------------------------------
def _emit_pack(module: ir.Module, name: str, tile: int, lanes: int = 1) -> None:
    """pack(dst, src, stride_along_tile, stride_along_k, rows, kc): panels of `tile` lanes.

    dst[p*kc + k*tile + t] = src[(p + t)*s_tile + k*s_k] for panel starts p (multiples
    of `tile`), zero where p + t >= rows. Whole panels are vector copies when the tile
    direction is contiguous (s_tile == 1: row-major B, or A given K-major), else plain
    element copies; in the last, partial panel, rows past the edge read a clamped
    (valid) address and are replaced by zero: no branches, no out-of-bounds loads.
    """
    fn, b = u.define(module, name, u.VOID, [("dst", u.PTR), ("src", u.PTR), ("s_tile", u.I64),
                                           ("s_k", u.I64), ("rows", u.I64), ("kc", u.I64)])
    dst, src, s_tile, s_k, rows, kc = fn.args
    fn.linkage = "internal"
    full_rows = b.sub(rows, b.srem(rows, u.i64(tile)))
    contiguous = b.icmp_signed("==", s_tile, u.i64(1))
    with b.if_else(contiguous) as (vector_copy, element_copy):
        with vector_copy:
            _emit_pack_full(b, dst, src, s_tile, s_k, kc, tile, full_rows, vector=True)
        with element_copy:
            if lanes > 1 and tile % lanes == 0:
                along_k = b.icmp_signed("==", s_k, u.i64(1))
                with b.if_else(along_k) as (transposing, strided):
                    with transposing:
                        _emit_pack_transposed(b, dst, src, s_tile, kc, tile, full_rows, lanes)
                    with strided:
                        _emit_pack_full(b, dst, src, s_tile, s_k, kc, tile, full_rows,
                                        vector=False)
            else:
                _emit_pack_full(b, dst, src, s_tile, s_k, kc, tile, full_rows, vector=False)
    _emit_pack_clamped(b, dst, src, s_tile, s_k, rows, kc, tile, full_rows)
    b.ret_void()


def _emit_pack_full(b, dst, src, s_tile, s_k, kc, tile, full_rows, vector: bool) -> None:
    """Whole panels: one vector copy per k (contiguous tile), else `tile` plain copies."""
    with u.counted_loop(b, u.i64(0), full_rows, tile, "pf") as p:
        with u.counted_loop(b, u.i64(0), kc, 1, "kf") as k:
            out = b.add(b.mul(p, kc), b.mul(k, u.i64(tile)))
            src_k = b.mul(k, s_k)
            if vector:
                u.store_vec(b, u.load_vec(b, src, b.add(p, src_k), tile), dst, out)
            elif tile <= 16:     # A panels (row-major A, the common case): unrolled
                for t in range(tile):
                    _copy_element(b, src, dst, b.add(b.mul(b.add(p, u.i64(t)), s_tile), src_k),
                                  b.add(out, u.i64(t)))
            else:       # a loop, not unrolled: 64 copies x 2 paths made O3 take seconds
                with u.counted_loop(b, u.i64(0), u.i64(tile), 1, "t") as t:
                    _copy_element(b, src, dst, b.add(b.mul(b.add(p, t), s_tile), src_k),
                                  b.add(out, t))


def _emit_pack_transposed(b, dst, src, s_tile, kc, tile, full_rows, lanes) -> None:
    """Whole panels of a source contiguous along k (B given K-major: attention's
    q @ k.transpose(-2, -1)): `lanes` x `lanes` blocks are read as `lanes` vectors along
    k, transposed in registers and written as `lanes` vectors along the tile; k past
    the last whole block is copied element by element."""
    k_full = b.sub(kc, b.srem(kc, u.i64(lanes)))
    with u.counted_loop(b, u.i64(0), full_rows, tile, "pt") as p:
        with u.counted_loop(b, u.i64(0), k_full, lanes, "kt") as k0:
            for t0 in range(0, tile, lanes):
                rows = [u.load_vec(b, src, b.add(b.mul(b.add(p, u.i64(t0 + r)), s_tile), k0),
                                   lanes) for r in range(lanes)]
                out = b.add(b.mul(p, kc), b.add(b.mul(k0, u.i64(tile)), u.i64(t0)))
                for k, row in enumerate(_transpose(b, rows, lanes)):
                    u.store_vec(b, row, dst, b.add(out, u.i64(k * tile)))
        with u.counted_loop(b, k_full, kc, 1, "kr") as k:
            out = b.add(b.mul(p, kc), b.mul(k, u.i64(tile)))
            with u.counted_loop(b, u.i64(0), u.i64(tile), 1, "t") as t:
                _copy_element(b, src, dst, b.add(b.mul(b.add(p, t), s_tile), k), b.add(out, t))


def _transpose(b, rows: list, n: int) -> list:
    """The n x n transpose of n vectors of n lanes (n a power of two): off-diagonal
    blocks of h = n/2, n/4, .., 1 lanes swapped by two-input shuffles."""
    rows = list(rows)
    h = n // 2
    while h:
        low = ir.Constant(u.vec(u.I32, n), [j if not j & h else n + j - h for j in range(n)])
        high = ir.Constant(u.vec(u.I32, n), [j + h if not j & h else n + j for j in range(n)])
        for i in range(n):
            if i & h:
                continue
            a, c = rows[i], rows[i + h]
            rows[i], rows[i + h] = b.shuffle_vector(a, c, low), b.shuffle_vector(a, c, high)
        h //= 2
    return rows


def _copy_element(b, src, dst, src_index, dst_index) -> None:
    b.store(b.load(u.elem_ptr(b, src, src_index), typ=u.F32), u.elem_ptr(b, dst, dst_index))


def _emit_pack_clamped(b, dst, src, s_tile, s_k, rows, kc, tile, start) -> None:
    last = b.sub(rows, u.i64(1))
    zero = ir.Constant(u.F32, 0.0)
    with u.counted_loop(b, start, rows, tile, "p") as p:
        panel = b.mul(p, kc)
        with u.counted_loop(b, u.i64(0), kc, 1, "k") as k:
            src_k = b.mul(k, s_k)
            out = b.add(panel, b.mul(k, u.i64(tile)))
            with u.counted_loop(b, u.i64(0), u.i64(tile), 1, "t") as t:
                row = b.add(p, t)
                valid = b.icmp_signed("<", row, rows)
                clamped = b.select(valid, row, last)
                x = b.load(u.elem_ptr(b, src, b.add(b.mul(clamped, s_tile), src_k)), typ=u.F32)
                b.store(b.select(valid, x, zero), u.elem_ptr(b, dst, b.add(out, t)))


# --- microkernel ---------------------------------------------------------------------------
def _emit_microkernel(module: ir.Module, cfg: GemmConfig) -> ir.Function:
    """ukernel(kc, ap, bp, c, ldc, m_valid, n_valid, accumulate): one MR x NR tile."""
    fn, b = u.define(module, "ukernel", u.VOID,
                     [("kc", u.I64), ("ap", u.PTR), ("bp", u.PTR), ("c", u.PTR), ("ldc", u.I64),
                      ("m_valid", u.I64), ("n_valid", u.I64), ("accumulate", u.I1)])
    fn.linkage = "internal"
    kc, ap, bp, c, ldc, m_valid, n_valid, accumulate = fn.args
    lanes, nv = cfg.lanes, cfg.nr // cfg.lanes
    vt = u.vec(u.F32, lanes)
    tile = b.alloca(u.F32, size=cfg.mr * cfg.nr, name="tile")   # for partial tiles
    acc = _emit_k_loop(b, cfg, kc, ap, bp, vt, nv)
    full = b.and_(b.icmp_signed("==", m_valid, u.i64(cfg.mr)),
                  b.icmp_signed("==", n_valid, u.i64(cfg.nr)))
    with b.if_else(full) as (then, otherwise):
        with then:
            _store_tile(b, acc, c, ldc, accumulate, lanes)
        with otherwise:
            _store_tile(b, acc, tile, u.i64(cfg.nr), ir.Constant(u.I1, 0), lanes)
            _copy_partial(b, tile, cfg.nr, c, ldc, m_valid, n_valid, accumulate)
    b.ret_void()
    return fn


def _emit_k_loop(b, cfg, kc, ap, bp, vt, nv) -> list[list[ir.Value]]:
    """The hot loop: acc[r][v] += A[k, r] * B[k, v*lanes : (v+1)*lanes] for k < kc."""
    def step(k, flat):
        b_vecs = [u.load_vec(b, bp, b.add(b.mul(k, u.i64(cfg.nr)), u.i64(v * cfg.lanes)),
                             cfg.lanes) for v in range(nv)]
        a_base = b.mul(k, u.i64(cfg.mr))
        out = []
        for r in range(cfg.mr):
            a = u.splat(b, b.load(u.elem_ptr(b, ap, b.add(a_base, u.i64(r))), typ=u.F32),
                        cfg.lanes)
            out += [multiply_add(b, cfg, a, b_vecs[v], flat[r * nv + v]) for v in range(nv)]
        return out

    flat = u.carried_loop(b, u.i64(0), kc, [ir.Constant(vt, None)] * (cfg.mr * nv), step)
    return [flat[r * nv:(r + 1) * nv] for r in range(cfg.mr)]


def multiply_add(b, cfg, x, y, acc):
    # Without hardware FMA (the portable target is baseline x86-64), llvm.fma becomes a
    # libm call per lane; a separate multiply and add is what such a CPU can do fast.
    if cfg.isa is Isa.PORTABLE:
        return b.fadd(b.fmul(x, y), acc)
    return u.fma(b, x, y, acc)


def _store_tile(b, acc, dst, ld, accumulate, lanes) -> None:
    """dst[r*ld + v*lanes ...] = acc[r][v] (+ dst when accumulate)."""
    for r, row in enumerate(acc):
        for v, value in enumerate(row):
            idx = b.add(b.mul(u.i64(r), ld), u.i64(v * lanes))
            old = u.load_vec(b, dst, idx, lanes)
            new = b.select(accumulate, b.fadd(value, old), value)
            u.store_vec(b, new, dst, idx)


def _copy_partial(b, tile, tile_ld, c, ldc, m_valid, n_valid, accumulate) -> None:
    """The valid m_valid x n_valid corner of the stack tile into C (+ C when accumulate)."""
    with u.counted_loop(b, u.i64(0), m_valid, 1, "r") as r:
        with u.counted_loop(b, u.i64(0), n_valid, 1, "j") as j:
            dst = u.elem_ptr(b, c, b.add(b.mul(r, ldc), j))
            x = b.load(u.elem_ptr(b, tile, b.add(b.mul(r, u.i64(tile_ld)), j)), typ=u.F32)
            # select, not arithmetic: with beta == 0, C's old NaNs must not leak (BLAS)
            b.store(b.select(accumulate, b.fadd(x, b.load(dst, typ=u.F32)), x), dst)


# --- the loop nest -------------------------------------------------------------------------
def _emit_block(module: ir.Module, cfg: GemmConfig, ukernel: ir.Function) -> ir.Function:
    """block(m0, m1, n0, n1, worker, ...): C[m0:m1, n0:n1] by the five-loop nest."""
    args = [("m0", u.I64), ("m1", u.I64), ("n0", u.I64), ("n1", u.I64)] + _ENTRY_ARGS[2:]
    fn, b = u.define(module, "gemm_block", u.VOID, args)
    fn.linkage = "internal"
    p = dict(zip([name for name, _ in args], fn.args))
    ap = u.elem_ptr(b, p["ws"], b.mul(p["worker"], p["ws_stride"]))
    bp = u.elem_ptr(b, ap, u.i64(cfg.mc * cfg.kc))
    first_accumulates = b.icmp_signed("!=", p["accumulate"], ir.Constant(u.I32, 0))
    prepacked = b.icmp_unsigned("!=", p["b_packed"], ir.Constant(u.PTR, None))
    with u.counted_loop(b, p["n0"], p["n1"], cfg.nc, "jc") as jc:
        nc = u.imin(b, u.i64(cfg.nc), b.sub(p["n1"], jc))
        with u.counted_loop(b, u.i64(0), p["k"], cfg.kc, "pc") as pc:
            kc = u.imin(b, u.i64(cfg.kc), b.sub(p["k"], pc))
            with b.if_then(b.not_(prepacked)):
                b_src = u.elem_ptr(b, p["b"], b.add(b.mul(pc, p["rsb"]), b.mul(jc, p["csb"])))
                b.call(module.get_global("pack_b"), [bp, b_src, p["csb"], p["rsb"], nc, kc])
            # panels of the packed block (KC deep) or of the prepacked B (K deep)
            packed_at = u.elem_ptr(b, p["b_packed"], b.add(b.mul(jc, p["k"]),
                                                           b.mul(pc, u.i64(cfg.nr))))
            b_block = b.select(prepacked, packed_at, bp)
            panel_k = b.select(prepacked, p["k"], kc)
            accumulate = b.or_(first_accumulates, b.icmp_signed(">", pc, u.i64(0)))
            with u.counted_loop(b, p["m0"], p["m1"], cfg.mc, "ic") as ic:
                mc = u.imin(b, u.i64(cfg.mc), b.sub(p["m1"], ic))
                a_src = u.elem_ptr(b, p["a"], b.add(b.mul(ic, p["rsa"]), b.mul(pc, p["csa"])))
                b.call(module.get_global("pack_a"), [ap, a_src, p["rsa"], p["csa"], mc, kc])
                c_block = u.elem_ptr(b, p["c"], b.add(b.mul(ic, p["ldc"]), jc))
                _emit_tiles(b, cfg, ukernel, (kc, panel_k), mc, nc, ap, b_block, c_block,
                            p["ldc"], accumulate)
    b.ret_void()
    return fn


def _emit_tiles(b, cfg, ukernel, kc_and_panel_k, mc, nc, ap, bp, c_block, ldc,
                accumulate) -> None:
    kc, panel_k = kc_and_panel_k          # B panel j starts at j * panel_k (j in columns)
    with u.counted_loop(b, u.i64(0), mc, cfg.mr, "ir") as i:
        a_panel = u.elem_ptr(b, ap, b.mul(i, kc))
        m_valid = u.imin(b, u.i64(cfg.mr), b.sub(mc, i))
        with u.counted_loop(b, u.i64(0), nc, cfg.nr, "jr") as j:
            b_panel = u.elem_ptr(b, bp, b.mul(j, panel_k))
            n_valid = u.imin(b, u.i64(cfg.nr), b.sub(nc, j))
            c_tile = u.elem_ptr(b, c_block, b.add(b.mul(i, ldc), j))
            b.call(ukernel, [kc, a_panel, b_panel, c_tile, ldc, m_valid, n_valid, accumulate])


def _emit_entries(module: ir.Module, block: ir.Function) -> None:
    """gemm_rows splits C by rows [begin, end); gemm_cols by columns."""
    for name in ("gemm_rows", "gemm_cols"):
        fn, b = u.define(module, name, u.VOID, _ENTRY_ARGS)
        p = dict(zip([n for n, _ in _ENTRY_ARGS], fn.args))
        if name == "gemm_rows":
            bounds = [p["begin"], p["end"], u.i64(0), p["n"]]
        else:
            bounds = [u.i64(0), p["m"], p["begin"], p["end"]]
        b.call(block, bounds + list(fn.args)[2:])
        b.ret_void()
    _emit_batch_entry(module, block)


# gemm_batch(<gemm_rows' arguments>, sa, sb, sc): whole products a[i] @ b[i] -> c[i] for
# matrices i in [begin, end) (batch strides in elements), all on this thread.
_BATCH_ARGS = _ENTRY_ARGS + [("sa", u.I64), ("sb", u.I64), ("sc", u.I64)]
_BATCH_CTYPES = _ENTRY_CTYPES + [ctypes.c_int64] * 3


def _emit_batch_entry(module: ir.Module, block: ir.Function) -> None:
    fn, b = u.define(module, "gemm_batch", u.VOID, _BATCH_ARGS)
    p = dict(zip([n for n, _ in _BATCH_ARGS], fn.args))
    with u.counted_loop(b, p["begin"], p["end"], 1, "i") as i:
        moved = {name: u.elem_ptr(b, p[name], b.mul(i, p[step]))
                 for name, step in (("a", "sa"), ("b", "sb"), ("c", "sc"))}
        args = [moved.get(name, p[name]) for name, _ in _ENTRY_ARGS[2:]]
        b.call(block, [u.i64(0), p["m"], u.i64(0), p["n"]] + args)
    b.ret_void()


def gemm_module(cfg: GemmConfig) -> ir.Module:
    """The LLVM module of one GEMM configuration (exported: gemm_rows, gemm_cols)."""
    module = ir.Module(name=f"ember_gemm_{cfg.isa.value}_{cfg.mr}x{cfg.nr}")
    _emit_pack(module, "pack_a", cfg.mr, cfg.lanes)
    _emit_pack(module, "pack_b", cfg.nr, cfg.lanes)
    ukernel = _emit_microkernel(module, cfg)
    ukernel.attributes.add("noinline")   # keep the hot loop's registers to itself
    _emit_entries(module, _emit_block(module, cfg, ukernel))
    return module


# --- the Python entry ----------------------------------------------------------------------
@dataclass
class GemmKernel:
    cfg: GemmConfig
    library: Library
    rows: object
    cols: object
    batch: object


# Narrower register tiles for matrices with few columns (attention's per-head products
# have N = 32; a 64-wide tile would waste half its FMAs and store through the
# partial-tile path). The implicit conv picks its tile by output channels from its own
# table: taller tiles there spread each tile row's pointer set-up over more output
# pixels. The GEMM reads packed A, MR floats per k: 8 or 16 rows keep them in whole
# 32- or 64-byte pieces, where 12 rows (48 bytes) ran 1.6-2x slower (Zen 5, one core,
# CPU time: 4096x256 @ 256x32 557 us on 12x32, 333 us on 8x32; @ 256x16 461 us on
# 12x16, 250 on 8x16, 236 on 16x16; attention's 64 x (128x128 @ 128x32) 729 -> 466 us;
# the 16 -> 32 and 16 -> 16 convs on 64x16x14x14: 601 and 444 us on 12 rows, 692 and
# 482 us on 8).
NARROW_TILES = {Isa.AVX512: ((16, 16), (32, 8)), Isa.AVX2: ((8, 12),), Isa.PORTABLE: ()}
CONV_NARROW_TILES = {Isa.AVX512: ((16, 12), (32, 12)), Isa.AVX2: ((8, 12),),
                     Isa.PORTABLE: ()}


def tile_for(isa: Isa, n: int, conv: bool = False) -> tuple[int, int]:
    """(MR, NR) for a product with n columns (a conv's: n output channels): the tile
    `ember tune` recorded for n on this machine (llvm/tiles.py), else the narrowest tile
    of the table that covers n."""
    tuned = tuned_tiles(isa).get(n)
    if tuned is not None:
        return tuned
    for nr, mr in (CONV_NARROW_TILES if conv else NARROW_TILES)[isa]:
        if n <= nr:
            return mr, nr
    return CONFIGS[isa].mr, CONFIGS[isa].nr


def config(isa: Isa, mr: int | None = None, nr: int | None = None) -> GemmConfig:
    base = CONFIGS[isa]
    mr, nr = mr or base.mr, nr or base.nr
    return GemmConfig(isa, mr, nr, base.mc // base.mr * mr, base.kc, base.nc)


@functools.cache
def gemm_kernel(isa: Isa, mr: int | None = None, nr: int | None = None) -> GemmKernel:
    """The compiled GEMM for `isa` and a register tile (default: the ISA's); disk-cached,
    compiled at most once per process."""
    cfg = config(isa, mr, nr)
    lib = compile_built(gemm_module, cfg, target=target_for(isa))
    spin.install()      # back-to-back GEMMs: the next one's chunk handed over natively
    return GemmKernel(cfg, lib, lib.function("gemm_rows", None, *_ENTRY_CTYPES),
                      lib.function("gemm_cols", None, *_ENTRY_CTYPES),
                      lib.function("gemm_batch", None, *_BATCH_CTYPES))


_WORKSPACES: dict[tuple[GemmConfig, int, int], np.ndarray] = {}


def _workspace(cfg: GemmConfig, pool: ThreadPool) -> np.ndarray:
    """Packing buffers for each of `pool`'s workers, allocated once (64-byte aligned).

    One per pool: a pool runs one parallel_for at a time, so its workers' slices are
    never shared, while two pools may run at once."""
    threads = pool.n_threads
    key = (cfg, id(pool), threads)       # id reuse after a pool dies: same size, safe
    if key not in _WORKSPACES:
        raw = np.zeros(cfg.workspace_floats * threads + 16, np.float32)
        offset = (-raw.ctypes.data % 64) // 4
        _WORKSPACES[key] = raw[offset:offset + cfg.workspace_floats * threads]
    return _WORKSPACES[key]


def _strides(x: np.ndarray) -> tuple[int, int]:
    return x.strides[0] // 4, x.strides[1] // 4


def _check(a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> tuple[int, int, int]:
    for name, x in (("a", a), ("b", b)) + ((("out", out),) if out is not None else ()):
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            got = getattr(x, "dtype", type(x).__name__)
            raise DTypeError(f"gemm: {name} must be a float32 numpy array, got {got}")
        if x.ndim != 2:
            raise ShapeError(f"gemm: {name} must be 2-D, got shape {x.shape}")
        if any(s % 4 for s in x.strides):
            raise ShapeError(f"gemm: {name}'s strides {x.strides} are not whole elements")
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2:
        raise ShapeError(f"gemm: a.shape[1] must equal b.shape[0], got {a.shape} and {b.shape}")
    if out is not None and out.shape != (m, n):
        raise ShapeError(f"gemm: out must have shape {(m, n)}, got {out.shape}")
    return m, n, k


@dataclass(frozen=True, eq=False)
class PackedB:
    """A constant B (K x N) packed once into NR-wide panels over all of K, for the
    register tile its width selects: gemm(a, packed) then skips packing B (a Linear's
    weight in a compiled plan). panels[j, k, t] = B[k, j*NR + t], zero past N."""
    panels: np.ndarray
    k: int
    n: int
    isa: Isa
    tile: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return self.k, self.n


def prepack_b(b: np.ndarray, isa: Isa | None = None) -> PackedB:
    """Pack B (K x N float32, any strides; a weight given (N, K) is passed as w.T)."""
    if not isinstance(b, np.ndarray) or b.dtype != np.float32 or b.ndim != 2:
        raise DTypeError(f"prepack_b: b must be a 2-D float32 numpy array, got "
                         f"{getattr(b, 'dtype', type(b).__name__)} {getattr(b, 'shape', '')}")
    isa = isa or host_isa()
    k, n = b.shape
    mr, nr = tile_for(isa, n)
    return PackedB(panels_of(b, nr), k, n, isa, (mr, nr))


def panels_of(b: np.ndarray, nr: int) -> np.ndarray:
    """(K, N) -> (ceil(N/nr), K, nr) zero-padded panels, contiguous and 64-byte aligned
    (the layout of a packed B block, over all of K)."""
    k, n = b.shape
    count = -(-n // nr)
    raw = np.zeros(count * k * nr + 16, np.float32)
    offset = (-raw.ctypes.data % 64) // 4
    panels = raw[offset:offset + count * k * nr].reshape(count, k, nr)
    for j in range(count):
        cols = b[:, j * nr:(j + 1) * nr]
        panels[j, :, :cols.shape[1]] = cols
    return panels


# below this many multiply-adds (~10 us on one core) a GEMM runs on the calling thread:
# splitting it saves less than handing a chunk to a worker and waiting for it costs
GEMM_PARALLEL_MIN_MACS = 1 << 20


def gemm(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None, beta: float = 0.0,
         isa: Isa | None = None, pool: ThreadPool | None = None,
         threads: int | None = None) -> np.ndarray:
    """out = a @ b + beta * out for float32 matrices of any strides; returns out.

    `b` given K-major (e.g. a Linear weight of shape (N, K)) is passed as `w.T`.
    With beta == 0, out's old contents are never read (NaN there does not leak).
    `isa` forces an instruction set (tests use it for the AVX2 path); `threads`
    caps how many pool threads take part. `b` may be a PackedB (prepack_b).
    """
    if isinstance(b, PackedB):
        return _gemm_packed(a, b, out, beta, pool, threads)
    m, n, k = _check(a, b, out)
    if out is None:
        out, beta = np.empty((m, n), np.float32), 0.0
    overlaps = np.may_share_memory(out, a) or np.may_share_memory(out, b)
    if out.strides[1] != 4 or out.strides[0] % 4 or overlaps:
        # the kernel stores rows of C as vectors, and reads A/B while writing C
        result = gemm(a, b, out.copy(), beta, isa, pool, threads)
        out[...] = result
        return out
    if beta not in (0.0, 1.0) and m * n:
        out *= np.float32(beta)
    if k == 0 or m * n == 0:
        if beta == 0.0:
            out[...] = 0.0
        return out
    isa = isa or host_isa()
    kernel = gemm_kernel(isa, *tile_for(isa, n))
    _run(kernel, a, b, out, m, n, k, beta != 0.0, pool or default_pool(), threads)
    return out


def _gemm_packed(a, packed: PackedB, out, beta, pool, threads) -> np.ndarray:
    m, n, k = _check(a, np.broadcast_to(np.float32(0), packed.shape), out)   # shapes only
    if out is None:
        out, beta = np.empty((m, n), np.float32), 0.0
    if out.strides[1] != 4 or out.strides[0] % 4 or np.may_share_memory(out, a) or \
            beta not in (0.0, 1.0) or k == 0 or m * n == 0:
        dense = packed.panels.transpose(1, 0, 2).reshape(k, -1)[:, :n]
        return gemm(a, dense, out, beta, packed.isa, pool, threads)
    _run(gemm_kernel(packed.isa, *packed.tile), a, packed, out, m, n, k, beta != 0.0,
         pool or default_pool(), threads)
    return out


def _run(kernel: GemmKernel, a, b, out, m, n, k, accumulate, pool, threads) -> None:
    """b: a matrix, or a PackedB (its panels replace the packing of B)."""
    cfg = kernel.cfg
    packed = b.panels.ctypes.data if isinstance(b, PackedB) else 0
    if packed:
        b = b.panels[0]                    # any 2-D view: its strides go unused
    # set_num_threads caps the split too, so rows vs columns follow the threads used
    n_threads = min(pool.n_threads, threads or pool.n_threads, get_num_threads())
    if m * n * k < GEMM_PARALLEL_MIN_MACS:
        n_threads = 1       # a hand-off to a worker costs more than half of this GEMM
    ws = _workspace(cfg, pool)
    # Split rows when there are enough for every thread, else columns (tall-skinny B).
    by_rows = m >= cfg.mr * n_threads or m >= n
    entry, extent, align = (kernel.rows, m, cfg.mr) if by_rows else (kernel.cols, n, cfg.nr)
    rsa, csa = _strides(a)
    rsb, csb = _strides(b)
    pool.parallel_for(entry, extent, m, n, k, a.ctypes.data, rsa, csa, b.ctypes.data, rsb, csb,
                      out.ctypes.data, out.strides[0] // 4, int(accumulate), ws.ctypes.data,
                      cfg.workspace_floats, packed, align=align, max_threads=n_threads)


def gemm_batched(a: np.ndarray, b: np.ndarray, out: np.ndarray,
                 pool: ThreadPool | None = None) -> np.ndarray:
    """out[i] = a[i] @ b[i] for 3-D float32 arrays of any strides (broadcast views too);
    out's rows must have unit column stride and not overlap a or b.

    Many small matrices (attention's per-head products) split the *batch* across the
    pool, each thread running whole single-threaded GEMMs into its own packing space:
    one hand-off per call instead of one per matrix. Few or big matrices run one
    threaded GEMM each."""
    pool = pool or default_pool()
    batch = out.shape[0]
    if a.shape[0] != batch or b.shape[0] != batch or a.ndim != 3 or b.ndim != 3:
        raise ShapeError(f"gemm_batched: batch shapes differ: {a.shape}, {b.shape}, {out.shape}")
    m, n, k = _check(a[0], b[0], out[0]) if batch else (0, 0, 0)
    kernel = gemm_kernel(host_isa(), *tile_for(host_isa(), n))
    small = m * n * k <= 256 ** 3 and batch >= pool.n_threads
    if not small or k == 0 or out.strides[2] != 4 or np.may_share_memory(out, a) \
            or np.may_share_memory(out, b):
        for i in range(batch):
            gemm(a[i], b[i], out[i], pool=pool)
        return out
    cfg, ws = kernel.cfg, _workspace(kernel.cfg, pool)
    rsa, csa = _strides(a[0])
    rsb, csb = _strides(b[0])
    if any(x.strides[0] % 4 for x in (a, b, out)):
        raise ShapeError("gemm_batched: batch strides are not whole elements")
    pool.parallel_for(kernel.batch, batch, m, n, k, a.ctypes.data, rsa, csa, b.ctypes.data,
                      rsb, csb, out.ctypes.data, out.strides[1] // 4, 0, ws.ctypes.data,
                      cfg.workspace_floats, None, *(x.strides[0] // 4 for x in (a, b, out)))
    return out
