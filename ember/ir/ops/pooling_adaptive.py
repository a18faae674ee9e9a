"""Pooling whose windows are not one strided kernel: adaptive average and max pooling,
fractional max pooling, and max unpooling, in 1, 2 and 3 spatial dims.

Adaptive windows along a dim of size n for output size o are [floor(i*n/o),
ceil((i+1)*n/o)). Adaptive average pooling is separable: one (o, n) averaging matrix
per spatial dim (`apply_axes`, which resampling shares); its backward applies the
transposes. Max-type pools gather each window with advanced indexing (windows padded
to the longest by repeating their last element, which changes neither the max nor the
first arg-max), return PyTorch's flat per-plane indices, and differentiate through
pooling.max_pool_scatter. Fractional max pooling takes aten's `random_samples`
(N, C, nd) in [0, 1); the functional draws them when not given.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..errors import EmberIndexError, ShapeError
from ..meta import TensorMeta
from ..registry import defop
from . import samples as S
from .conv import _ints, _shape
from .pooling import (_max_pool_ref, _zeros_like, check_pool_input, flat_index, flat_planes,
                      max_pool_gather, max_pool_scatter, pool_layout)
from .rules import device_of, opmath_arrays



def apply_axes(x, mats, transpose=False):
    """x with matrix mats[i] (out_i, in_i) applied along each of its last len(mats) dims
    (its transpose when `transpose`): separable linear maps such as averaging windows
    and interpolation weights."""
    nd = len(mats)
    for i, m in enumerate(mats):
        axis = x.ndim - nd + i
        m = (m.T if transpose else m).astype(x.dtype, copy=False)
        x = np.moveaxis(np.tensordot(m, x, axes=([1], [axis])), 0, axis)
    return x


# --- adaptive average pooling ---------------------------------------------------------------

def adaptive_out(self, output_size, nd: int = 2):
    """Output sizes of an adaptive pool over the last nd dims (None keeps a size)."""
    if self.ndim not in (nd + 1, nd + 2):
        raise ShapeError(f"expected {nd + 1}-d (unbatched) or {nd + 2}-d (batched) input, "
                         f"got input {_shape(self.shape)}")
    if isinstance(output_size, (int, np.integer)) or output_size is None:
        output_size = [output_size] * nd
    output_size = list(output_size)
    if len(output_size) == 1:
        output_size = output_size * nd
    if len(output_size) != nd:
        raise ShapeError(f"output_size must be {nd} values, got {output_size}")
    spatial = self.shape[self.ndim - nd:]
    out = tuple(int(o) if o is not None else int(n) for o, n in zip(output_size, spatial))
    if any(o < 0 for o in out) or (any(n == 0 for n in spatial) and any(out)):
        raise ShapeError(f"output_size {list(out)} is invalid for input {_shape(self.shape)}")
    return out


def window_bounds(n, o):
    i = np.arange(o)
    return (i * n) // o, -((-(i + 1) * n) // o)


def adaptive_matrix(n, o):
    """(o, n): row i averages input positions [start_i, end_i)."""
    start, end = window_bounds(n, o)
    cols = np.arange(n)
    mask = (cols >= start[:, None]) & (cols < end[:, None])
    return mask / np.maximum(end - start, 1)[:, None]


def _adaptive_avg_meta(nd):
    def meta(self, output_size):
        out = adaptive_out(self, output_size, nd)
        return TensorMeta(tuple(self.shape[:-nd]) + out, self.dtype, device_of([self]),
                          pool_layout(self))
    return meta


def _adaptive_avg_ref(nd):
    def ref(x, output_size):
        out = adaptive_out(x, output_size, nd)
        xc = opmath_arrays(x)[0]
        mats = [adaptive_matrix(n, o) for n, o in zip(x.shape[-nd:], out)]
        return apply_axes(xc, mats)
    return ref


def _declare_adaptive_avg(nd):
    def grad(g, self, output_size):
        if nd == 1:   # the 2-d backward on (.., 1, L): the same averaging along L
            return adaptive_avg_pool2d_backward(g.unsqueeze(-2),
                                                self.unsqueeze(-2)).squeeze(-2)
        backward = adaptive_avg_pool2d_backward if nd == 2 else adaptive_avg_pool3d_backward
        return backward(g, self)
    samples = {
        1: lambda rng: [S.Sample((S.randn(rng, 2, 3, 7), [3])),
                        S.Sample((S.randn(rng, 2, 5), 4))],
        2: lambda rng: [S.Sample((S.randn(rng, 2, 3, 7, 5), [3, 2])),
                        S.Sample((S.randn(rng, 2, 6, 6), 4)),
                        S.Sample((S.randn(rng, 1, 2, 5, 4), [None, 1]))],
        3: lambda rng: [S.Sample((S.randn(rng, 1, 2, 5, 4, 3), [2, 3, 2])),
                        S.Sample((S.randn(rng, 2, 3, 3, 4), 2))]}[nd]
    return defop(
        f"adaptive_avg_pool{nd}d(Tensor self, int[{nd}] output_size) -> Tensor",
        meta=_adaptive_avg_meta(nd), reference=_adaptive_avg_ref(nd), derivative=grad,
        saves=("self",) if nd == 1 else (), samples=samples,
        torch_ref=f"torch.nn.functional.adaptive_avg_pool{nd}d",
    )


def _declare_adaptive_avg_backward(nd):
    def meta(grad_output, self):
        if grad_output.ndim != self.ndim:
            raise ShapeError(f"grad_output {_shape(grad_output.shape)} and input "
                             f"{_shape(self.shape)} must have the same number of dims")
        return TensorMeta(tuple(self.shape), grad_output.dtype, device_of([grad_output]),
                          pool_layout(self))

    def ref(g, x):
        gc = opmath_arrays(g)[0]
        mats = [adaptive_matrix(n, o) for n, o in zip(x.shape[-nd:], g.shape[-nd:])]
        return apply_axes(gc, mats, transpose=True)

    def grad(g, grad_output, self):
        forward = adaptive_avg_pool2d if nd == 2 else adaptive_avg_pool3d
        return forward(g, list(grad_output.shape[-nd:])), _zeros_like(self)
    samples = {
        2: lambda rng: [S.Sample((S.randn(rng, 2, 3, 3, 2), S.randn(rng, 2, 3, 7, 5))),
                        S.Sample((S.randn(rng, 2, 4, 4), S.randn(rng, 2, 6, 6)))],
        3: lambda rng: [S.Sample((S.randn(rng, 1, 2, 2, 3, 2), S.randn(rng, 1, 2, 5, 4, 3)))]}
    return defop(
        f"adaptive_avg_pool{nd}d_backward(Tensor grad_output, Tensor self) -> Tensor",
        meta=meta, reference=ref, derivative=grad, saves=(), samples=samples[nd],
        torch_ref=f"torch.ops.aten._adaptive_avg_pool{nd}d_backward",
        doc=f"aten::_adaptive_avg_pool{nd}d_backward.",
    )


# --- gathered windows: adaptive and fractional max pooling ---------------------------------

def _window_grid(starts, length, d, nd):
    """Per-plane index arrays for window dim d: starts (B, o) + arange(length), shaped
    (B, 1.., o at 1+d, 1.., length at 1+nd+d, 1..) for advanced indexing."""
    b, o = starts.shape
    idx = starts[:, :, None] + np.arange(length)
    shape = [b] + [1] * (2 * nd)
    shape[1 + d], shape[1 + nd + d] = o, length
    return idx.reshape(shape)


def _max_over_windows(planes, grids, spatial):
    """Max of each gathered window and its flat per-plane index.

    planes (B, *spatial); grids[d] (B, .., o_d, .., L_d, ..) index arrays per dim."""
    nd = len(grids)
    b = planes.shape[0]
    batch = np.arange(b).reshape((b,) + (1,) * (2 * nd))
    win = planes[(batch,) + tuple(grids)]                    # (B, *o, *L)
    out = win.shape[1:1 + nd]
    lengths = win.shape[1 + nd:]
    window = math.prod(lengths)                             # (-1: ambiguous at B = 0)
    flat = win.reshape((b,) + out + (window,))
    arg = np.argmax(flat, axis=-1)
    vals = np.take_along_axis(flat, arg[..., None], axis=-1)[..., 0]
    taps = np.unravel_index(arg, lengths)
    positions = []
    for d in range(nd):
        grid = np.broadcast_to(grids[d], (b,) + win.shape[1:])
        grid = grid.reshape((b,) + out + (window,))
        positions.append(np.take_along_axis(grid, np.ravel_multi_index(
            taps, lengths)[..., None], axis=-1)[..., 0])
    return vals, flat_index(positions, spatial)


def _adaptive_max_ref(nd):
    def ref(x, output_size):
        out = adaptive_out(x, output_size, nd)
        lead, spatial = x.shape[:-nd], x.shape[-nd:]
        xc = opmath_arrays(x)[0]
        planes = flat_planes(xc, nd)
        if planes.shape[0] == 0 or 0 in out:
            return (np.zeros(lead + out, xc.dtype), np.zeros(lead + out, np.int64))
        grids = []
        for d, (n, o) in enumerate(zip(spatial, out)):
            start, end = window_bounds(n, o)
            length = int((end - start).max())
            idx = np.minimum(start[:, None] + np.arange(length), end[:, None] - 1)
            shape = [1] * (1 + 2 * nd)
            shape[1 + d], shape[1 + nd + d] = o, length
            grids.append(idx.reshape(shape))
        vals, idx = _max_over_windows(planes, grids, spatial)
        return vals.reshape(lead + out), idx.reshape(lead + out)
    return ref


def _adaptive_max_meta(nd):
    def meta(self, output_size):
        check_pool_input(self, nd)
        out = adaptive_out(self, output_size, nd)
        shape = tuple(self.shape[:-nd]) + out
        return (TensorMeta(shape, self.dtype, device_of([self]), pool_layout(self)),
                TensorMeta(shape, dtypes.int64, device_of([self]), pool_layout(self)))
    return meta


def _declare_adaptive_max(nd):
    samples = {
        1: lambda rng: [S.Sample((S.randn(rng, 2, 3, 7), [3])),
                        S.Sample((S.randn(rng, 2, 5), 4))],
        2: lambda rng: [S.Sample((S.randn(rng, 2, 3, 7, 5), [3, 2])),
                        S.Sample((S.randn(rng, 2, 6, 6), 4))],
        3: lambda rng: [S.Sample((S.randn(rng, 1, 2, 5, 4, 3), [2, 3, 2])),
                        S.Sample((S.randn(rng, 2, 3, 3, 4), 2))]}[nd]
    return defop(
        f"adaptive_max_pool{nd}d(Tensor self, int[{nd}] output_size) -> (Tensor, Tensor)",
        meta=_adaptive_max_meta(nd), reference=_adaptive_max_ref(nd),
        derivative=lambda g, self, output_size, out: max_pool_scatter(g[0], self, out[1], nd),
        saves=(), samples=samples,
        torch_ref=lambda torch: lambda x, size: getattr(
            torch.nn.functional, f"adaptive_max_pool{nd}d")(x, size, return_indices=True),
        doc="Values and PyTorch's flat per-plane indices.",
    )


def fractional_starts(n, k, o, u):
    """Window starts of fractional max pooling along a dim: for samples u (B,) in [0, 1),
    start_i = int((i + u) * alpha) - int(u * alpha), alpha = (n - k) / (o - 1), and the
    last window ends at the border."""
    u = np.asarray(u, np.float64)[:, None]
    if o == 1:
        return np.full((u.shape[0], 1), n - k, np.int64)
    alpha = (n - k) / (o - 1)
    i = np.arange(o - 1)
    starts = (np.trunc((i + u) * alpha) - np.trunc(u * alpha)).astype(np.int64)
    return np.concatenate([starts, np.full((u.shape[0], 1), n - k, np.int64)], axis=1)


# which sample column drives which spatial dim (PyTorch: 2-d reads (w, h), 3-d (t, h, w))
_SAMPLE_COLUMN = {2: (1, 0), 3: (0, 1, 2)}


def _fractional_check(self, kernel_size, output_size, random_samples, nd):
    check_pool_input(self, nd)
    k = _ints(kernel_size, nd, "kernel_size")
    out = _ints(output_size, nd, "output_size")
    spatial = tuple(self.shape[-nd:])
    for n, kk, o in zip(spatial, k, out):
        # PyTorch's 3-d kernel also refuses windows that would exactly reach the border
        if o + kk - 1 > n or (nd == 3 and o + kk - 1 == n):
            raise ShapeError(f"pool size {list(k)} too large "
                             f"relative to input size {list(spatial)} for output size "
                             f"{list(out)}")
    planes = self.shape[0] if self.ndim == nd + 2 else 1
    channels = self.shape[-nd - 1]
    if tuple(random_samples.shape) != (planes, channels, nd):
        raise ShapeError(f"fractional_max_pool{nd}d(): expected random_samples of shape "
                         f"[{planes}, {channels}, {nd}], got {_shape(random_samples.shape)}")
    return k, out


def _fractional_ref(nd):
    def ref(x, kernel_size, output_size, random_samples):
        k, out = _fractional_check(x, kernel_size, output_size, random_samples, nd)
        lead, spatial = x.shape[:-nd], x.shape[-nd:]
        planes = flat_planes(opmath_arrays(x)[0], nd)
        samples = random_samples.reshape(math.prod(random_samples.shape[:-1]), nd)
        grids = [_window_grid(fractional_starts(n, kk, o, samples[:, col]), kk, d, nd)
                 for d, (n, kk, o, col) in enumerate(zip(spatial, k, out,
                                                         _SAMPLE_COLUMN[nd]))]
        vals, idx = _max_over_windows(planes, grids, spatial)
        return vals.reshape(lead + out), idx.reshape(lead + out)
    return ref


def _declare_fractional(nd):
    ints = f"int[{nd}]"

    def meta(self, kernel_size, output_size, random_samples):
        _, out = _fractional_check(self, kernel_size, output_size, random_samples, nd)
        shape = tuple(self.shape[:-nd]) + tuple(out)
        return (TensorMeta(shape, self.dtype, device_of([self]), pool_layout(self)),
                TensorMeta(shape, dtypes.int64, device_of([self]), pool_layout(self)))

    def samples(rng):
        if nd == 2:
            return [S.Sample((S.randn(rng, 2, 3, 9, 8), [2, 3], [4, 3],
                              rng.random((2, 3, 2)).astype(np.float32))),
                    S.Sample((S.randn(rng, 2, 7, 7), 2, [3, 1],
                              rng.random((1, 2, 2)).astype(np.float32)))]
        return [S.Sample((S.randn(rng, 1, 2, 5, 6, 6), 2, [3, 2, 4],
                          rng.random((1, 2, 3)).astype(np.float32)))]
    return defop(
        f"fractional_max_pool{nd}d(Tensor self, {ints} kernel_size, {ints} output_size, "
        f"Tensor random_samples) -> (Tensor, Tensor)",
        meta=meta, reference=_fractional_ref(nd),
        derivative=lambda g, self, kernel_size, output_size, random_samples, out: (
            max_pool_scatter(g[0], self, out[1], nd), None),
        saves=(), samples=samples,
        torch_ref=lambda torch: lambda x, k, size, u: getattr(
            torch.ops.aten, f"fractional_max_pool{nd}d")(x, k, size, u.detach()),
        doc="aten's form: `random_samples` (N, C, nd) in [0, 1) place the windows.",
    )


# --- max unpooling ----------------------------------------------------------------------------

def _unpool_check(self, indices, output_size, nd):
    if tuple(self.shape) != tuple(indices.shape):
        raise ShapeError(f"Expected shape of indices to be same as that of the input tensor "
                         f"({_shape(self.shape)}) but got indices tensor with shape "
                         f"{_shape(indices.shape)}")
    if indices.dtype.name != "int64":
        raise ShapeError(f"elements in indices should be type int64 but got: "
                         f"{indices.dtype.name}")
    size = _ints(output_size, nd, "output_size")
    if self.ndim not in (nd + 1, nd + 2) or any(n == 0 for n in self.shape[-nd - 1:]):
        raise ShapeError(f"Input to max_unpooling{nd}d should be a {nd + 1}d or {nd + 2}d "
                         f"Tensor, but got a tensor with dim {self.ndim}")
    return size


def _unpool_ref(nd):
    def ref(x, indices, output_size, *unused):
        size = _unpool_check(x, indices, output_size, nd)
        plane = math.prod(size)
        xp = x.reshape(math.prod(x.shape[:-nd]), math.prod(x.shape[-nd:]))
        ip = indices.reshape(xp.shape)
        if ip.size and (ip.min() < 0 or ip.max() >= plane):
            bad = ip[(ip < 0) | (ip >= plane)][0]
            raise EmberIndexError(f"Found an invalid max index: {bad} (output volumes are of "
                                  f"size {'x'.join(map(str, size))}")
        out = np.zeros((xp.shape[0], plane), x.dtype)
        np.put_along_axis(out, ip, xp, axis=1)
        return out.reshape(x.shape[:-nd] + tuple(size))
    return ref


def _declare_unpool(nd):
    extra = "" if nd == 2 else ", int[3] stride, int[3] padding"

    def meta(self, indices, output_size, *unused):
        size = _unpool_check(self, indices, output_size, nd)
        return TensorMeta(tuple(self.shape[:-nd]) + tuple(size), self.dtype,
                          device_of([self]), pool_layout(self))

    def grad(g, self, indices, output_size, **unused):    # 3-d: stride, padding
        return max_pool_gather(g, indices, nd), None

    def samples(rng):
        def pooled(shape, k):     # values and the indices max pooling gives them
            vals, idx = _max_pool_ref(nd)(rng.standard_normal(shape), k, k, 0, 1, False)
            return vals.astype(np.float32), idx
        if nd == 2:
            v, i = pooled((2, 3, 4, 5), 2)
            v2, i2 = pooled((2, 5, 5), [2, 3])
            return [S.Sample((v, i, [4, 5])), S.Sample((v2, i2, [5, 6]))]
        v, i = pooled((1, 2, 4, 4, 5), 2)
        return [S.Sample((v, i, [4, 4, 5], [2, 2, 2], [0, 0, 0]))]
    return defop(
        f"max_unpool{nd}d(Tensor self, Tensor indices, int[{nd}] output_size{extra}) -> Tensor",
        meta=meta, reference=_unpool_ref(nd), derivative=grad, saves=("indices",),
        samples=samples, torch_ref=f"torch.ops.aten.max_unpool{nd}d",
        doc="Places each value at its flat per-plane index in a zero tensor of output_size.",
    )


adaptive_avg_pool1d = _declare_adaptive_avg(1)
adaptive_avg_pool2d = _declare_adaptive_avg(2)
adaptive_avg_pool3d = _declare_adaptive_avg(3)
adaptive_avg_pool2d_backward = _declare_adaptive_avg_backward(2)
adaptive_avg_pool3d_backward = _declare_adaptive_avg_backward(3)
adaptive_max_pool1d = _declare_adaptive_max(1)
adaptive_max_pool2d = _declare_adaptive_max(2)
adaptive_max_pool3d = _declare_adaptive_max(3)
fractional_max_pool2d = _declare_fractional(2)
fractional_max_pool3d = _declare_fractional(3)
max_unpool2d = _declare_unpool(2)
max_unpool3d = _declare_unpool(3)
