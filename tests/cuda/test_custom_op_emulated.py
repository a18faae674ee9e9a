"""Custom ops on CUDA tensors, emulated on the CPU (see emulation.py): a 'cuda' kernel
registered with register_kernel gets the CUDA tensors themselves; without one, CUDA
operands go through the host (the CPU kernel)."""
import os

os.environ["TRITON_INTERPRET"] = "1"      # before triton is imported (see emulation.py)

import itertools  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("triton")

import ember  # noqa: E402
from ember import Tensor  # noqa: E402
from ember.ir.registry import OPS  # noqa: E402

from emulation import emulated_cuda  # noqa: E402

_ids = itertools.count()


@pytest.fixture
def scaled_sin():
    before = set(OPS)

    @ember.library.custom_op(f"cudatest::scaled_sin_{next(_ids)}", mutates_args=())
    def op(x: Tensor, scale: float) -> Tensor:
        return ember.sin(x) * scale

    op.register_fake(lambda x, scale: ember.empty_like(x))

    def backward(ctx, grad):
        return grad * ember.cos(ctx.x) * ctx.scale, None

    def setup_context(ctx, inputs, output):
        ctx.x, ctx.scale = inputs

    op.register_autograd(backward, setup_context=setup_context)
    yield op
    for name in set(OPS) - before:
        del OPS[name]


def test_cuda_kernel_gets_cuda_tensors(scaled_sin, rng):
    seen = []

    @scaled_sin.register_kernel("cuda")
    def _(x, scale):
        seen.append(x.device.type)
        return ember.sin(x) * scale

    data = rng.standard_normal(5).astype(np.float32)
    with emulated_cuda():
        x = ember.tensor(data, device="cuda", requires_grad=True)
        y = scaled_sin(x, 2.0)
        assert y.is_cuda and seen == ["cuda"]
        np.testing.assert_allclose(y.detach().cpu().numpy(), np.sin(data) * 2, rtol=1e-5)
        y.sum().backward()
        np.testing.assert_allclose(x.grad.cpu().numpy(), np.cos(data) * 2, rtol=1e-5)


def test_without_cuda_kernel_runs_through_the_host(scaled_sin, rng):
    data = rng.standard_normal(5).astype(np.float32)
    with emulated_cuda(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = scaled_sin(ember.tensor(data, device="cuda"), 2.0)
        assert y.is_cuda
        np.testing.assert_allclose(y.cpu().numpy(), np.sin(data) * 2, rtol=1e-5)


def test_cuda_kernel_result_must_match_the_fake(scaled_sin):
    scaled_sin.register_kernel("cuda", lambda x, scale: x.sum())
    with emulated_cuda():
        with pytest.raises(RuntimeError, match="the 'cuda' kernel returned f32\\[\\]"):
            scaled_sin(ember.ones(3, device="cuda"), 2.0)
