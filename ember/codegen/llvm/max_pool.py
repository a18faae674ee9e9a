"""2-D max pooling of float32 planes, forward values and backward scatter (issue 22).

    max_pool2d_forward(x, out, geometry)        # out[p, oh, ow] = the window's maximum
    max_pool2d_backward(x, g, gi, geometry)     # gi[p] += g at each window's winner

x is (P, H, W), out and g (P, OH, OW), gi (P, H, W) zeroed, all C-contiguous float32;
geometry = (kh, kw, sh, sw, ph, pw, dh, dw). Both run one kernel, `max_pool_rows`,
threaded over planes: for every output it scans the window's in-bounds taps in
row-major order and keeps the first strict maximum; a NaN wins at once and ends the
scan (the op reference's argmax: the first NaN, else the first maximum; a window of
-inf values picks its first in-bounds tap). Padding is never read, so it needs no
copy of the input. The backward adds each output's gradient to its winner in output
order (float32 adds: a position shared by overlapping windows sums up to
ceil(k/s)^2 gradients, within float32 rounding of the reference's float64 sums).
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import ir

from ...runtime.threads import default_pool
from . import irutil as u
from .jit import compile_built
from .target import host_isa, target_for

_DIMS = ("h", "w", "oh", "ow", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "backward")
_ARGS = [("begin", u.I64), ("end", u.I64), ("worker", u.I64), ("x", u.PTR), ("g", u.PTR),
         ("y", u.PTR)] + [(name, u.I64) for name in _DIMS]


def _scan_window(b, p, slots, plane, h0, w0, kh, kw):
    """(best value, flat index of the winner in the plane or -1) over one window."""
    best, where, done = slots
    b.store(ir.Constant(u.F32, float("-inf")), best)
    b.store(u.i64(-1), where)
    b.store(ir.Constant(ir.IntType(1), 0), done)
    zero = u.i64(0)
    with u.counted_loop(b, zero, u.i64(kh), 1, "ki") as i:
        ih = b.add(h0, b.mul(i, p["dh"]))
        row_in = b.and_(b.icmp_signed(">=", ih, zero), b.icmp_signed("<", ih, p["h"]))
        with b.if_then(row_in):
            with u.counted_loop(b, zero, u.i64(kw), 1, "kj") as j:
                iw = b.add(w0, b.mul(j, p["dw"]))
                inside = b.and_(b.icmp_signed(">=", iw, zero), b.icmp_signed("<", iw, p["w"]))
                with b.if_then(inside):             # selects: no data-dependent branch
                    at = b.add(b.mul(ih, p["w"]), iw)
                    v = b.load(u.elem_ptr(b, p["x"], b.add(plane, at)), typ=u.F32)
                    nan = b.fcmp_unordered("uno", v, v)
                    old_best, old_where, stop = b.load(best), b.load(where), b.load(done)
                    take = b.or_(b.or_(b.fcmp_ordered(">", v, old_best), nan),
                                 b.icmp_signed("<", old_where, zero))
                    take = b.and_(take, b.not_(stop))
                    b.store(b.select(take, v, old_best), best)
                    b.store(b.select(take, at, old_where), where)
                    b.store(b.or_(stop, b.and_(take, nan)), done)
    return b.load(best), b.load(where)


def _scan_interior(b, p, plane, h0, w0, kh, kw):
    """_scan_window for a window wholly inside the plane: the kh*kw taps as straight-line
    code (no bounds checks; the first tap starts the scan)."""
    best = where = done = None
    for i in range(kh):
        ih = b.add(h0, b.mul(u.i64(i), p["dh"]))
        for j in range(kw):
            at = b.add(b.mul(ih, p["w"]), b.add(w0, b.mul(u.i64(j), p["dw"])))
            v = b.load(u.elem_ptr(b, p["x"], b.add(plane, at)), typ=u.F32)
            nan = b.fcmp_unordered("uno", v, v)
            if best is None:
                best, where, done = v, at, nan
                continue
            take = b.and_(b.or_(b.fcmp_ordered(">", v, best), nan), b.not_(done))
            best, where = b.select(take, v, best), b.select(take, at, where)
            done = b.or_(done, b.and_(take, nan))
    return best, where


def _inside(b, start, k, step, size):
    last = b.add(start, b.mul(u.i64(k - 1), step))
    return b.and_(b.icmp_signed(">=", start, u.i64(0)), b.icmp_signed("<", last, size))


def max_pool_module(kh: int, kw: int) -> ir.Module:
    """The kernel for one window size (constant trip counts: LLVM unrolls the scan)."""
    module = ir.Module(name=f"ember_max_pool2d_{kh}x{kw}")
    fn, b = u.define(module, "max_pool_rows", u.VOID, _ARGS)
    p = dict(zip([name for name, _ in _ARGS], fn.args))
    # the scan's state lives in entry-block slots, which LLVM promotes to registers
    slots = (b.alloca(u.F32), b.alloca(u.I64), b.alloca(ir.IntType(1)))
    plane_in = b.mul(p["h"], p["w"])
    plane_out = b.mul(p["oh"], p["ow"])
    backward = b.icmp_signed("!=", p["backward"], u.i64(0))
    with u.counted_loop(b, p["begin"], p["end"], 1, "plane") as q:
        x_plane, o_plane = b.mul(q, plane_in), b.mul(q, plane_out)
        with u.counted_loop(b, u.i64(0), p["oh"], 1, "oy") as oy:
            h0 = b.sub(b.mul(oy, p["sh"]), p["ph"])
            with u.counted_loop(b, u.i64(0), p["ow"], 1, "ox") as ox:
                w0 = b.sub(b.mul(ox, p["sw"]), p["pw"])
                interior = b.and_(_inside(b, h0, kh, p["dh"], p["h"]),
                                  _inside(b, w0, kw, p["dw"], p["w"]))
                with b.if_else(interior) as (fast, edge):
                    with fast:
                        best, where = _scan_interior(b, p, x_plane, h0, w0, kh, kw)
                        b.store(best, slots[0])
                        b.store(where, slots[1])
                    with edge:
                        best, where = _scan_window(b, p, slots, x_plane, h0, w0, kh, kw)
                        b.store(best, slots[0])
                        b.store(where, slots[1])
                best, where = b.load(slots[0]), b.load(slots[1])
                o = b.add(o_plane, b.add(b.mul(oy, p["ow"]), ox))
                with b.if_else(backward) as (scatter, values):
                    with scatter:
                        with b.if_then(b.icmp_signed(">=", where, u.i64(0))):
                            dst = u.elem_ptr(b, p["y"], b.add(x_plane, where))
                            grad = b.load(u.elem_ptr(b, p["g"], o), typ=u.F32)
                            b.store(b.fadd(b.load(dst, typ=u.F32), grad), dst)
                    with values:
                        b.store(best, u.elem_ptr(b, p["y"], o))
    b.ret_void()
    return module


@functools.cache
def _kernel(kh: int, kw: int):
    lib = compile_built(max_pool_module, kh, kw, target=target_for(host_isa()))
    return lib.function("max_pool_rows", None, *[ctypes.c_int64] * 3,
                        *[ctypes.c_void_p] * 3, *[ctypes.c_int64] * len(_DIMS))


def _run(x, g, y, geometry, backward: bool) -> None:
    planes, h, w = x.shape
    oh, ow = (g if backward else y).shape[1:]
    default_pool().parallel_for(_kernel(*geometry[:2]), planes, x.ctypes.data,
                                g.ctypes.data if backward else 0, y.ctypes.data,
                                h, w, oh, ow, *geometry, int(backward))


def _check(*arrays) -> None:
    for a in arrays:
        if a.dtype != np.float32 or not a.flags.c_contiguous or a.ndim != 3:
            raise ValueError(f"max_pool2d kernel: expected C-contiguous 3-D float32 "
                             f"arrays, got {a.dtype}{list(a.shape)}")


def max_pool2d_forward(x: np.ndarray, out: np.ndarray, geometry) -> np.ndarray:
    _check(x, out)
    _run(x, out, out, geometry, backward=False)
    return out


def max_pool2d_backward(x: np.ndarray, g: np.ndarray, gi: np.ndarray, geometry) -> np.ndarray:
    """gi (zeroed by the caller) += g scattered to each window's winner."""
    _check(x, g, gi)
    _run(x, g, gi, geometry, backward=True)
    return gi
