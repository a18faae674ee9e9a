"""Activation functions: torch.nn.functional's pointwise activations, by aten name.

Schemas are aten's (`elu(Tensor self, Scalar alpha=1, Scalar scale=1, Scalar
input_scale=1)`); `ember.nn.functional` maps PyTorch's Python signatures onto them.
Ops PyTorch exposes only in torch.nn.functional carry `namespace="nn.functional"`;
none is a Tensor method. Like PyTorch's kernels they reject integer inputs.
Derivatives are written with ember ops so they differentiate again.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import DTypeError
from ..registry import Promotion, Tag, defop
from . import samples as S
from .pointwise import (_c, _erf, exp, erf, log1p, sigmoid, tanh, where, gt, lt, le,
                        logical_and, abs as _abs, real, sgn)
from ..meta import TensorMeta
from .rules import pointwise_meta

UNARY = {Tag.POINTWISE, Tag.UNARY}
NN = "nn.functional"
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _float_meta(name, complex_ok=False, quantized_ok=False):
    base = pointwise_meta(Promotion.DEFAULT, 1)

    def rule(self, *args, **kwargs):
        if quantized_ok and getattr(self.dtype, "is_quantized", False):
            # torch's quantized clamps: computed on the integers, the qparams kept
            return TensorMeta(tuple(self.shape), self.dtype, str(self.device))
        if not (self.dtype.is_floating_point or complex_ok and self.dtype.is_complex):
            raise DTypeError(f'"{name}" not implemented for \'{self.dtype.name}\'')
        return base(self, *args, **kwargs)
    return rule


def _away(rng, *shape, dtype=np.float32):
    """Normal values kept 0.1 away from 0 (the kink of relu-like activations)."""
    return S.away_from_zero(rng, *shape, dtype=dtype) * 1.5


def _samples(make=_away, kwargs_list=({},)):
    def gen(rng):
        out = [S.Sample((np.asarray(make(rng, *s)),)) for s in S.UNARY_SHAPES]
        for kw in kwargs_list:
            if kw:
                out.append(S.Sample((make(rng, 3, 4),), dict(kw)))
        out.append(S.Sample((make(rng, 2, 3).astype(np.float64),)))
        return out
    return gen


def activation(schema, reference, derivative, *, name, samples=None, torch_ref=None,
               namespace=NN, complex_ok=False, quantized_ok=False, **fields):
    return defop(schema, meta=_float_meta(name, complex_ok, quantized_ok), reference=reference,
                 derivative=derivative, tags=UNARY, promotion=Promotion.DEFAULT,
                 promote_args=(0,), samples=samples or _samples(),
                 torch_ref=torch_ref or f"torch.nn.functional.{name}", namespace=namespace,
                 method=False, **fields)


# --- relu family ----------------------------------------------------------------------
leaky_relu = activation(
    "leaky_relu(Tensor self, Scalar negative_slope=0.01) -> Tensor",
    lambda x, s: np.where(x > 0, x, x * np.asarray(s, x.dtype)),
    lambda g, self, negative_slope: where(gt(self, 0), g, g * negative_slope),
    name="leaky_relu",
    samples=_samples(kwargs_list=({"negative_slope": 0.2}, {"negative_slope": -0.5})))


def _elu_reference(x, alpha, scale, input_scale):
    neg = np.expm1(np.minimum(x, 0) * input_scale) * alpha
    return (np.where(x > 0, x, neg) * scale).astype(x.dtype)


def _elu_derivative(g, self, alpha, scale, input_scale):
    return where(gt(self, 0), g * scale,
                 g * (scale * alpha * input_scale) * exp(self * input_scale))


elu = activation(
    "elu(Tensor self, Scalar alpha=1, Scalar scale=1, Scalar input_scale=1) -> Tensor",
    _elu_reference, _elu_derivative, name="elu",
    samples=_samples(kwargs_list=({"alpha": 0.5}, {"alpha": 1.3, "scale": 2.0,
                                                   "input_scale": 0.5})),
    torch_ref=lambda torch: torch._C._nn.elu)

selu = activation(
    "selu(Tensor self) -> Tensor",
    lambda x: _elu_reference(x, SELU_ALPHA, SELU_SCALE, 1.0),
    lambda g, self: _elu_derivative(g, self, SELU_ALPHA, SELU_SCALE, 1.0),
    name="selu", namespace="", torch_ref="torch.selu")

celu = activation(
    "celu(Tensor self, Scalar alpha=1.0) -> Tensor",
    lambda x, alpha: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0) / alpha)).astype(x.dtype),
    lambda g, self, alpha: where(gt(self, 0), g, g * exp(self / alpha)),
    name="celu", namespace="", torch_ref="torch.celu",
    samples=_samples(kwargs_list=({"alpha": 0.7},)))


def _hardtanh_derivative(g, self, min_val, max_val):
    return where(logical_and(gt(self, min_val), lt(self, max_val)), g, 0)


hardtanh = activation(
    "hardtanh(Tensor self, Scalar min_val=-1, Scalar max_val=1) -> Tensor",
    lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi).astype(x.dtype),
    _hardtanh_derivative, name="hardtanh", quantized_ok=True,
    samples=_samples(kwargs_list=({"min_val": -0.5, "max_val": 2.0},)))


def _off(points):
    """Normals scaled by 3, kept 0.1 away from each kink in `points`."""
    def make(rng, *shape, dtype=np.float32):
        x = rng.standard_normal(shape) * 3
        for p in points:
            x = np.where(np.abs(x - p) < 0.1, x + 0.25, x)
        return np.asarray(x, dtype)
    return make


relu6 = activation(
    "relu6(Tensor self) -> Tensor",
    lambda x: np.minimum(np.maximum(x, 0), 6).astype(x.dtype),
    lambda g, self: _hardtanh_derivative(g, self, 0.0, 6.0),
    decomposition=lambda self: hardtanh(self, 0.0, 6.0),
    name="relu6", quantized_ok=True, samples=_samples(lambda rng, *s, dtype=np.float32: _off([0, 6])(
        rng, *s, dtype=dtype) * 1.5 + 1.0))

hardsigmoid = activation(
    "hardsigmoid(Tensor self) -> Tensor",
    lambda x: (np.minimum(np.maximum(x + 3, 0), 6) / 6).astype(x.dtype),
    lambda g, self: where(logical_and(gt(self, -3.0), lt(self, 3.0)), g / 6, 0),
    decomposition=lambda self: hardtanh(self + 3, 0.0, 6.0) / 6,
    name="hardsigmoid", samples=_samples(_off([-3, 3])),
    quantized_ok=True)       # torch's quantized hardsigmoid (frontend/quantized.py)

hardswish = activation(
    "hardswish(Tensor self) -> Tensor",
    lambda x: (x * np.minimum(np.maximum(x + 3, 0), 6) / 6).astype(x.dtype),
    lambda g, self: where(lt(self, -3.0), 0, where(le(self, 3.0), g * (self / 3 + 0.5), g)),
    name="hardswish", samples=_samples(_off([-3, 3])),
    decomposition=lambda self: self * hardtanh(self + 3, 0.0, 6.0) / 6)

# --- smooth activations -----------------------------------------------------------------
INV_SQRT2 = 1 / math.sqrt(2)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
GELU_K = math.sqrt(2 / math.pi)
GELU_C = 0.044715


def _gelu_reference(x, approximate):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(GELU_K * (x + GELU_C * x * x * x)))
    if approximate != "none":
        raise ValueError(f"approximate argument must be either none or tanh, got "
                         f"{approximate!r}")
    return 0.5 * x * (1 + _erf(x * INV_SQRT2))


def _gelu_derivative(g, self, approximate):
    if approximate == "tanh":
        t = tanh(GELU_K * (self + GELU_C * self * self * self))
        return g * (0.5 * (1 + t) + 0.5 * self * (1 - t * t) * GELU_K *
                    (1 + 3 * GELU_C * self * self))
    return g * (0.5 * (1 + erf(self * INV_SQRT2)) + self * INV_SQRT_2PI *
                exp(-0.5 * self * self))


def _gelu_decomposition(self, approximate="none"):
    if approximate == "tanh":
        return 0.5 * self * (1 + tanh(GELU_K * (self + GELU_C * self * self * self)))
    return 0.5 * self * (1 + erf(self * INV_SQRT2))


gelu = activation(
    "gelu(Tensor self, *, str approximate='none') -> Tensor",
    _gelu_reference, _gelu_derivative, name="gelu", decomposition=_gelu_decomposition,
    samples=_samples(S.randn, kwargs_list=({"approximate": "tanh"}, {"approximate": "none"})))


def _sigmoid_np(x):
    return 0.5 * (np.tanh(0.5 * x) + 1)


silu = activation(
    "silu(Tensor self) -> Tensor",
    lambda x: x * _sigmoid_np(x),
    lambda g, self: g * _c(_silu_grad(self)), name="silu", complex_ok=True,
    samples=_samples(S.randn), decomposition=lambda self: self * sigmoid(self))


def _silu_grad(x):
    s = sigmoid(x)
    return s * (1 + x * (1 - s))


def _softplus_reference(x, beta, threshold):
    bx = x * beta
    return np.where(bx > threshold, x, np.logaddexp(0, bx) / beta).astype(x.dtype)


softplus = activation(
    "softplus(Tensor self, Scalar beta=1, Scalar threshold=20) -> Tensor",
    _softplus_reference,
    lambda g, self, beta, threshold: where(gt(self * beta, threshold), g,
                                           g * sigmoid(self * beta)),
    name="softplus",
    samples=_samples(S.randn, kwargs_list=({"beta": 2.0}, {"beta": 0.5, "threshold": 1.0})))


def _mish_grad(x):
    t = tanh(log1p(exp(x)))
    return t + x * sigmoid(x) * (1 - t * t)


mish = activation(
    "mish(Tensor self) -> Tensor",
    lambda x: x * np.tanh(np.logaddexp(0, x)),
    lambda g, self: g * _mish_grad(self), name="mish", samples=_samples(S.randn),
    decomposition=lambda self: self * tanh(softplus(self)))

logsigmoid = activation(
    "log_sigmoid(Tensor self) -> Tensor",
    lambda x: (np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))).astype(x.dtype),
    lambda g, self: g * sigmoid(-self), name="logsigmoid", samples=_samples(S.randn),
    python_name="logsigmoid")

def _softsign_grad(g, self):
    """d/dz of z / (1 + |z|); for complex z (PyTorch's composite, conjugate-Wirtinger):
    g / (1 + |z|) - Re(g conj(z)) sgn(z) / (1 + |z|)^2, which is g / (1 + |x|)^2 for real."""
    denom = 1 + _abs(self)
    if not self.dtype.is_complex:
        return g / (denom * denom)
    return g / denom - real(g * _c(self)) * sgn(self) / (denom * denom)


softsign = activation(
    "softsign(Tensor self) -> Tensor",
    lambda x: x / (1 + np.abs(x)),
    _softsign_grad, name="softsign", complex_ok=True,
    decomposition=lambda self: self / (1 + _abs(self)))

tanhshrink = activation(
    "tanhshrink(Tensor self) -> Tensor",
    lambda x: x - np.tanh(x),
    lambda g, self: g * _c(tanh(self) * tanh(self)), name="tanhshrink", complex_ok=True,
    decomposition=lambda self: self - tanh(self),
    samples=_samples(S.randn))
