"""ember.optim against torch.optim: 20 steps on the same small problem, same numbers.

The "model" is three float32 parameter tensors with identical initial values in both
frameworks; the loss (quadratic + linear + a little cubic, so gradients change every
step) is computed by each framework's own autograd. Two parameter groups with
different learning rates are used throughout.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import ember
import ember.optim as optim
from ember.optim import lr_scheduler, functional as EF

STEPS = 20
TOL = dict(rtol=1e-4, atol=1e-5)


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal((4, 3)).astype(np.float32),
            rng.standard_normal((3,)).astype(np.float32),
            rng.standard_normal((5,)).astype(np.float32)]
    data = [rng.uniform(0.5, 1.5, (4, 3)).astype(np.float32),
            rng.standard_normal((4, 3)).astype(np.float32),
            rng.standard_normal((3,)).astype(np.float32),
            rng.uniform(0.1, 0.5, (5,)).astype(np.float32)]
    return init, data


def _loss(lib, params, data):
    w, b, v = params
    a, c, t, d = [lib.tensor(x) for x in data]
    return (lib.sum(a * w * w) + lib.sum(c * w) + lib.sum((b - t) * (b - t))
            + lib.sum(d * v * v * v) + lib.sum(v * v))


def _params(lib, init):
    return [lib.tensor(x.copy(), requires_grad=True) for x in init]


def _groups(params, second_lr):
    return [{"params": params[:2]}, {"params": params[2:], "lr": second_lr}]


def _train(lib, opt_cls, kwargs, second_lr, steps=STEPS, sched=None, seed=0):
    init, data = _problem(seed)
    params = _params(lib, init)
    opt = opt_cls(_groups(params, second_lr), **kwargs)
    s = sched[0](opt, **sched[1]) if sched else None
    history, lrs = [], []
    for _ in range(steps):
        opt.zero_grad()
        _loss(lib, params, data).backward()
        opt.step()
        if s is not None:
            s.step()
            lrs.append(list(s.get_last_lr()))
        history.append([np.array(p.detach().numpy()) for p in params])
    return params, opt, history, lrs


OPTIMIZERS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.05, maximize=True, amsgrad=True)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1,
                     weight_decay=0.05)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.05, alpha=0.9)),
    ("RMSprop", dict(lr=0.01, maximize=True)),
]


def _id(case):
    name, kw = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("case", OPTIMIZERS, ids=[_id(c) for c in OPTIMIZERS])
def test_matches_torch(case):
    name, kwargs = case
    _, e_opt, e_hist, _ = _train(ember, getattr(optim, name), kwargs, second_lr=0.02)
    _, t_opt, t_hist, _ = _train(torch, getattr(torch.optim, name), kwargs, second_lr=0.02)
    for step, (e, t) in enumerate(zip(e_hist, t_hist)):
        for i, (ep, tp) in enumerate(zip(e, t)):
            np.testing.assert_allclose(ep, tp, **TOL, err_msg=f"step {step + 1}, param {i}")
    # same state layout as PyTorch
    e_sd, t_sd = e_opt.state_dict(), t_opt.state_dict()
    assert set(e_sd["state"]) == set(t_sd["state"])
    for k in t_sd["state"]:
        assert set(e_sd["state"][k]) == set(t_sd["state"][k])
        for key, tv in t_sd["state"][k].items():
            np.testing.assert_allclose(np.asarray(e_sd["state"][k][key]), tv.numpy(), **TOL)
    assert [g["params"] for g in e_sd["param_groups"]] == \
        [g["params"] for g in t_sd["param_groups"]]
    for eg, tg in zip(e_sd["param_groups"], t_sd["param_groups"]):
        for key in kwargs:
            assert eg[key] == tg[key]
        assert eg["lr"] == tg["lr"]


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"])
def test_defaults_match_torch(name):
    p = ember.zeros(2, requires_grad=True)
    tp = torch.zeros(2, requires_grad=True)
    e, t = getattr(optim, name)([p]).defaults, getattr(torch.optim, name)([tp]).defaults
    for key, value in e.items():
        assert t[key] == value, key


@pytest.mark.parametrize("case", OPTIMIZERS[1::2], ids=[_id(c) for c in OPTIMIZERS[1::2]])
def test_state_dict_round_trip(case):
    name, kwargs = case
    init, data = _problem(3)
    cls = getattr(optim, name)
    params = _params(ember, init)
    opt = cls(_groups(params, 0.03), **kwargs)
    for _ in range(10):
        opt.zero_grad()
        _loss(ember, params, data).backward()
        opt.step()
    sd = opt.state_dict()
    params2 = [ember.tensor(np.array(p.detach().numpy()), requires_grad=True) for p in params]
    opt2 = cls(_groups(params2, 0.5), **kwargs)   # lr differs: load must restore it
    opt2.load_state_dict(copy.deepcopy(sd))
    assert opt2.param_groups[1]["lr"] == 0.03
    assert opt2.param_groups[1]["params"][0] is params2[2]
    for _ in range(10):
        for ps, o in ((params, opt), (params2, opt2)):
            o.zero_grad()
            _loss(ember, ps, data).backward()
            o.step()
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_state_dict_loads_into_torch_structure():
    """ember's state_dict has torch's shape: torch can load its numbers and continue."""
    init, data = _problem(4)
    params = _params(ember, init)
    opt = optim.Adam(_groups(params, 0.01), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        _loss(ember, params, data).backward()
        opt.step()
    sd = opt.state_dict()
    t_sd = {"param_groups": sd["param_groups"],
            "state": {k: {n: torch.tensor(np.array(v.numpy())) for n, v in s.items()}
                      for k, s in sd["state"].items()}}
    tparams = [torch.tensor(np.array(p.detach().numpy()), requires_grad=True) for p in params]
    topt = torch.optim.Adam(_groups(tparams, 0.5), lr=0.5)
    topt.load_state_dict(t_sd)
    for _ in range(5):
        for ps, o, lib in ((params, opt, ember), (tparams, topt, torch)):
            o.zero_grad()
            _loss(lib, ps, data).backward()
            o.step()
    for p, q in zip(params, tparams):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), **TOL)


def test_zero_grad():
    p = ember.ones(3, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    (p * p).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and not p.grad.numpy().any()
    opt.zero_grad()
    assert p.grad is None


def test_add_param_group_and_errors():
    p, q = ember.ones(2, requires_grad=True), ember.ones(3, requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": q, "lr": 0.5})
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.5
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.Adam([p], lr=-1)
    with pytest.raises(TypeError):
        optim.SGD(p)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([])


def test_params_without_grad_are_skipped():
    p, q = ember.ones(2, requires_grad=True), ember.ones(2, requires_grad=True)
    opt = optim.Adam([p, q], lr=0.1)
    (p * p).sum().backward()
    opt.step()
    assert len(opt.state.get(q, {})) == 0
    np.testing.assert_array_equal(q.detach().numpy(), [1, 1])


def test_closure():
    p = ember.ones(2, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss
    assert float(opt.step(closure)) == 2.0
    np.testing.assert_allclose(p.detach().numpy(), [0.8, 0.8])


def test_step_keeps_identity_and_bumps_version():
    p = ember.ones(2, requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    before = p._version
    (p * p).sum().backward()
    opt.step()
    assert p._version > before and p.requires_grad and p.is_leaf


# --- functional forms ---------------------------------------------------------------
def _stateful_vs_functional(name, kwargs):
    init, data = _problem(5)
    ps = _params(ember, init)
    opt = getattr(optim, name)(ps, **kwargs)
    fs = [ember.tensor(x.copy()) for x in init]
    z = [ember.zeros_like(p) for p in fs]
    st = {"steps": [ember.tensor(0.0) for _ in fs], "a": list(z), "b": list(z), "c": list(z),
          "buf": [None] * len(fs)}
    for _ in range(STEPS):
        opt.zero_grad()
        _loss(ember, ps, data).backward()
        opt.step()
        leaf = [f.detach().requires_grad_() for f in fs]
        _loss(ember, leaf, data).backward()
        grads = [p.grad for p in leaf]
        snapshot = [np.array(f.numpy()) for f in fs] + [np.array(g.numpy()) for g in grads]
        with ember.no_grad():
            fs, st = FUNCTIONAL[name](fs, grads, st, kwargs)
        after = [np.array(x.detach().numpy()) for x in leaf] + [np.array(g.numpy()) for g in grads]
        for x, y in zip(snapshot, after):      # inputs untouched: pure
            np.testing.assert_array_equal(x, y)
    for p, f in zip(ps, fs):
        np.testing.assert_array_equal(p.detach().numpy(), f.numpy())


def _f_sgd(fs, grads, st, kw):
    out = EF.sgd(fs, grads, st["buf"], weight_decay=kw.get("weight_decay", 0),
                 momentum=kw.get("momentum", 0), lr=kw["lr"],
                 dampening=kw.get("dampening", 0), nesterov=kw.get("nesterov", False),
                 maximize=kw.get("maximize", False))
    return out.params, dict(st, buf=out.momentum_buffers)


def _f_adam(fs, grads, st, kw, fn=EF.adam, wd=0):
    out = fn(fs, grads, st["a"], st["b"], st["c"], st["steps"],
             amsgrad=kw.get("amsgrad", False), beta1=0.9, beta2=0.999, lr=kw["lr"],
             weight_decay=kw.get("weight_decay", wd), eps=1e-8,
             maximize=kw.get("maximize", False))
    return out.params, dict(st, a=out.exp_avgs, b=out.exp_avg_sqs,
                            c=out.max_exp_avg_sqs if kw.get("amsgrad") else st["c"],
                            steps=out.state_steps)


def _f_adagrad(fs, grads, st, kw):
    out = EF.adagrad(fs, grads, st["a"], st["steps"], lr=kw["lr"],
                     weight_decay=kw.get("weight_decay", 0), lr_decay=kw.get("lr_decay", 0),
                     eps=1e-10, maximize=False)
    return out.params, dict(st, a=out.state_sums, steps=out.state_steps)


def _f_rmsprop(fs, grads, st, kw):
    out = EF.rmsprop(fs, grads, st["a"], st["b"], st["c"], st["steps"], lr=kw["lr"],
                     alpha=0.99, eps=1e-8, weight_decay=0, momentum=kw.get("momentum", 0),
                     centered=kw.get("centered", False), maximize=False)
    return out.params, dict(st, a=out.square_avgs,
                            b=out.grad_avgs if kw.get("centered") else st["b"],
                            c=out.momentum_buffers if kw.get("momentum") else st["c"],
                            steps=out.state_steps)


FUNCTIONAL = {"SGD": _f_sgd, "Adam": _f_adam,
              "AdamW": lambda *a: _f_adam(*a, fn=EF.adamw, wd=1e-2),
              "Adagrad": _f_adagrad, "RMSprop": _f_rmsprop}

FUNCTIONAL_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.2)),
    ("Adam", dict(lr=0.05)), ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.05)), ("AdamW", dict(lr=0.05, amsgrad=True, maximize=True)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True)), ("RMSprop", dict(lr=0.01)),
]


@pytest.mark.parametrize("case", FUNCTIONAL_CASES, ids=[_id(c) for c in FUNCTIONAL_CASES])
def test_functional_equals_stateful(case):
    _stateful_vs_functional(*case)


def test_functional_step_as_int():
    p, g = ember.ones(3), ember.full((3,), 0.5)
    a = EF.adam([p], [g], [ember.zeros(3)], [ember.zeros(3)], [], [0], amsgrad=False,
                beta1=0.9, beta2=0.999, lr=0.1, weight_decay=0, eps=1e-8, maximize=False)
    assert a.state_steps == [1]
    np.testing.assert_allclose(a.params[0].numpy(), [0.9, 0.9, 0.9], rtol=1e-6)
    np.testing.assert_array_equal(p.numpy(), [1, 1, 1])


# --- schedulers -----------------------------------------------------------------------
SCHEDULERS = [
    ("SGD", dict(lr=0.1, momentum=0.9), "StepLR", dict(step_size=3, gamma=0.5)),
    ("SGD", dict(lr=0.1), "MultiStepLR", dict(milestones=[2, 5, 5, 11], gamma=0.3)),
    ("SGD", dict(lr=0.1), "CosineAnnealingLR", dict(T_max=7, eta_min=0.001)),
    ("Adam", dict(lr=0.1), "CosineAnnealingLR", dict(T_max=20)),
    ("SGD", dict(lr=0.1), "LambdaLR", dict(lr_lambda=lambda e: 0.9 ** e)),
    ("SGD", dict(lr=0.1, momentum=0.9), "OneCycleLR", dict(max_lr=0.2, total_steps=STEPS)),
    ("SGD", dict(lr=0.1, momentum=0.9), "OneCycleLR",
     dict(max_lr=[0.2, 0.05], total_steps=STEPS, anneal_strategy="linear", three_phase=True,
          pct_start=0.25, div_factor=10.0, final_div_factor=100.0)),
    ("Adam", dict(lr=0.1), "OneCycleLR", dict(max_lr=0.1, epochs=4, steps_per_epoch=5)),
    ("AdamW", dict(lr=0.1), "OneCycleLR",
     dict(max_lr=0.1, total_steps=STEPS, cycle_momentum=False, pct_start=0.5)),
]


@pytest.mark.parametrize("case", SCHEDULERS,
                         ids=[f"{c[2]}-{c[0]}-{i}" for i, c in enumerate(SCHEDULERS)])
def test_scheduler_matches_torch(case):
    oname, okw, sname, skw = case
    _, e_opt, e_hist, e_lrs = _train(ember, getattr(optim, oname), okw, 0.02,
                                     sched=(getattr(lr_scheduler, sname), skw))
    _, t_opt, t_hist, t_lrs = _train(torch, getattr(torch.optim, oname), okw, 0.02,
                                     sched=(getattr(torch.optim.lr_scheduler, sname), skw))
    np.testing.assert_allclose(np.array(e_lrs), np.array(t_lrs), rtol=1e-12, atol=1e-15)
    for eg, tg in zip(e_opt.param_groups, t_opt.param_groups):
        for key in ("momentum", "betas", "initial_lr", "max_lr", "min_lr"):
            if key in tg:
                np.testing.assert_allclose(eg[key], tg[key], rtol=1e-12)
    for e, t in zip(e_hist, t_hist):
        for ep, tp in zip(e, t):
            np.testing.assert_allclose(ep, tp, **TOL)


def test_scheduler_state_dict_round_trip():
    p = ember.ones(2, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    s = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        opt.step()
        s.step()
    sd = s.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 4
    opt2 = optim.SGD([ember.ones(2, requires_grad=True)], lr=0.1)
    s2 = lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    s2.load_state_dict(sd)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    for _ in range(3):
        s.step()
        s2.step()
    assert s.get_last_lr() == s2.get_last_lr()


def test_onecycle_too_many_steps():
    opt = optim.SGD([ember.ones(2, requires_grad=True)], lr=0.1, momentum=0.9)
    s = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=2)
    s.step()
    s.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        s.step()


COMPLEX_CASES = [("Adam", dict(lr=0.05)), ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
                 ("AdamW", dict(lr=0.05, weight_decay=0.1)), ("Adagrad", dict(lr=0.1)),
                 ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9)),
                 ("SGD", dict(lr=0.05, momentum=0.9))]


def _train_complex(lib, opt_cls, kwargs, init, data, steps=5):
    p = lib.tensor(init.copy(), requires_grad=True)
    a, c = lib.tensor(data[0]), lib.tensor(data[1])
    opt = opt_cls([p], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        loss = lib.sum(lib.real(p * p.conj() * a)) + lib.sum(lib.real(c * p * p * p))
        loss.backward()
        opt.step()
    return p, opt


@pytest.mark.parametrize("case", COMPLEX_CASES, ids=[_id(c) for c in COMPLEX_CASES])
def test_complex_parameter_matches_torch(case):
    """torch optimizes a complex parameter as (re, im) pairs: second moments per component."""
    name, kwargs = case
    rng = np.random.default_rng(3)
    cplx = lambda *s: (rng.standard_normal(s) + 1j * rng.standard_normal(s)).astype(np.complex64)
    init, data = cplx(2, 3), [rng.uniform(0.5, 1.5, (2, 3)).astype(np.float32), cplx(2, 3)]
    ep, e_opt = _train_complex(ember, getattr(optim, name), kwargs, init, data)
    tp, t_opt = _train_complex(torch, getattr(torch.optim, name), kwargs, init, data)
    assert ep.dtype == ember.complex64
    np.testing.assert_allclose(ep.detach().numpy(), tp.detach().numpy(), **TOL)
    for key, tv in t_opt.state_dict()["state"][0].items():
        ev = np.asarray(e_opt.state_dict()["state"][0][key])
        np.testing.assert_allclose(ev, tv.numpy(), **TOL, err_msg=key)
