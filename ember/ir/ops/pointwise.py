"""Pointwise ops: unary math, binary arithmetic, comparisons, casts.

Reference kernels receive arrays already promoted to the compute dtype (see
`rules.promote`; half types computed in float32); the dispatcher casts results to
the dtype the meta rule names. Derivatives follow PyTorch's complex convention
(conjugate Wirtinger): grads of holomorphic f are `g * conj(f'(z))`.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..errors import DTypeNotImplementedError, EmberError, ShapeError
from ..registry import NOT_DIFFERENTIABLE, Promotion, Tag, defop
from . import samples as S
from .rules import aliasing_meta, cast_scalar, pointwise_meta, same_meta

P = Tag.POINTWISE
UNARY = {P, Tag.UNARY}
BINARY = {P, Tag.BINARY}


def _c(x):
    """conj(x) for complex values, x itself otherwise: keeps real graphs free of conj."""
    if isinstance(x, complex):          # a Python scalar operand (x * 1j)
        return x.conjugate()
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
def _times_alpha(y: np.ndarray, alpha):
    """y * alpha in y's dtype: an integer alpha wraps into a narrow integer type as in
    torch (uint8 with alpha=-3 multiplies by 253), where NumPy would raise."""
    if y.dtype.kind in "iu" and isinstance(alpha, (int, np.integer)) \
            and not isinstance(alpha, bool):
        alpha = np.array(alpha).astype(y.dtype)
    return y * alpha


def _check_alpha(out, alpha) -> None:
    """torch's rules for add/sub's alpha against the result dtype."""
    integral = out.dtype.category <= dtypes.Category.INT
    if integral and isinstance(alpha, (float, complex, np.inexact)):
        raise DTypeError("For integral input tensors, argument alpha must not be a floating "
                         "point number.")
    if isinstance(alpha, (bool, np.bool_)) and out.dtype.name != "bool":
        raise DTypeError("Boolean alpha only supported for Boolean results.")


def _add_meta(self, other, alpha=1):
    out = pointwise_meta(Promotion.DEFAULT, 2)(self, other, alpha)
    _check_alpha(out, alpha)
    return out


add = defop(
    "add(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor",
    saves=(),
    meta=_add_meta,
    reference=lambda x, y, alpha: x + _times_alpha(y, alpha) if alpha != 1 else x + y,
    derivative=lambda g, self, other, alpha: (g, g * _c(alpha) if alpha != 1 else g),
    tags=BINARY | {Tag.COMMUTATIVE}, promotion=Promotion.DEFAULT,
    samples=S.binary_samples(scalar=2.5), torch_ref="torch.add", method=True,
    inplace_variant=True,
)

def _sub_meta(self, other, alpha=1):
    out = pointwise_meta(Promotion.DEFAULT, 2)(self, other, alpha)
    _check_alpha(out, alpha)
    if out.dtype.name == "bool":
        from .pointwise_math import MathArgumentError   # (that module imports this one)
        raise MathArgumentError("Subtraction, the `-` operator, with two bool tensors is not "
                                "supported. Use the `^` or `logical_xor()` operator instead.")
    if any(_is_bool_operand(v) for v in (self, other)):
        from .pointwise_math import MathArgumentError
        raise MathArgumentError("Subtraction, the `-` operator, with a bool tensor is not "
                                "supported. If you are trying to invert a mask, use the `~` "
                                "or `logical_not()` operator instead.")
    return out


def _is_bool_operand(v) -> bool:
    """A bool tensor or a Python bool: PyTorch's sub refuses either."""
    if isinstance(v, (bool, np.bool_)):
        return True
    return is_tensor_like(v) and v.dtype.name == "bool"


sub = defop(
    "sub(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor",
    saves=(),
    meta=_sub_meta,
    reference=lambda x, y, alpha: x - _times_alpha(y, alpha) if alpha != 1 else x - y,
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


def _div_promotion(self, other, rounding_mode=None):
    """True division gives floats; a rounding mode keeps integer operands integral."""
    return Promotion.INT_TO_FLOAT if rounding_mode is None else Promotion.DEFAULT


def _div_meta(self, other, rounding_mode=None):
    out = pointwise_meta(_div_promotion(self, other, rounding_mode), 2)(self, other)
    if rounding_mode is not None and out.dtype.name == "bool":
        raise DTypeNotImplementedError(f"div with rounding_mode='{rounding_mode}' is not "
                                       f"implemented for 'Bool'")
    return out


div = defop(
    "div(Tensor self, Tensor other, *, str? rounding_mode=None) -> Tensor",
    meta=_div_meta,
    reference=lambda x, y, rounding_mode: _div_reference(x, y, rounding_mode),
    derivative=lambda g, self, other, rounding_mode: _div_derivative(g, self, other,
                                                                     rounding_mode),
    tags=BINARY, promotion=_div_promotion,
    samples=S.binary_samples(make_b=S.away_from_zero, scalar=4.0),
    torch_ref="torch.div", method=True, inplace_variant=True,
)


class IntegerDivisionByZero(EmberError, RuntimeError, ZeroDivisionError):
    """An integer division or remainder by zero: torch's RuntimeError "ZeroDivisionError"
    (NumPy would give 0 with a warning); also Python's ZeroDivisionError."""


def _integer_divisor_checked(fn):
    """fn(x, y, ...), refusing a zero divisor when both operands are integers."""
    def reference(x, y, *rest):
        if np.asarray(y).dtype.kind in "iub" and np.asarray(x).dtype.kind in "iub" and \
                not np.all(y):
            raise IntegerDivisionByZero("ZeroDivisionError: integer division or modulo by "
                                        "zero")
        return fn(x, y, *rest)
    return reference


def _div_reference(x, y, rounding_mode):
    if rounding_mode is None:
        return np.true_divide(x, y)
    return _rounded_division(x, y, rounding_mode)


@_integer_divisor_checked
def _rounded_division(x, y, rounding_mode):
    if rounding_mode == "trunc":
        if x.dtype.kind in "fc":
            return np.trunc(np.true_divide(x, y))
        return (x - np.fmod(x, y)) // y     # exact for every int64, no float detour
    if rounding_mode == "floor":
        return np.floor_divide(x, y)
    raise ShapeError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                     f"found '{rounding_mode}'")


def _div_derivative(g, self, other, rounding_mode):
    if rounding_mode is not None:
        return (g * 0, g * 0)
    return (g / _c(other), -g * _c(self) / _c(other * other))


neg = unary("neg", np.negative, lambda g, self: -g, promotion=Promotion.DEFAULT, saves=(),
            meta=lambda self: _neg_meta(self))


def _neg_meta(self):
    if self.dtype.name == "bool":
        raise DTypeError("Negation, the `-` operator, on a bool tensor is not supported. If "
                         "you are trying to invert a mask, use the `~` or `logical_not()` "
                         "operator instead.")
    return pointwise_meta(Promotion.DEFAULT)(self)

# --- transcendental ---------------------------------------------------------------
exp = unary("exp", np.exp, lambda g, self, out: g * _c(out))
log = unary("log", np.log, lambda g, self: g / _c(self),
            samples=S.unary_samples(S.positive))
sin = unary("sin", np.sin, lambda g, self: g * _c(cos(self)))
cos = unary("cos", np.cos, lambda g, self: -g * _c(sin(self)))
def _quantized_keeps_dtype(rule):
    """A unary meta rule under which a quantized input gives a quantized result of its
    dtype (torch's quantized sigmoid / tanh: fixed output qparams, same dtype)."""
    def meta(self):
        if getattr(self.dtype, "is_quantized", False):
            return same_meta(self)
        return rule(self)
    return meta


tanh = unary("tanh", np.tanh, lambda g, self, out: g * _c(1 - out * out),
             meta=_quantized_keeps_dtype(pointwise_meta(Promotion.INT_TO_FLOAT)))
sigmoid = unary("sigmoid", lambda x: 0.5 * (np.tanh(0.5 * x) + 1),
                lambda g, self, out: g * _c(out * (1 - out)),
                meta=_quantized_keeps_dtype(pointwise_meta(Promotion.INT_TO_FLOAT)))
sqrt = unary("sqrt", np.sqrt, lambda g, self, out: g / _c(2 * out),
             samples=S.unary_samples(S.positive))

abs = unary(  # noqa: A001 - PyTorch's name
    "abs", np.abs, lambda g, self: g * sgn(self), promotion=Promotion.COMPLEX_TO_FLOAT,
    samples=S.unary_samples(S.away_from_zero))


def real_sign(x):
    """PyTorch's sign of real numbers, (0 < x) - (x < 0): NaN gives 0 (NumPy's, NaN)."""
    return ((x > 0).astype(x.dtype) - (x < 0).astype(x.dtype)).astype(x.dtype, copy=False)


sgn = unary("sgn", lambda x: x.copy() if x.dtype.kind == "b" else real_sign(x) if x.dtype.kind != "c" else
            np.where(x == 0, 0, x / np.where(x == 0, 1, np.abs(x))),
            lambda g, self, out: _sgn_derivative(g, self, out), promotion=Promotion.DEFAULT,
            samples=S.unary_samples(S.away_from_zero))


def _sgn_derivative(g, self, out):
    """PyTorch's SgnBackward: zero for real inputs (piecewise constant); for complex z,
    (g - sgn * Re(conj(sgn) * g)) / |z|, the part of g tangent to the unit circle, and 0
    at z = 0 where sgn is 0."""
    if not self.dtype.is_complex:
        return _zeros(g)
    r = abs(self)
    at_zero = r == 0
    tangent = (g - out * real(conj(out) * g)) / where(at_zero, 1, r)
    return where(at_zero, 0, tangent)


def _relu_meta(self):
    if is_tensor_like(self) and self.dtype.name == "bool":
        raise DTypeError("Boolean inputs not supported for relu")
    return pointwise_meta(Promotion.DEFAULT)(self)


relu = unary("relu", lambda x: np.maximum(x, 0).astype(x.dtype, copy=False),
             # PyTorch's threshold_backward: 0 where out <= 0, else g (a NaN gradient
             # there is dropped; a NaN input passes its gradient)
             lambda g, self, out: where(out <= 0, 0, g), promotion=Promotion.DEFAULT,
             meta=_relu_meta, samples=S.unary_samples(S.away_from_zero))


def _pow_promotion(self, exponent):
    """Bools raised to a Python bool stay bool (x ** True is x, x ** False all True), as
    PyTorch; any other bool operand counts as an integer."""
    both_bool = isinstance(exponent, bool) and is_tensor_like(self) and \
        self.dtype.name == "bool"
    return Promotion.DEFAULT if both_bool else Promotion.BOOL_TO_LONG


def _pow_meta(self, exponent):
    if all(is_tensor_like(t) and t.dtype.name == "bool" for t in (self, exponent)):
        raise DTypeNotImplementedError("\"pow\" not implemented for 'Bool'")
    out = pointwise_meta(_pow_promotion(self, exponent))(self, exponent)
    integral = not (out.dtype.is_floating_point or out.dtype.is_complex)
    if isinstance(exponent, int) and not isinstance(exponent, bool) and exponent < 0 and \
            integral:
        from .pointwise_math import MathArgumentError   # (that module imports this one)
        raise MathArgumentError("Integers to negative integer powers are not allowed.")
    return out


def _pow_reference(x, y):
    """np.power, except integer bases to negative integer exponents (a tensor exponent):
    PyTorch gives 1 for base 1, +-1 for base -1 and 0 otherwise; NumPy raises."""
    y = np.asarray(y)
    if y.dtype.kind != "i" or np.asarray(x).dtype.kind not in "iu" or not np.any(y < 0):
        return np.power(x, y)
    negative = y < 0
    out = np.power(x, np.where(negative, 0, y))
    minus_one = np.where(y % 2 == 0, 1, -1).astype(out.dtype)
    reciprocal = np.where(x == 1, 1, np.where(x == -1, minus_one, 0)).astype(out.dtype)
    return np.where(negative, reciprocal, out)


pow = defop(  # noqa: A001 - PyTorch's name
    "pow(Tensor self, Tensor exponent) -> Tensor",
    meta=_pow_meta,
    reference=_pow_reference,
    derivative=lambda g, self, exponent, out: _pow_derivative(g, self, exponent, out),
    tags=BINARY, promotion=_pow_promotion,
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


def _maximum_meta(self, other):
    if any(is_tensor_like(t) and t.dtype.is_complex for t in (self, other)):
        raise DTypeError("maximum not implemented for complex tensors.")
    return pointwise_meta(Promotion.DEFAULT)(self, other)


maximum = defop(
    "maximum(Tensor self, Tensor other) -> Tensor",
    meta=_maximum_meta,
    reference=np.maximum,
    # ties split the gradient evenly, as PyTorch does
    derivative=lambda g, self, other: (g * ((self > other) + (self == other) * 0.5),
                                       g * ((other > self) + (self == other) * 0.5)),
    tags=BINARY | {Tag.COMMUTATIVE}, promotion=Promotion.DEFAULT,
    samples=S.binary_samples(), torch_ref="torch.maximum", method=True,
)

# --- comparisons --------------------------------------------------------------------


def _ordered_meta(name):
    """lt/le/gt/ge: complex numbers have no order (PyTorch's "lt_cpu" refusal)."""
    def rule(self, other):
        for t in (self, other):
            if is_tensor_like(t) and t.dtype.is_complex or \
                    isinstance(t, (complex, np.complexfloating)):
                raise DTypeNotImplementedError(f"\"{name}_cpu\" not implemented for "
                                               f"'ComplexFloat'")
        return pointwise_meta(Promotion.ALWAYS_BOOL)(self, other)
    return rule


def comparison(name, reference):
    ordered = name not in ("eq", "ne")
    meta = _ordered_meta(name) if ordered else pointwise_meta(Promotion.ALWAYS_BOOL)
    return defop(f"{name}(Tensor self, Tensor other) -> Tensor",
                 meta=meta,
                 reference=reference,
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
    meta=lambda self: aliasing_meta(self, self.dtype.to_real()),
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

def _convert_reference(x: np.ndarray, dtype) -> np.ndarray:
    """x.astype, with torch's float8 conversions where ml_dtypes' differ: float8_e4m3fn
    saturates to +-448 (inf too), float8_e8m0fnu keeps only the exponent (sign dropped)."""
    if dtype.name == "float8_e4m3fn" and x.dtype.kind == "f":
        x = np.clip(x, -448.0, 448.0)
    elif dtype.name == "float8_e8m0fnu" and x.dtype.kind in "fi":
        x = np.abs(x)
    return x.astype(dtype.np_dtype)


convert_element_type = defop(
    "convert_element_type(Tensor self, ScalarType dtype) -> Tensor",
    saves=(),
    meta=lambda self, dtype: same_meta(self).with_(dtype=dtype),
    reference=_convert_reference,
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
            raise DTypeNotImplementedError(msg or f"not implemented for '{names[kind]}' "
                                           f"({dt.name})")
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
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _scipy_special():
    # vectorized erf/erfc/erfinv (a per-element math.erf loop made timm's trunc_normal_
    # init of a 28M-parameter model take 20 s); loaded on first use
    import scipy.special  # noqa: PLC0415
    return scipy.special


def _in_float64(function):
    def reference(x):
        return np.asarray(function(np.asarray(x, np.float64)), np.float64).astype(x.dtype)
    return reference


def _erf(x):
    return _in_float64(_scipy_special().erf)(x)


def _erfc(x):
    return _in_float64(_scipy_special().erfc)(x)


def _erfinv(x):
    return _in_float64(_scipy_special().erfinv)(x)


_real_meta = _dtype_check(Promotion.INT_TO_FLOAT, NO_COMPLEX)
erf = unary("erf", _erf, lambda g, self: g * (TWO_OVER_SQRT_PI * exp(-self * self)),
            meta=_real_meta, samples=_samples(ints=(-2, 3), bools=True))
erfc = unary("erfc", _erfc, lambda g, self: g * (-TWO_OVER_SQRT_PI * exp(-self * self)),
             meta=_real_meta, samples=_samples(ints=(-2, 3)))
erfinv = unary("erfinv", _erfinv,
               lambda g, self, out: g * (0.5 * math.sqrt(math.pi) * exp(out * out)),
               meta=_real_meta, samples=_samples(S.unit, ints=(0, 1)))

# --- rounding: piecewise constant, zero gradients as in PyTorch ------------------------
_NO_BOOL_COMPLEX = _dtype_check(Promotion.DEFAULT, _not_for("bool", "complex"))
floor = unary("floor", np.floor, lambda g, self: _zeros(g), promotion=Promotion.DEFAULT,
              meta=_NO_BOOL_COMPLEX, saves=(), samples=_samples(_off_integers, ints=(-5, 6)))
ceil = unary("ceil", np.ceil, lambda g, self: _zeros(g), promotion=Promotion.DEFAULT,
             meta=_NO_BOOL_COMPLEX, saves=(), samples=_samples(_off_integers, ints=(-5, 6)))
trunc = unary("trunc", np.trunc, lambda g, self: _zeros(g), promotion=Promotion.DEFAULT,
              meta=_NO_BOOL_COMPLEX, saves=(), samples=_samples(_off_integers, ints=(-5, 6)))
frac = unary("frac", lambda x: x - np.trunc(x), lambda g, self: g,
             promotion=Promotion.DEFAULT, saves=(),
             meta=_dtype_check(Promotion.DEFAULT, _not_for("bool", "int", "complex")),
             samples=_samples(_off_integers))


def _round_reference(x, decimals):
    if x.dtype.kind in "iu":
        return x.copy()
    if decimals == 0:
        return np.round(x)
    if decimals > 0:
        scale = np.asarray(10.0 ** decimals, x.dtype)
        return np.round(x * scale) / scale
    scale = np.asarray(10.0 ** -decimals, x.dtype)
    return np.round(x / scale) * scale


def _round_meta(self, decimals=0):
    """Integers round to themselves; only decimals != 0 needs a float (as in PyTorch)."""
    rejected = ("bool", "complex") if decimals == 0 else ("bool", "int", "complex")
    return _dtype_check(Promotion.DEFAULT, _not_for(*rejected), 1)(self, decimals)


round = defop(  # noqa: A001 - PyTorch's name
    "round(Tensor self, *, int decimals=0) -> Tensor",
    meta=_round_meta,
    reference=_round_reference,
    derivative=lambda g, self, decimals: _zeros(g), saves=(),
    tags=UNARY, promotion=Promotion.DEFAULT,
    samples=_samples(_off_integers, extra=lambda rng: [
        S.Sample((_off_integers(rng, 3, 4) * 10,), {"decimals": -1}),
        S.Sample((_off_integers(rng, 5) / 10,), {"decimals": 1}),
        S.Sample((np.array([0.5, 1.5, 2.5, -0.5, -2.5], np.float32),), grad=False,
                 note="ties round half to even; finite differences jump there"),
    ]),
    torch_ref="torch.round", method=True, inplace_variant=True,
)

sign = unary("sign", lambda x: x.copy() if x.dtype == np.bool_ else real_sign(x), lambda g, self: _zeros(g), promotion=Promotion.DEFAULT,
             meta=_dtype_check(Promotion.DEFAULT, _not_for(
                 "complex", msg="Unlike NumPy, torch.sign is not intended to support complex "
                                "numbers. Please use torch.sgn instead.")),
             saves=(), samples=_samples(S.away_from_zero, ints=(-3, 4), bools=True))

positive = defop(
    "positive(Tensor self) -> Tensor",
    saves=(),
    meta=_dtype_check(Promotion.DEFAULT, _not_for(
        "bool", msg="The `+` operator, on a bool tensor is not supported.")),
    reference=lambda x: x,
    derivative=lambda g, self: g,
    tags=UNARY, samples=_samples(ints=(-3, 4), cplx=S.randn), torch_ref="torch.positive",
    method=True,
)

# --- predicates and logical/bitwise not -------------------------------------------------


def predicate(name, reference, *, meta=None, samples=None):
    return defop(f"{name}(Tensor self) -> Tensor",
                 meta=meta or pointwise_meta(Promotion.ALWAYS_BOOL), reference=reference,
                 derivative=NOT_DIFFERENTIABLE, tags=UNARY, promotion=Promotion.ALWAYS_BOOL,
                 samples=samples or _special_samples(cplx=True), torch_ref=f"torch.{name}",
                 method=True)


def _special_samples(cplx=False):
    """Floats with nan/inf/-inf/0 mixed in, ints, bools (and complex)."""
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.0], np.float32)

    def gen(rng):
        out = [S.Sample((specials,)), S.Sample((np.array(np.inf, np.float32),)),
               S.Sample((rng.choice(specials, size=(3, 4)).astype(np.float32),)),
               S.Sample((rng.choice(specials, size=(2, 3)).astype(np.float64),)),
               S.Sample((rng.choice(specials, size=(4,)).astype(np.float16),)),
               S.Sample((S.int_array(rng, 3, 4),)), S.Sample((S.bool_array(rng, 2, 3),))]
        if cplx:
            z = np.empty((2, 3), np.complex64)
            z.real, z.imag = rng.choice(specials, size=(2, 3)), rng.choice(specials, (2, 3))
            out.append(S.Sample((z,)))
        return out
    return gen


_NOT_COMPLEX_PRED = lambda name: _dtype_check(  # noqa: E731
    Promotion.ALWAYS_BOOL, _not_for("complex", msg=f"{name} does not support complex inputs."))

isnan = predicate("isnan", np.isnan)
isinf = predicate("isinf", np.isinf)
isfinite = predicate("isfinite", np.isfinite)
isposinf = predicate("isposinf", np.isposinf, meta=_NOT_COMPLEX_PRED("isposinf"),
                     samples=_special_samples())
isneginf = predicate("isneginf", np.isneginf, meta=_NOT_COMPLEX_PRED("isneginf"),
                     samples=_special_samples())

logical_not = defop(
    "logical_not(Tensor self) -> Tensor",
    meta=pointwise_meta(Promotion.ALWAYS_BOOL), reference=np.logical_not,
    derivative=NOT_DIFFERENTIABLE, tags=UNARY,
    samples=_special_samples(cplx=True), torch_ref="torch.logical_not",
    method=True, inplace_variant=True,
)

bitwise_not = defop(
    "bitwise_not(Tensor self) -> Tensor",
    meta=_dtype_check(Promotion.DEFAULT, INT_ONLY), reference=np.invert,
    derivative=NOT_DIFFERENTIABLE, tags=UNARY, promotion=Promotion.DEFAULT,
    samples=lambda rng: [S.Sample((S.int_array(rng, 3, 4),)),
                         S.Sample((S.int_array(rng, low=-9, high=9),)),
                         S.Sample((S.int_array(rng, 5, dtype=np.int32),)),
                         S.Sample((S.int_array(rng, 5, low=0, high=255, dtype=np.uint8),)),
                         S.Sample((S.bool_array(rng, 2, 3),))],
    torch_ref="torch.bitwise_not", method=True, inplace_variant=True,
)


def _nan_to_num_reference(x, nan, posinf, neginf):
    if x.dtype.kind not in "fc":
        return x.copy()
    return np.nan_to_num(x, nan=0.0 if nan is None else nan, posinf=posinf, neginf=neginf)


nan_to_num = defop(
    "nan_to_num(Tensor self, float? nan=None, float? posinf=None, float? neginf=None) -> Tensor",
    meta=same_meta,
    reference=_nan_to_num_reference,
    derivative=lambda g, self, nan, posinf, neginf: g * isfinite(self),
    tags=UNARY,
    samples=lambda rng: [S.Sample(s.args, grad=False, note="inf/nan: no finite differences")
                         for s in _special_samples(cplx=True)(rng)] + [
        S.Sample((np.array([np.nan, np.inf, -np.inf, 1.0], np.float32), 1.0, 2.0, -3.0),
                 grad=False),
        S.Sample((np.array([np.nan, np.inf, -np.inf], np.float32),), {"posinf": 7.0},
                 grad=False),
        S.Sample((S.randn(rng, 3, 4),)), S.Sample((S.randn(rng),))],
    torch_ref="torch.nan_to_num", method=True, inplace_variant=True,
)

# --- complex parts ----------------------------------------------------------------------


def _imag_meta(self):
    if not self.dtype.is_complex:
        raise DTypeError("imag is not implemented for tensors with non-complex dtypes.")
    return aliasing_meta(self, self.dtype.to_real())


def _complex_samples(rng):
    def z(*shape):
        return np.asarray(S.randn(rng, *shape) + 1j * S.randn(rng, *shape), np.complex64)
    return [S.Sample((z(),)), S.Sample((z(5),)), S.Sample((z(3, 4),)),
            S.Sample((z(2, 3).astype(np.complex128),)),
            S.Sample((z(4, 6)[:, ::2],), note="non-contiguous")]


imag = defop(
    "imag(Tensor self) -> Tensor",
    saves=(),
    meta=_imag_meta,
    reference=np.imag,
    derivative=lambda g, self: g * 1j,
    tags={Tag.VIEW}, samples=_complex_samples, torch_ref="torch.imag", method=False,
)


def _angle_meta(self):
    _, dt = promote_dtypes(Promotion.INT_TO_FLOAT, [self])
    return same_meta(self).with_(dtype=dt.to_real())


angle = defop(
    "angle(Tensor self) -> Tensor",
    meta=_angle_meta,
    reference=lambda x: np.angle(x).astype(x.real.dtype) if x.dtype.kind == "c" else
    np.where(np.isnan(x), x, np.where(x < 0, np.asarray(math.pi, x.dtype), 0)).astype(x.dtype),
    derivative=lambda g, self: _angle_derivative(g, self),
    tags=UNARY, promotion=Promotion.INT_TO_FLOAT,
    samples=lambda rng: _samples(S.away_from_zero, ints=(-3, 4), bools=True)(rng) +
    _complex_samples(rng),
    torch_ref="torch.angle", method=True,
)


def _angle_derivative(g, self):
    if not self.dtype.is_complex:
        return _zeros(g)
    # PyTorch: where(self == 0, 0, g * self / |self|^2 * 1j)
    return where(self == 0, 0, g * self / (self * conj(self)) * 1j)


# --- clamp ------------------------------------------------------------------------------


def _clamp_meta(self, min=None, max=None):  # noqa: A002 - PyTorch's names
    if min is None and max is None:
        raise DTypeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    operands = [a for a in (self, min, max) if a is not None]
    for a in operands:
        if is_tensor_like(a) and a.dtype.is_complex:
            raise DTypeError("clamp is not supported for complex types")
    shape = broadcast_shapes(*(shape_of(a) for a in operands))
    if getattr(self.dtype, "is_quantized", False):
        # torch's quantized clamp: number bounds, computed on the integers, qparams kept
        if any(is_tensor_like(b) for b in (min, max)):
            raise DTypeError("clamp of a quantized tensor: expected number bounds, got a "
                             "tensor bound; dequantize first")
        return TensorMeta(tuple(self.shape), self.dtype, str(self.device))
    _, dt = promote_dtypes(Promotion.DEFAULT, operands)
    fmt = pointwise_memory_format(operands) if len(shape) == 4 else contiguous_format
    return TensorMeta(shape, dt, device_of(operands), fmt)


def _clamp_reference(x, lo, hi):
    out = x
    if x.dtype.kind in "iu":       # a Python bound out of range wraps, as in PyTorch
        lo, hi = (cast_scalar(b, x.dtype, True) if isinstance(b, int) else b
                  for b in (lo, hi))
    if lo is not None:
        out = np.maximum(out, lo)
    if hi is not None:
        out = np.minimum(out, hi)
    return np.broadcast_to(out, np.broadcast_shapes(
        np.shape(x), np.shape(lo) if lo is not None else (),
        np.shape(hi) if hi is not None else ()))


def _clamp_derivative(g, self, min, max):  # noqa: A002
    keep = None
    if min is not None:
        keep = ge(self, min)
    if max is not None:
        le_max = le(self, max)
        keep = le_max if keep is None else logical_and(keep, le_max)
    grad_self = where(keep, g, 0)
    grad_min = grad_max = None
    if _is_t(min):
        pred = lt(self, min)
        if max is not None:
            pred = logical_and(pred, lt(min, max))
        grad_min = where(pred, g, 0)
    if _is_t(max):
        pred = gt(self, max)
        if min is not None:
            pred = logical_or(pred, lt(max, min))
        grad_max = where(pred, g, 0)
    return grad_self, grad_min, grad_max


def _clamp_samples(rng):
    x = S.randn
    return [
        S.Sample((x(rng, 3, 4), -0.5, 0.5)),
        S.Sample((x(rng), -0.5, 0.5)),
        S.Sample((x(rng, 3, 4),), {"min": -0.3}),
        S.Sample((x(rng, 3, 4),), {"max": 0.2}),
        S.Sample((x(rng, 3, 4), x(rng, 4) - 1.0, x(rng, 3, 1) + 1.0)),
        S.Sample((x(rng, 2, 1, 4), None, x(rng, 3, 1))),
        S.Sample((x(rng, 5), x(rng, 5))),
        S.Sample((S.int_array(rng, 3, 4), -2, 3)),
        S.Sample((S.int_array(rng, 3, 4), 1.5)),
        S.Sample((S.int_array(rng, 3, 4), x(rng, 4))),
    ]


clamp = defop(
    "clamp(Tensor self, Tensor? min=None, Tensor? max=None) -> Tensor",
    meta=_clamp_meta, reference=_clamp_reference, derivative=_clamp_derivative,
    tags={P}, samples=_clamp_samples, torch_ref="torch.clamp", method=True,
    inplace_variant=True,
)


def _clamp_side_samples(rng):
    return [S.Sample((S.randn(rng, 3, 4), 0.3)), S.Sample((S.randn(rng), -0.2)),
            S.Sample((S.randn(rng, 3, 4), S.randn(rng, 4))),
            S.Sample((S.randn(rng, 2, 1, 4), S.randn(rng, 3, 1))),
            S.Sample((S.int_array(rng, 3, 4), 1)), S.Sample((S.int_array(rng, 3, 4), 1.5))]


clamp_min = defop(
    "clamp_min(Tensor self, Tensor min) -> Tensor",
    meta=lambda self, min: _clamp_meta(self, min, None),  # noqa: A002
    reference=lambda x, lo: _clamp_reference(x, lo, None),
    derivative=lambda g, self, min: _clamp_derivative(g, self, min, None)[:2],  # noqa: A002
    tags={P}, samples=_clamp_side_samples, torch_ref="torch.clamp_min", method=True,
    inplace_variant=True,
)

clamp_max = defop(
    "clamp_max(Tensor self, Tensor max) -> Tensor",
    meta=lambda self, max: _clamp_meta(self, None, max),  # noqa: A002
    reference=lambda x, hi: _clamp_reference(x, None, hi),
    derivative=lambda g, self, max: _clamp_derivative(g, self, None, max)[::2],  # noqa: A002
    tags={P}, samples=_clamp_side_samples, torch_ref="torch.clamp_max", method=True,
    inplace_variant=True,
)

# --- binary arithmetic ------------------------------------------------------------------


def _bsamples(make_a=S.randn, make_b=S.randn, *, scalar=None, scalar_first=None, ints=None,
              bools=False, extra=None):
    """Binary samples: float32 pairs over BINARY_SHAPES; a Python scalar on either side;
    int64 pairs (ints=(make_a, make_b) taking (rng, *shape)); bool pairs; extra(rng)."""
    def gen(rng):
        out = S.binary_samples(make_a, make_b, scalar)(rng)
        if scalar_first is not None:
            out.append(S.Sample((scalar_first, make_b(rng, 3, 4))))
        if ints is not None:
            out.append(S.Sample((ints[0](rng, 3, 4), ints[1](rng, 4))))
            out.append(S.Sample((ints[0](rng, 5).astype(np.int32), ints[1](rng, 5))))
        if bools:
            out.append(S.Sample((S.bool_array(rng, 3, 4), S.bool_array(rng, 4))))
        if extra is not None:
            out.extend(extra(rng))
        return out
    return gen


def _ints(rng, *shape):
    return S.int_array(rng, *shape)


def _nonzero_ints(rng, *shape):
    return S.int_array(rng, *shape, low=1, high=6) * rng.choice([-1, 1], size=shape)


def binary(name, reference, derivative, *, promotion=Promotion.DEFAULT, meta=None,
           samples=None, tags=(), method=True, inplace_variant=True, **fields):
    return defop(f"{name}(Tensor self, Tensor other) -> Tensor",
                 meta=meta or pointwise_meta(promotion), reference=reference,
                 derivative=derivative, tags=BINARY | set(tags), promotion=promotion,
                 samples=samples or _bsamples(), torch_ref=f"torch.{name}", method=method,
                 inplace_variant=inplace_variant, **fields)


_NO_COMPLEX_DEFAULT = _dtype_check(Promotion.DEFAULT, NO_COMPLEX)

minimum = binary(
    "minimum", np.minimum,
    lambda g, self, other: (g * ((self < other) + (self == other) * 0.5),
                            g * ((other < self) + (self == other) * 0.5)),
    meta=_NO_COMPLEX_DEFAULT, tags={Tag.COMMUTATIVE}, inplace_variant=False,
    samples=_bsamples(ints=(_ints, _ints), bools=True, extra=lambda rng: [
        S.Sample((np.array([1.0, np.nan, 2.0], np.float32), np.array([np.nan, 0.0, 3.0],
                                                                      np.float32)), grad=False)]))


def _nan_pairs(rng):
    a = np.array([1.0, np.nan, 2.0, -1.0, np.nan], np.float32)
    b = np.array([np.nan, 0.0, 3.0, -2.0, np.nan], np.float32)
    return [S.Sample((a, b), grad=False)]


def _fmax_derivative(g, self, other, pick_self):
    take_self = logical_or(pick_self, isnan(other))
    return (where(take_self, g, 0), where(take_self, 0, g))


fmax = binary("fmax", np.fmax,
              lambda g, self, other: _fmax_derivative(g, self, other, ge(self, other)),
              meta=_NO_COMPLEX_DEFAULT, inplace_variant=False,
              samples=_bsamples(ints=(_ints, _ints), bools=True, extra=_nan_pairs))
fmin = binary("fmin", np.fmin,
              lambda g, self, other: _fmax_derivative(g, self, other, le(self, other)),
              meta=_NO_COMPLEX_DEFAULT, inplace_variant=False,
              samples=_bsamples(ints=(_ints, _ints), bools=True, extra=_nan_pairs))

fmod = binary(
    "fmod", _integer_divisor_checked(np.fmod),
    lambda g, self, other: (g, -g * div(self, other, rounding_mode="trunc")
                            if _is_t(other) else None),
    meta=_NO_COMPLEX_DEFAULT,
    samples=_bsamples(S.randn, S.away_from_zero, scalar=0.7, ints=(_ints, _nonzero_ints),
                      extra=lambda rng: [S.Sample((S.int_array(rng, 3, 4), 3))]))

remainder = binary(
    "remainder", _integer_divisor_checked(np.remainder),
    lambda g, self, other: (g if _is_t(self) else None,
                            -g * div(self, other, rounding_mode="floor") if _is_t(other)
                            else None),
    meta=_NO_COMPLEX_DEFAULT,
    samples=_bsamples(S.randn, S.away_from_zero, scalar=0.7, ints=(_ints, _nonzero_ints),
                      extra=lambda rng: [
                          S.Sample((5, _nonzero_ints(rng, 4))),
                          # torch has no derivative for remainder(Scalar, Tensor); the
                          # rule is checked by test_pointwise_extra instead
                          S.Sample((2.5, S.away_from_zero(rng, 3, 4)), grad=False)]))

floor_divide = binary(
    "floor_divide", _integer_divisor_checked(np.floor_divide), NOT_DIFFERENTIABLE, meta=_NO_COMPLEX_DEFAULT,
    samples=_bsamples(S.randn, S.away_from_zero, scalar=0.7, ints=(_ints, _nonzero_ints),
                      extra=lambda rng: [S.Sample((S.int_array(rng, 3, 4), 2)),
                                         S.Sample((S.int_array(rng, 3, 4), 2.5))]))

atan2 = binary(
    "atan2", np.arctan2,
    lambda g, self, other: (g * other / (self * self + other * other),
                            -g * self / (self * self + other * other)),
    promotion=Promotion.INT_TO_FLOAT, meta=_dtype_check(Promotion.INT_TO_FLOAT, NO_COMPLEX),
    samples=_bsamples(S.away_from_zero, S.away_from_zero, ints=(_ints, _ints)))

hypot = binary(
    "hypot", np.hypot,
    lambda g, self, other, out: (g * self / out, g * other / out),
    meta=_dtype_check(Promotion.DEFAULT, FLOAT_ONLY), tags={Tag.COMMUTATIVE},
    samples=_bsamples(S.away_from_zero, S.away_from_zero))

copysign = binary(
    "copysign", np.copysign,
    lambda g, self, other, out: (g * (sign(self) * sign(out)),
                                 _zeros(other) if _is_t(other) else None),
    promotion=Promotion.INT_TO_FLOAT, meta=_dtype_check(Promotion.INT_TO_FLOAT, NO_COMPLEX),
    samples=_bsamples(S.away_from_zero, S.away_from_zero, scalar=-2.0,
                      ints=(_ints, _nonzero_ints)))


def _xlogy_reference(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x * np.log(y)
    return np.where((x == 0) & ~np.isnan(y), np.zeros((), x.dtype), out)


def _xlogy_derivative(g, self, other):
    grad_self = grad_other = None
    if _is_t(self):
        dead = eq(self, 0) if not _is_t(other) and other > 0 else \
            logical_and(eq(self, 0), le(other, 0))
        grad_self = where(dead, 0, xlogy(g, other))
    if _is_t(other):
        grad_other = g * self / other
    return grad_self, grad_other


xlogy = binary(
    "xlogy", _xlogy_reference, _xlogy_derivative, promotion=Promotion.INT_TO_FLOAT,
    meta=_dtype_check(Promotion.INT_TO_FLOAT, NO_COMPLEX),
    samples=_bsamples(S.randn, S.positive, scalar=2.0, scalar_first=3.0,
                      ints=(_ints, lambda rng, *s: S.int_array(rng, *s, low=1, high=5)),
                      extra=lambda rng: [S.Sample((np.array([0.0, 0.0, 1.0, 2.0], np.float32),
                                                   np.array([0.0, 2.0, np.nan, 0.5],
                                                            np.float32)), grad=False)]))


# --- pow with a scalar base, extra samples ----------------------------------------------
def _pow_samples(rng):
    return S.binary_samples(make_a=S.positive, scalar=2.0)(rng) + [
        S.Sample((2.0, S.randn(rng, 3, 4))),
        S.Sample((2, S.randn(rng, 5))),
        S.Sample((2, S.int_array(rng, 3, 4, low=0, high=6))),
        S.Sample((2.5, S.int_array(rng, 4, low=0, high=6))),
        S.Sample((S.int_array(rng, 3, 4), 3)),
        S.Sample((S.int_array(rng, 3, 4), S.int_array(rng, 4, low=0, high=4))),
        S.Sample((S.positive(rng, 3, 4), 0.5)),
    ]


pow.samples = _pow_samples

# --- logical and bitwise binary ops -----------------------------------------------------


def _logical_samples(rng):
    def mixed(*shape):
        return np.asarray(S.randn(rng, *shape) * (rng.random(shape) > 0.4), np.float32)
    return [S.Sample((mixed(3, 4), mixed(4))), S.Sample((mixed(), mixed())),
            S.Sample((S.int_array(rng, 2, 1, 4, low=-1, high=2), mixed(3, 1))),
            S.Sample((S.bool_array(rng, 3, 4), S.bool_array(rng, 3, 4))),
            S.Sample((S.bool_array(rng, 5), S.int_array(rng, 5, low=0, high=2)))]


def logical(name, reference):
    return binary(name, reference, NOT_DIFFERENTIABLE, promotion=Promotion.ALWAYS_BOOL,
                  tags={Tag.COMMUTATIVE}, samples=_logical_samples)


logical_and = logical("logical_and", np.logical_and)
logical_or = logical("logical_or", np.logical_or)
logical_xor = logical("logical_xor", np.logical_xor)


def _bitwise_samples(rng):
    return [S.Sample((S.int_array(rng, 3, 4, low=-20, high=20), S.int_array(rng, 4, low=-9,
                                                                             high=9))),
            S.Sample((S.int_array(rng), S.int_array(rng))),
            S.Sample((S.int_array(rng, 5, dtype=np.int32), S.int_array(rng, 5))),
            S.Sample((S.int_array(rng, 5, low=0, high=255, dtype=np.uint8), 7)),
            S.Sample((6, S.int_array(rng, 2, 3))),
            S.Sample((S.bool_array(rng, 3, 4), S.bool_array(rng, 4))),
            S.Sample((S.int_array(rng, 3, 4), True))]


def bitwise(name, reference, samples=_bitwise_samples, commutative=True):
    return binary(name, reference, NOT_DIFFERENTIABLE, meta=_dtype_check(Promotion.DEFAULT,
                                                                        INT_ONLY),
                  tags={Tag.COMMUTATIVE} if commutative else (), samples=samples)


bitwise_and = bitwise("bitwise_and", np.bitwise_and)
bitwise_or = bitwise("bitwise_or", np.bitwise_or)
bitwise_xor = bitwise("bitwise_xor", np.bitwise_xor)


def _shift(x, s, left):
    """PyTorch's shifts: out-of-range or negative amounts give 0 (left) or the sign (right)."""
    x, s = np.broadcast_arrays(np.asarray(x), np.asarray(s))
    bits = x.dtype.itemsize * 8
    signed = x.dtype.kind == "i"
    in_range = (s >= 0) & (s < (bits if left else bits - signed))
    amount = np.where(in_range, s, 0).astype(x.dtype)
    if left:
        return np.where(in_range, np.left_shift(x, amount), np.zeros((), x.dtype))
    fill = np.where(x < 0, -1, 0).astype(x.dtype) if signed else np.zeros((), x.dtype)
    return np.where(in_range, np.right_shift(x, amount), fill)


def _shift_samples(rng):
    return [S.Sample((S.int_array(rng, 3, 4, low=-50, high=50), S.int_array(rng, 4, low=0,
                                                                             high=8))),
            S.Sample((S.int_array(rng, 7, low=-50, high=50),
                      np.array([0, 1, 62, 63, 64, 70, -1], np.int64))),
            S.Sample((S.int_array(rng, 5, dtype=np.int32), S.int_array(rng, 5, low=0, high=4))),
            S.Sample((S.int_array(rng, 5, low=0, high=255, dtype=np.uint8), 3)),
            S.Sample((S.int_array(rng, 4, low=0, high=255, dtype=np.uint8),
                      np.array([0, 7, 8, 9], np.uint8))),
            S.Sample((S.int_array(rng, 3, 4, dtype=np.int32), 2)),
            S.Sample((1, S.int_array(rng, 2, 3, low=0, high=10)))]


bitwise_left_shift = bitwise("bitwise_left_shift", lambda x, s: _shift(x, s, True),
                             _shift_samples, commutative=False)
bitwise_right_shift = bitwise("bitwise_right_shift", lambda x, s: _shift(x, s, False),
                              _shift_samples, commutative=False)

# --- lerp --------------------------------------------------------------------------------


def _lerp_meta(self, end, weight):
    for name, v in (("end", end), ("weight", weight)):
        if is_tensor_like(v) and v.dtype is not self.dtype:
            raise DTypeError(f"expected dtype {self.dtype.name} for `{name}` but got dtype "
                             f"{v.dtype.name}")
    if not (self.dtype.is_floating_point or self.dtype.is_complex):
        raise DTypeError(f"lerp not implemented for '{self.dtype.name}'")
    return pointwise_meta(Promotion.DEFAULT)(self, end, weight)


def _lerp_reference(x, y, w):
    small = np.abs(w) < 0.5
    return np.where(small, x + w * (y - x), y - (y - x) * (1 - w))


lerp = defop(
    "lerp(Tensor self, Tensor end, Tensor weight) -> Tensor",
    meta=_lerp_meta, reference=_lerp_reference,
    derivative=lambda g, self, end, weight: (g * _c(1 - weight), g * _c(weight),
                                             g * _c(end - self) if _is_t(weight) else None),
    tags={P}, promotion=Promotion.DEFAULT,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 3, 4), S.randn(rng, 4), 0.3)),
        S.Sample((S.randn(rng, 3, 4), S.randn(rng, 3, 4), 0.8)),
        S.Sample((S.randn(rng), S.randn(rng), S.randn(rng))),
        S.Sample((S.randn(rng, 2, 1, 4), S.randn(rng, 3, 1), S.unit(rng, 4) + 0.5)),
        S.Sample((S.randn(rng, 5), S.randn(rng, 5), S.randn(rng, 5))),
        S.Sample((_complex_samples(rng)[2].args[0], _complex_samples(rng)[2].args[0], 0.25))],
    torch_ref="torch.lerp", method=True, inplace_variant=True,
)
