"""The Winograd F(4x4, 3x3) weight transform U = G w G^T, the one function both the
compiler (codegen/llvm/winograd.py, in process) and the lite runtime (deriving an
artifact's transformed weights at load from the stored direct-conv weights) call, so
both hold the same bits.

NumPy only (the lite runtime loads this file by path when it runs without the ember
package). The arithmetic is a fixed sequence of float32 elementwise operations (each
IEEE-rounded, no BLAS, no fused multiply-add), so the result depends on the input
bits alone: the same on any machine, any thread count and any chunking.

Input: a conv's weights packed for the direct implicit-GEMM conv (packed[j, (kh, kw,
c), t] = w[j * nr + t, c, kh, kw], zero past C_out: codegen/llvm/implicit_conv.py's
pack_weights). Output: for each of the 36 (xi, nu) points, U[xi, nu] (C x C_out)
packed into NR-wide panels, shape (36 * panels, C, NR), 64-byte aligned: the layout
the `wino_tiles` kernel reads.
"""
from __future__ import annotations

import numpy as np

PATCH = 6
CHUNK_FLOATS = 16384           # columns (c, t) transformed at once: ~1.5 MiB of temporaries

# rows of G: (1/4, 0, 0), -(1, 1, 1)/6, -(1, -1, 1)/6, (1/24, 1/12, 1/6),
# (1/24, -1/12, 1/6), (0, 0, 1): the interpolation points 0, +-1, +-2 and infinity
_QUARTER, _SIXTH = np.float32(1 / 4), np.float32(-1 / 6)
_A24, _B12, _C6 = np.float32(1 / 24), np.float32(1 / 12), np.float32(1 / 6)


def _g_rows(a, b, c, out: list, tmp) -> None:
    """out[0..5] = G @ (a, b, c) elementwise over vectors (out[5] = c is copied)."""
    s, q, b12 = tmp
    np.add(a, c, out=s)
    np.multiply(a, _QUARTER, out=out[0])
    np.add(s, b, out=out[1])
    np.multiply(out[1], _SIXTH, out=out[1])
    np.subtract(s, b, out=out[2])
    np.multiply(out[2], _SIXTH, out=out[2])
    np.multiply(a, _A24, out=q)
    np.multiply(c, _C6, out=s)
    np.add(q, s, out=q)
    np.multiply(b, _B12, out=b12)
    np.add(q, b12, out=out[3])
    np.subtract(q, b12, out=out[4])
    np.copyto(out[5], c)


def _transform_block(taps: np.ndarray, out: np.ndarray, work: np.ndarray) -> None:
    """taps (9, M): w[kh, kw] over M columns -> out (36, M): U[xi, nu] = G w G^T."""
    m = taps.shape[1]
    t = work[:18, :m].reshape(6, 3, m)          # G w: t[i, kw]
    tmp = work[18:21, :m]
    for kw in range(3):
        _g_rows(taps[kw], taps[3 + kw], taps[6 + kw], t[:, kw], tmp)
    for i in range(PATCH):
        _g_rows(t[i, 0], t[i, 1], t[i, 2], out[i * PATCH:(i + 1) * PATCH], tmp)


def aligned_empty(shape, dtype=np.float32) -> np.ndarray:
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    raw = np.empty(count * dtype.itemsize + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start:start + count * dtype.itemsize].view(dtype).reshape(shape)


def repanel(packed: np.ndarray, c_out: int, nr: int) -> np.ndarray:
    """Direct-conv panels of another width as panels `nr` wide (the same weights)."""
    panels, k, dnr = packed.shape
    flat = packed.transpose(1, 0, 2).reshape(k, panels * dnr)[:, :c_out]
    count = -(-c_out // nr)
    out = np.zeros((count, k, nr), np.float32)
    for j in range(count):
        cols = flat[:, j * nr:(j + 1) * nr]
        out[j, :, :cols.shape[1]] = cols
    return out


def winograd_weights(packed: np.ndarray, c_out: int, nr: int) -> np.ndarray | None:
    """U packed for `wino_tiles` (module doc) from a 3x3 conv's direct-conv panels
    `packed` (panels, 9 * C, dnr), in a new 64-byte aligned array; None when a weight
    is NaN or infinite (the transform would spread it: such a conv stays direct)."""
    packed = as_width(packed, c_out, nr)
    panels, k, _ = packed.shape
    out = aligned_empty((PATCH * PATCH * panels, k // 9, nr))
    return out if transform_panels(packed, out, 0, panels) else None


def as_width(packed: np.ndarray, c_out: int, nr: int) -> np.ndarray:
    """`packed` as panels `nr` wide (itself when it is)."""
    return packed if packed.shape[2] == nr else repanel(packed, c_out, nr)


def transform_panels(packed: np.ndarray, u: np.ndarray, begin: int, end: int,
                     compare: bool = False) -> bool:
    """Output-channel panels [begin, end) of U from `packed` (panels, 9 * C, nr) into
    `u` (36 * panels, C, nr); with `compare`, whether `u` already holds exactly them
    (nothing written). False also when a weight is NaN or infinite, or when `u` is not
    a C-contiguous float32 array of that shape (or `packed` not float32)."""
    panels, k, nr = packed.shape
    m = k // 9 * nr
    if u.shape != (PATCH * PATCH * panels, k // 9, nr) or u.dtype != np.float32 or \
            not u.flags.c_contiguous or packed.dtype != np.float32:
        return False
    dest = u.reshape(PATCH * PATCH, panels, m)
    source = packed.reshape(panels, 9, m)
    step = min(m, CHUNK_FLOATS)
    work = np.empty((21, step), np.float32)
    mine = np.empty((PATCH * PATCH, step), np.float32) if compare else None
    for p in range(begin, end):
        for first in range(0, m, step):
            taps = source[p, :, first:first + step]
            if not np.isfinite(taps).all():
                return False
            target = dest[:, p, first:first + step]
            if not compare:
                _transform_block(taps, target, work)
                continue
            width = taps.shape[1]
            _transform_block(taps, mine[:, :width], work)
            if not np.array_equal(mine[:, :width], target):
                return False
    return True
