"""torch.special's orthogonal polynomials: chebyshev_polynomial_t/u/v/w, their shifted
forms on [0, 1], hermite_polynomial_h/he, laguerre_polynomial_l, legendre_polynomial_p.

Each takes `(x, n)` with the degree `n` a tensor (or number) broadcast against x, as in
PyTorch: n is truncated towards zero, a negative (or NaN) degree gives 0, and integer
inputs promote to the default float dtype. Values come from the three-term recurrences,
evaluated in float64 for every element up to its own degree; for Chebyshev families with
|x| < 1 and a high degree the closed trigonometric forms are used instead (cos(n acos x)
and relatives), which the recurrence would reach only after many rounding steps.
PyTorch defines no derivatives for these; neither does ember.
"""
from __future__ import annotations

import numpy as np

from ..registry import NOT_DIFFERENTIABLE, Promotion, Tag
from . import samples as S
from .special_common import float_meta, sample, special_op

TRIG_FROM_DEGREE = 16     # above this degree, |x| < 1 uses the trigonometric closed form


def degrees(n) -> np.ndarray:
    """Degrees as int64, truncated towards zero as torch's cast does (so -0.5 is degree
    0); NaN, inf and negative degrees -> -1 (the result is 0)."""
    n = np.trunc(np.asarray(n, np.float64))
    valid = np.isfinite(n) & (n >= 0)
    return np.where(valid, np.where(valid, n, 0), -1).astype(np.int64)


def three_term(x, n, first, step):
    """p_0 = 1, p_1 = first(x), p_{k+1} = step(k, x, p_k, p_{k-1}), each element taken to
    its own degree n (0 where n < 0)."""
    out = np.where(n == 0, 1.0, 0.0)
    if not np.any(n >= 1):
        return out
    prev, cur = np.ones_like(x), first(x)
    out = np.where(n == 1, cur, out)
    for k in range(1, int(n.max())):
        prev, cur = cur, step(k, x, cur, prev)
        out = np.where(n == k + 1, cur, out)
    return out


def _chebyshev(first, trig):
    """A Chebyshev family: p_{k+1} = 2x p_k - p_{k-1} from p_1 = first(x)."""
    def value(x, n):
        out = three_term(np.where(n > TRIG_FROM_DEGREE, 0.0, x), np.where(
            n > TRIG_FROM_DEGREE, 0, n), first, lambda k, x, p, q: 2 * x * p - q)
        big = (n > TRIG_FROM_DEGREE) & (np.abs(x) < 1)
        if np.any(big):
            theta = np.arccos(np.clip(x, -1, 1))
            with np.errstate(all="ignore"):
                out = np.where(big, trig(theta, n), out)
        rest = (n > TRIG_FROM_DEGREE) & ~(np.abs(x) < 1)
        if np.any(rest):        # |x| >= 1 or nan at a high degree: recurrence after all
            slow = three_term(np.where(rest, x, 0.0), np.where(rest, n, 0), first,
                              lambda k, x, p, q: 2 * x * p - q)
            out = np.where(rest, slow, out)
        return out
    return value


def _half_angle(fn):
    return lambda theta, n: fn(theta, n.astype(np.float64))


CHEBYSHEV = {
    "t": _chebyshev(lambda x: x, _half_angle(lambda t, n: np.cos(n * t))),
    "u": _chebyshev(lambda x: 2 * x, _half_angle(
        lambda t, n: np.sin((n + 1) * t) / np.sin(t))),
    "v": _chebyshev(lambda x: 2 * x - 1, _half_angle(
        lambda t, n: np.cos((n + 0.5) * t) / np.cos(t / 2))),
    "w": _chebyshev(lambda x: 2 * x + 1, _half_angle(
        lambda t, n: np.sin((n + 0.5) * t) / np.sin(t / 2))),
}


def _hermite_h(x, n):
    return three_term(x, n, lambda x: 2 * x, lambda k, x, p, q: 2 * x * p - 2 * k * q)


def _hermite_he(x, n):
    return three_term(x, n, lambda x: x, lambda k, x, p, q: x * p - k * q)


def _laguerre_l(x, n):
    return three_term(x, n, lambda x: 1 - x,
                      lambda k, x, p, q: ((2 * k + 1 - x) * p - k * q) / (k + 1))


def _legendre_p(x, n):
    return three_term(x, n, lambda x: x,
                      lambda k, x, p, q: ((2 * k + 1) * x * p - k * q) / (k + 1))


def _reference(value, shifted=False):
    def kernel(x, n):
        x64, deg = np.broadcast_arrays(np.asarray(x, np.float64), degrees(n))
        if shifted:
            x64 = 2 * x64 - 1
        with np.errstate(all="ignore"):
            out = value(x64, deg)
        return np.asarray(out, np.result_type(x, np.float32) if np.asarray(x).dtype.kind
                          == "f" else np.float64)
    return kernel


def _samples(rng):
    return [sample(S.randn(rng, 3, 4) * 3, S.int_array(rng, 4, low=-1, high=9)),
            sample(S.unit(rng, 5), 25), sample(S.randn(rng), 3.7),
            sample(S.randn(rng, 2, 3).astype(np.float64), S.int_array(rng, 2, 1, low=0, high=7)),
            sample(S.int_array(rng, 3, 4), S.int_array(rng, 3, 4, low=0, high=6)),
            sample(2, S.int_array(rng, 4, low=0, high=5)),
            # (no NaN x: torch returns uninitialized values for it in several families)
            sample(np.array([-1.0, 1.0, -0.0, 0.5, np.inf], np.float32),
                   np.array([3.0, 4.0, 2.0, np.nan, 2.0], np.float32))]


def _polynomial(name: str, value, shifted=False):
    return special_op(
        f"{name}(Tensor x, Tensor n) -> Tensor",
        meta=float_meta(f"{name}_cpu", halves=False), reference=_reference(value, shifted),
        derivative=NOT_DIFFERENTIABLE, tags={Tag.POINTWISE, Tag.BINARY},
        promotion=Promotion.INT_TO_FLOAT, samples=_samples)


chebyshev_polynomial_t = _polynomial("chebyshev_polynomial_t", CHEBYSHEV["t"])
chebyshev_polynomial_u = _polynomial("chebyshev_polynomial_u", CHEBYSHEV["u"])
chebyshev_polynomial_v = _polynomial("chebyshev_polynomial_v", CHEBYSHEV["v"])
chebyshev_polynomial_w = _polynomial("chebyshev_polynomial_w", CHEBYSHEV["w"])
shifted_chebyshev_polynomial_t = _polynomial("shifted_chebyshev_polynomial_t", CHEBYSHEV["t"],
                                             shifted=True)
shifted_chebyshev_polynomial_u = _polynomial("shifted_chebyshev_polynomial_u", CHEBYSHEV["u"],
                                             shifted=True)
shifted_chebyshev_polynomial_v = _polynomial("shifted_chebyshev_polynomial_v", CHEBYSHEV["v"],
                                             shifted=True)
shifted_chebyshev_polynomial_w = _polynomial("shifted_chebyshev_polynomial_w", CHEBYSHEV["w"],
                                             shifted=True)
hermite_polynomial_h = _polynomial("hermite_polynomial_h", _hermite_h)
hermite_polynomial_he = _polynomial("hermite_polynomial_he", _hermite_he)
laguerre_polynomial_l = _polynomial("laguerre_polynomial_l", _laguerre_l)
legendre_polynomial_p = _polynomial("legendre_polynomial_p", _legendre_p)
