"""Vectorized float32 math as LLVM IR emitters that inline into a kernel.

LLVM's `llvm.exp`/`llvm.log`/... intrinsics lower to one scalar libm call per lane,
which makes any kernel that uses them as slow as a Python loop over lanes. These
emitters write the math out as vector instructions instead: range reduction, a
polynomial (Horner with FMA), and exponent manipulation, all lane-parallel.

Each emitter takes an IRBuilder and a float32 value, either a scalar or a vector of
any width (16 lanes on AVX-512, 8 on AVX2), and returns a value of the same type:

    y = vecmath.EMITTERS["tanh"](builder, x)

Polynomial coefficients are near-minimax fits (Lawson-reweighted least squares on
Chebyshev nodes, in float64, then rounded to float32; the maximum error of the rounded
polynomial is given next to each). The stated ulp errors are measured against float64
references on a dense sweep of float32 inputs (every 4099th bit pattern of each sign,
plus fine grids around the branch points) in tests/codegen/test_vecmath.py, which
asserts them. ulp = the float32 spacing at the true result (2**-149 below FLT_MIN).
Special values follow C99/IEEE: NaN in, NaN out; exp(+inf) = inf, exp(-inf) = 0;
log(0) = -inf, log(<0) = NaN; tanh, sigmoid and erf saturate exactly at +-1 / 0 / 1.

Without hardware FMA (the portable target), llvm.fma is still correct but becomes a
libm call per lane: these emitters are for the AVX2 and AVX-512 paths.
"""
from __future__ import annotations

import math
from typing import Callable

from llvmlite import ir

from . import irutil as u

Emitter = Callable[[ir.IRBuilder, ir.Value], ir.Value]

LOG2E = 1.4426950408889634
# ln 2 split so that n * LN2_HI is exact for |n| < 2**11 (Cody & Waite, 1980).
LN2_HI = 0.693359375
LN2_LO = -2.12194440e-4
FLT_MIN = 1.17549435e-38


# --- building blocks -----------------------------------------------------------------------
def _c(x: ir.Value, value: float) -> ir.Constant:
    return u.const_like(x.type, value)


def _int_type(x: ir.Value) -> ir.Type:
    if isinstance(x.type, ir.VectorType):
        return u.vec(u.I32, x.type.count)
    return u.I32


def _ci(x: ir.Value, value: int) -> ir.Constant:
    return u.const_like(_int_type(x), value)


def _horner(b: ir.IRBuilder, x: ir.Value, coeffs: list[float]) -> ir.Value:
    """coeffs[0] + coeffs[1] x + ... by Horner's rule, one FMA per step."""
    acc = _c(x, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = u.fma(b, acc, x, _c(x, c))
    return acc


def _select_nan(b: ir.IRBuilder, x: ir.Value, result: ir.Value) -> ir.Value:
    """NaN inputs give NaN (min/max clamps would otherwise turn them into numbers)."""
    return b.select(b.fcmp_unordered("uno", x, x), x, result)


def _copysign(b: ir.IRBuilder, magnitude: ir.Value, sign: ir.Value) -> ir.Value:
    return u.intrinsic(b, "copysign", magnitude.type, magnitude, sign)


def _pow2i(b: ir.IRBuilder, n: ir.Value, like: ir.Value) -> ir.Value:
    """2**n as float32 for integer n in [-126, 127]: the biased exponent, shifted in."""
    bits = b.shl(b.add(n, _ci(like, 127)), _ci(like, 23))
    return b.bitcast(bits, like.type)


# --- exp -----------------------------------------------------------------------------------
# e**r = 1 + r + r**2 * Q(r) on |r| <= ln2/2; max error of the float32 polynomial 3.9e-9.
_EXP_Q = [0.5, 0.16666667, 4.1666467e-02, 8.3332863e-03, 1.3933644e-03, 1.9907557e-04]


def exp(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """e**x, float32: error < 1.5 ulp (measured max 0.97), denormal results included.

    x = n ln2 + r (Cody-Waite, |r| <= ln2/2), e**r by a degree-7 polynomial, times
    2**n applied as two factors 2**(n//2) * 2**(n - n//2), so the result overflows to
    inf and underflows gradually into denormals with one rounding.
    """
    xc = u.intrinsic(b, "maxnum", x.type, u.intrinsic(b, "minnum", x.type, x, _c(x, 89.0)),
                     _c(x, -104.0))
    n = u.intrinsic(b, "roundeven", x.type, b.fmul(xc, _c(x, LOG2E)))
    r = u.fma(b, n, _c(x, -LN2_HI), xc)
    r = u.fma(b, n, _c(x, -LN2_LO), r)
    p = b.fadd(u.fma(b, b.fmul(r, r), _horner(b, r, _EXP_Q), r), _c(x, 1.0))
    ni = b.fptosi(n, _int_type(x))
    n1 = b.ashr(ni, _ci(x, 1))
    n2 = b.sub(ni, n1)
    scaled = b.fmul(b.fmul(p, _pow2i(b, n1, x)), _pow2i(b, n2, x))
    return _select_nan(b, x, scaled)


# --- log -----------------------------------------------------------------------------------
# log1p(f) = 2s + s z P(z), s = f/(2+f), z = s*s <= 0.0294; max rel. error 6.0e-8.
_LOG_P = [0.6666666, 0.40001792, 0.2839808, 0.2681141]


def log(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Natural log, float32: error < 1.5 ulp (measured max 0.86), denormal inputs included.

    x = 2**e * m with m in [sqrt(1/2), sqrt(2)), f = m - 1 (exact), and
    log1p(f) = f - s (f - z P(z)): the exact f dominates and only the small
    correction carries rounding error (the fdlibm arrangement).
    """
    ity = _int_type(x)
    tiny = b.fcmp_ordered("<", x, _c(x, FLT_MIN))
    xs = b.select(tiny, b.fmul(x, _c(x, 8388608.0)), x)          # denormals: scale by 2**23
    bits = b.bitcast(xs, ity)
    e = b.sub(b.ashr(bits, _ci(x, 23)), _ci(x, 127))
    e = b.sub(e, b.select(tiny, _ci(x, 23), _ci(x, 0)))
    m = b.bitcast(b.or_(b.and_(bits, _ci(x, 0x007FFFFF)), _ci(x, 0x3F800000)), x.type)
    big = b.fcmp_ordered(">", m, _c(x, math.sqrt(2.0)))
    m = b.select(big, b.fmul(m, _c(x, 0.5)), m)
    e = b.add(e, b.zext(big, ity))
    f = b.fsub(m, _c(x, 1.0))
    s = b.fdiv(f, b.fadd(f, _c(x, 2.0)))
    z = b.fmul(s, s)
    log1p_f = b.fsub(f, b.fmul(s, u.fma(b, b.fneg(z), _horner(b, z, _LOG_P), f)))
    ef = b.sitofp(e, x.type)
    result = u.fma(b, ef, _c(x, LN2_HI), u.fma(b, ef, _c(x, LN2_LO), log1p_f))
    return _log_specials(b, x, result)


def _log_specials(b, x, result):
    result = b.select(b.fcmp_ordered("==", x, _c(x, math.inf)), x, result)
    result = b.select(b.fcmp_ordered("==", x, _c(x, 0.0)), _c(x, -math.inf), result)
    return b.select(b.fcmp_unordered("<", x, _c(x, 0.0)), _c(x, math.nan), result)


# --- tanh ----------------------------------------------------------------------------------
# tanh(x) = x + x z P(z), z = x*x <= 0.625**2; max rel. error 3.9e-8.
_TANH_P = [-0.33333334, 0.13333306, -0.05395951, 0.02177039, -0.00834772, 0.00229626]
_TANH_SMALL = 0.625


def tanh(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Hyperbolic tangent, float32: error < 1.5 ulp (measured max 1.20).

    |x| < 0.625: odd polynomial. Otherwise 1 - 2/(e**(2|x|) + 1) with x's sign: no
    cancellation there (tanh >= 0.55), and e**(2|x|) = inf gives exactly +-1.
    """
    a = u.intrinsic(b, "fabs", x.type, x)
    z = b.fmul(a, a)
    small = u.fma(b, b.fmul(a, z), _horner(b, z, _TANH_P), a)
    e = exp(b, b.fmul(a, _c(x, 2.0)))
    large = b.fsub(_c(x, 1.0), b.fdiv(_c(x, 2.0), b.fadd(e, _c(x, 1.0))))
    magnitude = b.select(b.fcmp_ordered("<", a, _c(x, _TANH_SMALL)), small, large)
    return _select_nan(b, x, _copysign(b, magnitude, x))   # odd: tanh(-0) = -0


# --- sigmoid -------------------------------------------------------------------------------
def sigmoid(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """1 / (1 + e**-x), float32: error < 2.5 ulp (measured max 2.25), denormals included.

    With e = e**-|x| (never overflows): sigmoid = 1/(1+e) for x >= 0 and e/(1+e)
    for x < 0 (e/(1+e), not e * 1/(1+e): one rounding fewer), so large negative x keeps full relative precision instead of 1/inf = 0.
    """
    e = exp(b, b.fneg(u.intrinsic(b, "fabs", x.type, x)))
    numerator = b.select(b.fcmp_ordered(">=", x, _c(x, 0.0)), _c(x, 1.0), e)
    result = b.fdiv(numerator, b.fadd(e, _c(x, 1.0)))      # one division for both signs
    return _select_nan(b, x, result)


# --- erf -----------------------------------------------------------------------------------
# erf(x) = x + x P(x*x) on |x| < 1 (P = erf(x)/x - 1, so the exact x carries most of
# the value); max error of P 7.1e-9.
_ERF_P = [1.2837917e-01, -3.7612638e-01, 1.1283783e-01, -2.6865445e-02,
          5.2210749e-03, -8.4847113e-04, 1.1270541e-04, -9.6801268e-06]
# erfc(a) = e**(-a*a) Q(1/a) on 1 <= a <= 4 (Q fits erfcx(1/t)); max rel. error 8.5e-8.
_ERFC_Q = [2.5311610e-04, 5.5931544e-01, 4.0162254e-02, -4.6467707e-01, 4.8096272e-01,
           -2.1910302e-01, 4.0564076e-03, 3.7985519e-02, -1.1371834e-02]


def erf(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Error function, float32: error < 1.5 ulp (measured max 0.99).

    |x| < 1: x + x P(x*x). 1 <= |x|: 1 - erfc(|x|) with erfc(a) = e**(-a*a) Q(1/a),
    a clamped to 4 (erfc(4) = 1.5e-8 already rounds 1 - erfc to 1); a*a is split
    into hi + lo with an FMA so e**(-a*a) keeps its relative precision.
    """
    a = u.intrinsic(b, "fabs", x.type, x)
    small = u.fma(b, a, _horner(b, b.fmul(a, a), _ERF_P), a)
    ac = u.intrinsic(b, "maxnum", x.type, u.intrinsic(b, "minnum", x.type, a, _c(x, 4.0)),
                     _c(x, 1.0))
    hi = b.fmul(ac, ac)
    lo = u.fma(b, ac, ac, b.fneg(hi))
    gauss = b.fmul(exp(b, b.fneg(hi)), b.fsub(_c(x, 1.0), lo))
    erfc = b.fmul(gauss, _horner(b, b.fdiv(_c(x, 1.0), ac), _ERFC_Q))
    large = b.fsub(_c(x, 1.0), erfc)
    magnitude = b.select(b.fcmp_ordered("<", a, _c(x, 1.0)), small, large)
    return _select_nan(b, x, _copysign(b, magnitude, x))   # odd: erf(-0) = -0


# --- gelu building blocks ------------------------------------------------------------------
def _keep_zero(b: ir.IRBuilder, x: ir.Value, result: ir.Value) -> ir.Value:
    # h*e + h with h = -0 and e = -0 is +0 (IEEE sums of opposite zeros); PyTorch's
    # x/2 * (1 + erf) keeps -0, and so do we.
    return b.select(b.fcmp_ordered("==", x, _c(x, 0.0)), x, result)


def gelu(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """x/2 (1 + erf(x/sqrt 2)), PyTorch's gelu(approximate='none'), float32.

    Error: < 1.5 units of max(ulp(gelu(x)), 2**-24 |x|) (measured max 0.91): for x << 0
    the 1 + erf cancellation leaves an absolute error near |x| * 2**-24, as in
    PyTorch's own float32 kernel, so a pure ulp bound does not hold there.
    """
    half_x = b.fmul(x, _c(x, 0.5))
    return _keep_zero(b, x, u.fma(b, half_x, erf(b, b.fmul(x, _c(x, math.sqrt(0.5)))), half_x))


def gelu_tanh(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3))), gelu(approximate='tanh'), float32.

    Same error measure as `gelu`: < 1.5 (measured max 1.13)."""
    inner = b.fmul(_c(x, math.sqrt(2.0 / math.pi)),
                   u.fma(b, b.fmul(_c(x, 0.044715), b.fmul(x, x)), x, x))
    half_x = b.fmul(x, _c(x, 0.5))
    return _keep_zero(b, x, u.fma(b, half_x, tanh(b, inner), half_x))


EMITTERS: dict[str, Emitter] = {"exp": exp, "log": log, "tanh": tanh, "sigmoid": sigmoid,
                                "erf": erf, "gelu": gelu, "gelu_tanh": gelu_tanh}
