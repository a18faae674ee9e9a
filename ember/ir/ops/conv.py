"""Convolution: convolution (aten's generic form), conv1d/2d/3d, conv_transpose1d/2d/3d,
and the backward ops their derivatives call (pooling lives in pooling.py).

Kernels are im2col over numpy stride tricks plus one batched matmul per call; the
adjoint (col2im) loops over kernel offsets only. Convolution derivatives are the
registered ops `convolution_backward_input` / `convolution_backward_weight`; the three
are bilinear adjoints of each other, so each one's derivative is written with the
others and any order of derivative works. Integer inputs convolve exactly (int64
matmul), as PyTorch's CPU kernels do.

Padding may be given as `'same'`/`'valid'` to conv1d/2d/3d; an asymmetric 'same'
padding (even kernels) is passed on internally as `[lo..., hi...]` (2*nd ints), which
every op here accepts. Outputs are channels_last when the input (or, for convolution,
the weight) is, as PyTorch lays them out.
"""
from __future__ import annotations

import math

import numpy as np

from .. import autodiff
from ..errors import DTypeError, ShapeError
from ..meta import TensorMeta, channels_last, contiguous_format, suggest_memory_format
from ..registry import Tag, defop
from . import samples as S
from .rules import device_of, opmath_arrays

CONV = {Tag.LINALG}
_as_strided = np.lib.stride_tricks.as_strided


# --- argument helpers ------------------------------------------------------------------

def _ints(v, n: int, name: str) -> tuple[int, ...]:
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        raise ShapeError(f"{name} must not be empty")
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    v = tuple(int(x) for x in v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise ShapeError(f"expected {name} to be a single integer value or a list of {n} "
                         f"values to match the convolution dimensions, but got {name}={list(v)}")
    return v


def _pads(padding, nd: int) -> tuple[tuple[int, int], ...]:
    """(lo, hi) per spatial dim from an int, nd ints, or 2*nd ints [lo..., hi...]."""
    if isinstance(padding, (list, tuple)) and len(padding) == 2 * nd:
        p = tuple(int(x) for x in padding)
        return tuple(zip(p[:nd], p[nd:]))
    p = _ints(padding, nd, "padding")
    return tuple((x, x) for x in p)


def _flat_pads(pairs) -> list[int]:
    if all(lo == hi for lo, hi in pairs):
        return [lo for lo, _ in pairs]
    return [lo for lo, _ in pairs] + [hi for _, hi in pairs]


def _is_cl(t) -> bool:
    return t is not None and t.ndim == 4 and \
        suggest_memory_format(tuple(t.shape), tuple(t.stride())) is channels_last


def _shape(s) -> str:
    return str(list(s))


# --- geometry and validation -----------------------------------------------------------

def window_count(n: int, k: int, stride: int, pad_lo: int, pad_hi: int, dilation: int,
                 ceil_mode: bool = False) -> int:
    """How many dilated windows of size k fit along a padded dim of size n (the output size
    of conv and pooling; ceil_mode rounds up, pooling then drops a window starting in
    the padding)."""
    span = n + pad_lo + pad_hi - dilation * (k - 1) - 1
    return (span + (stride - 1 if ceil_mode else 0)) // stride + 1


class ConvParams:
    """Normalized convolution arguments for nd spatial dims."""

    def __init__(self, nd, stride, padding, dilation, transposed, output_padding, groups,
                 weight_shape=None):
        self.nd = nd
        self.stride = _ints(stride, nd, "stride")
        self.dilation = _ints(dilation, nd, "dilation")
        if isinstance(padding, str):
            if padding == "valid":
                padding = 0
            elif padding == "same":
                if any(s != 1 for s in self.stride):
                    raise ShapeError("padding='same' is not supported for strided convolutions")
                k = weight_shape[2:]
                total = [d * (n - 1) for d, n in zip(self.dilation, k)]
                padding = [t // 2 for t in total] + [t - t // 2 for t in total]
            else:
                raise ShapeError(f"Invalid padding string: '{padding}' (expected 'same' or "
                                 f"'valid')")
        self.pads = _pads(padding, nd)
        self.transposed = bool(transposed)
        self.output_padding = _ints(output_padding if output_padding is not None else 0, nd,
                                    "output_padding")
        self.groups = int(groups)
        if any(s <= 0 for s in self.stride):
            raise ShapeError(f"non-positive stride is not supported (stride={list(self.stride)})")
        if any(d <= 0 for d in self.dilation):
            raise ShapeError(f"dilation should be greater than zero (dilation="
                             f"{list(self.dilation)})")
        if any(p < 0 for pair in self.pads for p in pair):
            raise ShapeError(f"negative padding is not supported (padding={padding})")
        if self.groups <= 0:
            raise ShapeError(f"non-positive groups is not supported (groups={self.groups})")
        if self.transposed:
            for op, s, d in zip(self.output_padding, self.stride, self.dilation):
                if not (op < s or op < d):
                    raise ShapeError(f"output padding must be smaller than either stride or "
                                     f"dilation, got output_padding={list(self.output_padding)}"
                                     f", stride={list(self.stride)}, dilation="
                                     f"{list(self.dilation)}")

    @property
    def flat_padding(self) -> list[int]:
        return _flat_pads(self.pads)

    def args(self):
        """(stride, padding, dilation, transposed, output_padding, groups) for the ops."""
        return (list(self.stride), self.flat_padding, list(self.dilation), self.transposed,
                list(self.output_padding), self.groups)

    def out_spatial(self, in_spatial, k):
        out = []
        for i, (n, kk) in enumerate(zip(in_spatial, k)):
            lo, hi = self.pads[i]
            s, d = self.stride[i], self.dilation[i]
            if self.transposed:
                out.append((n - 1) * s - lo - hi + d * (kk - 1) + self.output_padding[i] + 1)
            else:
                out.append(window_count(n, kk, s, lo, hi, d))
        return tuple(out)


def _check_conv(input, weight, bias, p: ConvParams, what="conv"):
    nd = p.nd
    if weight.ndim != nd + 2:
        raise ShapeError(f"expected weight to be {nd + 2}-d for {what}, got weight "
                         f"{_shape(weight.shape)} (input {_shape(input.shape)})")
    if input.ndim not in (nd + 1, nd + 2):
        raise ShapeError(f"expected {nd + 1}-d (unbatched) or {nd + 2}-d (batched) input to "
                         f"{what}, got input {_shape(input.shape)} (weight "
                         f"{_shape(weight.shape)})")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != input.dtype:
            raise DTypeError(f"expected input and {name} to have the same dtype, but got input "
                             f"{input.dtype.name} and {name} {t.dtype.name}")
    if input.dtype.name == "bool":
        raise DTypeError(f"expected a floating point, complex or integer input, got "
                         f"{input.dtype.name}")
    batched = input.ndim == nd + 2
    c = input.shape[1 if batched else 0]
    g = p.groups
    if p.transposed:
        need, out_ch = weight.shape[0], weight.shape[1] * g
        if weight.shape[0] % g:
            raise ShapeError(f"expected weight {_shape(weight.shape)} to have in_channels "
                             f"divisible by groups={g}")
    else:
        need, out_ch = weight.shape[1] * g, weight.shape[0]
        if weight.shape[0] % g:
            raise ShapeError(f"expected weight {_shape(weight.shape)} to have out_channels "
                             f"divisible by groups={g} (Given groups={g}, expected weight to "
                             f"be divisible by {g} at dimension 0)")
    if c != need:
        raise ShapeError(f"expected input with {need} channels (weight {_shape(weight.shape)}, "
                         f"groups={g}), got input {_shape(input.shape)}")
    if bias is not None and tuple(bias.shape) != (out_ch,):
        raise ShapeError(f"expected bias of shape [{out_ch}] (weight {_shape(weight.shape)}), "
                         f"got bias {_shape(bias.shape)}")
    spatial = tuple(input.shape[-nd:])
    out = p.out_spatial(spatial, tuple(weight.shape[2:]))
    if any(o <= 0 for o in out):
        padded = [n + lo + hi for n, (lo, hi) in zip(spatial, p.pads)]
        eff = [d * (k - 1) + 1 for d, k in zip(p.dilation, weight.shape[2:])]
        raise ShapeError(f"output size {list(out)} is too small: padded input size per channel "
                         f"{padded}, effective kernel size {eff} (input {_shape(input.shape)}, "
                         f"weight {_shape(weight.shape)})")
    return ((input.shape[0],) if batched else ()) + (out_ch,) + out


def _conv_format(*tensors):
    return channels_last if any(_is_cl(t) for t in tensors) else contiguous_format


# --- numpy kernels -----------------------------------------------------------------------

def _windows(xp, out, k, stride, dil):
    """(N, C, *out, *k) view of a padded (N, C, *spatial) array."""
    st = xp.strides
    nd = len(out)
    shape = xp.shape[:2] + tuple(out) + tuple(k)
    strides = st[:2] + tuple(st[2 + i] * stride[i] for i in range(nd)) + \
        tuple(st[2 + i] * dil[i] for i in range(nd))
    return _as_strided(xp, shape, strides, writeable=False)


def _pad_to(x, pads, out, k, stride, dil):
    """Zero-pad x by pads, growing/cropping the high side to what the windows read."""
    nd = len(out)
    widths = [(0, 0), (0, 0)]
    for i in range(nd):
        lo, hi = pads[i]
        need = (out[i] - 1) * stride[i] + dil[i] * (k[i] - 1) + 1
        widths.append((lo, max(hi, need - lo - x.shape[2 + i], 0)))
    return np.pad(x, widths) if any(w != (0, 0) for w in widths) else x


def _im2col(x, out, k, p_stride, p_pads, p_dil, groups):
    """(G, N*prod(out), Cg*prod(k)) columns."""
    nd = len(out)
    n, c = x.shape[:2]
    xp = _pad_to(x, p_pads, out, k, p_stride, p_dil)
    win = _windows(xp, out, k, p_stride, p_dil).reshape((n, groups, c // groups) + out + k)
    perm = (1, 0) + tuple(range(3, 3 + nd)) + (2,) + tuple(range(3 + nd, 3 + 2 * nd))
    return win.transpose(perm).reshape(groups, n * math.prod(out), (c // groups) * math.prod(k))


def _conv_fwd(x, w, stride, pads, dil, groups):
    nd = w.ndim - 2
    n = x.shape[0]
    f, k = w.shape[0], tuple(w.shape[2:])
    out = tuple(window_count(x.shape[2 + i], k[i], stride[i], *pads[i], dil[i])
                for i in range(nd))
    cols = _im2col(x, out, k, stride, pads, dil, groups)
    wm = w.reshape(groups, f // groups, -1).transpose(0, 2, 1)
    y = np.matmul(cols, wm)                                    # (G, N*O, Fg)
    y = y.reshape((groups, n) + out + (f // groups,))
    perm = (1, 0, nd + 2) + tuple(range(2, 2 + nd))
    return y.transpose(perm).reshape((n, f) + out)


def _conv_bw(g, x, wshape, stride, pads, dil, groups):
    """d<conv(x, w), g>/dw."""
    nd = len(wshape) - 2
    n, f = g.shape[:2]
    out, k = tuple(g.shape[2:]), tuple(wshape[2:])
    cols = _im2col(x, out, k, stride, pads, dil, groups)      # (G, N*O, CgK)
    # sizes spelled out, not -1: NumPy cannot infer one of a zero-size (empty batch) array
    n_out = int(np.prod(out))
    gm = g.reshape(n, groups, f // groups, n_out).transpose(1, 2, 0, 3).reshape(
        groups, f // groups, n * n_out)
    return np.matmul(gm, cols).reshape(tuple(wshape))


def _conv_bi(g, w, xshape, stride, pads, dil, groups):
    """d<conv(x, w), g>/dx (col2im, looping over kernel offsets only)."""
    nd = w.ndim - 2
    n, f = g.shape[:2]
    c, spatial = xshape[1], tuple(xshape[2:])
    out, k = tuple(g.shape[2:]), tuple(w.shape[2:])
    cg, fg = c // groups, f // groups
    n_out = int(np.prod(out))       # not -1: an empty batch has a zero-size g
    gm = g.reshape(n, groups, fg, n_out).transpose(1, 0, 3, 2).reshape(groups, n * n_out, fg)
    dcols = np.matmul(gm, w.reshape(groups, fg, -1))          # (G, N*O, CgK)
    dcols = dcols.reshape((groups, n) + out + (cg,) + k)
    perm = (1, 0, 2 + nd) + tuple(range(2, 2 + nd)) + tuple(range(3 + nd, 3 + 2 * nd))
    dcols = dcols.transpose(perm)                              # (N, G, Cg, *O, *K)
    size = [max(spatial[i] + pads[i][0] + pads[i][1],
                (out[i] - 1) * stride[i] + dil[i] * (k[i] - 1) + 1) for i in range(nd)]
    acc = np.zeros((n, groups, cg) + tuple(size), dtype=dcols.dtype)
    for kidx in np.ndindex(*k):
        sl = tuple(slice(kidx[i] * dil[i], kidx[i] * dil[i] + (out[i] - 1) * stride[i] + 1,
                         stride[i]) for i in range(nd))
        acc[(slice(None),) * 3 + sl] += dcols[(Ellipsis,) + kidx]
    crop = tuple(slice(pads[i][0], pads[i][0] + spatial[i]) for i in range(nd))
    return acc[(Ellipsis,) + crop].reshape((n, c) + spatial)


def _batched(arrays, nd):
    """Add a batch dim to unbatched (C, *spatial) arrays; returns (arrays, was_unbatched)."""
    unbatched = arrays[0].ndim == nd + 1
    if not unbatched:
        return list(arrays), False
    return ([a[None] if a is not None else None for a in arrays], True)


def _conv_reference(nd, transposed_default=None):
    def ref(x, w, b, stride, padding, dilation, transposed, output_padding, groups):
        p = ConvParams(nd, stride, padding, dilation, transposed, output_padding, groups,
                       w.shape)
        x, w, b = opmath_arrays(x, w, b)
        (x,), unb = _batched([x], nd)
        if not p.transposed:
            y = _conv_fwd(x, w, p.stride, p.pads, p.dilation, p.groups)
        else:
            out = p.out_spatial(x.shape[2:], w.shape[2:])
            y = _conv_bi(x, w, (x.shape[0], w.shape[1] * p.groups) + out, p.stride, p.pads,
                         p.dilation, p.groups)
        if b is not None:
            y = y + b.reshape((1, -1) + (1,) * nd)
        return y[0] if unb else y
    return ref


def _bias_grad(g, input, nd):
    dims = [0] + list(range(2, 2 + nd)) if input.ndim == nd + 2 else list(range(1, 1 + nd))
    return sum(g, dims)


# --- the generic convolution and its backward ops ----------------------------------------

def _convolution_meta(input, weight, bias, stride, padding, dilation, transposed,
                      output_padding, groups):
    nd = weight.ndim - 2 if weight.ndim >= 3 else 1
    p = ConvParams(nd, stride, padding, dilation, transposed, output_padding, groups,
                   tuple(weight.shape))
    shape = _check_conv(input, weight, bias, p, "convolution")
    return TensorMeta(shape, input.dtype, device_of([input]),
                      _conv_format(input, weight) if len(shape) == 4 else contiguous_format)


def _convolution_ref(x, w, b, stride, padding, dilation, transposed, output_padding, groups):
    return _conv_reference(w.ndim - 2)(x, w, b, stride, padding, dilation, transposed,
                                       output_padding, groups)


def _conv_grads(g, input, weight, bias, nd, p: ConvParams):
    args = p.args()
    # complex: the adjoint of x -> conv(x, w) is the correlation with conj(w) (and vice versa)
    # the eager tape says which inputs need a gradient (an image batch needs none)
    mask = autodiff.take_input_mask() or (True, True)
    gi = convolution_backward_input(g, _c(weight), list(input.shape), *args) \
        if mask[0] else None
    gw = convolution_backward_weight(g, _c(input), list(weight.shape), *args) \
        if mask[1] else None
    return gi, gw, (_bias_grad(g, input, nd) if bias is not None else None)


def _conv_samples(rng, transposed=False):
    r = S.randn
    if not transposed:
        return [S.Sample((r(rng, 2, 3, 6, 5), r(rng, 4, 3, 3, 3), r(rng, 4), [1, 1], [1, 1],
                          [1, 1], False, [0, 0], 1)),
                S.Sample((r(rng, 2, 4, 7, 6), r(rng, 4, 2, 3, 2), None, [2, 1], [1, 0],
                          [1, 2], False, [0, 0], 2)),
                S.Sample((r(rng, 2, 2, 7), r(rng, 3, 2, 3), r(rng, 3), [2], [1], [1], False,
                          [0], 1))]
    return [S.Sample((r(rng, 2, 4, 4, 3), r(rng, 4, 3, 3, 3), r(rng, 3), [2, 1], [1, 1],
                      [1, 1], True, [1, 0], 1)),
            S.Sample((r(rng, 1, 4, 3, 4), r(rng, 4, 1, 2, 3), None, [1, 2], [0, 1], [2, 1],
                      True, [0, 1], 2))]


convolution = defop(
    "convolution(Tensor input, Tensor weight, Tensor? bias, int[] stride, int[] padding, "
    "int[] dilation, bool transposed, int[] output_padding, int groups) -> Tensor",
    meta=_convolution_meta, reference=_convolution_ref,
    derivative=lambda g, input, weight, bias, stride, padding, dilation, transposed,
    output_padding, groups: _conv_grads(
        g, input, weight, bias, weight.ndim - 2,
        ConvParams(weight.ndim - 2, stride, padding, dilation, transposed, output_padding,
                   groups)),
    tags=CONV, samples=lambda rng: _conv_samples(rng) + _conv_samples(rng, True)[:1],
    torch_ref="torch.convolution", tol={"fwd": dict(rtol=1e-4, atol=1e-5)},
    doc="aten::convolution: the generic N-d (transposed) convolution every conv op shares.",
)


def _bwd_params(weight_shape, stride, padding, dilation, transposed, output_padding, groups):
    return ConvParams(len(weight_shape) - 2, stride, padding, dilation, transposed,
                      output_padding, groups)


def _bwd_meta(grad_output, x, w, p, opname, result, layout_partner):
    """Meta of a conv gradient (`result` is the input's or the weight's meta): the forward
    conv of x and w must give grad_output's shape; the layout follows grad_output and
    `layout_partner` as the forward conv's does."""
    want = _check_conv(x, w, None, p, opname)
    if tuple(want) != tuple(grad_output.shape):
        raise ShapeError(f"grad_output {_shape(grad_output.shape)} does not match the "
                         f"convolution output {list(want)} for input {_shape(x.shape)} and "
                         f"weight {_shape(w.shape)}")
    shape = tuple(result.shape)
    return TensorMeta(shape, grad_output.dtype, device_of([grad_output]),
                      _conv_format(grad_output, layout_partner) if len(shape) == 4 else
                      contiguous_format)


def _bwd_input_meta(grad_output, weight, input_size, stride, padding, dilation, transposed,
                    output_padding, groups):
    p = _bwd_params(tuple(weight.shape), stride, padding, dilation, transposed,
                    output_padding, groups)
    fake = TensorMeta(tuple(input_size), grad_output.dtype)
    return _bwd_meta(grad_output, fake, weight, p, "convolution_backward_input", fake, weight)


def _bwd_input_ref(g, w, input_size, stride, padding, dilation, transposed, output_padding,
                   groups):
    nd = w.ndim - 2
    p = _bwd_params(w.shape, stride, padding, dilation, transposed, output_padding, groups)
    g, w = opmath_arrays(g, w)
    (g,), unb = _batched([g], nd)
    xshape = ((1,) if unb else ()) + tuple(input_size)
    if not p.transposed:
        out = _conv_bi(g, w, xshape, p.stride, p.pads, p.dilation, p.groups)
    else:
        out = _conv_fwd(g, w, p.stride, p.pads, p.dilation, p.groups)
        out = out[(Ellipsis,) + tuple(slice(0, n) for n in xshape[2:])]
    return out[0] if unb else out


def _bwd_input_grad(g, grad_output, weight, input_size, stride, padding, dilation, transposed,
                    output_padding, groups):
    args = (stride, padding, dilation, transposed, output_padding, groups)
    return (convolution(g, weight, None, *args),
            convolution_backward_weight(grad_output, g, list(weight.shape), *args))


def _aten_conv_backward(which):
    def make(torch):
        def call(grad_output, other, size, stride, padding, dilation, transposed,
                 output_padding, groups):
            dummy = torch.zeros(size, dtype=grad_output.dtype)
            if which == 0:
                args = (grad_output, dummy, other)
            else:
                args = (grad_output, other, dummy)
            mask = [which == 0, which == 1, False]
            return torch.ops.aten.convolution_backward(
                *args, None, stride, padding, dilation, transposed, output_padding, groups,
                mask)[which]
        return call
    return make


def _bwd_samples(rng, which):
    out = []
    for s in _conv_samples(rng) + _conv_samples(rng, True):
        x, w = s.args[0], s.args[1]
        rest = s.args[3:]
        import numpy as _np
        y = _convolution_ref(x.astype(_np.float64), w.astype(_np.float64), None, *rest)
        g = S.randn(rng, *y.shape)
        if which == 0:
            out.append(S.Sample((g, w, list(x.shape)) + tuple(rest)))
        else:
            out.append(S.Sample((g, x, list(w.shape)) + tuple(rest)))
    return out


convolution_backward_input = defop(
    "convolution_backward_input(Tensor grad_output, Tensor weight, int[] input_size, "
    "int[] stride, int[] padding, int[] dilation, bool transposed, int[] output_padding, "
    "int groups) -> Tensor",
    meta=_bwd_input_meta, reference=_bwd_input_ref, derivative=_bwd_input_grad,
    tags=CONV, samples=lambda rng: _bwd_samples(rng, 0), torch_ref=_aten_conv_backward(0),
    tol={"fwd": dict(rtol=1e-4, atol=1e-5)},
    doc="The gradient of convolution w.r.t. its input (aten::convolution_backward's first "
        "output): a transposed convolution of grad_output.",
)


def _bwd_weight_meta(grad_output, input, weight_size, stride, padding, dilation, transposed,
                     output_padding, groups):
    p = _bwd_params(tuple(weight_size), stride, padding, dilation, transposed, output_padding,
                    groups)
    fake = TensorMeta(tuple(weight_size), grad_output.dtype)
    return _bwd_meta(grad_output, input, fake, p, "convolution_backward_weight", fake, input)


def _bwd_weight_ref(g, x, weight_size, stride, padding, dilation, transposed, output_padding,
                    groups):
    nd = len(weight_size) - 2
    p = _bwd_params(tuple(weight_size), stride, padding, dilation, transposed, output_padding,
                    groups)
    g, x = opmath_arrays(g, x)
    (g, x), _ = _batched([g, x], nd)
    if not p.transposed:
        return _conv_bw(g, x, tuple(weight_size), p.stride, p.pads, p.dilation, p.groups)
    return _conv_bw(x, g, tuple(weight_size), p.stride, p.pads, p.dilation, p.groups)


def _bwd_weight_grad(g, grad_output, input, weight_size, stride, padding, dilation,
                     transposed, output_padding, groups):
    args = (stride, padding, dilation, transposed, output_padding, groups)
    return (convolution(input, g, None, *args),
            convolution_backward_input(grad_output, g, list(input.shape), *args))


convolution_backward_weight = defop(
    "convolution_backward_weight(Tensor grad_output, Tensor input, int[] weight_size, "
    "int[] stride, int[] padding, int[] dilation, bool transposed, int[] output_padding, "
    "int groups) -> Tensor",
    meta=_bwd_weight_meta, reference=_bwd_weight_ref, derivative=_bwd_weight_grad,
    tags=CONV, samples=lambda rng: _bwd_samples(rng, 1), torch_ref=_aten_conv_backward(1),
    tol={"fwd": dict(rtol=1e-4, atol=1e-4)},
    doc="The gradient of convolution w.r.t. its weight (aten::convolution_backward's second "
        "output): a correlation of input with grad_output.",
)


# --- conv1d / conv2d / conv_transpose{1,2}d ------------------------------------------------

def _convnd(nd, name):
    def meta(input, weight, bias, stride, padding, dilation, groups):
        p = ConvParams(nd, stride, padding, dilation, False, 0, groups, tuple(weight.shape))
        shape = _check_conv(input, weight, bias, p, name)
        return TensorMeta(shape, input.dtype, device_of([input]),
                          _conv_format(input, weight) if len(shape) == 4 else contiguous_format)

    def ref(x, w, b, stride, padding, dilation, groups):
        return _conv_reference(nd)(x, w, b, stride, padding, dilation, False, 0, groups)

    def grad(g, input, weight, bias, stride, padding, dilation, groups):
        p = ConvParams(nd, stride, padding, dilation, False, 0, groups, tuple(weight.shape))
        return _conv_grads(g, input, weight, bias, nd, p)
    return meta, ref, grad


def _conv2d_samples(rng):
    r = S.randn
    return [S.Sample((r(rng, 2, 3, 6, 5), r(rng, 4, 3, 3, 3), r(rng, 4)), {"padding": 1}),
            S.Sample((r(rng, 1, 4, 7, 6), r(rng, 6, 2, 3, 2)),
                     {"stride": 2, "dilation": [1, 2], "groups": 2}),
            S.Sample((r(rng, 3, 5, 5), r(rng, 2, 3, 2, 2), r(rng, 2)), {"padding": "same"}),
            S.Sample((r(rng, 2, 3, 5, 6), r(rng, 2, 3, 3, 3)), {"padding": "valid"}),
            S.Sample((r(rng, 1, 2, 6, 6), r(rng, 2, 2, 3, 3)),
                     {"padding": "same", "dilation": 2})]


def _conv1d_samples(rng):
    r = S.randn
    return [S.Sample((r(rng, 2, 3, 8), r(rng, 4, 3, 3), r(rng, 4)), {"padding": 1}),
            S.Sample((r(rng, 2, 4, 9), r(rng, 4, 2, 2)), {"stride": 2, "groups": 2,
                                                          "dilation": 2}),
            S.Sample((r(rng, 3, 7), r(rng, 2, 3, 4)), {"padding": "same"})]


_m, _r, _g = _convnd(2, "conv2d")
conv2d = defop(
    "conv2d(Tensor input, Tensor weight, Tensor? bias=None, int[2] stride=1, "
    "int[2] padding=0, int[2] dilation=1, int groups=1) -> Tensor",
    meta=_m, reference=_r, derivative=_g, tags=CONV, samples=_conv2d_samples,
    torch_ref="torch.nn.functional.conv2d", tol={"fwd": dict(rtol=1e-4, atol=1e-5)},
    doc="padding may also be 'same' or 'valid'.",
)

_m, _r, _g = _convnd(1, "conv1d")
conv1d = defop(
    "conv1d(Tensor input, Tensor weight, Tensor? bias=None, int[1] stride=1, "
    "int[1] padding=0, int[1] dilation=1, int groups=1) -> Tensor",
    meta=_m, reference=_r, derivative=_g, tags=CONV, samples=_conv1d_samples,
    torch_ref="torch.nn.functional.conv1d", tol={"fwd": dict(rtol=1e-4, atol=1e-5)},
    doc="padding may also be 'same' or 'valid'.",
)


def _conv_transposend(nd, name):
    def params(stride, padding, output_padding, groups, dilation):
        return ConvParams(nd, stride, padding, dilation, True, output_padding, groups)

    def meta(input, weight, bias, stride, padding, output_padding, groups, dilation):
        p = params(stride, padding, output_padding, groups, dilation)
        shape = _check_conv(input, weight, bias, p, name)
        return TensorMeta(shape, input.dtype, device_of([input]),
                          _conv_format(input, weight) if len(shape) == 4 else contiguous_format)

    def ref(x, w, b, stride, padding, output_padding, groups, dilation):
        return _conv_reference(nd)(x, w, b, stride, padding, dilation, True, output_padding,
                                   groups)

    def grad(g, input, weight, bias, stride, padding, output_padding, groups, dilation):
        p = params(stride, padding, output_padding, groups, dilation)
        return _conv_grads(g, input, weight, bias, nd, p)
    return meta, ref, grad


_m, _r, _g = _conv_transposend(2, "conv_transpose2d")
conv_transpose2d = defop(
    "conv_transpose2d(Tensor input, Tensor weight, Tensor? bias=None, int[2] stride=1, "
    "int[2] padding=0, int[2] output_padding=0, int groups=1, int[2] dilation=1) -> Tensor",
    meta=_m, reference=_r, derivative=_g, tags=CONV,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 2, 4, 4, 3), S.randn(rng, 4, 3, 3, 3), S.randn(rng, 3)),
                 {"stride": 2, "padding": 1, "output_padding": 1}),
        S.Sample((S.randn(rng, 1, 4, 3, 4), S.randn(rng, 4, 1, 2, 3)),
                 {"stride": [1, 2], "padding": [0, 1], "groups": 2, "dilation": [2, 1]}),
        S.Sample((S.randn(rng, 2, 3, 3), S.randn(rng, 2, 2, 3, 3)), {})],
    torch_ref="torch.nn.functional.conv_transpose2d", tol={"fwd": dict(rtol=1e-4, atol=1e-5)},
)

_m, _r, _g = _conv_transposend(1, "conv_transpose1d")
conv_transpose1d = defop(
    "conv_transpose1d(Tensor input, Tensor weight, Tensor? bias=None, int[1] stride=1, "
    "int[1] padding=0, int[1] output_padding=0, int groups=1, int[1] dilation=1) -> Tensor",
    meta=_m, reference=_r, derivative=_g, tags=CONV,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 2, 4, 5), S.randn(rng, 4, 3, 3), S.randn(rng, 3)),
                 {"stride": 2, "padding": 1, "output_padding": 1})],
    torch_ref="torch.nn.functional.conv_transpose1d", tol={"fwd": dict(rtol=1e-4, atol=1e-5)},
)


_m, _r, _g = _convnd(3, "conv3d")
conv3d = defop(
    "conv3d(Tensor input, Tensor weight, Tensor? bias=None, int[3] stride=1, "
    "int[3] padding=0, int[3] dilation=1, int groups=1) -> Tensor",
    meta=_m, reference=_r, derivative=_g, tags=CONV,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 1, 2, 4, 3, 5), S.randn(rng, 3, 2, 2, 2, 3), S.randn(rng, 3)),
                 {"padding": [1, 0, 1]}),
        S.Sample((S.randn(rng, 4, 5, 4, 4), S.randn(rng, 2, 2, 3, 1, 2)),
                 {"stride": [2, 1, 1], "dilation": [1, 2, 1], "groups": 2}),
        S.Sample((S.randn(rng, 1, 2, 3, 4, 3), S.randn(rng, 2, 2, 2, 3, 2)),
                 {"padding": "same"}),
        S.Sample((S.int_array(rng, 1, 2, 3, 3, 3), S.int_array(rng, 2, 2, 2, 2, 2)),
                 {"stride": 2})],
    torch_ref="torch.nn.functional.conv3d", tol={"fwd": dict(rtol=1e-4, atol=1e-5)},
    doc="padding may also be 'same' or 'valid'.",
)

_m, _r, _g = _conv_transposend(3, "conv_transpose3d")
conv_transpose3d = defop(
    "conv_transpose3d(Tensor input, Tensor weight, Tensor? bias=None, int[3] stride=1, "
    "int[3] padding=0, int[3] output_padding=0, int groups=1, int[3] dilation=1) -> Tensor",
    meta=_m, reference=_r, derivative=_g, tags=CONV,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 1, 2, 3, 2, 3), S.randn(rng, 2, 3, 2, 3, 2), S.randn(rng, 3)),
                 {"stride": [2, 1, 2], "padding": [1, 0, 0], "output_padding": [1, 0, 1]}),
        S.Sample((S.randn(rng, 4, 2, 3, 2), S.randn(rng, 4, 1, 2, 2, 2)),
                 {"groups": 2, "dilation": [1, 2, 1]})],
    torch_ref="torch.nn.functional.conv_transpose3d", tol={"fwd": dict(rtol=1e-4, atol=1e-5)},
)


from .reduction import sum  # noqa: E402,A001
from .pointwise import _c  # noqa: E402
