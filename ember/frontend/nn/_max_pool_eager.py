"""Training-mode max_pool2d over tiling windows (kernel == stride) on eager CPU tensors,
as one fused step each way (issue 22).

The op path's backward recomputes the pooling with indices and scatters the gradient
through them (`max_pool_scatter`, a float64 `np.add.at`). When the windows tile the
input (MaxPool2d(2): kernel == stride, no padding, no dilation, floor mode) every
input position belongs to at most one window, so the forward remembers which of the
kh*kw window slices won (argmax's rule: the first maximum, or the first NaN) and the
backward writes `g` into that slice and 0 elsewhere: the same values bit for bit (a
scatter of unique positions adds each gradient to 0 exactly once).

Only plain eager calls that record a graph take it (`tiled_max_pool_applies`): CPU,
no dispatch mode, C-contiguous 4-D float32/float64 input that requires grad. Under
`create_graph=True` the backward calls `max_pool_scatter` with the same indices, so
double backward works.
"""
from __future__ import annotations

import numpy as np

from ...ir import dispatch
from ...ir.registry import OPS
from ..autograd import grad_mode
from ..autograd.function import Function
from ..tensor import Tensor

_FLOATS = (np.float32, np.float64)


def tiled_max_pool_applies(input, kernel_size, stride, padding, dilation, ceil_mode) -> bool:
    if not grad_mode.is_grad_enabled() or type(input) is not Tensor or \
            not input.requires_grad or input.is_cuda or dispatch.active_modes():
        return False
    arr = input._array
    if arr.dtype not in _FLOATS or arr.ndim != 4 or not arr.flags.c_contiguous:
        return False
    k = tuple(kernel_size)
    if len(k) != 2 or tuple(stride) != k or tuple(padding) != (0, 0) or \
            tuple(dilation) != (1, 1) or ceil_mode:
        return False
    return all(type(v) is int and 0 < v <= n for v, n in zip(k, arr.shape[2:]))


def tiled_max_pool(input, kernel_size):
    return MaxPool2DWithIndices.apply(input, tuple(kernel_size))


def _slices(a: np.ndarray, kh: int, kw: int, oh: int, ow: int) -> list:
    """The kh*kw strided slices of the windows, in window (row-major) order."""
    return [a[:, :, i:i + oh * kh:kh, j:j + ow * kw:kw] for i in range(kh) for j in range(kw)]


class MaxPool2DWithIndices(Function):
    @staticmethod
    def forward(ctx, input, kernel_size):
        kh, kw = kernel_size
        a = input._array
        oh, ow = a.shape[2] // kh, a.shape[3] // kw
        slices = _slices(a, kh, kw, oh, ow)
        best = np.array(slices[0], order="C")
        for view in slices[1:]:
            np.maximum(best, view, out=best)   # NaN propagates, as argmax picks it
        ctx.which = _winning_slice(slices, best)
        ctx.geometry = (kh, kw, oh, ow)
        ctx.save_for_backward(input)
        return Tensor._from_array(best, copy=False)

    @staticmethod
    def backward(ctx, g):
        (input,) = ctx.saved_tensors
        kh, kw, oh, ow = ctx.geometry
        if grad_mode.is_grad_enabled():      # create_graph: the op path's scatter
            indices = Tensor._from_array(_flat_indices(ctx.which, kh, kw, oh, ow,
                                                       input.shape[3]), copy=False)
            return OPS["max_pool_scatter"](g, input, indices, 2), None
        return Tensor._from_array(_scatter_winners(g._array, ctx.which, input._array.shape,
                                                   kh, kw, oh, ow), copy=False), None


def _scatter_winners(garr, which, shape, kh, kw, oh, ow) -> np.ndarray:
    """The input gradient: `g` at each window's winner, +0 elsewhere (a scatter-add into
    zeros: -0.0 gradients come out +0.0 too)."""
    n, c, h, w = shape
    if h != oh * kh or w != ow * kw or np.isnan(garr).any():
        # windows leave a border, or NaN gradients (NaN * 0 is not 0): masked selects
        gx = np.zeros(shape, garr.dtype)
        zero = garr.dtype.type(0)
        for k, view in enumerate(_slices(gx, kh, kw, oh, ow)):
            view[...] = np.where(which == k, garr, zero)
    else:
        # the windows tile the input exactly: (n, c, oh, kh, ow, kw) is the input's
        # layout, and each (i, j) plane is g where slice i*kw+j won (a mask multiply)
        gx = np.empty((n, c, oh, kh, ow, kw), garr.dtype)
        for i in range(kh):
            for j in range(kw):
                np.multiply(which == i * kw + j, garr, out=gx[:, :, :, i, :, j])
        gx = gx.reshape(shape)
    gx += garr.dtype.type(0)                # -0.0 -> +0.0, as the scatter-add into zeros
    return gx


def _winning_slice(slices: list, best: np.ndarray) -> np.ndarray:
    """Per output, the first slice holding the maximum (or, in a NaN window, the first
    NaN): the reference argmax's choice, by masked arithmetic."""
    nan_windows = bool(np.isnan(best).any())
    found = slices[0] == best
    if nan_windows:
        found |= np.isnan(slices[0])
    which = np.zeros(best.shape, np.int8 if len(slices) < 128 else np.int64)
    for k in range(1, len(slices)):
        first = slices[k] == best
        if nan_windows:
            first |= np.isnan(slices[k])
        first &= ~found
        which += first * which.dtype.type(k)
        found |= first
    return which


def _flat_indices(which, kh, kw, oh, ow, width) -> np.ndarray:
    """PyTorch's flat per-plane indices of the winners (max_pool2d_with_indices')."""
    which = which.astype(np.int64)
    ki = which // kw
    kj = which - ki * kw
    row = np.arange(oh)[:, None] * kh + ki
    col = np.arange(ow)[None, :] * kw + kj
    return row * width + col
