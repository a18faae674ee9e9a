"""Pointwise ops: unary math, binary arithmetic, comparisons, casts.

Reference kernels receive arrays already promoted to the compute dtype (see
`rules.promote`; half types computed in float32); the dispatcher casts results to
the dtype the meta rule names. Derivatives follow PyTorch's complex convention
(conjugate Wirtinger): grads of holomorphic f are `g * conj(f'(z))`.
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import NOT_DIFFERENTIABLE, Promotion, Tag, defop
from . import samples as S
from .rules import pointwise_meta, same_meta

P = Tag.POINTWISE
UNARY = {P, Tag.UNARY}
BINARY = {P, Tag.BINARY}


def _c(x):
    """conj(x) for complex values, x itself otherwise: keeps real graphs free of conj."""
    return conj(x) if getattr(x, "dtype", None) is not None and x.dtype.is_complex else x


def unary(name, reference, derivative, *, promotion=Promotion.INT_TO_FLOAT,
          samples=S.unary_samples(), torch_ref=None, tags=(), **fields):
    """A unary pointwise op that is also a Tensor method and has an in-place variant."""
    return defop(f"{name}(Tensor self) -> Tensor",
                 meta=fields.pop("meta", None) or pointwise_meta(promotion),
                 reference=reference, derivative=derivative, tags=UNARY | set(tags),
                 promotion=promotion, samples=samples,
                 torch_ref=torch_ref or f"torch.{name}", method=True,
                 inplace_variant=fields.pop("inplace_variant", True), **fields)


# --- arithmetic --------------------------------------------------------------------
add = defop(
    "add(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor",
    saves=(),
    meta=pointwise_meta(Promotion.DEFAULT, 2),
    reference=lambda x, y, alpha: x + y * alpha if alpha != 1 else x + y,
    derivative=lambda g, self, other, alpha: (g, g * _c(alpha) if alpha != 1 else g),
    tags=BINARY | {Tag.COMMUTATIVE}, promotion=Promotion.DEFAULT,
    samples=S.binary_samples(scalar=2.5), torch_ref="torch.add", method=True,
    inplace_variant=True,
)

sub = defop(
    "sub(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor",
    saves=(),
    meta=pointwise_meta(Promotion.DEFAULT, 2),
    reference=lambda x, y, alpha: x - y * alpha if alpha != 1 else x - y,
    derivative=lambda g, self, other, alpha: (g, -g * _c(alpha) if alpha != 1 else -g),
    tags=BINARY, promotion=Promotion.DEFAULT,
    samples=S.binary_samples(scalar=-1.5), torch_ref="torch.sub", method=True,
    inplace_variant=True,
)

mul = defop(
    "mul(Tensor self, Tensor other) -> Tensor",
    meta=pointwise_meta(Promotion.DEFAULT),
    reference=lambda x, y: x * y,
    derivative=lambda g, self, other: (g * _c(other), g * _c(self)),
    tags=BINARY | {Tag.COMMUTATIVE}, promotion=Promotion.DEFAULT,
    samples=S.binary_samples(scalar=3.0), torch_ref="torch.mul", method=True,
    inplace_variant=True,
)

div = defop(
    "div(Tensor self, Tensor other, *, str? rounding_mode=None) -> Tensor",
    meta=pointwise_meta(Promotion.INT_TO_FLOAT, 2),
    reference=lambda x, y, rounding_mode: _div_reference(x, y, rounding_mode),
    derivative=lambda g, self, other, rounding_mode: _div_derivative(g, self, other,
                                                                     rounding_mode),
    tags=BINARY, promotion=Promotion.INT_TO_FLOAT,
    samples=S.binary_samples(make_b=S.away_from_zero, scalar=4.0),
    torch_ref="torch.div", method=True, inplace_variant=True,
)


def _div_reference(x, y, rounding_mode):
    if rounding_mode is None:
        return np.true_divide(x, y)
    if rounding_mode == "trunc":
        return np.trunc(np.true_divide(x, y)) if x.dtype.kind in "fc" else \
            np.trunc(x / y).astype(x.dtype)
    if rounding_mode == "floor":
        return np.floor_divide(x, y)
    raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                     f"found '{rounding_mode}'")


def _div_derivative(g, self, other, rounding_mode):
    if rounding_mode is not None:
        return (g * 0, g * 0)
    return (g / _c(other), -g * _c(self) / _c(other * other))


neg = unary("neg", np.negative, lambda g, self: -g, promotion=Promotion.DEFAULT, saves=())

# --- transcendental ---------------------------------------------------------------
exp = unary("exp", np.exp, lambda g, self, out: g * _c(out))
log = unary("log", np.log, lambda g, self: g / _c(self),
            samples=S.unary_samples(S.positive))
sin = unary("sin", np.sin, lambda g, self: g * _c(cos(self)))
cos = unary("cos", np.cos, lambda g, self: -g * _c(sin(self)))
tanh = unary("tanh", np.tanh, lambda g, self, out: g * _c(1 - out * out))
sigmoid = unary("sigmoid", lambda x: 0.5 * (np.tanh(0.5 * x) + 1),
                lambda g, self, out: g * _c(out * (1 - out)))
sqrt = unary("sqrt", np.sqrt, lambda g, self, out: g / _c(2 * out),
             samples=S.unary_samples(S.positive))

abs = unary(  # noqa: A001 - PyTorch's name
    "abs", np.abs, lambda g, self: g * sgn(self), promotion=Promotion.COMPLEX_TO_FLOAT,
    samples=S.unary_samples(S.away_from_zero))

sgn = unary("sgn", lambda x: np.sign(x) if x.dtype.kind != "c" else
            np.where(x == 0, 0, x / np.where(x == 0, 1, np.abs(x))),
            NOT_DIFFERENTIABLE, promotion=Promotion.DEFAULT)

relu = unary("relu", lambda x: np.maximum(x, 0).astype(x.dtype),
             lambda g, self, out: g * (out > 0), promotion=Promotion.DEFAULT,
             samples=S.unary_samples(S.away_from_zero))

pow = defop(  # noqa: A001 - PyTorch's name
    "pow(Tensor self, Tensor exponent) -> Tensor",
    meta=pointwise_meta(Promotion.BOOL_TO_LONG),
    reference=lambda x, y: np.power(x, y),
    derivative=lambda g, self, exponent, out: _pow_derivative(g, self, exponent, out),
    tags=BINARY, promotion=Promotion.BOOL_TO_LONG,
    samples=S.binary_samples(make_a=S.positive, scalar=2.0), torch_ref="torch.pow",
    method=True, inplace_variant=True,
)


def _pow_derivative(g, self, exponent, out):
    if not hasattr(exponent, "shape"):          # Python scalar exponent
        grad_self = g * _c(exponent * self ** (exponent - 1)) if exponent != 0 else g * 0
        return (grad_self, None)
    grad_self = g * _c(exponent * self ** (exponent - 1))
    grad_exp = g * _c(out * log(self)) if hasattr(self, "shape") else g * _c(out * math.log(self))
    return (grad_self, grad_exp)


maximum = defop(
    "maximum(Tensor self, Tensor other) -> Tensor",
    meta=pointwise_meta(Promotion.DEFAULT),
    reference=np.maximum,
    # ties split the gradient evenly, as PyTorch does
    derivative=lambda g, self, other: (g * ((self > other) + (self == other) * 0.5),
                                       g * ((other > self) + (self == other) * 0.5)),
    tags=BINARY | {Tag.COMMUTATIVE}, promotion=Promotion.DEFAULT,
    samples=S.binary_samples(), torch_ref="torch.maximum", method=True,
)

# --- comparisons --------------------------------------------------------------------


def comparison(name, reference):
    return defop(f"{name}(Tensor self, Tensor other) -> Tensor",
                 meta=pointwise_meta(Promotion.ALWAYS_BOOL), reference=reference,
                 derivative=NOT_DIFFERENTIABLE, tags=BINARY, promotion=Promotion.ALWAYS_BOOL,
                 samples=S.binary_samples(scalar=0.0), torch_ref=f"torch.{name}", method=True,
                 inplace_variant=True)


eq = comparison("eq", np.equal)
ne = comparison("ne", np.not_equal)
lt = comparison("lt", np.less)
le = comparison("le", np.less_equal)
gt = comparison("gt", np.greater)
ge = comparison("ge", np.greater_equal)

# --- selection and complex parts ---------------------------------------------------
where = defop(
    "where(Tensor condition, Tensor self, Tensor other) -> Tensor",
    meta=pointwise_meta(Promotion.DEFAULT, promote=(1, 2)),
    reference=lambda c, x, y: np.where(c, x, y),
    derivative=lambda g, condition, self, other: (None, where(condition, g, 0),
                                                  where(condition, 0, g)),
    tags={P}, promotion=Promotion.DEFAULT, promote_args=(1, 2),
    samples=lambda rng: [S.Sample((S.bool_array(rng, 3, 4), S.randn(rng, 3, 4),
                                   S.randn(rng, 4))),
                         S.Sample((S.bool_array(rng, 2, 1), S.randn(rng, 2, 3), 0.5))],
    torch_ref="torch.where", method=True,
)

real = defop(
    "real(Tensor self) -> Tensor",
    saves=(),
    meta=lambda self: same_meta(self).with_(dtype=self.dtype.to_real()),
    reference=lambda x: np.real(x) if x.dtype.kind == "c" else x,
    derivative=lambda g, self: g,
    tags={Tag.VIEW}, samples=S.unary_samples(), torch_ref="torch.real", method=False,
)

conj = defop(
    "conj(Tensor self) -> Tensor",
    meta=same_meta,
    reference=np.conj,
    derivative=lambda g, self: conj(g) if g.dtype.is_complex else g,
    tags=UNARY, samples=S.unary_samples(), torch_ref="torch.conj", method=True,
)

convert_element_type = defop(
    "convert_element_type(Tensor self, ScalarType dtype) -> Tensor",
    saves=(),
    meta=lambda self, dtype: same_meta(self).with_(dtype=dtype),
    reference=lambda x, dtype: x.astype(dtype.np_dtype),
    derivative=lambda g, self, dtype: g,   # fit_grad casts back to self's dtype
    tags=UNARY,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), "float64")),
                         S.Sample((S.randn(rng, 5), "float16"), grad=False,
                                  note="finite differences cannot see through f16 rounding")],
    torch_ref=lambda torch: lambda x, dtype: x.to(getattr(torch, str(dtype).split(".")[-1])),
)


# =====================================================================================
# The rest of the family: more unary math, rounding, predicates, binary arithmetic,
# logical/bitwise ops. Samples go beyond `S.unary_samples`: ints and bools where
# PyTorch accepts them, Python scalars on either side, 0-d and broadcasting shapes.
# =====================================================================================

from ..errors import DTypeError  # noqa: E402
from .rules import is_tensor_like, promote_dtypes, shape_of, broadcast_shapes, \
    device_of, pointwise_memory_format  # noqa: E402
from ..meta import TensorMeta, contiguous_format  # noqa: E402

LN2 = math.log(2.0)
LN10 = math.log(10.0)


def _is_t(x) -> bool:
    return is_tensor_like(x)


def _zeros(g):
    """PyTorch's zero gradient for piecewise-constant ops: zeros that need no grad."""
    from .creation import zeros_like
    return zeros_like(g)


def _dtype_check(promotion, check, n_operands=None):
    """pointwise_meta after `check(tensor)` raised for dtypes PyTorch rejects."""
    base = pointwise_meta(promotion, n_operands)

    def rule(*args, **kwargs):
        operands = args if n_operands is None else args[:n_operands]
        for a in operands:
            if is_tensor_like(a):
                check(a.dtype)
        return base(*args, **kwargs)
    return rule


def _not_for(*categories, msg=None):
    names = {"bool": "Bool", "int": "Long", "float": "Float", "complex": "ComplexFloat"}

    def check(dt):
        kind = ("bool" if dt.name == "bool" else "complex" if dt.is_complex else
                "float" if dt.is_floating_point else "int")
        if kind in categories:
            raise DTypeError(msg or f"not implemented for '{names[kind]}' ({dt.name})")
    return check


NO_COMPLEX = _not_for("complex")
FLOAT_ONLY = _not_for("bool", "int", "complex")
INT_ONLY = _not_for("float", "complex")


def _samples(make=S.randn, *, ints=None, bools=False, cplx=None, kwargs=None, extra=None):
    """Unary samples: float32 over UNARY_SHAPES, plus int/bool/complex ones.

    ints=(low, high) adds an int64 sample; cplx=make adds complex64 samples (forward
    only: the table checks gradients on float inputs); extra(rng) adds more."""
    kw = kwargs or {}

    def gen(rng):
        out = [S.Sample((make(rng, *s),), dict(kw)) for s in S.UNARY_SHAPES]
        if ints is not None:
            out.append(S.Sample((S.int_array(rng, 3, 4, low=ints[0], high=ints[1]),), dict(kw)))
        if bools:
            out.append(S.Sample((S.bool_array(rng, 2, 3),), dict(kw)))
        if cplx is not None:
            z = (cplx(rng, 2, 3).astype(np.complex64) +
                 1j * cplx(rng, 2, 3).astype(np.complex64)).astype(np.complex64)
            out.append(S.Sample((z,), dict(kw)))
        if extra is not None:
            out.extend(extra(rng))
        return out
    return gen


def _small(rng, *shape, dtype=np.float32):
    """Values in (-0.6, 0.6): keeps complex samples of asin/atanh-like ops in range."""
    return np.asarray(rng.random(shape) * 1.2 - 0.6, dtype=dtype)


def _above_one(rng, *shape, dtype=np.float32):
    return np.asarray(rng.random(shape) * 2 + 1.2, dtype=dtype)


def _off_integers(rng, *shape, dtype=np.float32):
    """Values away from integers and half-integers: floor/round/frac kinks."""
    x = rng.integers(-4, 5, size=shape) + rng.choice([0.15, 0.3, 0.7, 0.85], size=shape) + \
        rng.random(shape) * 0.05
    return np.asarray(x, dtype=dtype)


# --- exponentials and logarithms ----------------------------------------------------
exp2 = unary("exp2", np.exp2, lambda g, self, out: g * _c(out * LN2),
             samples=_samples(ints=(-3, 4), bools=True, cplx=S.randn))
log2 = unary("log2", np.log2, lambda g, self: g / _c(self * LN2),
             samples=_samples(S.positive, ints=(1, 9), cplx=S.positive))
log10 = unary("log10", np.log10, lambda g, self: g / _c(self * LN10),
              samples=_samples(S.positive, ints=(1, 9), cplx=S.positive))
log1p = unary("log1p", np.log1p, lambda g, self: g / _c(self + 1),
              samples=_samples(S.positive, ints=(0, 9), cplx=S.positive))
expm1 = unary("expm1", np.expm1, lambda g, self, out: g * _c(out + 1),
              samples=_samples(ints=(-3, 4), cplx=S.randn))
rsqrt = unary("rsqrt", lambda x: 1 / np.sqrt(x),
              lambda g, self, out: g * _c(-0.5 * out * out * out),
              samples=_samples(S.positive, ints=(1, 9), cplx=S.positive))
square = unary("square", np.square, lambda g, self: g * _c(2 * self),
               promotion=Promotion.BOOL_TO_LONG,
               samples=_samples(ints=(-5, 6), bools=True, cplx=S.randn))
reciprocal = unary("reciprocal", np.reciprocal, lambda g, self, out: -g * _c(out * out),
                   samples=_samples(S.away_from_zero, ints=(1, 5), cplx=S.away_from_zero))

# --- trigonometric and hyperbolic -------------------------------------------------------
tan = unary("tan", np.tan, lambda g, self, out: g * _c(1 + out * out),
            samples=_samples(_small, ints=(-1, 2), cplx=_small))
asin = unary("asin", np.arcsin, lambda g, self: g * _c(rsqrt(1 - self * self)),
             samples=_samples(S.unit, ints=(0, 1), cplx=_small))
acos = unary("acos", np.arccos, lambda g, self: -g * _c(rsqrt(1 - self * self)),
             samples=_samples(S.unit, ints=(0, 1), cplx=_small))
atan = unary("atan", np.arctan, lambda g, self: g / _c(self * self + 1),
             samples=_samples(ints=(-3, 4), cplx=_small))
sinh = unary("sinh", np.sinh, lambda g, self: g * _c(cosh(self)),
             samples=_samples(ints=(-3, 4), cplx=S.randn))
cosh = unary("cosh", np.cosh, lambda g, self: g * _c(sinh(self)),
             samples=_samples(ints=(-3, 4), cplx=S.randn))
asinh = unary("asinh", np.arcsinh, lambda g, self: g * _c(rsqrt(self * self + 1)),
              samples=_samples(ints=(-3, 4), cplx=_small))
acosh = unary("acosh", np.arccosh, lambda g, self: g * _c(rsqrt(self * self - 1)),
              samples=_samples(_above_one, ints=(1, 5), cplx=_above_one))
atanh = unary("atanh", np.arctanh, lambda g, self: g / _c(1 - self * self),
              samples=_samples(S.unit, ints=(0, 1), cplx=_small))

# --- error function -------------------------------------------------------------------
_erf_f64 = np.frompyfunc(math.erf, 1, 1)
_erfc_f64 = np.frompyfunc(math.erfc, 1, 1)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _erf(x):
    return np.asarray(_erf_f64(np.asarray(x, np.float64)), np.float64).astype(x.dtype)


def _erfc(x):
    return np.asarray(_erfc_f64(np.asarray(x, np.float64)), np.float64).astype(x.dtype)


def _erfinv(x):
    """Winitzki's approximation refined by Newton steps on erf, in float64."""
    y = np.asarray(x, np.float64)
    with np.errstate(all="ignore"):
        ln = np.log((1 - y) * (1 + y))
        a = 0.147
        t = 2 / (math.pi * a) + ln / 2
        r = np.sign(y) * np.sqrt(np.sqrt(t * t - ln / a) - t)
        inner = np.abs(y) < 1
        for _ in range(3):
            e = np.asarray(_erf_f64(np.where(inner, r, 0.0)), np.float64)
            r = np.where(inner, r - (e - y) / (TWO_OVER_SQRT_PI * np.exp(-r * r)), r)
        r = np.where(np.abs(y) == 1, np.sign(y) * np.inf, np.where(np.abs(y) > 1, np.nan, r))
    return r.astype(x.dtype)


_real_meta = _dtype_check(Promotion.INT_TO_FLOAT, NO_COMPLEX)
erf = unary("erf", _erf, lambda g, self: g * (TWO_OVER_SQRT_PI * exp(-self * self)),
            meta=_real_meta, samples=_samples(ints=(-2, 3), bools=True))
erfc = unary("erfc", _erfc, lambda g, self: g * (-TWO_OVER_SQRT_PI * exp(-self * self)),
             meta=_real_meta, samples=_samples(ints=(-2, 3)))
erfinv = unary("erfinv", _erfinv,
               lambda g, self, out: g * (0.5 * math.sqrt(math.pi) * exp(out * out)),
               meta=_real_meta, samples=_samples(S.unit, ints=(0, 1)))
