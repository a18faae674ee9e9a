"""A convolution and the max pool that reads it as one kernel, in bands of output rows
(resnet's stem and its 3x3 / 2 max pool: the stem's 8 x 112 x 112 x 64 output, 6.4 MB,
was stored to memory and read back by the pool's own pass).

    qstem_pool(t_begin, t_end, worker, params)

Each thread claims bands (a band: image `img`, pool output rows [p0, p1)) from a counter
and for each runs the AMX convolution (qgemm_amx_u8, called through its address with
chunk 0: exactly the row tiles [t0, t1) that hold the conv rows the band's windows
read) into its own band buffer, then qmaxpool's rows over that buffer into the pool's
output. The band buffer stays in the thread's L2, so the conv's output is never stored
to memory; neighbouring bands both compute the one conv row their windows share (and
the tile-aligned rows around it: ~2% more conv work at two bands an image).

The conv and the pool are the unfused ones, tile for tile and row for row: every conv
output byte is the same epilogue's on the same sums, and every pool output the max over
the same window of those bytes, so the result equals the two calls' bit for bit. Both
address their data by absolute row: the conv's parameter block (copied per band into
the thread's buffer) gets `out` = band buffer - t0 * 32 rows, and the pool reads `x` =
that same biased address (its input row m is the conv's output row m, rows ldo = C
bytes apart).

params (int64 words, FIELDS): the conv kernel's address, its parameter block's address
and length in words, the pool's output, the band buffers (one a thread,
`stride` bytes apart: the conv block's copy, then at `band_at` the band's rows), bands
per image, the bands in all, the claim counter (0 before the call), the conv's output
row bytes (ldo), the index of the conv block's `out` and `chunk` words, then qmaxpool's
11 geometry words.
"""
from __future__ import annotations

import ctypes
import functools

from llvmlite import ir

from . import irutil as u
from . import qelementwise as QE
from . import spin
from .jit import compile_built
from .qgemm import claim_loop
from .target import Isa, target_for

I8 = ir.IntType(8)
FIELDS = ("conv_fn", "conv_params", "conv_words", "out", "bands", "stride", "band_at",
          "per_image", "n_bands", "counter", "ldo", "conv_out", "conv_chunk",
          "pairs_fn", "src", "pairs_ip", "pairs_fp", "pairs_at", "hp2", "pitch", "k_pairs",
          "n_pairs", "conv_a")
TILE_ROWS = 32          # the AMX kernel's row tile (qgemm_amx.AMX.mr * 2)
_CONV_TYPE = ir.FunctionType(u.VOID, [u.I64, u.I64, u.I64, u.PTR])
_PAIRS_TYPE = ir.FunctionType(u.VOID, [u.I64, u.I64, u.I64, u.PTR, u.PTR, u.PTR, u.PTR])


def _emit(module: ir.Module) -> None:
    fn, b = u.define(module, "qstem_pool", u.VOID, [
        ("t_begin", u.I64), ("t_end", u.I64), ("worker", u.I64), ("params", u.PTR)],
        noalias_ptrs=False)
    _, _, worker, params = fn.args
    p = {f: b.load(b.gep(params, [u.i64(i)], source_etype=u.I64), typ=u.I64)
         for i, f in enumerate(FIELDS) if f != "counter"}
    geo = QE._maxpool_geometry(b, b.gep(params, [u.i64(len(FIELDS))], source_etype=u.I64))
    slots = QE._maxpool_slots(b)
    counter = b.gep(params, [u.i64(FIELDS.index("counter"))], source_etype=u.I64)
    local = b.gep(b.inttoptr(p["bands"], u.PTR), [b.mul(worker, p["stride"])],
                  source_etype=I8)
    rows = b.gep(local, [p["band_at"]], source_etype=I8)
    conv_params = b.inttoptr(p["conv_params"], u.PTR)
    conv = spin._callee(b.inttoptr(p["conv_fn"], u.PTR), _CONV_TYPE)
    t_begin, t_end = fn.args[:2]
    # bands claimed one at a time from the counter (qgemm.claim_loop's fixed claims)
    band, _, head, done = claim_loop(b, counter, u.i64(1), t_begin, t_end, p["n_bands"])
    img = b.sdiv(band, p["per_image"])
    part = b.sub(band, b.mul(img, p["per_image"]))
    p0 = b.sdiv(b.mul(part, geo["oh"]), p["per_image"])
    p1 = b.sdiv(b.mul(b.add(part, u.i64(1)), geo["oh"]), p["per_image"])
    # the conv rows the band's windows read, clipped to the image, as whole row tiles
    r0 = _imax(b, b.sub(b.mul(p0, geo["sh"]), geo["ph"]), u.i64(0))
    r1 = u.imin(b, b.add(b.sub(b.mul(b.sub(p1, u.i64(1)), geo["sh"]), geo["ph"]), geo["kh"]),
                geo["h"])
    t0 = b.sdiv(b.mul(b.add(b.mul(img, geo["h"]), r0), geo["w"]), u.i64(TILE_ROWS))
    m1 = b.mul(b.add(b.mul(img, geo["h"]), r1), geo["w"])
    t1 = b.sdiv(b.add(m1, u.i64(TILE_ROWS - 1)), u.i64(TILE_ROWS))
    with u.counted_loop(b, u.i64(0), p["conv_words"], 1, "word") as i:
        b.store(b.load(b.gep(conv_params, [i], source_etype=u.I64), typ=u.I64),
                b.gep(local, [b.mul(i, u.i64(8))], source_etype=I8))
    # row m of the conv's output (and of the pool's input) at biased + m * ldo
    biased = b.gep(rows, [b.neg(b.mul(b.mul(t0, u.i64(TILE_ROWS)), p["ldo"]))],
                   source_etype=I8)
    b.store(b.ptrtoint(biased, u.I64),
            b.gep(local, [b.mul(p["conv_out"], u.i64(8))], source_etype=I8))
    b.store(u.i64(0), b.gep(local, [b.mul(p["conv_chunk"], u.i64(8))], source_etype=I8))
    # the pair-rows the tiles' windows read (_pair_rows), copied (and quantized, from a
    # float image) into the thread's buffer, the conv's `a` biased to read them in place
    # (pairs_fn 0: the caller made the whole input, at the conv block's `a`)
    with b.if_then(b.icmp_signed("!=", p["pairs_fn"], u.i64(0))):
        pr0, pr1 = _pair_rows(b, p, t0, t1, geo["h"], geo["w"])
        pairs = b.gep(b.gep(local, [p["pairs_at"]], source_etype=I8),
                      [b.neg(b.mul(pr0, p["pitch"]))], source_etype=I8)
        copy = spin._callee(b.inttoptr(p["pairs_fn"], u.PTR), _PAIRS_TYPE)
        b.call(copy, [pr0, pr1, worker, b.inttoptr(p["src"], u.PTR), pairs,
                      b.inttoptr(p["pairs_ip"], u.PTR), b.inttoptr(p["pairs_fp"], u.PTR)])
        b.store(b.ptrtoint(pairs, u.I64),
                b.gep(local, [b.mul(p["conv_a"], u.i64(8))], source_etype=I8))
    b.call(conv, [t0, t1, worker, local])
    first = b.mul(img, geo["oh"])
    QE._maxpool_rows(b, geo, biased, b.inttoptr(p["out"], u.PTR), b.add(first, p0),
                     b.add(first, p1), slots)
    b.branch(head)
    b.position_at_end(done)
    b.ret_void()


def _pair_rows(b, p, t0, t1, oh, ow):
    """[pr0, pr1): the row-pair input's pair-rows that row tiles [t0, t1) read: conv row
    (img, oy) reads pair-rows img * hp2 + oy + [0, k_pairs) (lite.row_pairs_gather)."""
    lo = b.sdiv(b.mul(t0, u.i64(TILE_ROWS)), ow)
    hi = b.sdiv(b.sub(b.mul(t1, u.i64(TILE_ROWS)), u.i64(1)), ow)
    rows = []
    for g in (lo, hi):
        img = b.sdiv(g, oh)
        rows.append(b.add(b.mul(img, p["hp2"]), b.sub(g, b.mul(img, oh))))
    return rows[0], u.imin(b, b.add(rows[1], p["k_pairs"]), p["n_pairs"])


def _imax(b, x, y):
    return b.select(b.icmp_signed(">", x, y), x, y)


def module() -> ir.Module:
    mod = ir.Module(name="ember_qstem_pool")
    _emit(mod)
    return mod


@functools.lru_cache(maxsize=1)
def kernel():
    lib = compile_built(module, target=target_for(Isa.AVX512))
    spin.install()      # the native hand-off (qelementwise._kernel's reasons)
    return lib.function("qstem_pool", None, *([ctypes.c_int64] * 3 + [ctypes.c_void_p]))


# bands an image is cut into (the claims' grain: at two threads the later thread ends at
# most about a band after the other; each cut computes ~2 conv rows twice)
BANDS_PER_IMAGE = 2
# each band copies the row-pair input rows it reads (into the thread's buffer); False:
# the whole input first, as the unfused runner makes it (A/B)
BAND_PAIRS = True


def _bands(n: int, h: int, w: int, oh: int, per_image: int, kh: int, sh: int, ph: int):
    """Every band's row tiles [t0, t1) (the kernel's arithmetic)."""
    out = []
    for img in range(n):
        for part in range(per_image):
            p0, p1 = part * oh // per_image, (part + 1) * oh // per_image
            r0, r1 = max(p0 * sh - ph, 0), min((p1 - 1) * sh - ph + kh, h)
            out.append(((img * h + r0) * w // TILE_ROWS, -(-((img * h + r1) * w) // TILE_ROWS)))
    return out


def _pairs_of(t0: int, t1: int, h: int, w: int, hp2: int, k_pairs: int, n_pairs: int):
    """_pair_rows' [pr0, pr1) in Python."""
    rows = []
    for g in (t0 * TILE_ROWS // w, (t1 * TILE_ROWS - 1) // w):
        rows.append(g // h * hp2 + g % h)
    return rows[0], min(rows[1] + k_pairs, n_pairs)


class StemPoolCall:
    """qstem_pool's parameter block and band buffers for one AMX conv call (lite_int8
    QAmxCall: one tile a row block, no column split, dense uint8 output) and one max
    pool geometry, made once; a call runs conv then pool over an input buffer of the
    conv's geometry and returns the pool's [N, OH, OW, C] uint8 output, or None where
    the block is in use (a concurrent call: the caller runs the two steps)."""

    def __init__(self, conv, conv_fn, shape, pool, pairs):
        """conv: the QAmxCall, conv_fn its kernel; shape: the conv's output [N, H, W, C];
        pool: ((kh, kw), (sh, sw), (ph, pw)); pairs: (the row-pair input's shape, the
        conv's kernel height, the two RowPairsCalls and their kernels, uint8 and float
        source: codegen/quantized.py _row_pairs_runner's)."""
        import threading
        import numpy as np
        from ...runtime import lite_int8 as lite
        n, h, w, c = shape
        (kh, kw), (sh, sw), (ph, pw) = pool
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        pairs_shape, conv_kh, self._copies, self._copy_fns = pairs
        _, hp2, wp, _, c_in = pairs_shape
        pitch, k_pairs = wp * 2 * c_in, -(-conv_kh // 2)
        self.out_shape = (n, oh, ow, c)
        self._conv = conv
        self._conv_params = conv.params.copy()
        per_image = max(1, min(BANDS_PER_IMAGE, oh))
        bands = _bands(n, h, w, oh, per_image, kh, sh, ph)
        most = max(t1 - t0 for t0, t1 in bands)
        pair_rows = max(-np.subtract(*_pairs_of(t0, t1, h, w, hp2, k_pairs, n * hp2))
                        for t0, t1 in bands)
        params_bytes = -(-self._conv_params.nbytes // 64) * 64
        rows_bytes = most * TILE_ROWS * c + 64
        pairs_bytes = -(-(pair_rows * pitch + lite.ROW_PAIRS_SLACK) // 64) * 64
        self._stride = params_bytes + rows_bytes + pairs_bytes
        self.n_bands = len(bands)
        fields = {"conv_fn": ctypes.cast(conv_fn, ctypes.c_void_p).value,
                  "conv_params": self._conv_params.ctypes.data,
                  "conv_words": len(self._conv_params), "out": 0, "bands": 0,
                  "stride": self._stride, "band_at": params_bytes, "per_image": per_image,
                  "n_bands": self.n_bands, "counter": 0, "ldo": c,
                  "conv_out": lite.QGEMM_AMX_FIELDS.index("out"),
                  "conv_chunk": lite.QGEMM_AMX_FIELDS.index("chunk"),
                  "pairs_fn": 0, "src": 0, "pairs_ip": 0, "pairs_fp": 0,
                  "pairs_at": params_bytes + rows_bytes, "hp2": hp2, "pitch": pitch,
                  "k_pairs": k_pairs, "n_pairs": n * hp2,
                  "conv_a": lite.QGEMM_AMX_FIELDS.index("a")}
        words = [fields[f] for f in FIELDS] + [h, w, c, oh, ow, kh, kw, sh, sw, ph, pw]
        self._block = (ctypes.c_int64 * len(words))(*words)
        self._address = ctypes.addressof(self._block)
        self._buffers = lite.aligned_empty(0, np.uint8)
        self._scratch = lite.aligned_empty(0, np.uint8)      # the conv's A tiles
        self._free = threading.Lock()
        self._np, self._lite = np, lite

    @staticmethod
    def applies(conv, shape, pool) -> bool:
        """Whether conv (a QAmxCall) and the pool geometry take the fused kernel."""
        n, h, w, c = shape
        (kh, kw), (sh, sw), (ph, pw) = pool
        return conv.row_blocks == conv.m_tiles and not conv.col_split and conv.dense_out \
            and not conv.small and conv.n == c and c % 16 == 0 and conv.m == n * h * w \
            and min(kh, kw, sh, sw) >= 1 and 0 <= ph < kh and 0 <= pw < kw and \
            h + 2 * ph >= kh and w + 2 * pw >= kw

    def __call__(self, pool, src, which: int):
        """maxpool(conv(src)) as [N, OH, OW, C] uint8: src the conv's [N, C, H, W] input,
        uint8 (which 0) or float32 quantized on the way (which 1), contiguous; None where
        the block is in use."""
        if not self._free.acquire(False):
            return None
        lite, np = self._lite, self._np
        deferred = False
        try:
            runners = min(pool.n_threads, self.n_bands)
            if self._buffers.nbytes < self._stride * runners:
                self._buffers = lite.aligned_empty(self._stride * runners, np.uint8)
            need = self._conv.scratch_stride * pool.n_threads
            if self._scratch.nbytes < need:
                self._scratch = lite.aligned_empty(need, np.uint8)
            scratch = self._scratch
            out = lite._empty(self.out_shape, np.uint8)
            self._conv_params[lite._AMX_SCRATCH] = lite.address(scratch)
            block = self._block
            copy = self._copies[which]
            if BAND_PAIRS:
                block[FIELDS.index("pairs_fn")] = ctypes.cast(self._copy_fns[which],
                                                              ctypes.c_void_p).value
                block[FIELDS.index("src")] = lite.address(src)
                block[FIELDS.index("pairs_ip")] = copy._ip_address
                block[FIELDS.index("pairs_fp")] = copy._fp_address
            else:       # the whole row-pair input first (its own pass, split)
                src = copy(self._copy_fns[which], pool, src)
                block[FIELDS.index("pairs_fn")] = 0
                self._conv_params[lite._AMX_A] = lite.address(src)
            block[FIELDS.index("out")] = lite.address(out)
            block[FIELDS.index("bands")] = lite.address(self._buffers)
            block[FIELDS.index("counter")] = 0
            fn = kernel()
            defer = getattr(pool, "defer", None)
            if defer is not None and runners > 1 and \
                    defer(fn, runners, (self._address,), (src, out, scratch, self._buffers),
                          self._free.release):
                deferred = True
                return out
            pool.parallel_for(fn, runners, self._address, max_threads=runners)
            return out
        finally:
            if not deferred:
                self._free.release()
