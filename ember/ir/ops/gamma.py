"""The gamma family: lgamma, digamma, polygamma, mvlgamma, igamma, igammac, and
torch.special.zeta (Hurwitz zeta, which polygamma is built on).

Reference kernels are SciPy's (`gammaln`, `psi`, `polygamma`, `gammainc(c)`, `zeta`),
with PyTorch's values where the two differ at the edges: lgamma(-inf) is +inf. Integer
and bool inputs promote to the default float dtype (igamma/igammac take floats only, as
torch). Derivatives are the classical ones, written with these ops:

    lgamma' = digamma,  digamma' = polygamma(1, .),  polygamma(n)' = polygamma(n + 1)
    d/dx P(a, x) = x^(a-1) e^-x / Gamma(a),  d/dq zeta(s, q) = -s zeta(s + 1, q)

PyTorch has no derivative of igamma/igammac with respect to `a` nor of zeta with respect
to `s`; ember raises its NotImplementedError there too.
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import Promotion, defop
from . import samples as S
from .pointwise import UNARY, BINARY, exp, log
from .pointwise_math import MathArgumentError, tensors_only
from .special_common import (P, float_meta, no_derivative_for, real_unary_samples, sample,
                             scipy_special, special_op)

LOG_PI = math.log(math.pi)


def _lgamma_reference(x):
    out = scipy_special().gammaln(x)
    return np.where(np.isneginf(x), np.asarray(np.inf, out.dtype), out)   # torch: +inf


lgamma = defop(
    "lgamma(Tensor self) -> Tensor",
    meta=float_meta("lgamma_vml_cpu"), reference=_lgamma_reference,
    derivative=lambda g, self: g * digamma(self), tags=UNARY,
    promotion=Promotion.INT_TO_FLOAT, samples=real_unary_samples(),
    torch_ref="torch.lgamma", method=True, inplace_variant=True,
)

digamma = defop(
    "digamma(Tensor self) -> Tensor",
    meta=float_meta("digamma"), reference=lambda x: scipy_special().psi(x),
    derivative=lambda g, self: g * polygamma(1, self), tags=UNARY,
    promotion=Promotion.INT_TO_FLOAT, samples=real_unary_samples(),
    torch_ref="torch.digamma", method=True, inplace_variant=True,
)


def _polygamma_meta(n, self):
    if n < 0:
        raise MathArgumentError("polygamma(n, x) does not support negative n.")
    return float_meta("polygamma")(self)


def _polygamma_reference(n, x):
    sp = scipy_special()
    return sp.psi(x) if n == 0 else sp.polygamma(n, x).astype(x.dtype)


def _polygamma_samples(rng):
    away = lambda *s, dtype=np.float32: S.away_from_zero(rng, *s, dtype=dtype) * 2  # noqa: E731
    return [sample(0, away(3, 4)), sample(1, away(3, 4)), sample(2, away()),
            sample(3, away(5, dtype=np.float64)), sample(1, S.int_array(rng, 4, low=1, high=6)),
            sample(2, S.bool_array(rng, 3))]


polygamma = defop(
    "polygamma(int n, Tensor self) -> Tensor",
    meta=_polygamma_meta, reference=_polygamma_reference,
    derivative=lambda g, n, self: g * polygamma(n + 1, self), tags={P},
    promotion=Promotion.INT_TO_FLOAT, samples=_polygamma_samples, torch_ref="torch.polygamma",
    tol={"fwd": dict(rtol=1e-4)},    # torch's float32 kernel loses digits near the poles
    method=False,   # Tensor.polygamma(n) puts the tensor second: see frontend/methods.py
)


def _mvlgamma_meta(self, p):
    if p < 1:
        raise MathArgumentError("p has to be greater than or equal to 1")
    return float_meta("mvlgamma")(self)


def _mvlgamma_reference(x, p):
    """log of the multivariate gamma: p(p-1)/4 log(pi) + sum_i lgamma(x - i/2)."""
    terms = sum(_lgamma_reference(x - np.asarray(i / 2, x.dtype)) for i in range(p))
    return terms + np.asarray(p * (p - 1) / 4 * LOG_PI, x.dtype)


def _mvlgamma_derivative(g, self, p):
    return g * sum(digamma(self - i / 2) for i in range(p))


mvlgamma = defop(
    "mvlgamma(Tensor self, int p) -> Tensor",
    meta=_mvlgamma_meta, reference=_mvlgamma_reference, derivative=_mvlgamma_derivative,
    tags={P}, promotion=Promotion.INT_TO_FLOAT,
    samples=lambda rng: [sample(S.positive(rng, 3, 4) + 2, 1), sample(S.positive(rng) + 2, 3),
                         sample(S.positive(rng, 5, dtype=np.float64) + 3, 5),
                         sample(S.int_array(rng, 4, low=3, high=9), 2)],
    torch_ref="torch.mvlgamma", method=True, inplace_variant=True,
)

# --- regularized incomplete gamma --------------------------------------------------------------


def _incomplete_gamma(name: str, kernel: str, sign: float):
    def derivative(g, self, other):
        """d/dx P(a, x) = exp((a - 1) log x - x - lgamma(a)); Q = 1 - P."""
        grad_other = g * (sign * exp((self - 1) * log(other) - other - lgamma(self)))
        return no_derivative_for(f"{name}: input", self), grad_other

    return defop(
        f"{name}(Tensor self, Tensor other) -> Tensor",
        meta=_tensor_floats(name, f"{name}_cpu"),
        reference=lambda a, x: getattr(scipy_special(), kernel)(a, x),
        derivative=derivative, tags=BINARY, promotion=Promotion.DEFAULT,
        samples=lambda rng: [
            sample(S.positive(rng, 3, 4) * 3, S.positive(rng, 4) * 2, grad=False),
            sample(S.positive(rng) * 2, S.positive(rng) * 4, grad=False),
            sample(S.positive(rng, 2, 1, 3, dtype=np.float64), S.positive(rng, 4, 1) * 3,
                   grad=False),
            sample(np.array([0.0, 1.0, 2.0, -1.0, np.inf, 3.0], np.float32),
                   np.array([1.0, 0.0, np.inf, 1.0, 2.0, np.nan], np.float32), grad=False)],
        torch_ref=f"torch.{name}", method=True, inplace_variant=True,
        doc=f"torch.{name}; differentiable with respect to `other` only, as in PyTorch.")


def _tensor_floats(name: str, kernel: str):
    floats = float_meta(kernel, ints=False, promotion=Promotion.DEFAULT)

    def rule(self, other):
        tensors_only(name)(self, other)
        return floats(self, other)
    return rule


igamma = _incomplete_gamma("igamma", "gammainc", 1.0)
igammac = _incomplete_gamma("igammac", "gammaincc", -1.0)

# --- Hurwitz zeta ---------------------------------------------------------------------------


def _zeta_derivative(g, self, other):
    grad_other = -g * self * zeta(self + 1, other) if hasattr(other, "shape") else None
    return no_derivative_for("zeta", self), grad_other


def _zeta_reference(s, q):
    out = scipy_special().zeta(s, q)
    return np.where(np.isposinf(q), np.asarray(np.nan, out.dtype), out)   # torch: nan


zeta = special_op(
    "zeta(Tensor self, Tensor other) -> Tensor",
    meta=float_meta("zeta_cpu", halves=False), reference=_zeta_reference,
    derivative=_zeta_derivative, tags=BINARY, promotion=Promotion.INT_TO_FLOAT,
    samples=lambda rng: [
        sample(S.positive(rng, 3, 4) * 3 + 1.2, S.positive(rng, 4) * 2, grad=False),
        sample(2.0, S.positive(rng, 3, 4) * 2),
        sample(S.positive(rng, dtype=np.float64) + 2, 1.5, grad=False),
        sample(S.int_array(rng, 5, low=2, high=6), S.int_array(rng, 5, low=1, high=4)),
        sample(np.array([1.0, 0.5, 2.0, 2.0, 3.0, np.inf], np.float32),
               np.array([1.0, 1.0, 0.0, -1.5, np.inf, 2.0], np.float32), grad=False)],
)
