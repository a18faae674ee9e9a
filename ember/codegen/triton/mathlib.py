"""Scalar math the generated Triton kernels call as `emath.<name>(...)`.

On a GPU these are libdevice's functions (correctly rounded or within a few ulp).
Triton's interpreter (`TRITON_INTERPRET=1`, how CI runs kernels on the CPU) cannot
call libdevice (its extern calls raise), so there each name is a small Triton
function built from primitives the interpreter has (exp, log, sqrt, floor, ...),
written to stay accurate near zero (expm1/log1p use Kahan's ratio trick, tanh goes
through expm1) so tests compare against NumPy at transcendental tolerances.

The choice is made once, when this module is imported: Triton itself decides
interpreted vs compiled when a kernel is decorated, from the same variable.
The reduction combiners (NaN-propagating max/min, product) live here too, so
every generated module shares one copy.
"""
from __future__ import annotations

import linecache
import os

import triton
import triton.language as tl
from triton.language.extra import libdevice

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


# --- reduction combiners (torch: max/min propagate NaN) -------------------------------------
@triton.jit
def max_nan(a, b):
    return tl.maximum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def min_nan(a, b):
    return tl.minimum(a, b, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def multiply(a, b):
    return a * b


# --- integer division with Python's floor semantics (Triton's // and % truncate, as C) ------
@triton.jit
def floor_div_int(a, b):
    q = a // b
    r = a - q * b
    return tl.where((r != 0) & ((r < 0) != (b < 0)), q - 1, q)


@triton.jit
def remainder_int(a, b):
    r = a % b
    return tl.where((r != 0) & ((r < 0) != (b < 0)), r + b, r)


@triton.jit
def remainder_float(a, b):
    r = a % b                      # fmod: the sign of a
    return tl.where((r != 0) & ((r < 0) != (b < 0)), r + b, r)


@triton.jit
def sign(x):
    # PyTorch's (0 < x) - (x < 0): NaN gives 0, as its CPU and CUDA kernels
    return tl.where(x > 0, 1, tl.where(x < 0, -1, 0)).to(x.dtype)


# --- interpreter fallbacks --------------------------------------------------------------------
@triton.jit
def _expm1(x):
    u = tl.exp(x)
    um1 = u - 1.0
    # Kahan: (u - 1) * x / log(u) cancels the rounding error of u - 1 near 0
    ratio = um1 * x / tl.log(u)
    return tl.where(u == 1.0, x, tl.where(um1 == -1.0, -1.0, tl.where(x > 80.0, u, ratio)))


@triton.jit
def _log1p(x):
    u = 1.0 + x
    ratio = tl.log(u) * x / (u - 1.0)
    return tl.where(u == 1.0, x, tl.where(x > 1e30, tl.log(x), ratio))


@triton.jit
def _tanh(x):
    t = _expm1(-2.0 * tl.abs(x))
    mag = -t / (t + 2.0)
    return tl.where(x < 0, -mag, mag)


@triton.jit
def _sinh(x):
    s = _expm1(tl.abs(x))
    mag = 0.5 * (s + s / (s + 1.0))
    return tl.where(x < 0, -mag, mag)


@triton.jit
def _cosh(x):
    e = tl.exp(tl.abs(x))
    return 0.5 * (e + 1.0 / e)


@triton.jit
def _tan(x):
    return tl.sin(x) / tl.cos(x)


@triton.jit
def _atan(x):
    # Cephes atanf: reduce |x| to [0, tan(pi/8)] through atan(x) = pi/2 - atan(1/x)
    # and atan(x) = pi/4 + atan((x-1)/(x+1)), then an odd polynomial
    a = tl.abs(x)
    big = a > 2.414213562373095
    mid = a > 0.4142135623730950
    z = tl.where(big, -1.0 / a, tl.where(mid, (a - 1.0) / (a + 1.0), a))
    base = tl.where(big, 1.5707963267948966, tl.where(mid, 0.7853981633974483, 0.0))
    z2 = z * z
    p = ((8.05374449538e-2 * z2 - 1.38776856032e-1) * z2 + 1.99777106478e-1) * z2 \
        - 3.33329491539e-1
    r = base + (p * z2 * z + z)
    return tl.where(x < 0, -r, r)


@triton.jit
def _atan2(y, x):
    r = _atan(y / x)
    pi = 3.141592653589793
    r = tl.where(x < 0, tl.where(y < 0, r - pi, r + pi), r)
    r = tl.where(x == 0, tl.where(y > 0, pi / 2, tl.where(y < 0, -pi / 2, 0.0 * y)), r)
    return r


@triton.jit
def _asin(x):
    return _atan2(x, tl.sqrt(1.0 - x * x))


@triton.jit
def _acos(x):
    return _atan2(tl.sqrt(1.0 - x * x), x)


@triton.jit
def _trunc(x):
    return tl.where(x < 0, tl.ceil(x), tl.floor(x))


@triton.jit
def _rint(x):
    # round half to even (torch.round, numpy.round)
    f = tl.floor(x)
    d = x - f
    even = (f % 2.0) == 0.0
    return tl.where(d > 0.5, f + 1.0, tl.where(d < 0.5, f, tl.where(even, f, f + 1.0)))


@triton.jit
def _pow(a, b):
    # nested where instead of `&`: the interpreter cannot `&` a 0-d exponent's flags
    mag = tl.exp2(b * tl.log2(tl.abs(a)))
    integral = tl.floor(b) == b
    odd = (tl.abs(b) % 2.0) == 1.0              # implies integral
    negative = a < 0
    signed = tl.where(negative, tl.where(odd, -mag, mag), mag)
    out = tl.where(negative, tl.where(integral, signed, float("nan")), signed)
    return tl.where(b == 0.0, 1.0, tl.where(a == 1.0, 1.0, out))


# --- libdevice through jit wrappers: Triton swaps the generic `libdevice` module for the
# target's inside jit functions only, so a bare alias of its stubs would compile to nothing.
# Each wrapper is the same one-line forward, so its source is written here from a table;
# Triton reads a jit function's source, hence the linecache entry under a pseudo-filename.
_LIBDEVICE_PARAMS = {
    "expm1": "x", "log1p": "x", "tanh": "x", "sinh": "x", "cosh": "x", "tan": "x",
    "atan": "x", "atan2": "y, x", "asin": "x", "acos": "x", "trunc": "x", "rint": "x",
    "pow": "a, b",
}


def _libdevice_wrapper(name: str, params: str):
    """`@triton.jit def _lib_<name>(<params>): return libdevice.<name>(<params>)`."""
    source = f"def _lib_{name}({params}):\n    return libdevice.{name}({params})\n"
    filename = f"<ember.codegen.triton.mathlib._lib_{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": __name__, "libdevice": libdevice}
    exec(compile(source, filename, "exec"), namespace)
    return triton.jit(namespace[f"_lib_{name}"])


if INTERPRETED:
    expm1, log1p, tanh, sinh, cosh, tan = _expm1, _log1p, _tanh, _sinh, _cosh, _tan
    atan, atan2, asin, acos, trunc, rint, pow = _atan, _atan2, _asin, _acos, _trunc, _rint, _pow
else:                                   # unpacked in the table's order
    (expm1, log1p, tanh, sinh, cosh, tan, atan, atan2, asin, acos, trunc, rint,
     pow) = (_libdevice_wrapper(name, params) for name, params in _LIBDEVICE_PARAMS.items())
