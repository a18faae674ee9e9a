"""SGD with momentum and dampening == 0 compiles one training-step plan: the momentum
buffers are created (as -0.0) before the first compiled step, whose steady-state update
momentum * buf + grad then equals torch's first step (buf = grad) bit for bit. Checked
against the two-plan path (first step without buffers, a second plan with them), and
against torch's SGD on a step whose gradient is exact (signed zeros included)."""
import copy

import numpy as np
import pytest

import ember
from ember.compiler import compile_train_rules

torch = pytest.importorskip("torch")
nn = ember.nn


def _two_plan_rule(rule):
    """The rule without its first-step state: today's first-step plan, then a second."""
    return compile_train_rules.OptimizerRule(rule.state_keys, rule.shared_keys,
                                             rule.init_state, rule.update)


def _run(model0, batches, kw, one_plan):
    model = copy.deepcopy(model0)
    opt = ember.optim.SGD(model.parameters(), lr=0.05, **kw)
    step = ember.compile_train_step(model, nn.CrossEntropyLoss(), opt)
    if not one_plan:
        step.rule = _two_plan_rule(step.rule)
    assert all(len(opt.state[p]) == 0 for p in model.parameters())   # nothing before call 1
    for x, y in batches:
        step(x, y)
    values = [p.detach().numpy().copy() for p in model.parameters()]
    values += [opt.state[p]["momentum_buffer"].numpy().copy() for p in model.parameters()]
    return len(step.plans), values


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32)


@pytest.mark.parametrize("kw", [dict(momentum=0.9),
                                dict(momentum=0.8, nesterov=True, weight_decay=0.01),
                                dict(momentum=0.5, maximize=True)])
def test_one_plan_equals_the_two_plan_path_bit_for_bit(kw):
    ember.manual_seed(0)
    model = ember.models.mlp(24, (16, 12), num_classes=5)
    batches = [(ember.randn(6, 24), ember.randint(0, 5, (6,))) for _ in range(3)]
    plans, one = _run(model, batches, kw, one_plan=True)
    plans_before, two = _run(model, batches, kw, one_plan=False)
    assert (plans, plans_before) == (1, 2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(_bits(a), _bits(b))


def test_dampening_keeps_the_first_step_plan():
    """buf = grad differs from (1 - dampening) * grad: the first step stays its own plan."""
    ember.manual_seed(1)
    model = ember.models.mlp(24, (16,), num_classes=5)
    batches = [(ember.randn(6, 24), ember.randint(0, 5, (6,))) for _ in range(2)]
    plans, _ = _run(model, batches, dict(momentum=0.9, dampening=0.1), one_plan=True)
    assert plans == 2


class _Scale(nn.Module):
    """y = w * x: the gradient of sum(y) w.r.t. w is x exactly, in ember and torch alike."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(ember.tensor(w))

    def forward(self, x):
        return self.w * x


def _exact_gradients():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 6)).astype(np.float32)
    xs = [rng.standard_normal((4, 6)).astype(np.float32) for _ in range(3)]
    xs[0][0, :3] = [-0.0, 0.0, -0.0]        # signed-zero gradients at the first step
    xs[1][1, :2] = [-0.0, 0.0]
    return w, xs


def _torch_sgd(w, xs, kw):
    p = torch.nn.Parameter(torch.tensor(w))
    opt = torch.optim.SGD([p], lr=0.1, **kw)
    buffers = []
    for x in xs:
        (p * torch.tensor(x)).sum().backward()
        opt.step()
        opt.zero_grad()
        buffers.append(opt.state[p]["momentum_buffer"].numpy().copy())
    return p.detach().numpy(), buffers, opt.state_dict()


@pytest.mark.parametrize("kw", [dict(momentum=0.9), dict(momentum=0.9, nesterov=True)])
@pytest.mark.parametrize("traced", [False, True])
def test_buffers_after_each_step_equal_torch_bit_for_bit(kw, traced):
    w, xs = _exact_gradients()
    model = _Scale(w)
    opt = ember.optim.SGD(model.parameters(), lr=0.1, **kw)
    if traced:
        @ember.compile_train_step
        def step(x):
            model(x).sum().backward()
            opt.step()
            opt.zero_grad()
    else:
        step = ember.compile_train_step(model, lambda out: out.sum(), opt)
    want_param, want_buffers, want_state = _torch_sgd(w, xs, kw)
    for x, want in zip(xs, want_buffers):
        step(ember.tensor(x))
        got = opt.state[model.w]["momentum_buffer"].numpy()
        np.testing.assert_array_equal(_bits(got), _bits(want))      # -0.0 stays -0.0
    assert len(step.plans) == 1
    np.testing.assert_allclose(model.w.detach().numpy(), want_param, rtol=1e-6, atol=1e-7)
    state = opt.state_dict()
    assert sorted(state["state"][0]) == sorted(want_state["state"][0]) == ["momentum_buffer"]
