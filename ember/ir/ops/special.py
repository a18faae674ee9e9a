"""torch.special's own functions (entr, erfcx, ndtr, ndtri, log_ndtr, xlog1py) and its
aliases of top-level ops (expit = sigmoid, gammaln = lgamma, psi = digamma, ...).

Every entry is a registry op in the `special` namespace (`special_ndtr`, Python name
`ndtr`). An alias reuses its target's meta rule, reference kernel and derivative, and
decomposes into the target, so graphs, compile and autograd treat it as the target.
Reference kernels of the rest are SciPy's; derivatives are the textbook ones:

    entr' = -(1 + log x),  erfcx' = 2x erfcx(x) - 2/sqrt(pi),  ndtr' = phi(x),
    ndtri' = sqrt(2 pi) exp(ndtri(x)^2 / 2),  log_ndtr' = phi(x) / ndtr(x)

(phi the standard normal density; log_ndtr's is evaluated as exp(-x^2/2 - log_ndtr(x))
/ sqrt(2 pi), which stays finite far into the left tail).
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import OPS, Promotion, Tag
from . import samples as S
from .pointwise import BINARY, UNARY, _is_t, eq, exp, le, log, logical_and, where
from .special_common import (float_meta, real_unary_samples, sample, scipy_special,
                             special_op)

SQRT_2PI = math.sqrt(2 * math.pi)
TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)


def _probabilities(rng, *shape, dtype=np.float32):
    return np.asarray(rng.random(shape) * 0.9 + 0.05, dtype)


def _special_unary(name, reference, derivative, *, halves=True, samples=None):
    return special_op(
        f"{name}(Tensor self) -> Tensor",
        meta=float_meta(f"{name}_cpu", halves=halves), reference=reference,
        derivative=derivative, tags=UNARY, promotion=Promotion.INT_TO_FLOAT,
        samples=samples or real_unary_samples())


def _entr_reference(x):
    with np.errstate(all="ignore"):
        out = -x * np.log(x)
    out = np.where(x == 0, np.zeros((), x.dtype), out)
    return np.where(x < 0, np.asarray(-np.inf, x.dtype), out)


entr = _special_unary(
    "entr", _entr_reference, lambda g, self: g * -(1 + log(self)),
    samples=real_unary_samples(S.positive, ints=(0, 4)))
erfcx = _special_unary("erfcx", lambda x: scipy_special().erfcx(x),
                       lambda g, self, out: g * (2 * self * out - TWO_OVER_SQRT_PI),
                       halves=False)
ndtr = _special_unary("ndtr", lambda x: scipy_special().ndtr(x),
                      lambda g, self: g * exp(self * self * -0.5) / SQRT_2PI)
ndtri = _special_unary("ndtri", lambda x: scipy_special().ndtri(x),
                       lambda g, self, out: g * SQRT_2PI * exp(out * out * 0.5), halves=False,
                       samples=real_unary_samples(_probabilities, ints=(0, 2)))
log_ndtr = _special_unary("log_ndtr", lambda x: scipy_special().log_ndtr(x),
                          lambda g, self, out: g * exp(self * self * -0.5 - out) / SQRT_2PI,
                          halves=False)


def _xlog1py_reference(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x * np.log1p(y)
    return np.where((x == 0) & ~np.isnan(y), np.zeros((), out.dtype), out)


def _xlog1py_derivative(g, self, other):
    grad_self = grad_other = None
    if _is_t(self):
        dead = eq(self, 0) if not _is_t(other) and other > -1 else \
            logical_and(eq(self, 0), le(other, -1))
        grad_self = where(dead, 0, xlog1py(g, other))
    if _is_t(other):
        grad_other = g * self / (other + 1)
    return grad_self, grad_other


xlog1py = special_op(
    "xlog1py(Tensor self, Tensor other) -> Tensor",
    meta=float_meta("xlog1py_cpu"), reference=_xlog1py_reference,
    derivative=_xlog1py_derivative, tags=BINARY, promotion=Promotion.INT_TO_FLOAT,
    samples=lambda rng: [
        sample(S.randn(rng, 3, 4), S.positive(rng, 4)), sample(S.randn(rng), S.positive(rng)),
        sample(S.randn(rng, 3), 2.0), sample(3.0, S.positive(rng, 2, 3)),
        sample(S.int_array(rng, 3, 4), S.int_array(rng, 4, low=0, high=5)),
        sample(np.array([0.0, 0.0, 1.0, 2.0], np.float32),
               np.array([-1.0, np.nan, -1.0, 0.5], np.float32), grad=False)],
)

# --- aliases of top-level ops -------------------------------------------------------------------
ALIASES = {
    "digamma": "digamma", "psi": "digamma", "erf": "erf", "erfc": "erfc",
    "erfinv": "erfinv", "exp2": "exp2", "expm1": "expm1", "log1p": "log1p",
    "expit": "sigmoid", "gammaln": "lgamma", "gammainc": "igamma", "gammaincc": "igammac",
    "i0": "i0", "logit": "logit", "log_softmax": "log_softmax", "softmax": "softmax",
    "logsumexp": "logsumexp", "multigammaln": "mvlgamma", "polygamma": "polygamma",
    "round": "round", "sinc": "sinc", "xlogy": "xlogy",
}


def _call_bound(op, bound):
    """Call `op` with schema-ordered arguments (what decompositions receive)."""
    args, kwargs = op.schema.unbind(tuple(bound))
    return op(*args, **kwargs)


def _alias(name: str, target_name: str):
    """special_<name>: `target` under torch.special's name (its rules, decomposing to it)."""
    target = OPS[target_name]
    schema = target.schema.text.replace(f"{target.name}(", f"{name}(", 1)
    samples = target.samples

    def few_samples(rng):          # the target's table entry tests the rest
        return samples(rng)[:3]
    return special_op(
        schema, meta=target.meta, reference=target.reference, derivative=target.derivative,
        decomposition=lambda *bound: _call_bound(target, bound),
        tags=(target.tags - {Tag.INPLACE}) | {Tag.COMPOSITE}, promotion=target.promotion,
        promote_args=target.promote_args, saves=target.saves, tol=target.tol,
        torch_grad_differs=target.torch_grad_differs, samples=few_samples,
        doc=f"torch.special.{name}: an alias of ember.{target.python_name}.")


for _name, _target in ALIASES.items():
    globals()[_name] = _alias(_name, _target)
del _name, _target
