"""IEEE results are answers, not warnings: NumPy's RuntimeWarnings (overflow, divide by
zero, invalid value) never reach the user, as PyTorch is silent. Run under `-W error`
semantics: any warning fails."""
from __future__ import annotations

import math
import warnings

import pytest

import ember

CASES = {
    "exp overflow": (lambda: ember.tensor([1000.0]).exp(), math.inf),
    "log of zero": (lambda: ember.tensor([0.0]).log(), -math.inf),
    "one over zero": (lambda: 1 / ember.zeros(1), math.inf),
    "zero over zero": (lambda: ember.zeros(1) / ember.zeros(1), math.nan),
    "sqrt of negative": (lambda: ember.tensor([-1.0]).sqrt(), math.nan),
    "float16 overflow": (lambda: ember.tensor([1e30]).half(), math.inf),
    "in-place inf into float": (lambda: ember.zeros(1).add_(math.inf), math.inf),
    "backward through log(0)": (lambda: _grad_of_log_at_zero(), math.inf),
}


def _grad_of_log_at_zero():
    x = ember.zeros(1, requires_grad=True)
    x.log().sum().backward()
    return x.grad


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_runtime_warning(name):
    compute, expected = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = float(compute().detach()[0])
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


def test_python_dash_w_error():
    import subprocess
    import sys
    code = ("import ember\n"
            "print(ember.tensor([1000.]).exp(), ember.tensor([0.]).log(), 1 / ember.zeros(1))\n")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["tensor([inf])", "tensor([-inf])", "tensor([inf])"]
