"""Normalization: softmax, log_softmax, layer_norm, batch_norm, group_norm.

References are numerically stable (max-subtracted softmax, log-sum-exp) and compute
half types in float32. Derivatives recompute the statistics with ember ops, so they
are themselves differentiable (second derivatives, the graph autograd pass).

batch_norm and running statistics: every op here is a pure function, so graphs
never see hidden mutation.

- `batch_norm` (F.batch_norm's argument order, namespace nn.functional) normalizes
  with batch statistics when `training` is true and with `running_mean`/`running_var`
  otherwise. It never writes the running buffers.
- `_batch_norm_running_stat(self, input, momentum, is_var)` is the pure running-
  statistics update: `(1 - momentum) * self + momentum * batch_stat`, where the batch
  statistic is the per-channel mean, or the *unbiased* variance when `is_var` (as
  PyTorch). Its generated in-place variant `_batch_norm_running_stat_` writes into
  the buffer; a graph pass can keep the functional form and copy back.
- `batch_norm_with_update(...)` is the thin wrapper with PyTorch's F.batch_norm
  semantics (it updates the running buffers in place in training mode); the frontend's
  `nn.functional.batch_norm` and `nn.BatchNorm*d` should call it.

In evaluation mode ember differentiates through `running_mean`/`running_var` (PyTorch
refuses, saying they are not differentiable); buffers rarely require grad, so this
only matters to someone who asks for it. Output memory formats follow PyTorch:
batch_norm and group_norm keep channels_last, layer_norm/softmax return contiguous.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..meta import TensorMeta, contiguous_format
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S
from .rules import pointwise_memory_format, wrap_dim

NN = "nn.functional"


def up(x: np.ndarray) -> np.ndarray:
    """Half types computed in float32 (PyTorch's opmath)."""
    dt = x.dtype               # (str(dtype) costs ~1 us: asked only of 1- and 2-byte types)
    if dt.itemsize < 4 and (dt.kind == "f" or str(dt) == "bfloat16"):
        return x.astype(np.float32)
    return x


def _row_max(x, axis):
    """max over `axis` (keepdims); -inf over an empty axis, where softmax is empty too."""
    return np.maximum.reduce(x, axis=axis, keepdims=True, initial=-np.inf)   # np.max, unwrapped


def np_softmax(x, axis):
    m = _row_max(x, axis)
    m = np.where(np.isfinite(m), m, 0)
    # in place on the one fresh full-size array: the same values as exp(x - m) / sum,
    # without two more full-size allocations (page faults on large inputs)
    e = np.subtract(x, m)
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=axis, keepdims=True)     # np.sum without its wrapper
    return e


def np_log_softmax(x, axis):
    m = _row_max(x, axis)
    m = np.where(np.isfinite(m), m, 0)
    shifted = np.subtract(x, m)
    shifted -= np.log(np.add.reduce(np.exp(shifted), axis=axis, keepdims=True))
    return shifted


# --- softmax / log_softmax --------------------------------------------------------------

def _softmax_meta(self, dim, dtype=None):
    wrap_dim(dim, self.ndim)
    out = dtypes.as_dtype(dtype) if dtype is not None else self.dtype
    if not (out.is_floating_point or out.is_complex):
        raise DTypeError(f"softmax is not implemented for {out.name}; pass dtype=float32")
    return TensorMeta(tuple(self.shape), out, str(self.device), contiguous_format)


def _softmax_ref(log):
    def ref(x, dim, dtype=None):
        if dtype is not None:
            x = x.astype(dtype.np_dtype)
        x = up(x)
        if x.ndim == 0:
            return x - x if log else np.exp(x - x)
        axis = wrap_dim(dim, x.ndim)
        return np_log_softmax(x, axis) if log else np_softmax(x, axis)
    return ref


SOFTMAX_SAMPLES = lambda rng: [  # noqa: E731 - a table entry
    S.Sample((S.randn(rng, 3, 5), 1)),
    S.Sample((S.randn(rng, 3, 5), 0)),
    S.Sample((S.randn(rng, 2, 3, 4), -1)),
    S.Sample((S.randn(rng, 5) * 30, 0)),
    S.Sample((S.randn(rng), 0)),
    S.Sample((S.randn(rng, 2, 3, 2, 2), 1)),
    S.Sample((S.randn(rng, 2, 3), 1), {"dtype": "float64"}),
]

softmax = defop(
    "softmax(Tensor self, int dim, ScalarType? dtype=None) -> Tensor",
    meta=_softmax_meta, reference=_softmax_ref(False),
    derivative=lambda g, self, dim, dtype, out: _softmax_backward(g, out, dim),
    tags={Tag.COMPOSITE}, saves=(), samples=SOFTMAX_SAMPLES, torch_ref="torch.softmax",
    method=True,
    decomposition=lambda self, dim, dtype=None: _softmax_decomposition(self, dim, dtype),
)


def _softmax_backward(g, out, dim):
    gy = g * out
    return gy - out * R.sum(gy, [dim], True)


def _empty_dim(x, dim) -> bool:
    """A softmax over a size-0 dim is empty (amax over it would be an error)."""
    return x.ndim > 0 and x.shape[dim] == 0


def _softmax_decomposition(x, dim, dtype=None):
    if dtype is not None:
        x = PW.convert_element_type(x, dtype)
    if _empty_dim(x, dim):
        return PW.exp(x)
    e = PW.exp(x - R.amax(x, [dim], True))
    return e / R.sum(e, [dim], True)


log_softmax = defop(
    "log_softmax(Tensor self, int dim, ScalarType? dtype=None) -> Tensor",
    meta=_softmax_meta, reference=_softmax_ref(True),
    derivative=lambda g, self, dim, dtype, out: g - PW.exp(out) * R.sum(g, [dim], True),
    tags={Tag.COMPOSITE}, saves=(), samples=SOFTMAX_SAMPLES, torch_ref="torch.log_softmax",
    method=True,
    decomposition=lambda self, dim, dtype=None: _log_softmax_decomposition(self, dim, dtype),
)


def _log_softmax_decomposition(x, dim, dtype=None):
    if dtype is not None:
        x = PW.convert_element_type(x, dtype)
    if _empty_dim(x, dim):
        return PW.exp(x)
    shifted = x - R.amax(x, [dim], True)
    return shifted - PW.log(R.sum(PW.exp(shifted), [dim], True))


# --- shared normalization backward ------------------------------------------------------

def normalize_backward(g, x, axes, eps, scale=None):
    """(grad_x, xhat) of xhat = (x - mean) / sqrt(var + eps) over `axes` (biased var),
    for y = xhat * scale: written with ember ops so it differentiates again."""
    axes = list(axes)
    mu = R.mean(x, axes, True)
    xc = x - mu
    rstd = 1 / PW.sqrt(R.mean(xc * xc, axes, True) + eps)
    xhat = xc * rstd
    gxhat = g * scale if scale is not None else g
    gx = rstd * (gxhat - R.mean(gxhat, axes, True) - xhat * R.mean(gxhat * xhat, axes, True))
    return gx, xhat


def _channel_view(t, ndim):
    """A per-channel [C] tensor reshaped to broadcast against [N, C, *]."""
    return None if t is None else SH.reshape(t, [t.shape[0]] + [1] * (ndim - 2))


def _check_affine(name, t, shape):
    if t is not None and tuple(t.shape) != tuple(shape):
        raise ShapeError(f"expected {name} of shape {list(shape)}, got {list(t.shape)}")


def _require_float(x):
    if not x.dtype.is_floating_point:
        raise DTypeError(f"expected a floating point input, got {x.dtype.name}")


# --- layer_norm ----------------------------------------------------------------------

def _layer_norm_meta(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    _require_float(input)
    ns = tuple(normalized_shape)
    if len(ns) > input.ndim or tuple(input.shape[input.ndim - len(ns):]) != ns:
        raise ShapeError(f"Given normalized_shape={list(ns)}, expected input with shape "
                         f"[*, {', '.join(map(str, ns))}], but got input of size "
                         f"{list(input.shape)}")
    _check_affine("weight", weight, ns)
    _check_affine("bias", bias, ns)
    return TensorMeta(tuple(input.shape), input.dtype, str(input.device), contiguous_format)


def _layer_norm_ref(x, normalized_shape, weight, bias, eps):
    x = up(x)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mu = np.mean(x, axis=axes, keepdims=True)
    xc = x - mu
    y = xc / np.sqrt(np.mean(np.square(xc), axis=axes, keepdims=True) + eps)
    # the affine steps in place when that keeps y's dtype (same values, no new arrays)
    if weight is not None:
        y = _times_or_plus(y, weight, np.multiply)
    if bias is not None:
        y = _times_or_plus(y, bias, np.add)
    return y


def _times_or_plus(y, v, ufunc):
    if np.result_type(y, v) == y.dtype and np.broadcast_shapes(y.shape, np.shape(v)) == y.shape:
        return ufunc(y, v, out=y)
    return ufunc(y, v)


def _layer_norm_derivative(g, input, normalized_shape, weight, bias, eps):
    axes = range(input.ndim - len(normalized_shape), input.ndim)
    gx, xhat = normalize_backward(g, input, axes, eps, weight)
    return (gx, g * xhat if weight is not None else None, g if bias is not None else None)


layer_norm = defop(
    "layer_norm(Tensor input, int[] normalized_shape, Tensor? weight=None, Tensor? bias=None,"
    " float eps=1e-05) -> Tensor",
    meta=_layer_norm_meta, reference=_layer_norm_ref, derivative=_layer_norm_derivative,
    tags={Tag.COMPOSITE}, saves=("input", "weight"),
    samples=lambda rng: [
        S.Sample((S.randn(rng, 3, 5), [5], S.randn(rng, 5), S.randn(rng, 5))),
        S.Sample((S.randn(rng, 2, 3, 4), [3, 4], S.randn(rng, 3, 4), None)),
        S.Sample((S.randn(rng, 4, 6) * 5 + 3, [6]), {"eps": 1e-3}),
        S.Sample((S.randn(rng, 2, 3, 2, 2), [2, 2], None, S.randn(rng, 2, 2))),
    ],
    torch_ref="torch.nn.functional.layer_norm",
    decomposition=lambda input, normalized_shape, weight=None, bias=None, eps=1e-5:
        _in_opmath(input, lambda x: _affine(
            _normalize(x, range(x.ndim - len(normalized_shape), x.ndim), eps), weight, bias)),
)


def _in_opmath(input, normalize):
    """A normalization's decomposition computed as PyTorch computes it: half inputs in
    float32, the result in the input's dtype. Without the casts a bfloat16 input under
    autocast (float32 weight and bias) would promote to float32 part way through, and
    the compiled graph's dtype would differ from eager mode's."""
    low = input.dtype in (dtypes.float16, dtypes.bfloat16)
    y = normalize(PW.convert_element_type(input, dtypes.float32) if low else input)
    return y if y.dtype == input.dtype else PW.convert_element_type(y, input.dtype)


def _normalize(x, axes, eps):
    axes = list(axes)
    xc = x - R.mean(x, axes, True)
    return xc / PW.sqrt(R.mean(xc * xc, axes, True) + eps)


def _affine(y, weight, bias):
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


# --- batch_norm ----------------------------------------------------------------------

def _bn_axes(ndim):
    return [0] + list(range(2, ndim))


def _batch_norm_meta(input, running_mean, running_var, weight=None, bias=None,
                     training=False, momentum=0.1, eps=1e-5):
    _require_float(input)
    if input.ndim < 2:
        raise ShapeError(f"batch_norm expects an input of at least 2 dims [N, C, *], got "
                         f"{list(input.shape)}")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _check_affine(name, t, (c,))
    if not training and (running_mean is None or running_var is None):
        raise ShapeError("running_mean and running_var must be defined in evaluation mode")
    if training:
        count = 1
        for i, s in enumerate(input.shape):
            if i != 1:
                count *= s
        if count == 1:
            raise ShapeError(f"Expected more than 1 value per channel when training, got input "
                             f"size {list(input.shape)}")
    return TensorMeta(tuple(input.shape), input.dtype, str(input.device),
                      pointwise_memory_format([input]))


def _batch_norm_ref(x, running_mean, running_var, weight, bias, training, momentum, eps):
    x = up(x)
    axes = tuple(_bn_axes(x.ndim))
    shape = (x.shape[1],) + (1,) * (x.ndim - 2)
    if training:
        mu = np.mean(x, axis=axes, keepdims=True)
        var = np.mean((x - mu) ** 2, axis=axes, keepdims=True)
    else:
        mu = up(running_mean).reshape(shape)
        var = up(running_var).reshape(shape)
    y = (x - mu) / np.sqrt(var + eps)
    if weight is not None:
        y = y * up(weight).reshape(shape)
    if bias is not None:
        y = y + up(bias).reshape(shape)
    return y.astype(x.dtype, copy=False)


def _batch_norm_derivative(g, input, running_mean, running_var, weight, bias, training,
                           momentum, eps):
    axes = _bn_axes(input.ndim)
    w = _channel_view(weight, input.ndim)
    gb = R.sum(g, axes) if bias is not None else None
    if training:
        gx, xhat = normalize_backward(g, input, axes, eps, w)
        gw = R.sum(g * xhat, axes) if weight is not None else None
        return gx, None, None, gw, gb
    rm, rv = _channel_view(running_mean, input.ndim), _channel_view(running_var, input.ndim)
    rstd = 1 / PW.sqrt(rv + eps)
    xhat = (input - rm) * rstd
    gxhat = g * w if w is not None else g
    gx = gxhat * rstd
    grm = -R.sum(gx, axes)
    grv = R.sum(gxhat * xhat * rstd * rstd, axes) * -0.5
    gw = R.sum(g * xhat, axes) if weight is not None else None
    return gx, grm, grv, gw, gb


def _batch_norm_decomposition(input, running_mean, running_var, weight=None, bias=None,
                              training=False, momentum=0.1, eps=1e-5):
    def normalize(x):
        if training:
            y = _normalize(x, _bn_axes(x.ndim), eps)
        else:
            y = (x - _channel_view(running_mean, x.ndim)) / PW.sqrt(
                _channel_view(running_var, x.ndim) + eps)
        return _affine(y, _channel_view(weight, x.ndim), _channel_view(bias, x.ndim))
    return _in_opmath(input, normalize)


def _bn_samples(rng):
    c4 = lambda: S.randn(rng, 4)  # noqa: E731
    pos4 = lambda: S.positive(rng, 4)  # noqa: E731
    return [
        S.Sample((S.randn(rng, 5, 4), None, None, c4(), c4()), {"training": True}),
        S.Sample((S.randn(rng, 3, 4, 5), None, None), {"training": True, "eps": 1e-3}),
        S.Sample((S.randn(rng, 2, 4, 3, 3), None, None, c4(), None), {"training": True}),
        # running stats are not differentiable in PyTorch (it refuses when they require
        # grad), so samples that pass them check values only; tests/ops/test_nn_ops_extra.py
        # checks their gradients
        S.Sample((S.randn(rng, 5, 4), c4(), pos4(), c4(), c4()), grad=False,
                 note="PyTorch refuses grads for running stats"),
        S.Sample((S.randn(rng, 2, 4, 3), c4(), pos4()), {"training": True, "momentum": 0.3},
                 grad=False, note="PyTorch refuses grads for running stats"),
    ]


batch_norm = defop(
    "batch_norm(Tensor input, Tensor? running_mean, Tensor? running_var, Tensor? weight=None,"
    " Tensor? bias=None, bool training=False, float momentum=0.1, float eps=1e-05) -> Tensor",
    meta=_batch_norm_meta, reference=_batch_norm_ref, derivative=_batch_norm_derivative,
    tags={Tag.COMPOSITE}, saves=("input", "running_mean", "running_var", "weight"),
    samples=_bn_samples, torch_ref="torch.nn.functional.batch_norm", namespace=NN,
    decomposition=_batch_norm_decomposition,
    doc="Pure batch normalization (F.batch_norm's argument order): never updates the "
        "running buffers; see batch_norm_with_update.",
)


def _running_stat_meta(self, input, momentum, is_var=False):
    _require_float(input)
    if input.ndim < 2 or tuple(self.shape) != (input.shape[1],):
        raise ShapeError(f"running statistic of shape {list(self.shape)} does not match the "
                         f"channels of input {list(input.shape)}")
    return TensorMeta(tuple(self.shape), self.dtype, str(self.device))


def _running_stat_ref(running, x, momentum, is_var=False):
    x = up(x)
    axes = tuple(_bn_axes(x.ndim))
    n = x.size // x.shape[1]
    if is_var:
        mu = np.mean(x, axis=axes, keepdims=True)
        stat = np.sum((x - mu) ** 2, axis=axes) / max(n - 1, 1) if n > 1 else \
            np.full(x.shape[1], np.nan, x.dtype)
    else:
        stat = np.mean(x, axis=axes)
    return momentum * stat + (1 - momentum) * up(running)


def _torch_running_stat(torch):
    def ref(running, input, momentum, is_var=False):
        rm = running.clone() if not is_var else torch.zeros_like(running)
        rv = running.clone() if is_var else torch.ones_like(running)
        torch.nn.functional.batch_norm(input, rm, rv, training=True, momentum=momentum)
        return rv if is_var else rm
    return ref


_batch_norm_running_stat = defop(
    "_batch_norm_running_stat(Tensor self, Tensor input, float momentum, bool is_var=False)"
    " -> Tensor",
    meta=_running_stat_meta, reference=_running_stat_ref, derivative=NOT_DIFFERENTIABLE,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 4), S.randn(rng, 5, 4), 0.1)),
        S.Sample((S.positive(rng, 3), S.randn(rng, 2, 3, 4, 2), 0.3, True)),
        S.Sample((S.positive(rng, 3), S.randn(rng, 4, 3), 1.0, True)),
    ],
    torch_ref=_torch_running_stat, namespace=NN, inplace_variant=True,
    doc="The running-statistics update of training-mode batch_norm, as a pure function: "
        "(1 - momentum) * self + momentum * (batch mean, or unbiased batch variance).",
)


def batch_norm_with_update(input, running_mean, running_var, weight=None, bias=None,
                           training=False, momentum=0.1, eps=1e-5):
    """PyTorch's F.batch_norm: normalizes, and in training mode updates `running_mean` and
    `running_var` in place (unbiased variance), through the in-place running-stat op."""
    out = batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    if training:
        from ..registry import OPS
        update_ = OPS["_batch_norm_running_stat_"]
        if running_mean is not None:
            update_(running_mean, input, momentum, False)
        if running_var is not None:
            update_(running_var, input, momentum, True)
    return out


# --- group_norm ----------------------------------------------------------------------

def _group_norm_meta(input, num_groups, weight=None, bias=None, eps=1e-5):
    _require_float(input)
    if input.ndim < 2:
        raise ShapeError(f"group_norm expects an input of at least 2 dims [N, C, *], got "
                         f"{list(input.shape)}")
    c = input.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise ShapeError(f"Expected number of channels in input to be divisible by num_groups,"
                         f" but got input of shape {list(input.shape)} and num_groups="
                         f"{num_groups}")
    _check_affine("weight", weight, (c,))
    _check_affine("bias", bias, (c,))
    return TensorMeta(tuple(input.shape), input.dtype, str(input.device),
                      pointwise_memory_format([input]))


def _grouped(shape, num_groups) -> list[int]:
    """[N, groups, channels per group * spatial], explicit: -1 cannot be inferred when N or
    the spatial size is 0."""
    per_group = shape[1] // num_groups * math.prod(shape[2:])
    return [shape[0], num_groups, per_group]


def _group_norm_ref(x, num_groups, weight, bias, eps):
    x = up(x)
    if x.size == 0:
        return x.copy()
    xr = x.reshape(_grouped(x.shape, num_groups))
    mu = xr.mean(axis=-1, keepdims=True)
    xc = xr - mu
    y = (xc / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)).reshape(x.shape)
    shape = (x.shape[1],) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * up(weight).reshape(shape)
    if bias is not None:
        y = y + up(bias).reshape(shape)
    return y


def _group_norm_derivative(g, input, num_groups, weight, bias, eps):
    shape = list(input.shape)
    grouped = _grouped(shape, num_groups)
    w = _channel_view(weight, input.ndim)
    gxhat = g * w if w is not None else g
    gx, xhat = normalize_backward(SH.reshape(gxhat, grouped), SH.reshape(input, grouped), [2],
                                  eps)
    axes = _bn_axes(input.ndim)
    gw = R.sum(g * SH.reshape(xhat, shape), axes) if weight is not None else None
    gb = R.sum(g, axes) if bias is not None else None
    return SH.reshape(gx, shape), gw, gb


def _group_norm_decomposition(input, num_groups, weight=None, bias=None, eps=1e-5):
    def normalize(x):
        y = SH.reshape(_normalize(SH.reshape(x, _grouped(x.shape, num_groups)), [2], eps),
                       list(x.shape))
        return _affine(y, _channel_view(weight, x.ndim), _channel_view(bias, x.ndim))
    return _in_opmath(input, normalize)


group_norm = defop(
    "group_norm(Tensor input, int num_groups, Tensor? weight=None, Tensor? bias=None, "
    "float eps=1e-05) -> Tensor",
    meta=_group_norm_meta, reference=_group_norm_ref, derivative=_group_norm_derivative,
    tags={Tag.COMPOSITE}, saves=("input", "weight"),
    samples=lambda rng: [
        S.Sample((S.randn(rng, 2, 4, 3), 2, S.randn(rng, 4), S.randn(rng, 4))),
        S.Sample((S.randn(rng, 3, 6), 2)),
        S.Sample((S.randn(rng, 2, 4, 2, 3), 1, S.randn(rng, 4), None), {"eps": 1e-3}),
    ],
    torch_ref="torch.nn.functional.group_norm", namespace=NN,
    decomposition=_group_norm_decomposition,
)


from . import pointwise as PW, reduction as R, shape as SH  # noqa: E402,N812 - rules use ops
