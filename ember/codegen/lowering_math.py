"""Pointwise lowering rules for the math families (ir/ops/pointwise_math.py, special.py,
complex_views.py), written in the kernel's scalar vocabulary (`kernel.SCALAR_OPS`).

Each rule follows its op's reference kernel step by step, so compiled results equal
eager ones up to rounding. Ops whose math the vocabulary cannot state exactly have no
rule here and compile through their reference kernels: signbit (the sign of a NaN is
not observable with these scalar ops), ndtr (1 + erf(x / sqrt 2) loses the left tail
that erfc keeps), lgamma/digamma/Bessel/zeta/polynomials (no such scalar functions),
gcd/lcm (loops), frexp/nextafter (bit manipulation). Aliases (true_divide, rsub,
torch.special's aliases) lower through their decompositions.
"""
from __future__ import annotations

import math
from typing import Callable

from .lowering import _num, c, pointwise

LN2 = math.log(2.0)


def _addcmul(x, t1, t2, value=1):
    return c("add", x, c("mul", c("mul", _num(value, t1), t1), t2))


def _addcdiv(x, t1, t2, value=1):
    return c("add", x, c("div", c("mul", _num(value, t1), t1), t2))


def _logaddexp(a, b, log1p_exp):
    """max(a, b) + log1p(exp(-|a - b|)); equal infinities give themselves (inf - inf
    would be nan), NaN propagates through |a - b|."""
    gap = c("neg", c("abs", c("sub", a, b)))
    combined = c("add", c("maximum", a, b), log1p_exp(gap))
    same_inf = c("logical_and", c("isinf", a), c("eq", a, b))
    return c("where", same_inf, a, combined)


def _logit(x, eps=None):
    """log(x / (1 - x)), x first clamped to [eps, 1 - eps] (NaN stays NaN: where, not
    maximum, whose NaN handling differs between backends)."""
    if eps is not None and eps >= 0:
        lo, hi = _num(eps, x), _num(1 - eps, x)
        x = c("where", c("lt", x, lo), lo, c("where", c("gt", x, hi), hi, x))
    return c("log", c("div", x, c("sub", _num(1, x), x)))


def _sinc(x):
    px = c("mul", x, _num(math.pi, x))
    return c("where", c("eq", x, _num(0, x)), _num(1, x), c("div", c("sin", px), px))


def _heaviside(x, values):
    step = c("where", c("gt", x, _num(0, x)), _num(1, x), _num(0, x))
    return c("where", c("eq", x, _num(0, x)), values, step)


def _x_log(log_name: str):
    """xlogy / xlog1py: 0 where x == 0 unless y is NaN."""
    def rule(x, y):
        zero_x = c("logical_and", c("eq", x, _num(0, x)), c("logical_not", c("isnan", y)))
        return c("where", zero_x, _num(0, x), c("mul", x, c(log_name, y)))
    return rule


def _entr(x):
    """-x log x for x > 0, 0 at 0, -inf below, NaN for NaN."""
    inner = c("where", c("eq", x, _num(0, x)), _num(0, x), _num(-math.inf, x))
    value = c("where", c("gt", x, _num(0, x)), c("neg", c("mul", x, c("log", x))), inner)
    return c("where", c("isnan", x), x, value)


MATH_RULES: dict[str, Callable] = {
    "addcmul": pointwise(_addcmul),
    "addcdiv": pointwise(_addcdiv),
    "logaddexp": pointwise(lambda a, b: _logaddexp(a, b, lambda g: c("log1p", c("exp", g)))),
    "logaddexp2": pointwise(lambda a, b: _logaddexp(
        a, b, lambda g: c("mul", c("log1p", c("exp2", g)), _num(1 / LN2, g)))),
    "float_power": pointwise(lambda a, b: c("pow", a, b)),
    "logit": pointwise(_logit),
    "sinc": pointwise(_sinc),
    "deg2rad": pointwise(lambda x: c("mul", x, _num(math.pi / 180, x))),
    "rad2deg": pointwise(lambda x: c("mul", x, _num(180 / math.pi, x))),
    "heaviside": pointwise(_heaviside),
    "ldexp": pointwise(lambda x, e: c("mul", x, c("exp2", e))),
    "conj_physical": pointwise(lambda x: x),        # real inputs only reach a kernel
    "xlogy": pointwise(_x_log("log")),
    "special_xlog1py": pointwise(_x_log("log1p")),
    "special_entr": pointwise(_entr),
}
