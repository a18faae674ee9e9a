"""Resampling (F.interpolate's kernels), under aten's names: upsample_nearest{1,2,3}d,
_upsample_nearest_exact{1,2,3}d, upsample_linear1d, upsample_bilinear2d,
upsample_trilinear3d, upsample_bicubic2d, _upsample_bilinear2d_aa,
_upsample_bicubic2d_aa, and each one's `_backward`.

Every mode is separable and linear: along each spatial dim the output is a fixed
(out, in) weight matrix times the input. `weights(mode, n_in, n_out, align_corners,
scale)` builds that matrix from PyTorch's source-index rules; the kernel applies it as
taps (each output reads the few inputs its row weights), so the cost is O(out * taps),
and the backward applies the transposed taps. Each op's derivative is its backward op
and the backward's is the forward, so every order of derivative works.

The index rules, as PyTorch computes them:
- nearest: src = floor(dst * scale) in float32; nearest-exact: floor((dst + 0.5) * scale);
- linear: src = (dst + 0.5) * scale - 0.5 clamped at 0 (align_corners: dst * scale),
  blending floor(src) and the next input;
- bicubic: the same src unclamped, four taps around floor(src) clamped to the border,
  cubic convolution with A = -0.75;
- antialias (PIL's filters): each output averages the inputs within `support` of its
  center scale * (dst + 0.5), weighted by a triangle (bilinear) or a cubic with
  A = -0.5 (bicubic) stretched by the downscale factor, and normalized;
where scale = 1 / scale_factor when given, else in / out (align_corners:
(in - 1) / (out - 1)). A dim whose size does not change is copied in the linear and
antialiased modes and in 2-d nearest (PyTorch skips it whatever the scale), and 2-d
nearest maps an exact doubling to dst // 2; 1-d/3-d nearest, nearest-exact and bicubic
always use the formula.

Gradients are the exact adjoints of these forwards. PyTorch's own backward kernels
take the shortcuts above in some cases where their forwards do not (1-d/3-d nearest
with a doubling or unchanged size, bicubic with an unchanged size, each only when a
scale disagreeing with the sizes is passed), so there its gradient is not the adjoint
of its forward; ember's is.
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, ShapeError
from ..meta import TensorMeta
from ..registry import defop
from . import samples as S
from .conv import _shape
from .pooling import pool_layout
from .rules import device_of, opmath_arrays

# mode -> (aten name pattern, takes align_corners, dims it exists for)
MODES = {
    "nearest": ("upsample_nearest{nd}d", False, (1, 2, 3)),
    "nearest-exact": ("_upsample_nearest_exact{nd}d", False, (1, 2, 3)),
    "linear": ("upsample_linear1d", True, (1,)),
    "bilinear": ("upsample_bilinear2d", True, (2,)),
    "trilinear": ("upsample_trilinear3d", True, (3,)),
    "bicubic": ("upsample_bicubic2d", True, (2,)),
    "bilinear-aa": ("_upsample_bilinear2d_aa", True, (2,)),
    "bicubic-aa": ("_upsample_bicubic2d_aa", True, (2,)),
}
_SKIPS_SAME_SIZE = {"linear", "bilinear", "trilinear", "bilinear-aa", "bicubic-aa"}
_SCALE_NAMES = {1: ("scales",), 2: ("scales_h", "scales_w"), 3: ("scales_d", "scales_h",
                                                                   "scales_w")}


# --- weight matrices ----------------------------------------------------------------------

def _scale(n_in, n_out, align_corners, scale):
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else n_in / n_out


def _nearest(n_in, n_out, scale, exact):
    s = np.float32(1.0 / scale if scale is not None and scale > 0 else n_in / n_out)
    dst = np.arange(n_out, dtype=np.float32) + np.float32(0.5 if exact else 0.0)
    src = np.minimum(np.floor(dst * s).astype(np.int64), n_in - 1)
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), src] = 1.0
    return m


def _linear(n_in, n_out, align_corners, scale):
    s = _scale(n_in, n_out, align_corners, scale)
    dst = np.arange(n_out, dtype=np.float64)
    src = dst * s if align_corners else np.maximum((dst + 0.5) * s - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0), 1.0 - frac)
    np.add.at(m, (rows, i1), frac)
    return m


def _cubic_kernel(t, a):
    """Keys' cubic convolution kernel with parameter a, at distances t."""
    t = np.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _bicubic(n_in, n_out, align_corners, scale):
    s = _scale(n_in, n_out, align_corners, scale)
    dst = np.arange(n_out, dtype=np.float64)
    src = dst * s if align_corners else (dst + 0.5) * s - 0.5
    base = np.floor(src)
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    for k in range(-1, 3):
        idx = np.clip(base.astype(np.int64) + k, 0, n_in - 1)
        np.add.at(m, (rows, idx), _cubic_kernel(src - base - k, -0.75))
    return m


def _antialiased(n_in, n_out, align_corners, scale, cubic):
    s = _scale(n_in, n_out, align_corners, scale)
    width = 4 if cubic else 2
    support = width / 2 * s if s >= 1 else width / 2
    stretch = 1 / s if s >= 1 else 1.0
    center = s * (np.arange(n_out) + 0.5)
    lo = np.maximum((center - support + 0.5).astype(np.int64), 0)     # int(): toward zero
    hi = np.minimum((center + support + 0.5).astype(np.int64), n_in)
    cols = np.arange(n_in)
    inside = (cols >= lo[:, None]) & (cols < hi[:, None])
    distance = (cols[None, :] - center[:, None] + 0.5) * stretch
    w = _cubic_kernel(distance, -0.5) if cubic else np.maximum(0.0, 1 - np.abs(distance))
    w = np.where(inside, w, 0.0)
    total = w.sum(axis=1, keepdims=True)
    return np.divide(w, total, out=np.zeros_like(w), where=total != 0)


def weights(mode, n_in, n_out, align_corners, scale, nd=2):
    """The (n_out, n_in) matrix `mode` applies along one dim of an nd-d resampling."""
    two_d_nearest = mode == "nearest" and nd == 2
    if n_in == n_out and (mode in _SKIPS_SAME_SIZE or two_d_nearest):
        return np.eye(n_in)
    if n_out == 2 * n_in and two_d_nearest:
        return _nearest(n_in, n_out, 2.0, False)
    if mode in ("nearest", "nearest-exact"):
        return _nearest(n_in, n_out, scale, mode == "nearest-exact")
    if mode in ("linear", "bilinear", "trilinear"):
        return _linear(n_in, n_out, align_corners, scale)
    if mode == "bicubic":
        return _bicubic(n_in, n_out, align_corners, scale)
    return _antialiased(n_in, n_out, align_corners, scale, mode == "bicubic-aa")


# --- applying them ------------------------------------------------------------------------

def _taps(m):
    """(index, weight), each (n_out, T): the nonzero columns of each row (zero-padded)."""
    nonzero = m != 0
    t = max(int(nonzero.sum(axis=1).max(initial=0)), 1)
    index = np.argsort(~nonzero, axis=1, kind="stable")[:, :t]
    return index, np.take_along_axis(m, index, axis=1)


def apply_taps(x, mats, transpose=False):
    """x with mats[i] (or its transpose) applied along each of its last len(mats) dims."""
    nd = len(mats)
    for i, m in enumerate(mats):
        m = m.T if transpose else m
        if m.shape[0] == m.shape[1] and np.array_equal(m, np.eye(len(m))):
            continue
        axis = x.ndim - nd + i
        index, w = _taps(m)
        if index.shape[1] == 1 and np.all(w == 1):      # a pure gather: exact for any dtype
            x = np.take(x, index[:, 0], axis=axis)
            continue
        shape = [1] * x.ndim
        shape[axis] = len(m)
        out = np.zeros(x.shape[:axis] + (len(m),) + x.shape[axis + 1:], x.dtype)
        for t in range(index.shape[1]):
            out += np.take(x, index[:, t], axis=axis) * w[:, t].astype(x.dtype).reshape(shape)
        x = out
    return x


# --- the ops ------------------------------------------------------------------------------

def _split(mode, nd, rest):
    """(align_corners, scales) from the arguments after output_size."""
    if MODES[mode][1]:
        return bool(rest[0]), list(rest[1:1 + nd])
    return False, list(rest[:nd])


def _check(mode, nd, name, self_shape, output_size):
    if len(self_shape) != nd + 2:
        raise ShapeError(f"It is expected input_size equals to {nd + 2}, but got size "
                         f"{len(self_shape)} (input {_shape(self_shape)})")
    size = [int(v) for v in output_size]
    if len(size) != nd:
        raise ShapeError(f"It is expected output_size equals to {nd}, but got size {len(size)}")
    if any(n <= 0 for n in self_shape[2:]) or any(o <= 0 for o in size):
        raise ShapeError(f"Input and output sizes should be greater than 0, but got input "
                         f"({', '.join(map(str, self_shape[2:]))}) and output "
                         f"({', '.join(map(str, size))})")
    return size


def _matrices(mode, in_sizes, out_sizes, align_corners, scales):
    return [weights(mode, n, o, align_corners, s, len(scales)) for n, o, s in
            zip(in_sizes, out_sizes, scales)]


def _compute(x, mode, name):
    """x in the dtype the weights apply in (integers only gather, in the nearest modes)."""
    if x.dtype.kind in "iub":
        if not mode.startswith("nearest"):
            raise DTypeError(f"{name}: integer inputs are supported in the nearest modes only "
                             f"(PyTorch's uint8 {mode} kernels round in fixed point)")
        return x
    return opmath_arrays(x)[0]


def _declare(mode, nd):
    name = MODES[mode][0].format(nd=nd)
    align = MODES[mode][1]
    ints = f"int[{nd}]"
    scales = ", ".join(f"float? {s}=None" for s in _SCALE_NAMES[nd])
    align_arg = "bool align_corners, " if align else ""

    def meta(self, output_size, *rest):
        size = _check(mode, nd, name, tuple(self.shape), output_size)
        if self.dtype.name == "bool" or self.dtype.is_complex:
            raise DTypeError(f"\"{name}\" not implemented for '{self.dtype.name}'")
        return TensorMeta(tuple(self.shape[:2]) + tuple(size), self.dtype, device_of([self]),
                          pool_layout(self))

    def ref(x, output_size, *rest):
        size = _check(mode, nd, name, x.shape, output_size)
        align_corners, scale_list = _split(mode, nd, rest)
        mats = _matrices(mode, x.shape[2:], size, align_corners, scale_list)
        return apply_taps(_compute(x, mode, name), mats)

    def bwd_meta(grad_output, output_size, input_size, *rest):
        size = _check(mode, nd, name, tuple(input_size), output_size)
        want = tuple(input_size[:2]) + tuple(size)
        if tuple(grad_output.shape) != want:
            raise ShapeError(f"Expected grad_output to have the shape {list(want)}, but got "
                             f"{_shape(grad_output.shape)}")
        return TensorMeta(tuple(input_size), grad_output.dtype, device_of([grad_output]))

    def bwd_ref(g, output_size, input_size, *rest):
        align_corners, scale_list = _split(mode, nd, rest)
        mats = _matrices(mode, input_size[2:], output_size, align_corners, scale_list)
        return apply_taps(opmath_arrays(g)[0], mats, transpose=True)

    forward = backward = None

    def grad(g, self, output_size, **rest):
        return backward(g, output_size, list(self.shape), **rest)

    def bwd_grad(g, grad_output, output_size, input_size, **rest):
        return forward(g, output_size, **rest)

    samples = _samples(mode, nd)
    forward = defop(
        f"{name}(Tensor self, {ints} output_size, {align_arg}{scales}) -> Tensor",
        meta=meta, reference=ref, derivative=grad, saves=(), samples=samples,
        torch_ref=f"torch.ops.aten.{name}",
        doc=f"F.interpolate(mode={mode.replace('-aa', '')!r}"
            f"{', antialias=True' if mode.endswith('-aa') else ''}) on {nd + 2}-d input.",
    )
    backward = defop(
        f"{name}_backward(Tensor grad_output, {ints} output_size, int[{nd + 2}] input_size, "
        f"{align_arg}{scales}) -> Tensor",
        meta=bwd_meta, reference=bwd_ref, derivative=bwd_grad, saves=(),
        samples=lambda rng: [_backward_sample(rng, s, ref) for s in samples(rng)],
        torch_ref=f"torch.ops.aten.{name}_backward",
        doc=f"The adjoint of {name}: its transposed weights applied to grad_output.",
    )
    return forward, backward


def _samples(mode, nd):
    """Up- and downsampling, by size and by scale, with and without align_corners."""
    align = MODES[mode][1]

    def gen(rng):
        spatial_in = [(7,), (5, 4), (3, 4, 3)][nd - 1]
        up = [(12,), (9, 7), (5, 6, 4)][nd - 1]
        down = [(3,), (2, 3), (2, 3, 2)][nd - 1]
        x = S.randn(rng, 2, 3, *spatial_in)
        scales = [None] * nd
        odd_scales = [1.7, 0.6, 2.4][:nd]     # no doubling: see the module docstring
        scaled = tuple(int(n * s) for n, s in zip(spatial_in, odd_scales))
        if align:
            return [S.Sample((x, list(up), False, *scales)),
                    S.Sample((x, list(down), True, *scales)),
                    S.Sample((S.randn(rng, 1, 2, *spatial_in), list(scaled), False,
                              *odd_scales))]
        return [S.Sample((x, list(up), *scales)),
                S.Sample((S.randn(rng, 1, 2, *spatial_in), list(scaled), *odd_scales)),
                S.Sample((x, list(down), *scales))]
    return gen


def _backward_sample(rng, s, ref):
    x, size, rest = s.args[0], s.args[1], s.args[2:]
    y = ref(x.astype(np.float64), size, *rest)
    return S.Sample((S.randn(rng, *y.shape), size, list(x.shape), *rest))


OPS_BY_MODE = {}
for _mode, (_pattern, _align, _dims) in MODES.items():
    for _nd in _dims:
        _fwd, _bwd = _declare(_mode, _nd)
        OPS_BY_MODE[(_mode, _nd)] = _fwd
        globals()[_fwd.name] = _fwd
        globals()[_bwd.name] = _bwd
