"""Eager relu of a large contiguous float32 tensor runs natively (codegen/llvm/
qelementwise.py relu_f32, eager_kernels' `relu` candidate: the float relu between a
dynamically quantized model's int8 layers): torch.relu's values, the NumPy reference's
bytes (NaN payloads kept, -0.0 to +0.0) at every length around the vector width and the
thread split, and torch's gradient."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.codegen.llvm import qelementwise as QE
from ember.frontend import eager_kernels
from ember.ir.registry import OPS

pytestmark = pytest.mark.skipif(not QE.available(), reason="the native kernel needs AVX2")


def _values(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    x[::7], x[1::11], x[2::13], x[3::17] = -0.0, np.nan, -np.inf, np.inf
    if n > 5:       # a negative NaN with a payload
        x[4] = np.array([0xffc00123], np.uint32).view(np.float32)[0]
    return x


@pytest.mark.parametrize("n", [1, 15, 17, 1000, (1 << 16) + 3, 1 << 18, (1 << 18) + 17])
def test_kernel_bytes_equal_numpy_maximum(n):
    x = _values(n, n)
    assert QE.relu_f32(x).tobytes() == np.maximum(x, 0).tobytes()


@pytest.mark.parametrize("shape", [(64, 4096), (3, 70000), (1 << 16,)])
def test_eager_relu_takes_the_kernel_and_matches_torch(shape, monkeypatch):
    x = _values(int(np.prod(shape)), 1).reshape(shape)
    calls = []
    real = QE.relu_f32
    monkeypatch.setattr(QE, "relu_f32", lambda a: calls.append(a.shape) or real(a))
    ember.frontend.eager._PLANS.clear()     # plans made before the patch hold the kernel
    e = ember.tensor(x)
    outs = [ember.relu(e), ember.nn.functional.relu(e), ember.nn.ReLU()(e)]
    assert calls, "the native relu did not run"
    want = torch.relu(torch.from_numpy(x)).numpy()
    for out in outs:
        np.testing.assert_array_equal(out.numpy(), want)
        assert out.numpy().tobytes() == np.maximum(x, 0).tobytes()
    assert e.numpy().tobytes() == x.tobytes()       # the input untouched


def test_small_and_strided_inputs_take_numpy():
    relu = OPS["relu"]
    assert eager_kernels.candidate(relu, (ember.tensor(_values(100, 2)),), None) is None
    big = ember.tensor(_values(1 << 16, 2))
    assert eager_kernels.candidate(relu, (big,), None) is not None
    assert eager_kernels.candidate(relu, (big.double(),), None) is None
    x = _values(300 * 400, 3).reshape(300, 400)
    t = ember.tensor(x).t()                 # not contiguous: the reference
    assert eager_kernels.candidate(relu, (t,), None) is None
    np.testing.assert_array_equal(ember.relu(t).numpy(), np.maximum(x.T, 0))


def test_relu_gradient_matches_torch():
    x = _values(70000, 4)
    x[np.isnan(x)] = 0.5                    # gradients of finite values
    e = ember.tensor(x, requires_grad=True)
    t = torch.tensor(x, requires_grad=True)
    g = np.random.default_rng(5).standard_normal(x.shape).astype(np.float32)
    ember.relu(e).backward(ember.tensor(g))
    torch.relu(t).backward(torch.from_numpy(g))
    np.testing.assert_array_equal(e.grad.numpy(), t.grad.numpy())
