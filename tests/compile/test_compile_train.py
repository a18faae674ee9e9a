"""ember.compile_train_step: N compiled training steps equal N eager steps (losses,
parameters, optimizer state, running statistics) for the built-in models and the
supported optimizers; guards recompile; steady state allocates no large buffers."""
import copy

import numpy as np
import pytest

import ember
from tests.compile.helpers import assert_steady_calls_allocate_nothing, eager_step

nn = ember.nn


def _mlp():
    return ember.models.mlp(24, (16, 12), num_classes=5), lambda: (ember.randn(6, 24),
                                                                    ember.randint(0, 5, (6,)))


def _cnn():
    return ember.models.small_cnn(), lambda: (ember.randn(3, 1, 28, 28),
                                              ember.randint(0, 10, (3,)))


def _transformer():
    model = ember.models.transformer_classifier(vocab_size=30, d_model=16, nhead=2,
                                                num_layers=1, dim_feedforward=32, max_len=12,
                                                dropout=0.0)
    return model, lambda: (ember.randint(0, 30, (2, 7)), ember.randint(0, 2, (2,)))   # 2 classes


_OPTIMIZERS = {
    "sgd": lambda ps: ember.optim.SGD(ps, lr=0.05),
    "sgd_momentum_wd": lambda ps: ember.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01,
                                                  dampening=0.1),
    "sgd_nesterov": lambda ps: ember.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True),
    "adam": lambda ps: ember.optim.Adam(ps, lr=1e-2, weight_decay=0.01),
    "adam_amsgrad": lambda ps: ember.optim.Adam(ps, lr=1e-2, amsgrad=True),
    "adamw": lambda ps: ember.optim.AdamW(ps, lr=1e-2, betas=(0.8, 0.99)),
}


def _assert_same_state(model, ref, opt, opt_ref, tol):
    assert all(np.isfinite(q.detach().numpy()).all() for q in ref.parameters())
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=tol, atol=tol,
                                   err_msg=name)
    for b, c in zip(model.buffers(), ref.buffers()):
        np.testing.assert_allclose(b.numpy(), c.numpy(), rtol=tol, atol=tol)
    for p, q in zip(model.parameters(), ref.parameters()):
        mine, theirs = opt.state[p], opt_ref.state[q]
        assert sorted(mine) == sorted(theirs)
        for key in theirs:
            np.testing.assert_allclose(mine[key].numpy(), theirs[key].numpy(), rtol=tol,
                                       atol=tol, err_msg=key)


def _run_both(make, make_opt, steps, train=True, tol=2e-4):
    ember.manual_seed(0)
    model, batch = make()
    model.train(train)
    ref = copy.deepcopy(model)
    loss_fn = nn.CrossEntropyLoss()
    opt, opt_ref = make_opt(model.parameters()), make_opt(ref.parameters())
    step = ember.compile_train_step(model, loss_fn, opt)
    for _ in range(steps):
        x, y = batch()
        got = step(x, y)
        want = eager_step(ref, loss_fn, opt_ref, x, y)
        assert np.isfinite(want.item())
        np.testing.assert_allclose(got.item(), want.item(), rtol=tol, atol=tol)
    _assert_same_state(model, ref, opt, opt_ref, tol)
    return step


@pytest.mark.parametrize("opt_name", sorted(_OPTIMIZERS))
def test_mlp_compiled_steps_equal_eager_steps(opt_name):
    step = _run_both(_mlp, _OPTIMIZERS[opt_name], steps=3)
    # momentum with dampening: the buffers appear after step 1, a second plan; without
    # dampening they are created before it (test_sgd_first_step_plan.py), one plan
    assert len(step.plans) == (2 if opt_name == "sgd_momentum_wd" else 1)


def test_small_cnn_train_mode_batchnorm_steps_equal_eager():
    step = _run_both(_cnn, _OPTIMIZERS["adam"], steps=2, train=True)
    assert step.stats.kernels > 0


def test_small_cnn_eval_mode_steps_equal_eager():
    _run_both(_cnn, _OPTIMIZERS["sgd_momentum_wd"], steps=2, train=False)


def test_transformer_classifier_steps_equal_eager():
    # SGD, not Adam: the key bias's gradient is zero up to rounding (softmax ignores a
    # per-query shift), and Adam would scale that rounding noise up to lr-sized steps
    _run_both(_transformer, _OPTIMIZERS["sgd_momentum_wd"], steps=2)


def test_dropout_masks_match_eager_under_the_same_seed():
    ember.manual_seed(3)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    ref = copy.deepcopy(model)
    loss_fn = nn.CrossEntropyLoss()
    opt, opt_ref = ember.optim.SGD(model.parameters(), lr=0.1), \
        ember.optim.SGD(ref.parameters(), lr=0.1)
    step = ember.compile_train_step(model, loss_fn, opt)
    for i in range(3):
        x, y = ember.randn(4, 8), ember.randint(0, 3, (4,))
        ember.manual_seed(100 + i)
        got = step(x, y)
        ember.manual_seed(100 + i)
        want = eager_step(ref, loss_fn, opt_ref, x, y)
        np.testing.assert_allclose(got.item(), want.item(), rtol=1e-5)
    _assert_same_state(model, ref, opt, opt_ref, 1e-5)


def test_parameters_are_updated_in_place():
    ember.manual_seed(1)
    model, batch = _mlp()
    params = list(model.parameters())
    arrays = [p._array for p in params]
    before = [a.copy() for a in arrays]
    step = ember.compile_train_step(model, nn.CrossEntropyLoss(),
                                    ember.optim.SGD(model.parameters(), lr=0.1))
    step(*batch())
    assert all(p is q for p, q in zip(params, model.parameters()))
    assert all(p._array is a for p, a in zip(params, arrays))
    assert all(not np.array_equal(a, b) for a, b in zip(arrays, before))
    assert all(p.grad is None for p in params)


def test_batch_size_change_recompiles_and_stays_correct():
    ember.manual_seed(2)
    model, _ = _mlp()
    ref = copy.deepcopy(model)
    loss_fn = nn.CrossEntropyLoss()
    opt = ember.optim.Adam(model.parameters(), lr=1e-2)
    opt_ref = ember.optim.Adam(ref.parameters(), lr=1e-2)
    step = ember.compile_train_step(model, loss_fn, opt)
    for batch in (4, 4, 7, 4):
        x, y = ember.randn(batch, 24), ember.randint(0, 5, (batch,))
        np.testing.assert_allclose(step(x, y).item(),
                                   eager_step(ref, loss_fn, opt_ref, x, y).item(), rtol=2e-4)
    assert len(step.plans) == 2
    _assert_same_state(model, ref, opt, opt_ref, 2e-4)


def test_changing_the_learning_rate_recompiles():
    model, batch = _mlp()
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    step = ember.compile_train_step(model, nn.CrossEntropyLoss(), opt)
    step(*batch())
    opt.param_groups[0]["lr"] = 0.01
    step(*batch())
    assert len(step.plans) == 2


def test_steady_state_steps_allocate_no_large_buffers():
    model = ember.models.mlp(256, (256,), num_classes=10)
    opt = ember.optim.Adam(model.parameters(), lr=1e-3)
    step = ember.compile_train_step(model, nn.CrossEntropyLoss(), opt)
    x, y = ember.randn(64, 256), ember.randint(0, 10, (64,))
    for _ in range(3):
        step(x, y)
    # the update kernels store parameters, exp_avg and exp_avg_sq straight into the tensors
    assert len(step.last.bindings) == 3 * len(list(model.parameters()))
    # a fresh 256 KiB weight-sized buffer would fault ~64 pages per call
    assert_steady_calls_allocate_nothing(lambda: step(x, y), max_faults_per_call=32)


def test_unsupported_optimizer_and_non_scalar_loss_are_rejected():
    model, batch = _mlp()
    with pytest.raises(ember.EmberError, match="no functional update for optimizer Adagrad"):
        ember.compile_train_step(model, nn.CrossEntropyLoss(),
                                 ember.optim.Adagrad(model.parameters()))
    step = ember.compile_train_step(model, lambda out, y: out * 2,
                                    ember.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ember.TraceError, match="one-element floating tensor"):
        step(*batch())


# --- the PyTorch-style front door: a whole step function ---------------------------------------
def _traced_step(model, loss_fn, opt, zero_first=False):
    @ember.compile_train_step
    def step(x, y):
        if zero_first:
            opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if not zero_first:
            opt.zero_grad()
        return loss
    return step


@pytest.mark.parametrize("opt_name, zero_first", [("adamw", False), ("sgd_nesterov", True)])
def test_traced_step_function_equals_eager_steps(opt_name, zero_first):
    ember.manual_seed(4)
    model, batch = _mlp()
    ref = copy.deepcopy(model)
    loss_fn = nn.CrossEntropyLoss()
    opt, opt_ref = _OPTIMIZERS[opt_name](model.parameters()), \
        _OPTIMIZERS[opt_name](ref.parameters())
    step = _traced_step(model, loss_fn, opt, zero_first)
    for _ in range(3):
        x, y = batch()
        np.testing.assert_allclose(step(x, y).item(),
                                   eager_step(ref, loss_fn, opt_ref, x, y).item(), rtol=2e-4)
    _assert_same_state(model, ref, opt, opt_ref, 2e-4)
    assert step.last.bindings                  # parameters updated by the kernels in place
    assert all(p.grad is None for p in model.parameters())


def test_traced_step_with_train_mode_batchnorm_updates_running_stats():
    ember.manual_seed(5)
    model, batch = _cnn()
    ref = copy.deepcopy(model)
    loss_fn = nn.CrossEntropyLoss()
    opt, opt_ref = (ember.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in (model, ref))
    step = _traced_step(model, loss_fn, opt)
    for _ in range(2):
        x, y = batch()
        np.testing.assert_allclose(step(x, y).item(),
                                   eager_step(ref, loss_fn, opt_ref, x, y).item(), rtol=2e-4)
    for name, b in model.named_buffers():
        if "running" in name:
            np.testing.assert_allclose(b.numpy(), dict(ref.named_buffers())[name].numpy(),
                                       rtol=2e-4, atol=2e-5, err_msg=name)
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=2e-4, atol=2e-4)


def test_traced_step_errors_name_the_problem():
    model, batch = _mlp()
    opt = ember.optim.SGD(model.parameters(), lr=0.1)

    @ember.compile_train_step
    def no_update(x, y):
        return nn.CrossEntropyLoss()(model(x), y)
    with pytest.raises(ember.TraceError, match="updated nothing"):
        no_update(*batch())

    @ember.compile_train_step
    def vector_loss(x, y):
        loss = model(x).sum(0)
        loss.backward()
        opt.step()
        return loss
    with pytest.raises(ember.TraceError, match="scalar outputs"):
        vector_loss(*batch())
    adagrad = ember.optim.Adagrad(model.parameters())

    @ember.compile_train_step
    def unsupported(x, y):
        nn.CrossEntropyLoss()(model(x), y).backward()
        adagrad.step()
    with pytest.raises(ember.EmberError, match="Adagrad"):
        unsupported(*batch())
    first, second = nn.Linear(24, 8), nn.Linear(8, 5)
    relu_opt = ember.optim.SGD(list(first.parameters()) + list(second.parameters()), lr=0.1)

    @ember.compile_train_step
    def read_again(x, y):                 # relu_'s input is read again: not a temporary
        h = first(x)
        out = second(h.relu_()) + h[:, :5]
        nn.CrossEntropyLoss()(out, y).backward()
        relu_opt.step()
    with pytest.raises(ember.EmberError, match="in-place relu_ on the gradient path"):
        read_again(*batch())

    @ember.compile_train_step
    def read_after_backward(x, y):
        h = first(x)
        loss = nn.CrossEntropyLoss()(second(h.relu_()), y)
        loss.backward()
        relu_opt.step()
        return loss, h.sum()
    with pytest.raises(ember.EmberError, match="relu_ before loss.backward.. is read after"):
        read_after_backward(*batch())


def test_traced_step_with_in_place_activations_equals_eager():
    """ReLU(inplace=True) on a temporary (torchvision's ResNets, after BatchNorm) becomes
    the functional relu in a traced step; the steps equal eager ones."""
    ember.manual_seed(0)
    ref = nn.Sequential(nn.Linear(24, 8), nn.BatchNorm1d(8), nn.ReLU(inplace=True),
                        nn.Linear(8, 8), nn.ReLU(inplace=True), nn.Linear(8, 5))
    model = copy.deepcopy(ref)
    opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt_ref = ember.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    @ember.compile_train_step
    def step(x, y):
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    x, y = ember.randn(6, 24), ember.randint(0, 5, (6,))
    for _ in range(3):
        want = loss_fn(ref(x), y)
        want.backward()
        opt_ref.step()
        opt_ref.zero_grad()
        np.testing.assert_allclose(step(x, y).item(), want.item(), rtol=1e-5, atol=1e-6)
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_float64_adam_bias_correction_matches_torch_eager(name):
    """The step count is a float32 tensor; torch computes bias corrections as Python
    floats, so a float64 model's compiled update must not round them to float32 (it
    moved parameters by ~1e-7 relative)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    weight, bias, x = rng.standard_normal((3, 4)), rng.standard_normal(3), \
        rng.standard_normal((5, 4))

    def run(lib, compiled):
        model = lib.nn.Linear(4, 3).double()
        with lib.no_grad():
            model.weight.copy_(lib.tensor(weight))
            model.bias.copy_(lib.tensor(bias))
        opt = getattr(lib.optim, name)(model.parameters(), lr=1e-2, weight_decay=0.1,
                                       betas=(0.9, 0.95))

        def step(inputs):
            loss = (model(inputs) ** 2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss
        step = ember.compile_train_step(step) if compiled else step
        losses = [float(step(lib.tensor(x)).detach()) for _ in range(4)]
        return losses, model.weight.detach().numpy()

    expected_losses, expected_weight = run(torch, compiled=False)
    losses, weight_after = run(ember, compiled=True)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-13)
    np.testing.assert_allclose(weight_after, expected_weight, rtol=1e-12, atol=1e-14)


def test_traced_step_refuses_reading_grad_instead_of_skipping_clipping():
    """clip_grad_norm_ between backward() and step() read .grad, found None (gradients
    are symbolic while tracing) and clipped nothing: the compiled step silently differed
    from the eager one. Reading .grad now stops the trace."""
    from ember.ir.errors import TraceError
    model = nn.Linear(4, 3)
    opt = ember.optim.SGD(model.parameters(), lr=0.1)

    @ember.compile_train_step
    def step(x):
        loss = (model(x) ** 2).mean()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        opt.step()
        opt.zero_grad()
        return loss
    with pytest.raises(TraceError, match="cannot read or set .grad"):
        step(ember.ones(2, 4))
