"""vecmath accuracy: every function's stated ulp bound, on a dense float32 sweep, per ISA.

The bounds asserted here are the ones the docstrings of ember.codegen.llvm.vecmath
state. The oracle is torch in float64; ulp is the float32 spacing at the true value
(2**-149 below FLT_MIN, so denormal results are held to absolute precision).
"""
import numpy as np
import pytest
import torch

from ember.codegen.llvm.target import Isa
from ember.codegen.llvm.unary import apply_unary
from ember.ir.errors import DTypeError, LoweringError

from llvm_isas import isa_params  # tests/codegen is on sys.path (no package)

F = torch.nn.functional
# name -> (float64 oracle, max ulp error stated in the docstring)
FUNCTIONS = {
    "exp": (torch.exp, 1.5),
    "log": (torch.log, 1.5),
    "tanh": (torch.tanh, 1.5),
    "sigmoid": (torch.sigmoid, 2.5),
    "erf": (torch.erf, 1.5),
    "gelu": (F.gelu, 1.5),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), 1.5),
}
SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754942e-38, 1.1754944e-38,
           3.4028235e38, -3.4028235e38, 88.72, 88.73, -87.33, -103.97, -104.0, 1.0, -1.0,
           0.625, -0.625, 4.0, -4.0, 3.92, 1.4142135, 0.70710677]


def _sweep() -> np.ndarray:
    """Every 65537th float32 bit pattern of each sign, fine grids where branches meet,
    and the special values (an odd count, so the scalar tail runs too)."""
    pos = np.arange(0, 0x7F800000, 65537, dtype=np.uint32).view(np.float32)
    grids = [np.linspace(-12, 12, 48001, dtype=np.float32),
             np.linspace(0.6, 1.5, 20001, dtype=np.float32)]
    return np.concatenate([pos, -pos, *grids, np.array(SPECIAL, np.float32)])


def _ulp(t: np.ndarray) -> np.ndarray:
    exponent = np.floor(np.log2(np.maximum(np.abs(t), 2.0 ** -149)))
    return 2.0 ** np.maximum(exponent - 23, -149)


@pytest.mark.parametrize("isa", isa_params(Isa.AVX512, Isa.AVX2))
@pytest.mark.parametrize("name", FUNCTIONS)
def test_stated_ulp_bound(name, isa):
    oracle, bound = FUNCTIONS[name]
    x = _sweep()
    got = apply_unary(name, x, isa=isa).astype(np.float64)
    want = oracle(torch.from_numpy(x.astype(np.float64))).numpy()
    with np.errstate(over="ignore"):
        rounded = want.astype(np.float32).astype(np.float64)   # overflow: inf is right
    finite = np.isfinite(rounded)
    unit = _ulp(want[finite])
    if name.startswith("gelu"):       # documented measure: ulp or 2**-24 |x|, the larger
        unit = np.maximum(unit, np.abs(x[finite]) * 2.0 ** -24)
    err = np.abs(got[finite] - want[finite]) / unit
    worst = np.argmax(err)
    assert err[worst] < bound, f"{name}({x[finite][worst]!r}) off by {err[worst]:.3g} ulp"
    np.testing.assert_array_equal(got[~finite], rounded[~finite])   # inf, -inf, nan


@pytest.mark.parametrize("name,cases", [
    ("exp", {0.0: 1.0, -np.inf: 0.0, np.inf: np.inf, 89.0: np.inf, -104.0: 0.0}),
    ("log", {1.0: 0.0, 0.0: -np.inf, -1.0: np.nan, np.inf: np.inf,
             1e-45: np.log(np.float64(np.float32(1e-45)))}),     # smallest denormal
    ("tanh", {0.0: 0.0, 20.0: 1.0, -np.inf: -1.0}),
    ("sigmoid", {0.0: 0.5, np.inf: 1.0, -np.inf: 0.0}),
    ("erf", {0.0: 0.0, 5.0: 1.0, -np.inf: -1.0}),
])
def test_special_values(name, cases):
    x = np.array(list(cases), np.float32)
    got = apply_unary(name, x)
    np.testing.assert_allclose(got, np.array(list(cases.values()), np.float32), rtol=1e-7)
    assert np.isnan(apply_unary(name, np.array([np.nan], np.float32)))[0]


@pytest.mark.parametrize("name", ["tanh", "erf", "gelu", "gelu_tanh"])
def test_odd_functions_keep_negative_zero(name):
    assert np.signbit(apply_unary(name, np.array([-0.0], np.float32)))[0]


def test_unknown_function_and_bad_dtype():
    with pytest.raises(LoweringError, match="no function 'cosh'"):
        apply_unary("cosh", np.zeros(3, np.float32))
    with pytest.raises(DTypeError, match="expected a float32 numpy array, got float64"):
        apply_unary("exp", np.zeros(3))
