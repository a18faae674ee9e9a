"""Eager reductions on CUDA tensors split along their reduced space (split_reduce.py's
phases with a workspace, eager_cuda._Plan), as compiled plans run them: a sum over a
whole tensor and BatchNorm's per-channel statistics and gradients of a channels-last
activation no longer run on one program (or eight). Values against torch; on CI the
phases run in Triton's interpreter over emulated CUDA memory."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402

from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture


@pytest.fixture
def phases(monkeypatch):
    """Names of the kernels eager launches run, in order."""
    names, launch = [], eager_cuda.launch

    def spy(generated, tensors, index):
        names.append(generated.name)
        return launch(generated, tensors, index)
    monkeypatch.setattr(eager_cuda, "launch", spy)
    return names


def test_whole_tensor_and_per_channel_sums_split(device, phases):  # noqa: F811
    values = np.random.default_rng(0).standard_normal((4, 8, 32, 40)).astype(np.float32)
    t = torch.tensor(values)
    x = ember.tensor(values).to(device)
    np.testing.assert_allclose(x.sum().cpu().numpy(), t.sum().numpy(), rtol=1e-5, atol=1e-3)
    assert [n.rsplit("_", 1)[1] for n in phases[-2:]] == ["partial0", "final"]
    cl = x.contiguous(memory_format=ember.channels_last)
    phases.clear()
    np.testing.assert_allclose(cl.mean((0, 2, 3)).cpu().numpy(), t.mean((0, 2, 3)).numpy(),
                               rtol=1e-5, atol=1e-6)
    assert any(n.endswith("_partial0") for n in phases), phases


def test_batch_norm_training_forward_and_backward_equal_torch(device, phases):  # noqa: F811
    rng = np.random.default_rng(1)
    values = rng.standard_normal((4, 8, 32, 32)).astype(np.float32) * 2 + 3
    grad = rng.standard_normal(values.shape).astype(np.float32)
    bn, tbn = ember.nn.BatchNorm2d(8).to(device), torch.nn.BatchNorm2d(8)
    x = ember.tensor(values).to(device).contiguous(memory_format=ember.channels_last)
    x.requires_grad_(True)
    tx = torch.tensor(values).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y, ty = ember.nn.functional.relu(bn(x)), torch.relu(tbn(tx))
    y.backward(ember.tensor(grad).to(device))
    ty.backward(torch.tensor(grad))
    np.testing.assert_allclose(y.detach().cpu().numpy(), ty.detach().numpy(), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(x.grad.cpu().numpy(), tx.grad.numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn.weight.grad.cpu().numpy(), tbn.weight.grad.numpy(),
                               rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(bn.running_var.cpu().numpy(), tbn.running_var.numpy(),
                               rtol=1e-5, atol=1e-5)
    assert sum(n.endswith("_final") for n in phases) >= 3, phases
