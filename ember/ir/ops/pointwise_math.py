"""More pointwise math: fused multiply-adds (addcmul, addcdiv), log-sum-exp pairs,
float_power, logit, sinc, angle conversions, heaviside, signbit, number theory (gcd, lcm),
float decomposition (frexp, ldexp, nextafter), membership (isin, isreal), and the
aliases true_divide and rsub.

Dtype rules follow PyTorch's CPU kernels: which dtypes each op accepts (it raises
`DTypeError` naming the op and dtype otherwise), how ints promote (`Promotion`), and
which ops take a Python number in place of a tensor (torch's schemas say `Tensor other`
for logaddexp, gcd, ldexp, ...; ember refuses a number there as torch does). Reference
kernels are NumPy; the LLVM lowerings of the ones the scalar vocabulary can express are
in `codegen/lowering_math.py`.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..errors import DTypeError, DTypeNotImplementedError, EmberError
from ..registry import NOT_DIFFERENTIABLE, Promotion, Tag, defop
from . import samples as S
from .pointwise import (BINARY, UNARY, P, LN2, _c, _dtype_check, _is_t, _pow_derivative,
                        _samples, _zeros, convert_element_type, cos, div, exp, exp2, logical_or,
                        sin, sub, where)
from .reduction import named_tuple_op
from .rules import (broadcast_shapes, device_of, is_tensor_like, pointwise_meta, same_meta,
                    shape_of)
from ..meta import TensorMeta, contiguous_format


class MathArgumentError(EmberError, RuntimeError):
    """A value argument outside what the function accepts (polygamma's n < 0, mvlgamma's
    p < 1, addcdiv of two integer tensors): PyTorch raises RuntimeError for these."""


def tensors_only(name: str, positions=(0, 1)):
    """torch's schemas for these ops take tensors only (no Scalar overload)."""
    def check(*args):
        for pos in positions:
            v = args[pos]
            if not is_tensor_like(v):
                arg = ("input", "other")[pos] if pos < 2 else f"argument {pos + 1}"
                raise DTypeError(f"{name}(): argument '{arg}' (position {pos + 1}) must be "
                                 f"Tensor, not {type(v).__name__}")
    return check


def checked_meta(name, promotion, dtype_check=None, n_operands=None, tensor_positions=None):
    """pointwise_meta after the tensors-only and dtype checks PyTorch makes."""
    base = _dtype_check(promotion, dtype_check, n_operands) if dtype_check else \
        pointwise_meta(promotion, n_operands)
    only = tensors_only(name, tensor_positions) if tensor_positions else None

    def rule(*args, **kwargs):
        if only is not None:
            only(*args)
        return base(*args, **kwargs)
    return rule


def not_for(name, *kinds):
    """`"name" not implemented for 'Long'`, torch's wording, for the listed kinds."""
    names = {"bool": "Bool", "int": "Long", "float": "Float", "complex": "ComplexFloat"}

    def check(dt):
        kind = ("bool" if dt.name == "bool" else "complex" if dt.is_complex else
                "float" if dt.is_floating_point else "int")
        if kind in kinds:
            raise DTypeNotImplementedError(f'"{name}" not implemented for \'{names[kind]}\' '
                                           f'({dt.name})')
    return check


def _sample(*args, grad=True, **kwargs):
    return S.Sample(tuple(args), kwargs, grad=grad)


def _cplx(rng, *shape):
    return np.asarray(S.randn(rng, *shape) + 1j * S.randn(rng, *shape), np.complex64)


# --- addcmul, addcdiv: self + value * t1 (*|/) t2 ------------------------------------------


def _addc_meta(name: str, divides: bool):
    base = pointwise_meta(Promotion.DEFAULT, 3)

    def rule(self, tensor1, tensor2, value=1):
        out = base(self, tensor1, tensor2)
        if out.dtype is dtypes.bool_ and not divides:
            raise DTypeError(f'"{name}_cpu_out" not implemented for \'Bool\'')
        if divides and all(is_tensor_like(t) and not (t.dtype.is_floating_point or
                                                      t.dtype.is_complex)
                           for t in (tensor1, tensor2)):
            raise MathArgumentError(
                "Integer division with addcdiv is no longer supported, and in a future "
                "release addcdiv will perform a true division of tensor1 and tensor2. Use "
                "(input + value * tensor1 / tensor2) for float inputs.")
        return out
    return rule


def _value_for(out_dtype, value):
    """torch casts `value` to the result dtype: an int result truncates a float value."""
    if isinstance(value, float) and np.dtype(out_dtype).kind in "iub":
        return int(value)
    return value


def _addcmul_reference(x, a, b, value):
    return x + _value_for(np.result_type(x, a, b), value) * a * b


def _addcdiv_reference(x, a, b, value):
    with np.errstate(divide="ignore", invalid="ignore"):
        return x + value * a / b


def _addc_samples(divisor, ints: bool):
    def gen(rng):
        out = [_sample(S.randn(rng, 3, 4), S.randn(rng, 3, 4), divisor(rng, 4)),
               _sample(S.randn(rng), S.randn(rng), divisor(rng), value=0.5),
               _sample(S.randn(rng, 4), S.randn(rng, 2, 1, 4), divisor(rng, 3, 1), value=-1.5),
               _sample(_cplx(rng, 2, 3), _cplx(rng, 2, 3), _cplx(rng, 3) + 2, value=2.0)]
        if ints:
            out.append(_sample(S.int_array(rng, 3, 4), S.int_array(rng, 4),
                               S.int_array(rng, 3, 4), value=2))
        else:
            out.append(_sample(S.int_array(rng, 3, 4), S.randn(rng, 4), divisor(rng, 3, 4)))
        return out
    return gen


addcmul = defop(
    "addcmul(Tensor self, Tensor tensor1, Tensor tensor2, *, Scalar value=1) -> Tensor",
    meta=_addc_meta("addcmul", False), reference=_addcmul_reference,
    derivative=lambda g, self, tensor1, tensor2, value: (
        g, g * _c(tensor2 * value) if value != 1 else g * _c(tensor2),
        g * _c(tensor1 * value) if value != 1 else g * _c(tensor1)),
    tags={P}, promotion=Promotion.DEFAULT, samples=_addc_samples(S.randn, ints=True),
    torch_ref="torch.addcmul", method=True, inplace_variant=True,
)

addcdiv = defop(
    "addcdiv(Tensor self, Tensor tensor1, Tensor tensor2, *, Scalar value=1) -> Tensor",
    meta=_addc_meta("addcdiv", True), reference=_addcdiv_reference,
    derivative=lambda g, self, tensor1, tensor2, value: (
        g, g * _c(value / tensor2), -g * _c(value * tensor1 / (tensor2 * tensor2))),
    tags={P}, promotion=Promotion.DEFAULT, samples=_addc_samples(S.away_from_zero, ints=False),
    torch_ref="torch.addcdiv", method=True, inplace_variant=True,
)

# --- logaddexp, logaddexp2 ----------------------------------------------------------------


def _logaddexp_reference(a, b):
    if a.dtype.kind != "c":
        with np.errstate(invalid="ignore"):         # inf - inf inside: NumPy handles it
            return np.logaddexp(a, b)
    # complex: factor out the operand of larger real part, log1p of the rest
    with np.errstate(all="ignore"):
        big = np.where(a.real >= b.real, a, b)
        small = a + b - big
        return big + np.log1p(np.exp(small - big))


def _quiet(fn, *args):
    with np.errstate(invalid="ignore"):
        return fn(*args)


def _logaddexp_samples(cplx: bool):
    def gen(rng):
        inf = np.float32(np.inf)
        out = [_sample(S.randn(rng, 3, 4), S.randn(rng, 4)),
               _sample(S.randn(rng), S.randn(rng)),
               _sample(S.randn(rng, 2, 1, 3).astype(np.float64), S.randn(rng, 4, 1)),
               _sample(np.array([-inf, inf, inf, 1, np.nan], np.float32),
                       np.array([-inf, inf, -inf, np.nan, 2], np.float32), grad=False)]
        if cplx:
            out.append(_sample(_cplx(rng, 2, 3), _cplx(rng, 3)))
        return out
    return gen


logaddexp = defop(
    "logaddexp(Tensor self, Tensor other) -> Tensor",
    meta=checked_meta("logaddexp", Promotion.DEFAULT, not_for("logaddexp_cpu", "bool", "int"),
                      tensor_positions=(0, 1)),
    reference=_logaddexp_reference,
    derivative=lambda g, self, other: (g * _c(1 / (1 + exp(other - self))),
                                       g * _c(1 / (1 + exp(self - other)))),
    tags=BINARY | {Tag.COMMUTATIVE}, promotion=Promotion.DEFAULT,
    samples=_logaddexp_samples(cplx=True), torch_ref="torch.logaddexp", method=True,
)

logaddexp2 = defop(
    "logaddexp2(Tensor self, Tensor other) -> Tensor",
    meta=checked_meta("logaddexp2", Promotion.DEFAULT,
                      not_for("logaddexp2_cpu", "bool", "int", "complex"),
                      tensor_positions=(0, 1)),
    reference=lambda a, b: _quiet(np.logaddexp2, a, b),
    derivative=lambda g, self, other: (g / (1 + exp2(other - self)),
                                       g / (1 + exp2(self - other))),
    tags=BINARY | {Tag.COMMUTATIVE}, promotion=Promotion.DEFAULT,
    samples=_logaddexp_samples(cplx=False), torch_ref="torch.logaddexp2", method=True,
)

# --- float_power: pow computed (and returned) in double ----------------------------------------


def _double_of(operands) -> dtypes.DType:
    """float64, or complex128 when any operand is complex (tensor or Python number)."""
    for v in operands:
        if (is_tensor_like(v) and v.dtype.is_complex) or isinstance(v, complex):
            return dtypes.complex128
    return dtypes.float64


def _float_power_meta(self, exponent):
    shape = broadcast_shapes(shape_of(self), shape_of(exponent))
    return TensorMeta(shape, _double_of([self, exponent]), device_of([self, exponent]),
                      contiguous_format)


def _float_power_reference(x, y):
    dt = np.complex128 if any(np.iscomplexobj(v) for v in (x, y)) else np.float64
    with np.errstate(all="ignore"):
        return np.power(np.asarray(x, dt), np.asarray(y, dt))


def _float_power_derivative(g, self, exponent, out):
    """pow's rule on the operands converted to double, as torch's float_power backward."""
    double = _double_of([self, exponent])
    base = convert_element_type(self, double) if _is_t(self) else self
    expo = convert_element_type(exponent, double) if _is_t(exponent) else exponent
    return _pow_derivative(g, base, expo, out)


def _float_power_samples(rng):
    return [_sample(S.positive(rng, 3, 4), S.randn(rng, 4)),
            _sample(S.positive(rng), S.randn(rng)),
            _sample(S.positive(rng, 3, 4), 2.5),
            _sample(2.0, S.randn(rng, 3)),
            _sample(S.int_array(rng, 3, 4), S.int_array(rng, 4, low=0, high=4)),
            _sample(S.randn(rng, 2, 3), 3),
            _sample(_cplx(rng, 2, 3).astype(np.complex128), S.positive(rng, 3))]


float_power = defop(
    "float_power(Tensor self, Tensor exponent) -> Tensor",
    meta=_float_power_meta, reference=_float_power_reference,
    derivative=_float_power_derivative, tags=BINARY, samples=_float_power_samples,
    torch_ref="torch.float_power", method=True,
)

# --- logit, sinc, angle conversions -------------------------------------------------------------


def _logit_reference(x, eps):
    if eps is not None and eps >= 0:
        x = np.clip(x, eps, 1 - eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x / (1 - x))


def _logit_derivative(g, self, eps):
    """torch: zero outside [eps, 1 - eps] when clamped, NaN outside [0, 1] when not."""
    slope = g / (self * (1 - self))
    if eps is not None and eps >= 0:
        return where(logical_or(self < eps, self > 1 - eps), 0, slope)
    return where(logical_or(self < 0, self > 1), math.nan, slope)


def _logit_samples(rng):
    unit = lambda *s: np.asarray(rng.random(s) * 0.9 + 0.05, np.float32)  # noqa: E731
    return [_sample(unit(3, 4)), _sample(unit()), _sample(unit(5), eps=0.2),
            _sample(np.array([0.0, 0.3, 1.0, 1.5, -1.0], np.float32), grad=False),
            _sample(np.array([0.0, 0.3, 1.0, 1.5, -1.0], np.float64), eps=0.1, grad=False),
            _sample(S.int_array(rng, 3, low=0, high=2)),
            _sample(S.bool_array(rng, 4))]


logit = defop(
    "logit(Tensor self, float? eps=None) -> Tensor",
    meta=_dtype_check(Promotion.INT_TO_FLOAT, not_for("logit_cpu", "complex"), 1),
    reference=_logit_reference, derivative=_logit_derivative, tags=UNARY,
    promotion=Promotion.INT_TO_FLOAT, samples=_logit_samples, torch_ref="torch.logit",
    method=True, inplace_variant=True,
)


def _sinc_reference(x):
    with np.errstate(invalid="ignore", divide="ignore"):
        px = np.pi * x
        out = np.sin(px) / px
    return np.where(x == 0, np.ones((), x.dtype), out)


def _sinc_derivative(g, self):
    """d/dx sin(pi x)/(pi x) = (pi x cos(pi x) - sin(pi x)) / (pi x^2); 0 at x = 0."""
    px = self * math.pi
    at_zero = self == 0
    safe = where(at_zero, 1, self)
    slope = (px * cos(px) - sin(px)) / (safe * safe * math.pi)
    return where(at_zero, 0, g * _c(slope))


sinc = defop(
    "sinc(Tensor self) -> Tensor",
    meta=pointwise_meta(Promotion.INT_TO_FLOAT), reference=_sinc_reference,
    derivative=_sinc_derivative, tags=UNARY, promotion=Promotion.INT_TO_FLOAT,
    samples=_samples(ints=(-3, 4), bools=True, cplx=S.randn, extra=lambda rng: [
        _sample(np.array([0.0, 1.0, -2.0, 0.5, np.inf], np.float32), grad=False)]),
    torch_ref="torch.sinc", method=True, inplace_variant=True,
)

DEG_PER_RAD = 180.0 / math.pi


def _angle_unit(name: str, factor: float):
    def check(dt):
        if dt.is_complex:
            raise DTypeError(f"{name} is not supported for complex tensors.")
    return defop(
        f"{name}(Tensor self) -> Tensor",
        meta=_dtype_check(Promotion.INT_TO_FLOAT, check),
        reference=lambda x: x * np.asarray(factor, x.dtype),
        derivative=lambda g, self: g * factor, saves=(), tags=UNARY,
        promotion=Promotion.INT_TO_FLOAT,
        samples=_samples(ints=(-200, 200), bools=True),
        torch_ref=f"torch.{name}", method=True, inplace_variant=True,
    )


deg2rad = _angle_unit("deg2rad", 1 / DEG_PER_RAD)
rad2deg = _angle_unit("rad2deg", DEG_PER_RAD)

# --- heaviside, signbit -------------------------------------------------------------------------


def _heaviside_meta(self, values):
    tensors_only("heaviside")(self, values)
    if self.dtype.is_complex or values.dtype.is_complex:
        raise DTypeError("heaviside is not yet implemented for complex tensors.")
    if self.dtype is not values.dtype:
        raise DTypeError("heaviside is not yet implemented for tensors with different dtypes.")
    return pointwise_meta(Promotion.DEFAULT)(self, values)


def _heaviside_reference(x, values):
    return np.where(x == 0, values, (x > 0).astype(x.dtype))


def _heaviside_samples(rng):
    return [_sample(S.randn(rng, 3, 4) * (rng.random((3, 4)) > 0.3), S.randn(rng, 4)),
            _sample(np.array([np.nan, 0.0, -0.0, -1.0, np.inf], np.float32),
                    np.array(5.0, np.float32)),
            _sample(S.int_array(rng, 3, 4, low=-2, high=3), S.int_array(rng, 3, 1)),
            _sample(S.bool_array(rng, 2, 3), S.bool_array(rng, 3))]


heaviside = defop(
    "heaviside(Tensor self, Tensor values) -> Tensor",
    meta=_heaviside_meta, reference=_heaviside_reference, derivative=NOT_DIFFERENTIABLE,
    tags=BINARY, samples=_heaviside_samples, torch_ref="torch.heaviside", method=True,
    inplace_variant=True,
)


def _signbit_check(dt):
    if dt.is_complex:
        raise DTypeError("signbit is not implemented for complex tensors.")


def _signbit_reference(x):
    if x.dtype == np.bool_:
        return np.zeros(x.shape, np.bool_)
    return np.signbit(x) if x.dtype.kind == "f" else x < 0


signbit = defop(
    "signbit(Tensor self) -> Tensor",
    meta=_dtype_check(Promotion.ALWAYS_BOOL, _signbit_check),
    reference=_signbit_reference, derivative=NOT_DIFFERENTIABLE, tags=UNARY,
    samples=lambda rng: [
        _sample(np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.0], np.float32)),
        _sample(S.randn(rng, 3, 4)), _sample(S.randn(rng)),
        _sample(S.int_array(rng, 3, 4)), _sample(S.bool_array(rng, 2, 3)),
        _sample(S.int_array(rng, 5, low=0, high=255, dtype=np.uint8))],
    torch_ref="torch.signbit", method=True,
)

# --- number theory: gcd, lcm --------------------------------------------------------------------


def _int_pair_samples(rng):
    return [_sample(S.int_array(rng, 3, 4, low=-30, high=30), S.int_array(rng, 4, low=-12,
                                                                           high=12)),
            _sample(S.int_array(rng, low=0, high=50), S.int_array(rng, low=1, high=50)),
            _sample(S.int_array(rng, 5, dtype=np.int32), S.int_array(rng, 5)),
            _sample(S.int_array(rng, 4, low=0, high=60, dtype=np.uint8),
                    S.int_array(rng, 4, low=0, high=60, dtype=np.uint8)),
            _sample(np.array([0, 0, 7, -4], np.int64), np.array([0, 5, 0, 6], np.int64))]


def _number_theory(name, reference):
    return defop(
        f"{name}(Tensor self, Tensor other) -> Tensor",
        meta=checked_meta(name, Promotion.DEFAULT,
                          not_for(f"{name}_cpu", "bool", "float", "complex"),
                          tensor_positions=(0, 1)),
        reference=reference, derivative=NOT_DIFFERENTIABLE,
        tags=BINARY | {Tag.COMMUTATIVE}, promotion=Promotion.DEFAULT,
        samples=_int_pair_samples, torch_ref=f"torch.{name}", method=True,
        inplace_variant=True)


def _lcm(a, b):
    g = np.gcd(a, b)
    with np.errstate(all="ignore"):
        return np.abs(np.where(g == 0, 0, a // np.where(g == 0, 1, g) * b)).astype(g.dtype)


gcd = _number_theory("gcd", np.gcd)
lcm = _number_theory("lcm", _lcm)

# --- float decomposition: frexp, ldexp, nextafter ------------------------------------------------


def _frexp_meta(self):
    if not self.dtype.is_floating_point:
        raise DTypeError("torch.frexp() only supports floating-point dtypes")
    return same_meta(self), same_meta(self).with_(dtype=dtypes.int32)


def _frexp_reference(x):
    wide = x.astype(np.float32) if x.dtype.itemsize == 2 and x.dtype != np.float16 else x
    mantissa, exponent = np.frexp(wide)
    return mantissa.astype(x.dtype), exponent.astype(np.int32)


frexp = named_tuple_op(defop(
    "frexp(Tensor self) -> (Tensor mantissa, Tensor exponent)",
    meta=_frexp_meta, reference=_frexp_reference,
    # mantissa = x / 2**exponent with the exponent piecewise constant
    derivative=lambda g, self, out: g[0] / exp2(out[1]),
    tags={P}, samples=lambda rng: [
        _sample(S.randn(rng, 3, 4) * 10), _sample(S.randn(rng)),
        _sample(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 3.0], np.float32),
                grad=False),
        _sample(S.randn(rng, 5).astype(np.float64) * 1e5)],
    torch_ref="torch.frexp", method=True,
))


def _ldexp_reference(x, other):
    with np.errstate(over="ignore"):
        return x * np.exp2(other)


ldexp = defop(
    "ldexp(Tensor self, Tensor other) -> Tensor",
    meta=checked_meta("ldexp", Promotion.INT_TO_FLOAT, tensor_positions=(0, 1)),
    reference=_ldexp_reference,
    derivative=lambda g, self, other: (g * _c(exp2(other)),
                                       g * _c(self * exp2(other) * LN2)),
    tags=BINARY, promotion=Promotion.INT_TO_FLOAT,
    samples=lambda rng: [
        _sample(S.randn(rng, 3, 4), S.int_array(rng, 4).astype(np.float32)),
        _sample(S.randn(rng), S.randn(rng)),
        # torch's backward computes 2**other in integers here (0 for other < 0)
        _sample(S.randn(rng, 3, 4), S.int_array(rng, 3, 4), grad=False),
        _sample(S.int_array(rng, 5), S.int_array(rng, 5)),
        _sample(S.bool_array(rng, 2, 3), S.int_array(rng, 3)),
        _sample(_cplx(rng, 2, 3), S.int_array(rng, 3), grad=False)],   # (as above)
    torch_ref="torch.ldexp", method=True, inplace_variant=True,
)


def _nextafter_bits(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """nextafter for a float format NumPy has no nextafter for (bfloat16): step the bit
    pattern (sign-magnitude) one unit towards y."""
    x, y = np.broadcast_arrays(x, y)
    uint = np.dtype(f"u{x.dtype.itemsize}")
    bits = x.view(uint).copy()
    sign_bit = uint.type(1 << (8 * x.dtype.itemsize - 1))
    away_from_zero = (y > x) == (x > 0)
    stepped = np.where(away_from_zero, bits + uint.type(1), bits - uint.type(1))
    tiny = np.where(y > x, uint.type(1), uint.type(1) | sign_bit)   # from +-0 to +-min
    out = np.where(x == 0, tiny, stepped).view(x.dtype)
    out = np.where(x == y, y, out)
    return np.where(np.isnan(x) | np.isnan(y), np.asarray(np.nan, x.dtype), out)


def _nextafter_reference(x, y):
    dt = np.result_type(x, y)
    x, y = np.asarray(x, dt), np.asarray(y, dt)
    if dt.kind == "f" and dt.itemsize == 2 and dt != np.float16:
        return _nextafter_bits(x, y)
    return np.nextafter(x, y)


nextafter = defop(
    "nextafter(Tensor self, Tensor other) -> Tensor",
    meta=checked_meta("nextafter", Promotion.DEFAULT,
                      not_for("nextafter_cpu", "bool", "int", "complex"),
                      tensor_positions=(0, 1)),
    reference=_nextafter_reference,
    # torch: d/dself = 1, d/dother = 0 (a step of one ulp)
    derivative=lambda g, self, other: (g, _zeros(g)), saves=(),
    tags=BINARY, samples=lambda rng: [
        _sample(S.randn(rng, 3, 4), S.randn(rng, 4)),
        _sample(S.randn(rng), S.randn(rng)),
        _sample(np.array([0.0, -0.0, 1.0, 1.0, np.inf, np.nan], np.float32),
                np.array([1.0, -1.0, 1.0, 0.0, 0.0, 1.0], np.float32), grad=False),
        _sample(S.randn(rng, 5).astype(np.float64), S.randn(rng, 5).astype(np.float64))],
    torch_ref="torch.nextafter", method=True, inplace_variant=True,
)

# --- membership: isin, isreal -------------------------------------------------------------------


def _isin_meta(elements, test_elements, assume_unique=False, invert=False):
    if not is_tensor_like(elements) and not is_tensor_like(test_elements):
        raise DTypeError("isin() received an invalid combination of arguments - got "
                         f"({type(elements).__name__}, {type(test_elements).__name__}), but "
                         "expected at least one Tensor")
    for v in (elements, test_elements):
        if is_tensor_like(v) and v.dtype.is_complex:
            raise DTypeError("Unsupported input type encountered for isin(): ComplexFloat")
    return TensorMeta(shape_of(elements), dtypes.bool_, device_of([elements, test_elements]),
                      contiguous_format)


def _isin_reference(elements, test_elements, assume_unique, invert):
    common = np.result_type(elements, test_elements)
    found = np.isin(np.asarray(elements, common), np.asarray(test_elements, common).ravel(),
                    invert=invert)
    return np.asarray(found, np.bool_)


isin = defop(
    "isin(Tensor elements, Tensor test_elements, *, bool assume_unique=False, "
    "bool invert=False) -> Tensor",
    meta=_isin_meta, reference=_isin_reference, derivative=NOT_DIFFERENTIABLE, tags=set(),
    samples=lambda rng: [
        _sample(S.int_array(rng, 3, 4), S.int_array(rng, 5)),
        _sample(S.int_array(rng, 6), S.int_array(rng, 2, 2), invert=True),
        _sample(np.array([1.0, 2.5, np.nan], np.float32), np.array([2.5, np.nan], np.float32)),
        _sample(S.int_array(rng, 4), np.array([2.0], np.float32)),
        _sample(3, S.int_array(rng, 5)),
        _sample(S.int_array(rng, 5), 2, assume_unique=True)],
    torch_ref="torch.isin",
)

isreal = defop(
    "isreal(Tensor self) -> Tensor",
    meta=pointwise_meta(Promotion.ALWAYS_BOOL),
    reference=lambda x: x.imag == 0 if x.dtype.kind == "c" else np.ones(x.shape, np.bool_),
    derivative=NOT_DIFFERENTIABLE, tags=UNARY,
    samples=lambda rng: [_sample(np.array([1 + 0j, 1j, 0j, np.nan + 0j], np.complex64)),
                         _sample(S.randn(rng, 3, 4)), _sample(S.int_array(rng, 3)),
                         _sample(S.bool_array(rng, 2))],
    torch_ref="torch.isreal", method=True,
)

# --- aliases: true_divide (div without rounding), rsub (other - alpha * self) ------------------

true_divide = defop(
    "true_divide(Tensor self, Tensor other) -> Tensor",
    meta=div.meta, reference=lambda x, y: div.reference(x, y, None),
    derivative=lambda g, self, other: div.derivative(g, self, other, None),
    decomposition=lambda self, other: div(self, other),
    tags=BINARY | {Tag.COMPOSITE}, promotion=Promotion.INT_TO_FLOAT,
    samples=lambda rng: [_sample(S.randn(rng, 3, 4), S.away_from_zero(rng, 4)),
                         _sample(S.randn(rng, 3), 2.0),
                         _sample(S.int_array(rng, 3, 4), S.int_array(rng, 4, low=1, high=5)),
                         _sample(_cplx(rng, 2), _cplx(rng, 2) + 3)],
    torch_ref="torch.true_divide", method=True, inplace_variant=True,
)


def _rsub_meta(self, other, alpha=1):
    return sub.meta(other, self, alpha)


def _rsub_reference(x, y, alpha):
    dt = np.result_type(x, y)
    if dt.kind in "iu" and alpha != 1:     # wrap around as torch does (uint8 with alpha < 0)
        wide = sub.reference(np.asarray(y, np.int64), np.asarray(x, np.int64), int(alpha))
        return wide.astype(dt)
    return sub.reference(y, x, alpha)


rsub = defop(
    "rsub(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor",
    meta=_rsub_meta, reference=_rsub_reference,
    derivative=lambda g, self, other, alpha: (-g * _c(alpha) if alpha != 1 else -g, g),
    decomposition=lambda self, other, alpha=1: sub(other, self, alpha=alpha),
    saves=(), tags=BINARY | {Tag.COMPOSITE}, promotion=Promotion.DEFAULT,
    samples=lambda rng: [_sample(S.randn(rng, 3, 4), S.randn(rng, 4)),
                         _sample(S.randn(rng, 3), 2.5, alpha=2),
                         _sample(S.randn(rng), S.randn(rng), alpha=-0.5),
                         _sample(S.int_array(rng, 3, 4), S.int_array(rng, 4), alpha=3),
                         _sample(_cplx(rng, 2), _cplx(rng, 2))],
    torch_ref="torch.rsub",
)
