"""3x3 stride-1 conv2d (float32, groups=1, channels-last) by Winograd F(4x4, 3x3).

Each 4x4 block of output pixels ("tile") of one image is computed from the 6x6 input
patch under it (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
2016): with the 6x6 transforms B, G and the 4x6 A of interpolation points 0, +-1, +-2,

    Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A        (* elementwise over 6x6)

so the 36 elementwise products summed over input channels are 36 independent GEMMs
V[xi] (tiles x C) @ U[xi] (C x C_out): 36 multiply-adds per 16 outputs and input
channel instead of 144, 4x fewer. U = G g G^T is computed once when the conv is
prepared (runtime/winograd_weights.py) and packed into the GEMM's NR-wide panels.

One call `wino_tiles(begin, end, worker, ...)` takes output tiles [begin, end) (of N x
tiles_h x tiles_w) and, per chunk of `tc` of them, in the worker's own workspace:
transforms their input patches (B^T d B, one vector of channels at a time, zeros where
the patch leaves the image), runs the 36 GEMMs (gemm.py's blocked loop nest with the
prepacked U), and transforms the products back (A^T m A) with the conv's epilogue
(+ bias, + residual, relu) into the output, storing only pixels inside it. A tile's
result never depends on the chunk or thread it ran in, so the Python driver
(PreparedConv) and the native entry point (compiler/native_program.py) agree bit for
bit on any thread count.

Accuracy: the transforms' constants (1/4, 1/6, 1/24, ...) and the larger intermediate
values cost precision: against a float64 reference the error is ~5e-6 of the output's
magnitude for 256 channels (the direct sum: ~5e-7), well inside float32 conv tolerance.
`WINOGRAD = False` turns it off (every conv then runs the direct implicit GEMM).
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir

from . import irutil as u
from .gemm import GemmConfig, _emit_block, _emit_microkernel, _emit_pack, config, panels_of
from .jit import compile_built
from .target import Isa, target_for
from ...runtime.winograd_weights import winograd_weights

WINOGRAD = True
OUT, PATCH = 4, 6          # F(4x4, 3x3): 4x4 outputs from a 6x6 patch
MIN_CHANNELS = 32          # fewer input or output channels: the transforms dominate
                           # (small_cnn's 16 -> 32 conv: 0.53 ms either way, one core)
CHUNK_FLOATS = 512 * 1024  # V + M of one chunk of tiles (36 x tc x (C + C_out)) per thread

B_T = ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
       (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))
# G (6 x 3), the weight transform: runtime/winograd_weights.py
A_T = ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))

# wino_tiles(begin, end, worker, x, u, out, bias, res, ws, wd, <dims>); wd: the direct
# conv's packed weights (implicit_conv.pack_weights, NR = dnr) for the non-finite fallback
_POINTERS = ("x", "u", "out", "bias", "res", "ws", "wd")
_DIMS = ("ws_stride", "h", "w", "c", "k", "oh", "ow", "tiles_h", "tiles_w", "ph", "pw",
         "xsn", "xsh", "xsw", "osn", "osh", "osw", "relu", "has_res", "tc", "u_stride", "dnr",
         "ntiles", "kpart")
ENTRY_CTYPES = [ctypes.c_int64] * 3 + [ctypes.c_void_p] * len(_POINTERS) + \
    [ctypes.c_int64] * len(_DIMS)


def applies(isa: Isa, kernel, stride, dilation, c_in: int, c_out: int, out_hw,
            x_channel_stride: int, out_channel_stride: int) -> bool:
    """Whether a conv runs by Winograd: 3x3, stride 1, dilation 1, channels contiguous
    in input and output, channel counts whole vectors and at least MIN_CHANNELS, and an
    output of at least one whole tile."""
    lanes = isa.lanes
    return WINOGRAD and isa != Isa.PORTABLE and tuple(kernel) == (3, 3) and \
        tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) and \
        c_in >= MIN_CHANNELS and c_out >= MIN_CHANNELS and c_in % lanes == 0 and \
        c_out % lanes == 0 and layout_applies(out_hw, x_channel_stride, out_channel_stride)


def layout_applies(out_hw, x_channel_stride: int, out_channel_stride: int) -> bool:
    """The call's side of `applies`: channels contiguous in input and output (vectors of
    channels), an output of at least one whole tile."""
    return WINOGRAD and min(out_hw) >= OUT and x_channel_stride == 1 and \
        out_channel_stride == 1


def chunk_tiles(c_in: int, c_out: int, mr: int) -> int:
    """Tiles per chunk: V and M of a chunk (36 x tc x (C + C_out) floats) within
    CHUNK_FLOATS, whole MR row tiles of the GEMMs, at least one."""
    # each chunk streams all of U (36 x C x C_out) through the cache once: with wide
    # layers (resnet18's 512 channels: 36 MiB of U) take chunks a quarter of U's size
    floats = max(CHUNK_FLOATS, PATCH * PATCH * c_in * c_out // 4)
    tc = floats // (PATCH * PATCH * (c_in + c_out))
    return max(mr, tc // mr * mr)


def tiles(oh: int, ow: int) -> tuple[int, int]:
    return -(-oh // OUT), -(-ow // OUT)


def k_parts(c_in: int, c_out: int, nr: int) -> int:
    """Parts of the output channels the call's items split (items: part x tile): with a
    U of 16 MiB and more (resnet18's 512-channel convs: 36 MiB) two threads each read
    their half of U, where split by tiles alone both read all of it. resnet18's 8x512x7x7
    conv, process CPU time, medians of 7 interleaved: 2 threads 6.4-6.6 ms in one part,
    5.3-5.5 in two, 6.0-6.1 in four; one thread 4.6-4.9, 4.9-5.3, 5.5-5.7 (each part
    redoes the input transform). The parts never change a result's bits."""
    if PATCH * PATCH * c_in * c_out >= (4 << 20) and c_out % (2 * nr) == 0:
        return 2
    return 1


def items(dims: list) -> int:
    """The call's extent: parts x tiles (dims as Winograd.dims gives them)."""
    n_tiles, kpart, c_out = dims[-2], dims[-1], dims[4]
    return c_out // kpart * n_tiles


def workspace_floats(cfg: GemmConfig, c_in: int, c_out: int) -> int:
    """One worker's floats: the GEMM's packing space, then V and M of a chunk."""
    tc = chunk_tiles(c_in, c_out, cfg.mr)
    return cfg.workspace_floats + PATCH * PATCH * tc * (c_in + c_out)


def transform_weights(w: np.ndarray, nr: int) -> np.ndarray | None:
    """(C_out, C, 3, 3) -> U = G w G^T per (xi, nu), each (C x C_out) packed into NR-wide
    panels: shape (36 * ceil(C_out / NR), C, NR), 64-byte aligned. None when a weight is
    NaN or infinite (the transform would spread it: such a conv stays direct). The
    arithmetic is runtime/winograd_weights.py's, which the lite runtime also runs to
    check or derive an artifact's transformed weights: the same bits either way."""
    from .implicit_conv import pack_weights
    return winograd_weights(pack_weights(np.ascontiguousarray(w, np.float32), nr),
                            int(w.shape[0]), nr)


# --- the kernel ----------------------------------------------------------------------------
def _combine(b, coeffs, values):
    """sum_k coeffs[k] * values[k] (constant coefficients; +-1 as adds/subtracts)."""
    total = None
    for coeff, value in zip(coeffs, values):
        if coeff == 0:
            continue
        if abs(coeff) == 1:
            term, negative = value, coeff < 0
        else:
            term = b.fmul(value, u.const_like(value.type, float(abs(coeff))))
            negative = coeff < 0
        if total is None:
            total = b.fsub(u.const_like(value.type, 0.0), term) if negative else term
        else:
            total = b.fsub(total, term) if negative else b.fadd(total, term)
    return total


def _transform(b, matrix, d):
    """matrix @ d @ matrix^T for d a list of rows of vectors."""
    rows = [[_combine(b, row, [d[k][j] for k in range(len(d))]) for j in range(len(d[0]))]
            for row in matrix]
    return [[_combine(b, row, rows[i]) for row in matrix] for i in range(len(rows))]


def _tile_coords(b, p, t):
    """(image, first output row, first output column) of tile t."""
    per_image = b.mul(p["tiles_h"], p["tiles_w"])
    n, r = b.sdiv(t, per_image), b.srem(t, per_image)
    return n, b.mul(b.sdiv(r, p["tiles_w"]), u.i64(OUT)), b.mul(b.srem(r, p["tiles_w"]),
                                                                u.i64(OUT))


def _emit_input(b, p, lanes, t0, count, v, bad):
    """V[xi][t][c] = (B^T d B)[xi] for tiles t0 .. t0+count, every channel vector; adds
    every input value read into `bad` (not finite there: a NaN or infinity was read)."""
    vt = u.vec(u.F32, lanes)
    zero = ir.Constant(vt, None)
    with u.counted_loop(b, u.i64(0), count, 1, "wt") as t:
        n, oh0, ow0 = _tile_coords(b, p, b.add(t0, t))
        ih0, iw0 = b.sub(oh0, p["ph"]), b.sub(ow0, p["pw"])
        base = b.add(b.add(b.mul(n, p["xsn"]), b.mul(ih0, p["xsh"])), b.mul(iw0, p["xsw"]))
        inside = []
        for i in range(PATCH):
            ih = b.add(ih0, u.i64(i))
            row_ok = b.and_(b.icmp_signed(">=", ih, u.i64(0)), b.icmp_signed("<", ih, p["h"]))
            cols = []
            for j in range(PATCH):
                iw = b.add(iw0, u.i64(j))
                cols.append(b.and_(row_ok, b.and_(b.icmp_signed(">=", iw, u.i64(0)),
                                                  b.icmp_signed("<", iw, p["w"]))))
            inside.append(cols)
        with u.counted_loop(b, u.i64(0), p["c"], lanes, "wc") as c:
            d = []
            for i in range(PATCH):
                row = []
                for j in range(PATCH):
                    at = b.add(b.add(base, b.add(b.mul(u.i64(i), p["xsh"]),
                                                 b.mul(u.i64(j), p["xsw"]))), c)
                    # a tap outside the image reads the tile's own first pixel (some
                    # address inside the input) and is replaced by zero
                    safe = b.select(inside[i][j], at, c)
                    row.append(b.select(inside[i][j], u.load_vec(b, p["x"], safe, lanes), zero))
                d.append(row)
            # the patch's sum (a tree: no long dependency chain) is NaN or infinite
            # when a value is (or, harmlessly, when the sum overflows)
            terms = [value for row in d for value in row]
            while len(terms) > 1:
                terms = [b.fadd(terms[i], terms[i + 1]) if i + 1 < len(terms) else terms[i]
                         for i in range(0, len(terms), 2)]
            b.store(b.fadd(b.load(bad, typ=vt), terms[0]), bad)
            out = _transform(b, B_T, d)
            for i in range(PATCH):
                for j in range(PATCH):
                    xi = i * PATCH + j
                    index = b.add(b.mul(b.add(b.mul(u.i64(xi), p["tc"]), t), p["c"]), c)
                    u.store_vec(b, out[i][j], v, index)


def _store_pixel(b, p, value, at, bias) -> None:
    """out[at] = epilogue(value + bias [+ residual[at]]): the direct conv's sums."""
    zero = u.const_like(value.type, 0.0)
    value = b.fadd(value, bias)
    with_res = b.fadd(value, u.load_vec(b, p["res"], at, value.type.count))
    value = b.select(b.icmp_signed("!=", p["has_res"], u.i64(0)), with_res, value)
    # relu as torch: NaN stays NaN (the compare is false for NaN)
    relu = b.select(b.fcmp_ordered("<", value, zero), zero, value)
    value = b.select(b.icmp_signed("!=", p["relu"], u.i64(0)), relu, value)
    u.store_vec(b, value, p["out"], at)


def _emit_output(b, p, lanes, t0, count, m, k_range):
    """out[tile pixels] = epilogue((A^T m A) + bias [+ residual]) for pixels inside."""
    with u.counted_loop(b, u.i64(0), count, 1, "ot") as t:
        n, oh0, ow0 = _tile_coords(b, p, b.add(t0, t))
        base = b.add(b.add(b.mul(n, p["osn"]), b.mul(oh0, p["osh"])), b.mul(ow0, p["osw"]))
        with u.counted_loop(b, *k_range, lanes, "ok") as k:
            mv = [[u.load_vec(b, m, b.add(b.mul(b.add(b.mul(u.i64(i * PATCH + j), p["tc"]), t),
                                                p["k"]), k), lanes)
                   for j in range(PATCH)] for i in range(PATCH)]
            y = _transform(b, A_T, mv)
            bias = u.load_vec(b, p["bias"], k, lanes)
            for i in range(OUT):
                row_ok = b.icmp_signed("<", b.add(oh0, u.i64(i)), p["oh"])
                for j in range(OUT):
                    ok = b.and_(row_ok, b.icmp_signed("<", b.add(ow0, u.i64(j)), p["ow"]))
                    with b.if_then(ok):
                        at = b.add(b.add(base, b.add(b.mul(u.i64(i), p["osh"]),
                                                     b.mul(u.i64(j), p["osw"]))), k)
                        _store_pixel(b, p, y[i][j], at, bias)


def _emit_direct(b, p, lanes, t0, count, acc, k_range) -> None:
    """The chunk's tiles by the direct sum over (kh, kw, c), reading the direct conv's
    packed weights: a chunk whose inputs hold a NaN or an infinity, which Winograd's
    transforms would spread over whole tiles (and turn infinities into NaN), gets
    torch's propagation instead. Slow (one FMA per loaded weight vector), and rare."""
    vt = u.vec(u.F32, lanes)
    with u.counted_loop(b, u.i64(0), count, 1, "dt") as t:
        n, oh0, ow0 = _tile_coords(b, p, b.add(t0, t))
        with u.counted_loop(b, u.i64(0), u.i64(OUT * OUT), 1, "dp") as pix:
            oh = b.add(oh0, b.sdiv(pix, u.i64(OUT)))
            ow = b.add(ow0, b.srem(pix, u.i64(OUT)))
            inside = b.and_(b.icmp_signed("<", oh, p["oh"]), b.icmp_signed("<", ow, p["ow"]))
            with b.if_then(inside):
                with u.counted_loop(b, *k_range, lanes, "dk") as k:
                    panel, lane0 = b.sdiv(k, p["dnr"]), b.srem(k, p["dnr"])
                    b.store(ir.Constant(vt, None), acc)
                    with u.counted_loop(b, u.i64(0), u.i64(9), 1, "dtap") as tap:
                        ih = b.add(b.sub(oh, p["ph"]), b.sdiv(tap, u.i64(3)))
                        iw = b.add(b.sub(ow, p["pw"]), b.srem(tap, u.i64(3)))
                        ok = b.and_(
                            b.and_(b.icmp_signed(">=", ih, u.i64(0)),
                                   b.icmp_signed("<", ih, p["h"])),
                            b.and_(b.icmp_signed(">=", iw, u.i64(0)),
                                   b.icmp_signed("<", iw, p["w"])))
                        with b.if_then(ok):
                            src = b.add(b.add(b.mul(n, p["xsn"]), b.mul(ih, p["xsh"])),
                                        b.mul(iw, p["xsw"]))
                            row0 = b.add(b.mul(panel, b.mul(u.i64(9), p["c"])),
                                         b.mul(tap, p["c"]))
                            with u.counted_loop(b, u.i64(0), p["c"], 1, "dc") as c:
                                a = u.splat(b, b.load(u.elem_ptr(b, p["x"], b.add(src, c)),
                                                      typ=u.F32), lanes)
                                wv = u.load_vec(b, p["wd"], b.add(
                                    b.mul(b.add(row0, c), p["dnr"]), lane0), lanes)
                                b.store(u.fma(b, a, wv, b.load(acc, typ=vt)), acc)
                    at = b.add(b.add(b.add(b.mul(n, p["osn"]), b.mul(oh, p["osh"])),
                                     b.mul(ow, p["osw"])), k)
                    _store_pixel(b, p, b.load(acc, typ=vt), at,
                                 u.load_vec(b, p["bias"], k, lanes))


def _emit_chunks(b, p, cfg, block, v, m, null, slots) -> None:
    bad, acc = slots
    vt = u.vec(u.F32, cfg.lanes)
    pre = b.block
    fn = pre.function
    head, body, done = (fn.append_basic_block(n) for n in ("wch.head", "wch.body", "wch.done"))
    b.branch(head)
    b.position_at_end(head)
    item = b.phi(u.I64, name="item")
    item.add_incoming(p["begin"], pre)
    b.cbranch(b.icmp_signed("<", item, p["end"]), body, done)
    b.position_at_end(body)
    # items are (part of the output channels, tile): a chunk stays within one part
    part, t0 = b.sdiv(item, p["ntiles"]), b.srem(item, p["ntiles"])
    count = u.imin(b, u.imin(b, p["tc"], b.sub(p["end"], item)), b.sub(p["ntiles"], t0))
    k0 = b.mul(part, p["kpart"])
    k_range = (k0, b.add(k0, p["kpart"]))
    b.store(ir.Constant(vt, None), bad)
    _emit_input(b, p, cfg.lanes, t0, count, v, bad)
    seen = b.fmul(b.load(bad, typ=vt), ir.Constant(vt, None))     # NaN where not finite
    lanes_bad = b.bitcast(b.fcmp_unordered("uno", seen, seen), ir.IntType(cfg.lanes))
    with b.if_else(b.icmp_unsigned("!=", lanes_bad, ir.Constant(ir.IntType(cfg.lanes), 0))) \
            as (slow, fast):
        with slow:
            _emit_direct(b, p, cfg.lanes, t0, count, acc, k_range)
        with fast:
            with u.counted_loop(b, u.i64(0), u.i64(PATCH * PATCH), 1, "xi") as xi:
                a = u.elem_ptr(b, v, b.mul(b.mul(xi, p["tc"]), p["c"]))
                c = u.elem_ptr(b, m, b.mul(b.mul(xi, p["tc"]), p["k"]))
                packed = u.elem_ptr(b, p["u"], b.mul(xi, p["u_stride"]))
                b.call(block, [u.i64(0), count, *k_range, p["worker"], count, p["k"],
                               p["c"], a, p["c"], u.i64(1), null, u.i64(0), u.i64(0), c,
                               p["k"], ir.Constant(u.I32, 0), p["ws"], p["ws_stride"],
                               packed])
            _emit_output(b, p, cfg.lanes, t0, count, m, k_range)
    item.add_incoming(b.add(item, count), b.block)
    b.branch(head)
    b.position_at_end(done)


def wino_module(cfg: GemmConfig) -> ir.Module:
    """The LLVM module of the Winograd conv for one GEMM tile (exported: wino_tiles)."""
    module = ir.Module(name=f"ember_wino_{cfg.isa.value}_{cfg.mr}x{cfg.nr}")
    _emit_pack(module, "pack_a", cfg.mr, cfg.lanes)
    _emit_pack(module, "pack_b", cfg.nr, cfg.lanes)
    ukernel = _emit_microkernel(module, cfg)
    ukernel.attributes.add("noinline")
    block = _emit_block(module, cfg, ukernel)
    args = [("begin", u.I64), ("end", u.I64), ("worker", u.I64)] + \
        [(n, u.PTR) for n in _POINTERS] + [(d, u.I64) for d in _DIMS]
    fn, b = u.define(module, "wino_tiles", u.VOID, args, noalias_ptrs=False)
    p = dict(zip([name for name, _ in args], fn.args))
    mine = u.elem_ptr(b, p["ws"], b.mul(p["worker"], p["ws_stride"]))
    v = u.elem_ptr(b, mine, u.i64(cfg.workspace_floats))
    m = u.elem_ptr(b, v, b.mul(u.i64(PATCH * PATCH), b.mul(p["tc"], p["c"])))
    vt = u.vec(u.F32, cfg.lanes)
    slots = (b.alloca(vt, name="bad"), b.alloca(vt, name="acc"))   # in the entry block
    _emit_chunks(b, p, cfg, block, v, m, ir.Constant(u.PTR, None), slots)
    b.ret_void()
    return module


def wino_config(isa: Isa, c_out: int) -> GemmConfig:
    """The GEMM tile of the 36 products: gemm.tile_for's by output channels."""
    from .gemm import tile_for
    return config(isa, *tile_for(isa, c_out))


@functools.cache
def wino_kernel(isa: Isa, mr: int, nr: int):
    """The compiled wino_tiles for a GEMM tile (disk-cached, once per process)."""
    lib = compile_built(wino_module, config(isa, mr, nr), target=target_for(isa))
    return lib, lib.function("wino_tiles", None, *ENTRY_CTYPES)


_WORKSPACES: dict = {}


def workspace(floats: int, pool) -> np.ndarray:
    """`floats` per worker of `pool`, allocated once per (size, pool), 64-byte aligned."""
    key = (floats, id(pool), pool.n_threads)
    if key not in _WORKSPACES:
        raw = np.zeros(floats * pool.n_threads + 16, np.float32)
        offset = (-raw.ctypes.data % 64) // 4
        _WORKSPACES[key] = raw[offset:offset + floats * pool.n_threads]
    return _WORKSPACES[key]


class Winograd:
    """A prepared conv's Winograd form: transformed, packed weights and the kernel."""

    def __init__(self, w: np.ndarray, isa: Isa):
        self.c_out, self.c_in = w.shape[:2]
        self.cfg = wino_config(isa, self.c_out)
        self.u = transform_weights(w, self.cfg.nr)       # None: a weight is not finite
        self.fn = wino_kernel(isa, self.cfg.mr, self.cfg.nr)[1] if self.u is not None \
            else None

    def dims(self, n, h, w, oh, ow, ph, pw, xs, os_, relu: bool, has_res: bool,
             direct_nr: int) -> list:
        """The kernel's integer arguments after the pointers (ws_stride first)."""
        th, tw = tiles(oh, ow)
        n_tiles = n * th * tw
        parts = k_parts(self.c_in, self.c_out, self.cfg.nr)
        return [workspace_floats(self.cfg, self.c_in, self.c_out), h, w, self.c_in,
                self.c_out, oh, ow, th, tw, ph, pw, xs[0], xs[2], xs[3], os_[0], os_[2],
                os_[3], int(relu), int(has_res), chunk_tiles(self.c_in, self.c_out, self.cfg.mr),
                self.u.shape[0] // (PATCH * PATCH) * self.u.shape[1] * self.u.shape[2],
                direct_nr, n_tiles, self.c_out // parts]

    def run(self, pool, pointers: tuple, dims: list) -> None:
        """pointers: x, out, bias, residual, the direct conv's packed weights."""
        x, out, bias, res, wd = pointers
        ws = workspace(dims[0], pool)
        pool.parallel_for(self.fn, items(dims), x, self.u.ctypes.data, out, bias, res,
                          ws.ctypes.data, wd, *dims, align=1)
