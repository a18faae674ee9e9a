"""im2col / col2im: torch.nn.functional.unfold and fold (aten's names).

im2col copies each sliding (kH, kW) block of a zero-padded (N, C, H, W) input into a
column: out[n, (c, i, j), (oh, ow)] = x[n, c, oh*sH - pH + i*dH, ow*sW - pW + j*dW].
col2im is its adjoint: it sums the columns back into the image (overlaps add up). Each
one's derivative is the other, so every order of derivative works. Kernels reuse the
convolution's strided-window view (conv._windows); col2im loops over kernel offsets only.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DTypeError, ShapeError
from ..meta import TensorMeta
from ..registry import defop
from . import samples as S
from .conv import _ints, _pad_to, _windows, window_count
from .rules import device_of


class WindowParams:
    """kernel_size, dilation, padding, stride as pairs, validated as PyTorch does."""

    def __init__(self, kernel_size, dilation, padding, stride):
        self.k = _ints(kernel_size, 2, "kernel_size")
        self.d = _ints(dilation, 2, "dilation")
        self.p = _ints(padding, 2, "padding")
        self.s = _ints(stride, 2, "stride")
        if any(v <= 0 for v in self.k):
            raise ShapeError(f"kernel size should be greater than zero, but got kernel_height: "
                             f"{self.k[0]} kernel_width: {self.k[1]}")
        if any(v <= 0 for v in self.s):
            raise ShapeError(f"stride should be greater than zero, but got stride_height: "
                             f"{self.s[0]} stride_width: {self.s[1]}")
        if any(v <= 0 for v in self.d):
            raise ShapeError(f"dilation should be greater than zero, but got dilation_height: "
                             f"{self.d[0]} dilation_width: {self.d[1]}")
        if any(v < 0 for v in self.p):
            raise ShapeError(f"padding should be non-negative, but got pad_height: {self.p[0]} "
                             f"pad_width: {self.p[1]}")

    def blocks(self, spatial) -> tuple[int, int]:
        """How many blocks fit along H and W of an image of size `spatial`."""
        return tuple(window_count(n, k, s, p, p, d) for n, k, s, p, d in
                     zip(spatial, self.k, self.s, self.p, self.d))

    def pads(self):
        return tuple((p, p) for p in self.p)


def _check_dtype(t):
    if t.dtype.name in ("int8", "int16", "int32", "int64", "uint8"):
        raise DTypeError(f"expected a floating point, complex or bool input, got "
                         f"{t.dtype.name}")


def _im2col_meta(self, kernel_size, dilation, padding, stride):
    w = WindowParams(kernel_size, dilation, padding, stride)
    if self.ndim not in (3, 4) or any(n == 0 for n in self.shape[-3:]):
        raise ShapeError(f"Expected 3D or 4D (batch mode) tensor with optional 0 dim batch "
                         f"size for input, but got: {list(self.shape)}")
    _check_dtype(self)
    blocks = w.blocks(self.shape[-2:])
    if any(b < 1 for b in blocks):
        raise ShapeError(f"Given input with spatial size {list(self.shape[-2:])}, "
                         f"kernel_size={list(w.k)}, dilation={list(w.d)}, padding={list(w.p)}"
                         f", calculated shape of the array of sliding blocks as "
                         f"{list(blocks)}, but its components must be at least one.")
    lead = tuple(self.shape[:-3])
    return TensorMeta(lead + (self.shape[-3] * math.prod(w.k), math.prod(blocks)), self.dtype,
                      device_of([self]))


def _im2col_ref(x, kernel_size, dilation, padding, stride):
    w = WindowParams(kernel_size, dilation, padding, stride)
    unbatched = x.ndim == 3
    xb = x[None] if unbatched else x
    n, c = xb.shape[:2]
    out = w.blocks(xb.shape[2:])
    xp = _pad_to(xb, w.pads(), out, w.k, w.s, w.d)
    win = _windows(xp, out, w.k, w.s, w.d)                 # (N, C, OH, OW, KH, KW)
    cols = win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * math.prod(w.k), math.prod(out))
    return cols[0] if unbatched else cols


def _col2im_geometry(self, output_size, w: WindowParams):
    size = _ints(output_size, 2, "output_size")
    if self.ndim not in (2, 3) or any(n == 0 for n in self.shape[-2:]):
        raise ShapeError(f"Expected 2D or 3D (batch mode) tensor with optional 0 dim batch "
                         f"size for input, but got: {list(self.shape)}")
    kk = math.prod(w.k)
    if self.shape[-2] % kk:
        raise ShapeError(f"Expected size of input's dimension 1 to be divisible by the product "
                         f"of kernel_size, but got input.size(1)={self.shape[-2]} and "
                         f"kernel_size={list(w.k)}")
    blocks = w.blocks(size)
    if math.prod(blocks) != self.shape[-1]:
        raise ShapeError(f"Given output_size={list(size)}, kernel_size={list(w.k)}, "
                         f"dilation={list(w.d)}, padding={list(w.p)}, stride={list(w.s)}, "
                         f"expected size of input's dimension 2 to match the calculated number "
                         f"of sliding blocks {blocks[0]} * {blocks[1]} = {math.prod(blocks)}, "
                         f"but got input.size(2)={self.shape[-1]}.")
    return size, blocks


def _col2im_meta(self, output_size, kernel_size, dilation, padding, stride):
    w = WindowParams(kernel_size, dilation, padding, stride)
    size, _ = _col2im_geometry(self, output_size, w)
    _check_dtype(self)
    lead = tuple(self.shape[:-2])
    return TensorMeta(lead + (self.shape[-2] // math.prod(w.k),) + size, self.dtype,
                      device_of([self]))


def _col2im_ref(cols, output_size, kernel_size, dilation, padding, stride):
    w = WindowParams(kernel_size, dilation, padding, stride)
    size, out = _col2im_geometry(cols, output_size, w)
    unbatched = cols.ndim == 2
    cb = cols[None] if unbatched else cols
    n, c = cb.shape[0], cb.shape[1] // math.prod(w.k)
    blocks = cb.reshape((n, c) + w.k + out)
    acc_dtype = np.int64 if cb.dtype == np.bool_ else cb.dtype
    padded = [max(size[i] + 2 * w.p[i], (out[i] - 1) * w.s[i] + w.d[i] * (w.k[i] - 1) + 1)
              for i in range(2)]
    acc = np.zeros((n, c) + tuple(padded), dtype=acc_dtype)
    for i, j in np.ndindex(*w.k):
        rows = slice(i * w.d[0], i * w.d[0] + (out[0] - 1) * w.s[0] + 1, w.s[0])
        cols_ = slice(j * w.d[1], j * w.d[1] + (out[1] - 1) * w.s[1] + 1, w.s[1])
        acc[:, :, rows, cols_] += blocks[:, :, i, j]
    image = acc[:, :, w.p[0]:w.p[0] + size[0], w.p[1]:w.p[1] + size[1]].astype(cb.dtype)
    return image[0] if unbatched else image


def _unfold_samples(rng):
    r = S.randn
    return [S.Sample((r(rng, 2, 3, 5, 4), [2, 3])),
            S.Sample((r(rng, 1, 2, 6, 5), [3, 2], [2, 1], [1, 0], [2, 1])),
            S.Sample((r(rng, 2, 4, 4), 2, 1, 1, 2)),
            S.Sample((S.bool_array(rng, 1, 2, 3, 3), 2))]


im2col = defop(
    "im2col(Tensor self, int[2] kernel_size, int[2] dilation=1, int[2] padding=0, "
    "int[2] stride=1) -> Tensor",
    meta=_im2col_meta, reference=_im2col_ref,
    derivative=lambda g, self, kernel_size, dilation, padding, stride: col2im(
        g, list(self.shape[-2:]), kernel_size, dilation, padding, stride),
    saves=(), samples=_unfold_samples, torch_ref="torch.nn.functional.unfold",
    doc="torch.nn.functional.unfold: sliding blocks as columns (N, C*kH*kW, L).",
)


def _fold_samples(rng):
    out = []
    for s in _unfold_samples(rng):
        x, rest = s.args[0], list(s.args[1:]) + [1, 0, 1][len(s.args) - 2:]
        cols = _im2col_ref(x, *rest)
        make = S.bool_array if x.dtype == np.bool_ else S.randn
        out.append(S.Sample((make(rng, *cols.shape), list(x.shape[-2:]), *rest)))
    return out


col2im = defop(
    "col2im(Tensor self, int[2] output_size, int[2] kernel_size, int[2] dilation=1, "
    "int[2] padding=0, int[2] stride=1) -> Tensor",
    meta=_col2im_meta, reference=_col2im_ref,
    derivative=lambda g, self, output_size, kernel_size, dilation, padding, stride: im2col(
        g, kernel_size, dilation, padding, stride),
    saves=(), samples=_fold_samples, torch_ref="torch.nn.functional.fold",
    doc="torch.nn.functional.fold: sums columns (N, C*kH*kW, L) into (N, C, *output_size); "
        "overlapping blocks add up.",
)
