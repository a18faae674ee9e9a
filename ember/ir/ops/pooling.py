"""Window pooling in 1, 2 and 3 spatial dims: max_pool{1,2,3}d(_with_indices),
avg_pool{1,2,3}d, the backward ops their derivatives call, and the index helpers
max_pool_scatter / max_pool_gather that every max-type pooling (adaptive, fractional,
unpooling) differentiates through.

One N-d kernel serves each family: the input is viewed as planes (B, *spatial) and a
strided window view (B, *out, *kernel) of the padded planes is reduced. Indices are
PyTorch's: flat positions into each plane of the unpadded input (row-major over the
spatial dims). Backward ops are linear in the incoming gradient and differentiate
into the forward pooling (average) or a gather at the indices (max). 1-d pooling
differentiates through the 2-d backward ops on an unsqueezed input, which is exact.
Outputs are channels_last when a 4-d input is, as PyTorch lays them out.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .. import dtypes
from ..errors import ShapeError
from ..meta import TensorMeta, channels_last, contiguous_format
from ..registry import defop
from . import samples as S
from .conv import _ints, _is_cl, _shape, window_count
from .rules import device_of, opmath_arrays

_as_strided = np.lib.stride_tricks.as_strided


# --- geometry ------------------------------------------------------------------------------

def _pool_out(n, k, s, p, d, ceil_mode):
    out = window_count(n, k, s, p, p, d, ceil_mode)
    if ceil_mode and (out - 1) * s >= n + p:   # torch: the last window must start inside
        out -= 1
    return out


def check_pool_input(self_t, nd: int):
    if self_t.ndim not in (nd + 1, nd + 2) or any(n == 0 for n in self_t.shape[-nd - 1:]):
        # PyTorch's wording (its tests match it), then the shape
        raise ShapeError(f"non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor expected for "
                         f"input, got input {_shape(self_t.shape)}")


class PoolParams:
    """Normalized window arguments of a pooling op over the last `nd` dims of `self_t`:
    k, s, p, d (tuples of nd), spatial (input sizes), out (output sizes)."""

    def __init__(self, self_t, kernel_size, stride, padding, dilation, ceil_mode, nd=2):
        check_pool_input(self_t, nd)
        self.nd = nd
        self.k = _ints(kernel_size, nd, "kernel_size")
        no_stride = stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)
        self.s = self.k if no_stride else _ints(stride, nd, "stride")
        self.p = _ints(padding, nd, "padding")
        self.d = _ints(dilation, nd, "dilation")
        self.ceil = bool(ceil_mode)
        if any(v <= 0 for v in self.k + self.s + self.d):
            raise ShapeError(f"kernel_size, stride and dilation must be greater than zero, got "
                             f"kernel_size={list(self.k)}, stride={list(self.s)}, dilation="
                             f"{list(self.d)}")
        for p, k, d in zip(self.p, self.k, self.d):
            if p < 0 or p > (d * (k - 1) + 1) // 2:
                raise ShapeError(f"pad should be at most half of effective kernel size, but got "
                                 f"pad={p}, kernel_size={k} and dilation={d}")
        self.spatial = tuple(self_t.shape[-nd:])
        self.out = tuple(_pool_out(n, k, s, p, d, self.ceil) for n, k, s, p, d in
                         zip(self.spatial, self.k, self.s, self.p, self.d))
        if any(o <= 0 for o in self.out):
            raise ShapeError(f"Given input size: {_shape(self_t.shape)}. Calculated output "
                             f"size: {list(self.out)}. Output size is too small "
                             f"(kernel_size={list(self.k)}, stride={list(self.s)}, "
                             f"padding={list(self.p)})")

    def shape(self, self_t):
        return tuple(self_t.shape[:-self.nd]) + self.out


def pool_layout(self_t):
    return channels_last if _is_cl(self_t) else contiguous_format


def _pool_meta_for(self, p: PoolParams, dtype=None):
    return TensorMeta(p.shape(self), dtype or self.dtype, device_of([self]), pool_layout(self))


def flat_planes(x, nd: int):
    """x as (B, *spatial): every leading dim folded into one."""
    return x.reshape((-1,) + x.shape[x.ndim - nd:])


def _pad_pool(x, p: PoolParams, fill):
    widths = [(0, 0)]
    for i in range(p.nd):
        need = (p.out[i] - 1) * p.s[i] + p.d[i] * (p.k[i] - 1) + 1
        widths.append((p.p[i], max(need - p.p[i] - x.shape[1 + i], 0)))
    return np.pad(x, widths, constant_values=fill)


def _pool_windows(xp, p: PoolParams):
    """(B, *out, *k) windows of padded planes (B, *spatial')."""
    st = xp.strides
    shape = xp.shape[:1] + p.out + p.k
    strides = st[:1] + tuple(st[1 + i] * p.s[i] for i in range(p.nd)) + \
        tuple(st[1 + i] * p.d[i] for i in range(p.nd))
    return _as_strided(xp, shape, strides, writeable=False)


def lowest(dtype: np.dtype):
    return -np.inf if dtype.kind in "fV" else np.iinfo(dtype).min


def flat_index(positions, spatial) -> np.ndarray:
    """Row-major flat index into a plane of size `spatial` from per-dim positions."""
    idx = np.zeros(np.broadcast_shapes(*(np.shape(q) for q in positions)), np.int64)
    for q, n in zip(positions, spatial):
        idx = idx * n + q
    return idx


def _along(values, axis: int, ndim: int):
    """1-d `values` shaped to broadcast along `axis` of an ndim-d array."""
    shape = [1] * ndim
    shape[axis] = len(values)
    return np.asarray(values).reshape(shape)


# --- max pooling ----------------------------------------------------------------------------

def _max_pool_ref(nd):
    def ref(x, kernel_size, stride, padding, dilation, ceil_mode):
        p = PoolParams(x, kernel_size, stride, padding, dilation, ceil_mode, nd)
        lead = x.shape[:-nd]
        xc = opmath_arrays(x)[0]
        xp = _pad_pool(flat_planes(xc, nd), p, lowest(xc.dtype))
        win = _pool_windows(xp, p).reshape(xp.shape[:1] + p.out + (math.prod(p.k),))
        arg = np.argmax(win, axis=-1)
        vals = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
        taps = np.unravel_index(arg, p.k)
        positions = [_along(np.arange(p.out[i]) * p.s[i] - p.p[i], 1 + i, nd + 1) +
                     taps[i] * p.d[i] for i in range(nd)]
        idx = flat_index(positions, p.spatial)
        return vals.reshape(lead + p.out), idx.reshape(lead + p.out)
    return ref


def _max_pool_meta(nd):
    def meta(self, kernel_size, stride, padding, dilation, ceil_mode):
        p = PoolParams(self, kernel_size, stride, padding, dilation, ceil_mode, nd)
        return _pool_meta_for(self, p), _pool_meta_for(self, p, dtypes.int64)
    return meta


def _max_pool_samples(nd):
    r = S.randn

    def two_d(rng):
        return [S.Sample((r(rng, 2, 3, 6, 5), 2)),
                S.Sample((r(rng, 1, 2, 7, 7), [3, 2], [2, 1], [1, 0])),
                S.Sample((r(rng, 2, 5, 6), 3, 2, 1, 1, True)),
                S.Sample((r(rng, 1, 2, 9, 8), 2, 2, 1, 2, True)),
                S.Sample((r(rng, 1, 1, 5, 5), [2, 2]), {"stride": [2, 2], "ceil_mode": True})]

    def one_d(rng):
        return [S.Sample((r(rng, 2, 3, 7), 2)),
                S.Sample((r(rng, 2, 9), [3], [2], [1], [2], True)),
                S.Sample((r(rng, 1, 2, 6), 3, 1, 1))]

    def three_d(rng):
        return [S.Sample((r(rng, 1, 2, 4, 5, 4), 2)),
                S.Sample((r(rng, 2, 5, 4, 6), [3, 2, 2], [2, 1, 2], [1, 0, 1], [1, 2, 1], True)),
                S.Sample((S.int_array(rng, 1, 1, 3, 3, 4), [2, 2, 3], 1))]
    return {1: one_d, 2: two_d, 3: three_d}[nd]


def _max_pool_grad(nd):
    """d max_pool / d self: scatter the gradient to the chosen positions."""
    def grad(g, self, kernel_size, stride, padding, dilation, ceil_mode, out):
        return max_pool_scatter(g[0], self, out[1], nd)
    return grad


def _max_pool_values_grad(nd, with_indices):
    def grad(g, self, kernel_size, stride, padding, dilation, ceil_mode):
        indices = with_indices(_detached(self), kernel_size, stride, padding, dilation,
                               ceil_mode)[1]
        return max_pool_scatter(g, self, indices, nd)
    return grad


def _detached(t):
    return t.detach() if hasattr(t, "detach") else t


def _with_indices_ref(nd):
    def ref(torch):
        fn = getattr(torch.nn.functional, f"max_pool{nd}d_with_indices")

        def call(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
            return fn(x, kernel_size, stride or None, padding, dilation, ceil_mode)
        return call
    return ref


def _declare_max_pool(nd):
    ints = f"int[{nd}]"
    with_indices = defop(
        f"max_pool{nd}d_with_indices(Tensor self, {ints} kernel_size, {ints} stride=[], "
        f"{ints} padding=0, {ints} dilation=1, bool ceil_mode=False) -> (Tensor, Tensor)",
        meta=_max_pool_meta(nd), reference=_max_pool_ref(nd), derivative=_max_pool_grad(nd),
        saves=(), samples=_max_pool_samples(nd), torch_ref=_with_indices_ref(nd),
        doc="Values and PyTorch's flat indices (into each plane of the unpadded input).",
    )
    values = defop(
        f"max_pool{nd}d(Tensor self, {ints} kernel_size, {ints} stride=[], {ints} padding=0, "
        f"{ints} dilation=1, bool ceil_mode=False) -> Tensor",
        meta=lambda self, *a: _max_pool_meta(nd)(self, *a)[0],
        reference=lambda x, *a: _max_pool_ref(nd)(x, *a)[0],
        derivative=_max_pool_values_grad(nd, with_indices),
        samples=_max_pool_samples(nd), torch_ref=f"torch.max_pool{nd}d",
    )
    return with_indices, values


# --- index helpers: the scatter of max pooling's backward and its adjoint gather ------------

def _scatter_meta(grad_output, self, indices, dims):
    if tuple(grad_output.shape) != tuple(indices.shape):
        raise ShapeError(f"grad_output {_shape(grad_output.shape)} and indices "
                         f"{_shape(indices.shape)} must have the same shape")
    return TensorMeta(tuple(self.shape), grad_output.dtype, device_of([grad_output]),
                      pool_layout(self))


def scatter_add_planes(g, indices, shape, nd):
    """zeros(shape) with g added at flat per-plane `indices` (over the last nd dims)."""
    plane = math.prod(shape[len(shape) - nd:])
    gi = g.reshape(-1, math.prod(g.shape[g.ndim - nd:]))
    ii = indices.reshape(gi.shape)
    b = gi.shape[0]
    flat = (ii + (np.arange(b) * plane)[:, None]).ravel()
    weights = gi.ravel()
    # summed in double precision in index order (one rounding to g's dtype at the end):
    # np.add.at does that several times faster than np.bincount's float64 histogram,
    # with the same sums bit for bit
    acc = np.complex128 if np.iscomplexobj(weights) else np.float64
    out = np.zeros(b * plane, acc)
    np.add.at(out, flat, weights.astype(acc, copy=False))
    return out.astype(g.dtype).reshape(shape)


def gather_planes(x, indices, nd):
    """x[..., indices] over flat planes of the last nd dims."""
    xp = x.reshape(-1, math.prod(x.shape[x.ndim - nd:]))
    ip = indices.reshape(xp.shape[0], -1)
    return np.take_along_axis(xp, ip, axis=1).reshape(indices.shape)


max_pool_scatter = defop(
    "max_pool_scatter(Tensor grad_output, Tensor self, Tensor indices, int dims=2) -> Tensor",
    meta=_scatter_meta,
    reference=lambda g, x, indices, dims: scatter_add_planes(opmath_arrays(g)[0], indices,
                                                             x.shape, dims),
    derivative=lambda g, grad_output, self, indices, dims: (
        max_pool_gather(g, indices, dims), _zeros_like(self), None),
    saves=("indices",),
    samples=lambda rng: [
        S.Sample((S.randn(rng, 2, 3, 2, 2), S.randn(rng, 2, 3, 4, 5),
                  S.int_array(rng, 2, 3, 2, 2, low=0, high=20))),
        S.Sample((S.randn(rng, 2, 2, 3, 2), S.randn(rng, 2, 3, 3, 3),
                  S.int_array(rng, 2, 2, 3, 2, low=0, high=27), 3))],
    torch_ref=lambda torch: lambda g, x, idx, dims=2: torch.zeros_like(x).flatten(-dims)
    .scatter_add(-1, idx.flatten(-dims), g.flatten(-dims).to(x.dtype)).view(x.shape),
    doc="ember: zeros like self with grad_output added at flat per-plane indices over the "
        "last `dims` dims: the backward of every max-type pooling.",
)


def _gather_meta(self, indices, dims=2):
    return TensorMeta(tuple(indices.shape), self.dtype, device_of([self]),
                      pool_layout(indices))


max_pool_gather = defop(
    "max_pool_gather(Tensor self, Tensor indices, int dims=2) -> Tensor",
    meta=_gather_meta,
    reference=lambda x, indices, dims: gather_planes(x, indices, dims),
    derivative=lambda g, self, indices, dims: (max_pool_scatter(g, self, indices, dims), None),
    saves=("indices",),
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 3, 4, 5),
                                   S.int_array(rng, 2, 3, 2, 2, low=0, high=20))),
                         S.Sample((S.randn(rng, 2, 3, 3, 3),
                                   S.int_array(rng, 2, 1, 3, 2, low=0, high=27), 3))],
    torch_ref=lambda torch: lambda x, idx, dims=2: torch.gather(
        x.flatten(-dims), -1, idx.flatten(-dims)).view(idx.shape),
    doc="ember: out = self at flat per-plane indices over the last `dims` dims; the adjoint "
        "of max_pool_scatter (max pooling's double backward).",
)


max_pool1d_with_indices, max_pool1d = _declare_max_pool(1)
max_pool2d_with_indices, max_pool2d = _declare_max_pool(2)
max_pool3d_with_indices, max_pool3d = _declare_max_pool(3)


def _max_bwd_meta(nd):
    def meta(grad_output, self, kernel_size, stride, padding, dilation, ceil_mode, indices):
        PoolParams(self, kernel_size, stride, padding, dilation, ceil_mode, nd)
        return _scatter_meta(grad_output, self, indices, nd)
    return meta


def _max_bwd_sample(rng, s, nd):
    x = s.args[0]
    args = _full_args(s, ["kernel_size", "stride", "padding", "dilation", "ceil_mode"],
                      [None, [], 0, 1, False])
    vals, idx = _max_pool_ref(nd)(x, *args)
    return S.Sample((S.randn(rng, *vals.shape), x, *args, idx))


def _full_args(s, names, defaults):
    """A sample's arguments after the input, defaults filled in and kwargs placed."""
    args = list(s.args[1:]) + defaults[len(s.args) - 1:]
    for k, v in s.kwargs.items():
        args[names.index(k)] = v
    return args


def _declare_max_backward(nd):
    ints = f"int[{nd}]"
    return defop(
        f"max_pool{nd}d_with_indices_backward(Tensor grad_output, Tensor self, "
        f"{ints} kernel_size, {ints} stride, {ints} padding, {ints} dilation, bool ceil_mode, "
        f"Tensor indices) -> Tensor",
        meta=_max_bwd_meta(nd),
        reference=lambda g, x, kernel_size, stride, padding, dilation, ceil_mode, indices:
            scatter_add_planes(opmath_arrays(g)[0], indices, x.shape, nd),
        derivative=lambda g, grad_output, self, kernel_size, stride, padding, dilation,
        ceil_mode, indices: (max_pool_gather(g, indices, nd), _zeros_like(self), None),
        saves=("indices",),
        samples=lambda rng: [_max_bwd_sample(rng, s, nd) for s in
                             _max_pool_samples(nd)(rng)[:2]],
        torch_ref=f"torch.ops.aten.max_pool{nd}d_with_indices_backward",
        doc="Scatter-adds grad_output into self's shape at the indices max pooling chose.",
    )


max_pool2d_with_indices_backward = _declare_max_backward(2)
max_pool3d_with_indices_backward = _declare_max_backward(3)


# --- average pooling --------------------------------------------------------------------------

def _avg_divisor(p: PoolParams, count_include_pad, divisor_override):
    if divisor_override:
        return float(divisor_override)
    counts = []
    for i in range(p.nd):
        start = np.arange(p.out[i]) * p.s[i] - p.p[i]
        end = np.minimum(start + p.k[i], p.spatial[i] + p.p[i])
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(np.minimum(end, p.spatial[i]) - np.maximum(start, 0))
    return functools.reduce(np.multiply.outer, counts).astype(np.float64)


def _avg_params(self, kernel_size, stride, padding, ceil_mode, divisor_override, nd):
    if divisor_override is not None and divisor_override == 0:
        raise ShapeError("divisor must be not zero")
    return PoolParams(self, kernel_size, stride, padding, 1, ceil_mode, nd)


def _avg_pool_ref(nd):
    def ref(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
            divisor_override=None):
        p = _avg_params(x, kernel_size, stride, padding, ceil_mode, divisor_override, nd)
        xc = opmath_arrays(x)[0]
        xp = _pad_pool(flat_planes(xc, nd), p, 0)
        sums = _pool_windows(xp, p).sum(axis=tuple(range(-nd, 0)))
        out = sums / _avg_divisor(p, count_include_pad, divisor_override)
        if xc.dtype.kind in "iu":
            out = np.trunc(out)        # torch divides integer sums with C's truncation
        return out.astype(xc.dtype).reshape(x.shape[:-nd] + p.out)
    return ref


def _avg_pool_bwd_ref(nd):
    def ref(g, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
            divisor_override):
        p = _avg_params(x, kernel_size, stride, padding, ceil_mode, divisor_override, nd)
        gc = opmath_arrays(g)[0]
        gd = flat_planes(gc, nd) / _avg_divisor(p, count_include_pad, divisor_override)
        size = [max(p.spatial[i] + 2 * p.p[i], (p.out[i] - 1) * p.s[i] + p.k[i])
                for i in range(nd)]
        acc = np.zeros((gd.shape[0],) + tuple(size), dtype=gd.dtype)
        for tap in np.ndindex(*p.k):
            window = tuple(slice(t, t + (o - 1) * s + 1, s) for t, o, s in
                           zip(tap, p.out, p.s))
            acc[(slice(None),) + window] += gd
        crop = tuple(slice(q, q + n) for q, n in zip(p.p, p.spatial))
        return acc[(slice(None),) + crop].astype(gc.dtype).reshape(x.shape)
    return ref


def _avg_samples(nd):
    r = S.randn

    def one_d(rng):
        return [S.Sample((r(rng, 2, 3, 7), 2)),
                S.Sample((r(rng, 2, 8), [3], [2], [1], True, False)),
                S.Sample((r(rng, 1, 2, 6), 3, 2, 1, True, True))]

    def two_d(rng):
        return [S.Sample((r(rng, 2, 3, 6, 5), 2)),
                S.Sample((r(rng, 1, 2, 7, 7), [3, 2], [2, 1], [1, 0])),
                S.Sample((r(rng, 2, 5, 6), 3, 2, 1, True, False)),
                S.Sample((r(rng, 1, 2, 6, 5), 3, 2, 1, True, True)),
                S.Sample((r(rng, 1, 2, 5, 5), 2), {"divisor_override": 3, "ceil_mode": True})]

    def three_d(rng):
        return [S.Sample((r(rng, 1, 2, 4, 5, 4), 2)),
                S.Sample((r(rng, 2, 5, 4, 6), [3, 2, 2], [2, 1, 2], [1, 0, 1], True, False)),
                S.Sample((r(rng, 1, 1, 3, 4, 5), 2, 2, 1, True, True, 3))]
    return {1: one_d, 2: two_d, 3: three_d}[nd]


def _avg_bwd_sample(rng, s, nd):
    x = s.args[0]
    args = _full_args(s, ["kernel_size", "stride", "padding", "ceil_mode",
                          "count_include_pad", "divisor_override"],
                      [None, [], 0, False, True, None])
    out = _avg_pool_ref(nd)(x, *args)
    return S.Sample((S.randn(rng, *out.shape), x, *args))


def _declare_avg_backward(nd):
    ints = f"int[{nd}]"

    def meta(grad_output, self, kernel_size, stride, padding, ceil_mode, count_include_pad,
             divisor_override):
        p = _avg_params(self, kernel_size, stride, padding, ceil_mode, divisor_override, nd)
        if tuple(grad_output.shape) != p.shape(self):
            raise ShapeError(f"grad_output {_shape(grad_output.shape)} does not match the "
                             f"pooled shape {list(p.shape(self))} of input {_shape(self.shape)}")
        return TensorMeta(tuple(self.shape), grad_output.dtype, device_of([grad_output]),
                          pool_layout(self))

    def grad(g, grad_output, self, kernel_size, stride, padding, ceil_mode, count_include_pad,
             divisor_override):
        forward = avg_pool2d if nd == 2 else avg_pool3d
        return forward(g, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override), _zeros_like(self)

    return defop(
        f"avg_pool{nd}d_backward(Tensor grad_output, Tensor self, {ints} kernel_size, "
        f"{ints} stride, {ints} padding, bool ceil_mode, bool count_include_pad, "
        f"int? divisor_override) -> Tensor",
        meta=meta, reference=_avg_pool_bwd_ref(nd), derivative=grad, saves=(),
        samples=lambda rng: [_avg_bwd_sample(rng, s, nd) for s in _avg_samples(nd)(rng)],
        torch_ref=f"torch.ops.aten.avg_pool{nd}d_backward",
    )


def _avg_meta(nd):
    def meta(self, kernel_size, stride, padding, ceil_mode, count_include_pad,
             divisor_override=None):
        return _pool_meta_for(self, _avg_params(self, kernel_size, stride, padding, ceil_mode,
                                                divisor_override, nd))
    return meta


def _avg1d_grad(g, self, kernel_size, stride, padding, ceil_mode, count_include_pad):
    """avg_pool1d's gradient: the 2-d backward on (.., 1, L), which is the same sum."""
    k, s, p = (_ints(v, 1, n) for v, n in ((kernel_size, "kernel_size"),
                                           (stride or kernel_size, "stride"),
                                           (padding, "padding")))
    return avg_pool2d_backward(g.unsqueeze(-2), self.unsqueeze(-2), [1, k[0]], [1, s[0]],
                               [0, p[0]], ceil_mode, count_include_pad, None).squeeze(-2)


avg_pool1d = defop(
    "avg_pool1d(Tensor self, int[1] kernel_size, int[1] stride=[], int[1] padding=0, "
    "bool ceil_mode=False, bool count_include_pad=True) -> Tensor",
    meta=_avg_meta(1), reference=_avg_pool_ref(1), derivative=_avg1d_grad, saves=("self",),
    samples=_avg_samples(1), torch_ref="torch.nn.functional.avg_pool1d",
)

avg_pool2d = defop(
    "avg_pool2d(Tensor self, int[2] kernel_size, int[2] stride=[], int[2] padding=0, "
    "bool ceil_mode=False, bool count_include_pad=True, int? divisor_override=None) -> Tensor",
    meta=_avg_meta(2), reference=_avg_pool_ref(2),
    derivative=lambda g, self, kernel_size, stride, padding, ceil_mode, count_include_pad,
    divisor_override: avg_pool2d_backward(g, self, kernel_size, stride, padding, ceil_mode,
                                          count_include_pad, divisor_override),
    saves=(), samples=_avg_samples(2), torch_ref="torch.nn.functional.avg_pool2d",
)

avg_pool3d = defop(
    "avg_pool3d(Tensor self, int[3] kernel_size, int[3] stride=[], int[3] padding=0, "
    "bool ceil_mode=False, bool count_include_pad=True, int? divisor_override=None) -> Tensor",
    meta=_avg_meta(3), reference=_avg_pool_ref(3),
    derivative=lambda g, self, kernel_size, stride, padding, ceil_mode, count_include_pad,
    divisor_override: avg_pool3d_backward(g, self, kernel_size, stride, padding, ceil_mode,
                                          count_include_pad, divisor_override),
    saves=(), samples=_avg_samples(3), torch_ref="torch.nn.functional.avg_pool3d",
)

avg_pool2d_backward = _declare_avg_backward(2)
avg_pool3d_backward = _declare_avg_backward(3)


def _zeros_like(t):
    """A zero gradient for a backward op's `self` (PyTorch gives zeros, not None: the
    result does not depend on self's values)."""
    return full(list(t.shape), 0, dtype=t.dtype)


from .creation import full  # noqa: E402 - derivative rules use it
