"""Adadelta, Adamax, NAdam, RAdam, Rprop against torch.optim: parameters after a dozen
steps on a small regression, and the state_dict layout (keys, step counts)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import ember

CASES = {
    "Adadelta": dict(lr=1.0),
    "Adadelta-wd": dict(lr=0.5, rho=0.8, weight_decay=0.1, maximize=False),
    "Adamax": dict(lr=0.02),
    "Adamax-wd": dict(lr=0.02, betas=(0.8, 0.99), weight_decay=0.05),
    "NAdam": dict(lr=0.02),
    "NAdam-wd": dict(lr=0.02, weight_decay=0.1, momentum_decay=0.01),
    "NAdam-decoupled": dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True),
    "RAdam": dict(lr=0.02),
    "RAdam-wd": dict(lr=0.02, weight_decay=0.1),
    "RAdam-decoupled": dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True),
    "Rprop": dict(lr=0.01),
    "Rprop-etas": dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-4, 0.2)),
}


def _train(lib, name, kwargs, w0, x, y, steps=12):
    weight = lib.nn.Parameter(lib.tensor(w0))
    optimizer = getattr(lib.optim, name.split("-")[0])([weight], **kwargs)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((lib.tensor(x) @ weight - lib.tensor(y)) ** 2).mean()
        loss.backward()
        optimizer.step()
    state = optimizer.state_dict()
    return weight.detach().numpy(), state


@pytest.mark.parametrize("case", sorted(CASES))
def test_updates_and_state_match_torch(case, rng):
    w0 = rng.standard_normal(3).astype(np.float32)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    y = rng.standard_normal(8).astype(np.float32)
    ours, ours_state = _train(ember, case, CASES[case], w0, x, y)
    ref, ref_state = _train(torch, case, CASES[case], w0, x, y)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    assert sorted(ours_state["state"][0]) == sorted(ref_state["state"][0])
    for key, value in ref_state["state"][0].items():
        np.testing.assert_allclose(ours_state["state"][0][key].numpy(), value.numpy(),
                                   rtol=1e-4, atol=1e-6, err_msg=key)
    ours_group = ours_state["param_groups"][0]
    for key, value in ref_state["param_groups"][0].items():
        if key in ours_group:
            assert ours_group[key] == value, key


def test_checkpoint_resume_continues_identically(rng):
    w0 = rng.standard_normal(3).astype(np.float32)
    x = ember.tensor(rng.standard_normal((8, 3)).astype(np.float32))

    def run(optimizer, weight, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            ((x @ weight) ** 2).mean().backward()
            optimizer.step()

    weight = ember.nn.Parameter(ember.tensor(w0))
    optimizer = ember.optim.NAdam([weight], lr=0.05)
    run(optimizer, weight, 3)
    saved = (weight.detach().clone(), copy.deepcopy(optimizer.state_dict()))
    run(optimizer, weight, 3)
    resumed = ember.nn.Parameter(saved[0])
    optimizer2 = ember.optim.NAdam([resumed], lr=0.05)
    optimizer2.load_state_dict(saved[1])
    run(optimizer2, resumed, 3)
    np.testing.assert_allclose(resumed.detach().numpy(), weight.detach().numpy(), rtol=1e-6)


def test_invalid_hyperparameters_refused():
    p = [ember.nn.Parameter(ember.ones(1))]
    with pytest.raises(ValueError, match="Invalid rho value"):
        ember.optim.Adadelta(p, rho=1.5)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        ember.optim.RAdam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid eta values"):
        ember.optim.Rprop(p, etas=(1.5, 1.2))


@pytest.mark.parametrize("kwargs", [dict(), dict(lr=0.5, max_iter=7, history_size=3),
                                    dict(max_iter=50, tolerance_change=1e-5),
                                    dict(line_search_fn="strong_wolfe"),
                                    dict(line_search_fn="strong_wolfe", lr=0.3, max_iter=9,
                                         history_size=4)])
def test_lbfgs_matches_torch(kwargs, rng):
    start = rng.standard_normal(4)            # float64: the same iterates to ~1e-12

    def run(lib):
        x = lib.nn.Parameter(lib.tensor(start))
        optimizer = lib.optim.LBFGS([x], **kwargs)
        losses = []

        def closure():
            optimizer.zero_grad()
            loss = ((1 - x[:-1]) ** 2).sum() + 2 * ((x[1:] - x[:-1] ** 2) ** 2).sum()
            loss.backward()
            return loss
        for _ in range(3):
            losses.append(optimizer.step(closure).item())
        state = optimizer.state[x]
        return x.detach().numpy(), losses, state["n_iter"], state["func_evals"]
    ours, ref = run(ember), run(torch)
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-8, atol=1e-12)
    assert ours[2:] == ref[2:]


def test_lbfgs_direction_keeps_its_coefficients_on_tensors(monkeypatch, rng):
    """The two-loop recursion over stored curvature pairs reads no coefficient back to
    the host (one .item() a pair was a GPU sync each, and a new Python alpha on every
    call missed the eager call cache) and computes torch's recursion, q - a*y then
    r + (a - b)*s, in the same order."""
    from ember.frontend.optim.lbfgs import LBFGS
    n, pairs = 6, 4
    g = rng.standard_normal(n)
    ys = [rng.standard_normal(n) for _ in range(pairs)]
    ss = [y * 0.5 + 0.1 * rng.standard_normal(n) for y in ys]
    ro = [1.0 / float(y @ s) for y, s in zip(ys, ss)]
    reads = []
    real_item = ember.Tensor.item
    monkeypatch.setattr(ember.Tensor, "item", lambda t: reads.append(t) or real_item(t))
    ro_t = [ember.tensor(r, dtype=ember.float64) for r in ro]    # as 1.0 / y.dot(s) is
    with ember.no_grad():
        d = LBFGS._direction({}, ember.tensor(g), [ember.tensor(y) for y in ys],
                             [ember.tensor(s) for s in ss], ro_t, 0.7, history_size=10)
    assert not reads, f"{len(reads)} coefficients read back to the host"
    q, al = -g, [0.0] * pairs
    for i in reversed(range(pairs)):
        al[i] = (ss[i] @ q) * ro[i]
        q = q - al[i] * ys[i]
    r = q * 0.7
    for i in range(pairs):
        r = r + (al[i] - (ys[i] @ r) * ro[i]) * ss[i]
    np.testing.assert_allclose(d.numpy(), r, rtol=1e-12, atol=1e-14)


def test_lbfgs_refuses_unknown_line_search_and_groups():
    p = ember.nn.Parameter(ember.ones(2))
    for lib in (torch, ember):        # refused when the line search would run, as torch
        x = lib.nn.Parameter(lib.ones(2))
        optimizer = lib.optim.LBFGS([x], line_search_fn="backtracking")

        def closure():
            optimizer.zero_grad()
            loss = (x ** 2).sum()
            loss.backward()
            return loss
        with pytest.raises(RuntimeError, match="strong_wolfe"):
            optimizer.step(closure)
    with pytest.raises(ValueError, match="parameter groups"):
        ember.optim.LBFGS([{"params": [p]}, {"params": [ember.nn.Parameter(ember.ones(1))]}])
    with pytest.raises(RuntimeError, match="closure"):
        ember.optim.LBFGS([p]).step(None)
