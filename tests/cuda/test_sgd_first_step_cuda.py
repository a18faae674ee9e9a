"""On CUDA, SGD with momentum (dampening == 0) compiles one training-step plan from the
first call (the momentum buffers are created as -0.0 before it, see
tests/compile/test_sgd_first_step_plan.py): parameters and buffers equal the two-plan
path bit for bit, and the buffers equal torch's (CPU) on a step with exact gradients.

Without a GPU (CI) the plans run under tests/cuda/emulation.py (test_compile_cuda.py's
`device` fixture); tests marked `cuda` run on a real GPU (tests/cuda/run_on_gpu.sh)."""
import copy
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.compiler import compile_train_rules  # noqa: E402

from test_compile_cuda import EMULATED, device  # noqa: E402,F401 - emulated/real CUDA

nn = ember.nn


def _host(t):
    return t.detach().cpu().numpy().copy()


def _run(model0, batches, device, one_plan):
    model = copy.deepcopy(model0).to(device)
    opt = ember.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    step = ember.compile_train_step(model, nn.CrossEntropyLoss(), opt, backend="triton",
                                    options={"cuda_graphs": False})
    if not one_plan:        # today's first-step plan, then a second one with the buffers
        rule = step.rule
        step.rule = compile_train_rules.OptimizerRule(rule.state_keys, rule.shared_keys,
                                                      rule.init_state, rule.update)
    for x, y in batches:
        step(x.to(device), y.to(device))
    values = [_host(p) for p in model.parameters()]
    values += [_host(opt.state[p]["momentum_buffer"]) for p in model.parameters()]
    assert all(opt.state[p]["momentum_buffer"].is_cuda for p in model.parameters())
    return len(step.plans), values


def test_one_cuda_plan_equals_the_two_plan_path_bit_for_bit(device):
    ember.manual_seed(0)
    model = ember.models.mlp(12, (8,), num_classes=4)
    batches = [(ember.randn(4, 12), ember.randint(0, 4, (4,))) for _ in range(2)]
    plans, one = _run(model, batches, device, one_plan=True)
    plans_before, two = _run(model, batches, device, one_plan=False)
    assert (plans, plans_before) == (1, 2)
    for a, b in zip(one, two):
        if EMULATED:
            np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
        else:       # two different plans: the GPU compiler may contract a*b+c differently
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


class _Scale(nn.Module):
    """y = w * x: the gradient of sum(y) w.r.t. w is x exactly, in ember and torch alike."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(ember.tensor(w))

    def forward(self, x):
        return self.w * x


def test_cuda_buffers_equal_torch_bit_for_bit_signed_zeros_included(device):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    xs = [rng.standard_normal((3, 5)).astype(np.float32) for _ in range(2)]
    xs[0][0, :3] = [-0.0, 0.0, -0.0]
    model = _Scale(w).to(device)
    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    step = ember.compile_train_step(model, lambda out: out.sum(), opt, backend="triton",
                                    options={"cuda_graphs": False})
    p = torch.nn.Parameter(torch.tensor(w))
    ref = torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    for i, x in enumerate(xs):
        step(ember.tensor(x).to(device))
        (p * torch.tensor(x)).sum().backward()
        ref.step()
        ref.zero_grad()
        got, want = _host(opt.state[model.w]["momentum_buffer"]), \
            ref.state[p]["momentum_buffer"].numpy()
        if i == 0 or EMULATED:      # the first step's buf is the gradient, signs included
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        else:   # momentum * buf + grad: the GPU compiler contracts it to one FMA (one
            # rounding) where torch's CPU SGD rounds twice (measured: 1 ulp on an H100)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
    assert len(step.plans) == 1
    np.testing.assert_allclose(_host(model.w), p.detach().numpy(), rtol=1e-6, atol=1e-7)
