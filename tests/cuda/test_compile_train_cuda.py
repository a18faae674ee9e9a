"""Compiled training steps on CUDA (`ember.compile_train_step(..., backend="triton")`)
equal eager CPU training steps; and the CUDA runtime's teardown is quiet at exit.

Without a GPU (CI) the steps run under tests/cuda/emulation.py (see
test_compile_cuda.py's `device` fixture): 'cuda:0' lives in host memory and each plan
kernel runs under Triton's interpreter. Tests marked `cuda` run on a real GPU
(tests/cuda/run_on_gpu.sh)."""
import copy
import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402

from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture
from tests.compile.helpers import eager_step  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
nn = ember.nn

MODELS = {
    "mlp": lambda: (ember.models.mlp(24, (16, 12), num_classes=5),
                    lambda: (ember.randn(6, 24), ember.randint(0, 5, (6,)))),
    "small_cnn": lambda: (ember.models.small_cnn(),
                          lambda: (ember.randn(2, 1, 28, 28), ember.randint(0, 10, (2,)))),
}
OPTIMIZERS = {
    "sgd_momentum": lambda ps: ember.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    "adam": lambda ps: ember.optim.Adam(ps, lr=1e-2),
}


def _host(t):
    return t.detach().cpu().numpy()


def _assert_same(model, ref, opt, opt_ref, tol):
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        assert p.is_cuda, name
        np.testing.assert_allclose(_host(p), _host(q), rtol=tol, atol=tol, err_msg=name)
    for (name, b), c in zip(model.named_buffers(), ref.buffers()):
        np.testing.assert_allclose(_host(b), _host(c), rtol=tol, atol=tol, err_msg=name)
    for p, q in zip(model.parameters(), ref.parameters()):
        mine, theirs = opt.state[p], opt_ref.state[q]
        assert sorted(mine) == sorted(theirs)
        for key in theirs:
            np.testing.assert_allclose(_host(mine[key]), _host(theirs[key]), rtol=tol,
                                       atol=tol, err_msg=key)


def _compare(model_name, opt_name, device, steps, traced=False, tol=2e-4):
    """`steps` compiled CUDA steps vs eager CPU steps from the same start."""
    ember.manual_seed(0)
    ref, batch = MODELS[model_name]()
    model = copy.deepcopy(ref).to(device)
    loss_fn = nn.CrossEntropyLoss()
    opt, opt_ref = OPTIMIZERS[opt_name](model.parameters()), \
        OPTIMIZERS[opt_name](ref.parameters())
    if traced:
        @ember.compile_train_step(backend="triton", options={"cuda_graphs": False})
        def step(x, y):
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss
    else:
        step = ember.compile_train_step(model, loss_fn, opt, backend="triton")
    storages = [p.untyped_storage() for p in model.parameters()]
    for _ in range(steps):
        x, y = batch()
        got = step(x.to(device), y.to(device))
        want = eager_step(ref, loss_fn, opt_ref, x, y)
        assert got.is_cuda and np.isfinite(want.item())
        np.testing.assert_allclose(got.item(), want.item(), rtol=tol, atol=tol)
    _assert_same(model, ref, opt, opt_ref, tol)
    assert [p.untyped_storage() for p in model.parameters()] == storages    # in place
    assert all(p.grad is None for p in model.parameters())
    return step


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_mlp_compiled_cuda_steps_equal_eager_cpu_steps(device, opt_name):
    step = _compare("mlp", opt_name, device, steps=3)
    assert step.last.bindings                    # update kernels store into the parameters
    assert step.stats.kernels > 0


def test_small_cnn_compiled_cuda_steps_equal_eager_cpu_steps(device):
    # SGD, not Adam: a conv bias before train-mode BatchNorm has a zero gradient up to
    # rounding, which Adam would scale up to lr-sized steps in either direction
    step = _compare("small_cnn", "sgd_momentum", device, steps=2)
    assert len(step.plans) == 1      # momentum buffers created before step 1: one plan


def test_traced_step_function_on_cuda_equals_eager_cpu_steps(device):
    _compare("mlp", "adam", device, steps=2, traced=True)


def test_cpu_parameters_are_refused_by_a_cuda_step(device):
    model, batch = MODELS["mlp"]()
    step = ember.compile_train_step(model, nn.CrossEntropyLoss(),
                                    ember.optim.SGD(model.parameters(), lr=0.1),
                                    backend="triton")
    x, y = batch()
    with pytest.raises(ember.ir.errors.DeviceError, match="cpu"):
        step(x.to(device), y.to(device))


def test_rebinding_another_buffer_drops_a_captured_graph():
    """A captured CUDA graph stores into the buffers bound at capture; a training step
    that binds another buffer (a parameter replaced) must not replay the old graph."""
    from ember.compiler.compile_cuda import GraphedPlan

    class Plan:
        def bind(self, slot, value):
            self.bound = (slot, value)
    plan = GraphedPlan(Plan(), backend=None, mode=True)
    first, second = object(), object()
    plan.bind(0, first)
    plan.graph = "captured"
    plan.bind(0, first)
    assert plan.graph == "captured" and plan.plan.bound == (0, first)
    plan.bind(0, second)
    assert plan.graph is None and plan.plan.bound == (0, second)
