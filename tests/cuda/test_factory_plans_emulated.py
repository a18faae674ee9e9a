"""Factories' cached plans and fill path (issue 22) next to CUDA: a factory called with no
device inside a CUDA derivative rule creates on the rule's device even after the same
call was cached on the CPU, and the CPU cache is used again afterwards."""
import os

os.environ["TRITON_INTERPRET"] = "1"      # before triton is imported (see emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.frontend import devices  # noqa: E402
from ember.ir.registry import OPS  # noqa: E402

from emulation import emulated_cuda  # noqa: E402


@pytest.fixture
def cuda():
    with emulated_cuda() as allocator:
        yield allocator


def _calls():
    """Device-less factory calls through every route: the fill path, the seen-call path
    (positional and keyword registry calls) and run_op's plan cache."""
    return [ember.zeros(3), ember.ones(2, 2, dtype=ember.float64), ember.full((2,), 1.5),
            ember.empty(4), OPS["full"]([3], 2.0), OPS["full"]([2], 7, dtype=ember.int32),
            OPS["arange"](0, 4, 1)]


def test_factories_follow_the_creation_device_after_cpu_caching(cuda):
    for _ in range(3):                      # learned and cached on the CPU
        assert all(t.device.type == "cpu" for t in _calls())
    anchor = ember.ones(2, device="cuda")
    with devices.creation_device_like([anchor]):
        made = _calls()
    assert all(t.is_cuda for t in made), [t.device for t in made]
    expected = [t.numpy() for t in _calls()]
    assert all(t.device.type == "cpu" for t in _calls())
    for got, want in zip(made, expected):
        np.testing.assert_array_equal(got.cpu().numpy(), want)
        assert got.dtype == ember.from_numpy(want).dtype


def test_derivative_rule_factories_after_cpu_warmup(cuda):
    """A backward whose rule creates tensors, run on the CPU first (its factory plans
    cached), then on CUDA: the CUDA gradient is computed and lands on the CUDA device."""
    def grad_of(device):
        x = ember.arange(12.0).reshape(3, 4).to(device).requires_grad_(True)
        idx = ember.tensor([2, 0]).to(device)
        ember.index_select(x, 0, idx).sum().backward()
        return x.grad
    for _ in range(3):
        cpu_grad = grad_of("cpu")
    cuda_grad = grad_of("cuda")
    assert cuda_grad.is_cuda
    np.testing.assert_array_equal(cuda_grad.cpu().numpy(), cpu_grad.numpy())
