"""Bessel and Airy functions: torch.i0 and torch.special's i0e, i1, i1e, bessel_j0/j1/y0/y1,
modified_bessel_i0/i1/k0/k1, scaled_modified_bessel_k0/k1, spherical_bessel_j0, airy_ai.

Reference kernels are SciPy's (`i0`, `i0e`, `i1`, `i1e`, `j0`, `y0`, `k0e`, `airy`, ...).
Integer and bool inputs promote to the default float dtype; complex inputs are refused.
i0, i0e, i1 and i1e are differentiable (I0' = I1, I1' = I0 - I1/x, and the exp(-|x|)
scaled forms); the others are not differentiable in PyTorch (their results do not
require grad), and ember matches that.
"""
from __future__ import annotations

import numpy as np

from ..registry import NOT_DIFFERENTIABLE, Promotion, defop
from .pointwise import UNARY, sgn, where
from .special_common import float_meta, real_unary_samples, scipy_special, special_op


def _sp(name: str):
    return lambda x: getattr(scipy_special(), name)(x)


i0 = defop(
    "i0(Tensor self) -> Tensor",
    meta=float_meta("i0_vml_cpu"), reference=_sp("i0"),
    derivative=lambda g, self: g * i1(self), tags=UNARY, promotion=Promotion.INT_TO_FLOAT,
    samples=real_unary_samples(), torch_ref="torch.i0", method=True, inplace_variant=True,
)


def _special_unary(name: str, reference, derivative=NOT_DIFFERENTIABLE, halves=False, **kw):
    return special_op(
        f"{name}(Tensor self) -> Tensor",
        meta=float_meta(f"{name}_cpu", halves=halves), reference=reference,
        derivative=derivative, tags=UNARY, promotion=Promotion.INT_TO_FLOAT,
        samples=kw.pop("samples", None) or real_unary_samples(), **kw)


def _i1_derivative(g, self, out):
    """I1'(x) = I0(x) - I1(x) / x, which tends to 1/2 at x = 0."""
    at_zero = self == 0
    return g * where(at_zero, 0.5, i0(self) - out / where(at_zero, 1, self))


def _i1e_derivative(g, self, out):
    """(e^-|x| I1)' = i0e(x) - i1e(x) (sgn(x) + 1/x), 1/2 at x = 0."""
    at_zero = self == 0
    return g * where(at_zero, 0.5, i0e(self) - out * (sgn(self) + 1 / where(at_zero, 1, self)))


i0e = _special_unary("i0e", _sp("i0e"), lambda g, self, out: g * (i1e(self) - sgn(self) * out),
                     halves=True)
i1 = _special_unary("i1", _sp("i1"), _i1_derivative, halves=True)
i1e = _special_unary("i1e", _sp("i1e"), _i1e_derivative, halves=True)

bessel_j0 = _special_unary("bessel_j0", _sp("j0"))
bessel_j1 = _special_unary("bessel_j1", _sp("j1"))
bessel_y0 = _special_unary("bessel_y0", _sp("y0"))
bessel_y1 = _special_unary("bessel_y1", _sp("y1"))
modified_bessel_i0 = _special_unary("modified_bessel_i0", _sp("i0"))
modified_bessel_i1 = _special_unary("modified_bessel_i1", _sp("i1"))
modified_bessel_k0 = _special_unary("modified_bessel_k0", _sp("k0"))
modified_bessel_k1 = _special_unary("modified_bessel_k1", _sp("k1"))
scaled_modified_bessel_k0 = _special_unary("scaled_modified_bessel_k0", _sp("k0e"))
scaled_modified_bessel_k1 = _special_unary("scaled_modified_bessel_k1", _sp("k1e"))


def _spherical_j0(x):
    """sin(x) / x, 1 at 0 (and 0 at +-inf, where sin/x would be nan)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sin(x) / x
    out = np.where(np.isinf(x), np.zeros((), x.dtype), out)
    return np.where(x == 0, np.ones((), x.dtype), out)


spherical_bessel_j0 = _special_unary("spherical_bessel_j0", _spherical_j0)
airy_ai = _special_unary("airy_ai", lambda x: scipy_special().airy(x)[0])
