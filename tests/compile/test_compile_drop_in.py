"""ember.compile as a drop-in for torch.compile: training through compiled modules, graph
breaks (eager results, explain(), fullgraph=True), whole step functions, recompile
reasons and the cache limit. The reference is always the same code run eagerly."""
import copy
import logging

import numpy as np
import pytest

import ember
from ember import nn

_OPTIMIZERS = {
    "sgd_momentum": lambda ps: ember.optim.SGD(ps, lr=0.05, momentum=0.9),
    "adam": lambda ps: ember.optim.Adam(ps, lr=1e-2),
}


def _mlp():
    return ember.models.mlp(16, (12,), num_classes=5), \
        lambda: (ember.randn(6, 16), ember.randint(0, 5, (6,)))


def _cnn():
    return ember.models.small_cnn(num_classes=5), \
        lambda: (ember.randn(4, 1, 8, 8), ember.randint(0, 5, (4,)))


def _transformer():
    model = ember.models.transformer_classifier(vocab_size=20, d_model=16, nhead=2,
                                                num_layers=1, dim_feedforward=32, max_len=8,
                                                dropout=0.0)
    return model, lambda: (ember.randint(0, 20, (2, 6)), ember.randint(0, 2, (2,)))


def _assert_close(got, want, tol, what=""):
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=tol,
                               atol=tol, err_msg=what)


def _train_both(make, opt_name, steps, tol, zero_grad_params=()):
    ember.manual_seed(0)
    model, batch = make()
    ref = copy.deepcopy(model)
    fast = ember.compile(model)
    opt, opt_ref = _OPTIMIZERS[opt_name](fast.parameters()), _OPTIMIZERS[opt_name](ref.parameters())
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        x, y = batch()
        for m, o in ((fast, opt), (ref, opt_ref)):
            o.zero_grad()
            loss = loss_fn(m(x), y)
            loss.backward()
            o.step()
            if m is fast:
                got = loss
        np.testing.assert_allclose(got.item(), loss.item(), rtol=tol, atol=tol)
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        if name in zero_grad_params:    # gradient 0 in exact math: Adam steps on rounding
            assert float(p.grad.abs().max()) < 1e-5 and float(q.grad.abs().max()) < 1e-5
            continue
        _assert_close(p, q, tol, name)
        _assert_close(p.grad, q.grad, tol, f"{name}.grad")
    for (name, b), c in zip(model.named_buffers(), ref.buffers()):
        if name in zero_grad_params:
            continue
        np.testing.assert_allclose(b.numpy(), c.numpy(), rtol=tol, atol=tol, err_msg=name)
    return fast


# a conv bias right before train-mode BatchNorm has a zero gradient in exact math (the
# normalization removes any per-channel shift); Adam scales its rounding noise to lr, and
# the BatchNorm's running mean follows the bias
_CNN_BIASES_BEFORE_BN = ("0.bias", "4.bias", "1.running_mean", "5.running_mean")


@pytest.mark.parametrize("make, opt_name", [(_mlp, "sgd_momentum"), (_mlp, "adam"),
                                            (_cnn, "sgd_momentum"), (_cnn, "adam")])
def test_training_through_compiled_model_matches_eager(make, opt_name):
    skip = _CNN_BIASES_BEFORE_BN if (make, opt_name) == (_cnn, "adam") else ()
    fast = _train_both(make, opt_name, steps=20, tol=2e-4, zero_grad_params=skip)
    kinds = [e.kind for e in fast.dispatcher.entries.values()]
    assert kinds == ["training"]                # one compile: parameters stay live inputs


def test_training_a_compiled_transformer_matches_eager():
    # SGD: Adam would magnify the rounding noise of gradients that are zero in exact math
    _train_both(_transformer, "sgd_momentum", steps=5, tol=2e-4)


def test_input_gradients_accumulate_as_in_eager():
    ember.manual_seed(1)
    lin, unused = nn.Linear(4, 3), nn.Parameter(ember.randn(3))

    def fn(x):
        return (lin(x).tanh() * 2).sum(0), x.detach() + 1    # 2nd output needs no grad
    fast = ember.compile(fn)
    x = ember.randn(5, 4, requires_grad=True)
    xr = x.detach().clone().requires_grad_()
    for _ in range(2):                          # .grad accumulates over calls
        out, plain = fast(x)
        assert out.grad_fn is not None and not plain.requires_grad
        (out * ember.arange(3.0)).sum().backward()
    lin_ref = copy.deepcopy(lin)
    lin_ref.weight.grad = lin_ref.bias.grad = None
    for _ in range(2):
        ((lin_ref(xr).tanh() * 2).sum(0) * ember.arange(3.0)).sum().backward()
    _assert_close(x.grad, xr.grad, 1e-5)
    _assert_close(lin.weight.grad, lin_ref.weight.grad, 1e-5)
    assert unused.grad is None
    out, _ = fast(x)
    loss = out.sum()
    loss.backward()
    with pytest.raises(ember.AutogradError, match="backward through the graph a second time"):
        loss.backward()


def test_inference_plan_recompiles_after_in_place_weight_update(caplog):
    model = ember.models.mlp(16, (8,), num_classes=4).eval()
    fast = ember.compile(model)
    x = ember.randn(3, 16)
    with ember.no_grad(), caplog.at_level(logging.INFO, logger="ember.compile"):
        fast(x)
        for p in model.parameters():
            p.mul_(1.5)                         # folded into the plan: must not be stale
        _assert_close(fast(x), model(x), 1e-5)
    assert "modified in place" in caplog.text


class _Gate(nn.Module):
    """A forward with data-dependent control flow: a graph break between two Linears."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 4)

    def forward(self, x):
        h = self.a(x)
        if h.sum() > 0:
            h = h * 2
        return self.b(h.relu())


def test_graph_break_gives_eager_values_and_gradients():
    ember.manual_seed(2)
    model = _Gate()
    ref = copy.deepcopy(model)
    fast = ember.compile(model)
    for sign in (1.0, -1.0):                     # both branches, taken on real values
        x = (ember.randn(3, 8) * sign).requires_grad_()
        xr = x.detach().clone().requires_grad_()
        out, want = fast(x), ref(xr)
        _assert_close(out, want, 1e-5)
        out.square().sum().backward()
        want.square().sum().backward()
        _assert_close(x.grad, xr.grad, 1e-5)
    for p, q in zip(model.parameters(), ref.parameters()):
        _assert_close(p.grad, q.grad, 1e-5)
    assert len(fast.dispatcher.children) == 2   # the Linears compiled on their own


def test_graph_break_in_a_function_gives_eager_results():
    def fn(x):
        y = x.sin()
        if y.mean().item() > 0:
            return y * 2
        return y - 1
    fast = ember.compile(fn)
    for _ in range(3):
        x = ember.randn(7, requires_grad=True)
        xr = x.detach().clone().requires_grad_()
        out, want = fast(x), fn(xr)
        _assert_close(out, want, 1e-6)
        out.sum().backward()
        want.sum().backward()
        _assert_close(x.grad, xr.grad, 1e-6)


def test_fullgraph_raises_at_the_users_line():
    with pytest.raises(ember.TraceError, match=r"(?s)fullgraph=True.*test_compile_drop_in.py:\d+ "
                                               r"in forward\s+if h.sum\(\) > 0"):
        ember.compile(_Gate(), fullgraph=True)(ember.randn(2, 8))


def test_explain_lists_graphs_and_breaks():
    result = ember.compile.explain(_Gate(), ember.randn(2, 8))
    assert result.graph_count == 2 and result.graph_break_count == 1
    (found,) = result.break_reasons
    assert "bool()" in found.reason and found.source == "if h.sum() > 0:"
    assert found.location.startswith("test_compile_drop_in.py:")
    assert "Graph Break Count: 1" in str(result)
    whole = ember.compile.explain(lambda x: x.relu() + 1)(ember.randn(3))
    assert whole.graph_count == 1 and whole.graph_break_count == 0


def _step_function(model, opt, loss_fn, zero_first, clip=False):
    def step(x, y):
        if zero_first:
            opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        if clip:                                # reads .grad: not one graph
            for p in model.parameters():
                p.grad.mul_(0.5)
        opt.step()
        if not zero_first:
            opt.zero_grad()
        return loss
    return step


@pytest.mark.parametrize("opt_name, zero_first, clip", [("adam", True, False),
                                                        ("sgd_momentum", False, False),
                                                        ("sgd_momentum", True, True)])
def test_compiled_step_function_matches_eager(opt_name, zero_first, clip, caplog):
    ember.manual_seed(3)
    model, batch = _mlp()
    ref = copy.deepcopy(model)
    loss_fn = nn.CrossEntropyLoss()
    opt, opt_ref = _OPTIMIZERS[opt_name](model.parameters()), \
        _OPTIMIZERS[opt_name](ref.parameters())
    step = ember.compile(_step_function(model, opt, loss_fn, zero_first, clip))
    eager = _step_function(ref, opt_ref, loss_fn, zero_first, clip)
    with caplog.at_level(logging.INFO, logger="ember.compile"):
        for _ in range(4):
            x, y = batch()
            np.testing.assert_allclose(step(x, y).item(), eager(x, y).item(), rtol=2e-4)
    for p, q in zip(model.parameters(), ref.parameters()):
        _assert_close(p, q, 2e-4)
        assert (p.grad is None) == (q.grad is None)
        if q.grad is not None:
            _assert_close(p.grad, q.grad, 2e-4)
    route = step.dispatcher.step_route
    if clip:
        assert route.broken is not None and ".grad" in caplog.text
    else:
        assert route.broken is None and len(route.step.plans) >= 1   # one whole-step graph


def test_recompile_reasons_are_logged_and_the_cache_is_limited(caplog, monkeypatch):
    monkeypatch.setattr(ember.compile.config, "cache_size_limit", 3)
    # dynamic=False: one plan per size (by default the second size makes dim 0 symbolic)
    fast = ember.compile(lambda x: x.relu() * 2, dynamic=False)
    with caplog.at_level(logging.INFO, logger="ember.compile"):
        for n in range(1, 6):
            x = ember.randn(n, 2)
            _assert_close(fast(x), x.relu() * 2, 0)
    assert "tensor 'x' size mismatch at index 0: expected 1, actual 2" in caplog.text
    assert "cache_size_limit" in caplog.text and len(fast.dispatcher.entries) == 3
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_compiled_module_keeps_the_modules_api():
    model = ember.models.mlp(16, (8,), num_classes=4)
    fast = ember.compile(model)
    assert list(fast.parameters()) == list(model.parameters())
    assert fast.eval() is fast and not model.training
    assert fast.state_dict().keys() == model.state_dict().keys()


def test_results_keep_their_structure():
    fast = ember.compile(lambda x: {"pair": (x * 2, 3), "sums": [x.sum()]})
    x = ember.randn(4)
    got = fast(x)
    assert got["pair"][1] == 3
    _assert_close(got["pair"][0], x * 2, 0)
    _assert_close(got["sums"][0], x.sum(), 1e-6)


def test_detach_and_no_grad_inside_the_function_stop_gradients():
    w = nn.Parameter(ember.randn(4))

    def fn(x):
        with ember.no_grad():
            scale = (x * w).sum()
        return x * w * scale + (x * w).detach() * 3
    x = ember.randn(4, requires_grad=True)
    ember.compile(fn)(x).sum().backward()
    got = (x.grad, w.grad)
    x.grad = w.grad = None
    fn(x).sum().backward()
    _assert_close(got[0], x.grad, 1e-5)
    _assert_close(got[1], w.grad, 1e-5)


def test_dropout_masks_match_eager_under_the_same_seed():
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.5), nn.Linear(16, 2))
    fast = ember.compile(model)
    x = ember.randn(4, 8, requires_grad=True)
    ember.manual_seed(7)
    got = fast(x)
    got.sum().backward()
    got_grad, x.grad = x.grad, None
    ember.manual_seed(7)
    want = model(x)
    want.sum().backward()
    _assert_close(got, want, 1e-5)
    _assert_close(got_grad, x.grad, 1e-5)


def test_train_mode_batchnorm_under_no_grad_updates_running_stats_as_eager():
    model = ember.models.small_cnn(num_classes=3)
    ref = copy.deepcopy(model)
    fast = ember.compile(model)
    x = ember.randn(2, 1, 8, 8)
    with ember.no_grad():
        for _ in range(3):
            _assert_close(fast(x), ref(x), 1e-5)
    for (name, b), c in zip(model.named_buffers(), ref.buffers()):
        np.testing.assert_allclose(b.numpy(), c.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


def test_step_function_with_no_grad_or_detach_matches_eager():
    ember.manual_seed(5)
    model, batch = _mlp()
    ref = copy.deepcopy(model)
    loss_fn = nn.CrossEntropyLoss()

    def make(m, opt, use_no_grad):
        def step(x, y):
            opt.zero_grad()
            out = m(x)
            if use_no_grad:
                with ember.no_grad():
                    scale = out.abs().mean()
            else:
                scale = out.abs().mean().detach()
            loss = loss_fn(out, y) * scale
            loss.backward()
            opt.step()
            return loss
        return step
    for use_no_grad in (False, True):
        opt, opt_ref = (ember.optim.SGD(p.parameters(), lr=0.1) for p in (model, ref))
        step, eager = ember.compile(make(model, opt, use_no_grad)), make(ref, opt_ref,
                                                                          use_no_grad)
        for _ in range(3):
            x, y = batch()
            np.testing.assert_allclose(step(x, y).item(), eager(x, y).item(), rtol=2e-4)
        for p, q in zip(model.parameters(), ref.parameters()):
            _assert_close(p, q, 2e-4)
        assert (step.dispatcher.step_route.broken is not None) == use_no_grad
