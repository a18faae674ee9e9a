"""A CPU training step runs on the whole-plan native entry point (one foreign call per
step from its second call), with cross_entropy / nll_loss decomposed into generated
kernels and the loss seed and class indices folded at compile time: every step of the
MLP's plan is a kernel, a GEMM or a view, and N steps equal N steps of the Python step
loop bit for bit and PyTorch's eager steps (losses, parameters, Adam's state) within
float rounding."""
import numpy as np
import pytest
import torch

import ember

SIZES = (20, 16, 12, 5)


def _models():
    """An ember MLP and a torch MLP with the same weights."""
    torch.manual_seed(0)
    t = torch.nn.Sequential(torch.nn.Linear(SIZES[0], SIZES[1]), torch.nn.ReLU(),
                            torch.nn.Linear(SIZES[1], SIZES[2]), torch.nn.ReLU(),
                            torch.nn.Linear(SIZES[2], SIZES[3]))
    e = ember.nn.Sequential(ember.nn.Linear(SIZES[0], SIZES[1]), ember.nn.ReLU(),
                            ember.nn.Linear(SIZES[1], SIZES[2]), ember.nn.ReLU(),
                            ember.nn.Linear(SIZES[2], SIZES[3]))
    e.load_state_dict({k: ember.tensor(v.detach().numpy().copy())
                       for k, v in t.state_dict().items()})
    return e, t


def _batch(seed=0, ignore=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, SIZES[0])).astype(np.float32)
    y = rng.integers(0, SIZES[-1], 8)
    if ignore:
        y[2] = -100
    return x, y


def _ember_steps(model, loss_fn, steps, options=None, ignore=False):
    opt = ember.optim.Adam(model.parameters(), lr=1e-2)
    step = ember.compile_train_step(model, loss_fn, opt, options=options)
    losses = []
    for i in range(steps):
        x, y = _batch(i, ignore)
        losses.append(step(ember.tensor(x), ember.tensor(y)).item())
    return step, opt, losses


def _torch_steps(model, loss_fn, steps, ignore=False):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for i in range(steps):
        x, y = _batch(i, ignore)
        loss = loss_fn(model(torch.tensor(x)), torch.tensor(y))
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return opt, losses


@pytest.mark.parametrize("loss_name", ["cross_entropy", "nll_loss"])
def test_training_step_runs_natively_and_matches_torch(loss_name):
    e_model, t_model = _models()
    if loss_name == "cross_entropy":
        e_loss, t_loss = ember.nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    else:       # log_softmax + nll_loss: the MLP's plan then has no loss op either
        e_loss = lambda out, y: ember.nn.functional.nll_loss(  # noqa: E731
            ember.nn.functional.log_softmax(out, 1), y)
        t_loss = lambda out, y: torch.nn.functional.nll_loss(  # noqa: E731
            torch.nn.functional.log_softmax(out, 1), y)
    step, opt, losses = _ember_steps(e_model, e_loss, 6, ignore=True)
    t_opt, t_losses = _torch_steps(t_model, t_loss, 6, ignore=True)
    run = step.last.plan.run
    assert run.failed is None and run.native is not None
    assert not step.stats.fallbacks
    names = {s.fn.desc["kind"] for s in step.last.plan.steps}
    assert names <= {"kernel", "gemm", "view"}, names
    np.testing.assert_allclose(losses, t_losses, rtol=1e-5, atol=1e-6)
    for p, q in zip(e_model.parameters(), t_model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4,
                                   atol=1e-5)
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(opt.state[p][key].numpy(),
                                       t_opt.state[q][key].numpy(), rtol=1e-4, atol=1e-7)
        # updated in place: the parameters keep their storage
        assert p._version > 0


def test_native_training_step_equals_the_python_loop_bit_for_bit():
    e_native, _ = _models()
    e_loop, _ = _models()
    _, opt_native, native = _ember_steps(e_native, ember.nn.CrossEntropyLoss(), 5)
    step, opt_loop, loop = _ember_steps(e_loop, ember.nn.CrossEntropyLoss(), 5,
                                        options={"native_entry": False})
    assert not hasattr(step.last.plan.run, "native")       # the Python loop throughout
    assert native == loop
    for p, q in zip(e_native.parameters(), e_loop.parameters()):
        assert np.array_equal(p.detach().numpy(), q.detach().numpy())
        assert np.array_equal(opt_native.state[p]["exp_avg_sq"].numpy(),
                              opt_loop.state[q]["exp_avg_sq"].numpy())


def test_traced_step_function_runs_natively():
    e_model, t_model = _models()
    opt = ember.optim.SGD(e_model.parameters(), lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.1, momentum=0.9)

    @ember.compile_train_step
    def step(x, y):
        loss = ember.nn.functional.cross_entropy(e_model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    for i in range(4):
        x, y = _batch(i)
        got = step(ember.tensor(x), ember.tensor(y)).item()
        want = torch.nn.functional.cross_entropy(t_model(torch.tensor(x)), torch.tensor(y))
        want.backward()
        t_opt.step()
        t_opt.zero_grad()
        assert got == pytest.approx(want.item(), rel=1e-5, abs=1e-6)
    run = step.last.plan.run      # (the first step, creating the momentum, had its own)
    assert run.failed is None and run.native is not None, run.failed
    for p, q in zip(e_model.parameters(), t_model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_cross_entropy_with_a_masked_logit_stays_finite_when_compiled():
    """The decomposition picks the target's log-probability with where(), so a -inf
    logit of another class gives PyTorch's finite loss, not 0 * -inf = NaN."""
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    x[:, 3] = -np.inf
    y = np.array([0, 1, 2, 4])
    fn = ember.compile(lambda a, b: ember.nn.functional.cross_entropy(a, b))
    got = fn(ember.tensor(x), ember.tensor(y)).item()
    want = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(y)).item()
    assert np.isfinite(got) and got == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("loss_name, kwargs", [("MSELoss", {}), ("L1Loss", {}),
                                               ("SmoothL1Loss", {"beta": 0.5}),
                                               ("HuberLoss", {"delta": 0.7}),
                                               ("BCEWithLogitsLoss", {})])
def test_regression_step_runs_natively_and_matches_torch(loss_name, kwargs):
    e_model, t_model = _models()
    opt = ember.optim.SGD(e_model.parameters(), lr=0.05)
    t_opt = torch.optim.SGD(t_model.parameters(), lr=0.05)
    t_loss = getattr(torch.nn, loss_name)(**kwargs)
    step = ember.compile_train_step(e_model, getattr(ember.nn, loss_name)(**kwargs), opt)
    rng = np.random.default_rng(2)
    for _ in range(4):
        x = rng.standard_normal((8, SIZES[0])).astype(np.float32)
        y = rng.standard_normal((8, SIZES[-1])).astype(np.float32)
        if loss_name == "BCEWithLogitsLoss":        # probabilities
            y = 1 / (1 + np.exp(-y))
        got = step(ember.tensor(x), ember.tensor(y)).item()
        want = t_loss(t_model(torch.tensor(x)), torch.tensor(y))
        want.backward()
        t_opt.step()
        t_opt.zero_grad()
        assert got == pytest.approx(want.item(), rel=1e-5)
    run = step.last.plan.run
    assert run.failed is None and run.native is not None, run.failed
    for p, q in zip(e_model.parameters(), t_model.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
