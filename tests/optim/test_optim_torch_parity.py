"""Focused checks of torch.optim behaviours the optim_db table (test_optiminfo.py) found
missing: implementation flags kept in param groups, tensor lr, named parameters, the
duplicate-parameter warning, differentiable/fused refusals, complex parameters in the
in-place optimizers, Adagrad groups added later, ASGD, Adafactor, LBFGS's strong-Wolfe
line search, and the schedulers' state_dict keys. Each against torch."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ember


def _pair(shape=(3,), dtype="float64", seed=0):
    values = np.random.default_rng(seed).standard_normal(shape)
    if dtype.startswith("complex"):
        values = values + 1j * np.random.default_rng(seed + 1).standard_normal(shape)
    return (torch.nn.Parameter(torch.tensor(values)),
            ember.nn.Parameter(ember.tensor(values)))


def _steps(name, kwargs, n=3, dtype="float64", shape=(3,)):
    """torch and ember trajectories of `name` on the same gradients; returns both params
    and optimizers."""
    tp, ep = _pair(shape, dtype)
    topt = getattr(torch.optim, name)([tp], **kwargs)
    eopt = getattr(ember.optim, name)([ep], **{k: ember.tensor(v.numpy()) if
                                             isinstance(v, torch.Tensor) else v
                                             for k, v in kwargs.items()})
    rng = np.random.default_rng(5)
    for _ in range(n):
        g = rng.standard_normal(shape)
        if dtype.startswith("complex"):
            g = g + 1j * rng.standard_normal(shape)
        tp.grad, ep.grad = torch.tensor(g), ember.tensor(g)
        topt.step()
        eopt.step()
    return tp, ep, topt, eopt


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Adadelta",
                                  "Adamax", "NAdam", "RAdam", "Rprop", "ASGD", "Adafactor",
                                  "LBFGS"])
def test_param_group_keys_are_torchs(name):
    tp, ep = _pair()
    expected = getattr(torch.optim, name)([tp]).param_groups[0]
    actual = getattr(ember.optim, name)([ep]).param_groups[0]
    assert set(actual) == set(expected)
    for key in expected:
        if key != "params":
            assert actual[key] == expected[key], key


def test_tensor_lr_steps_as_its_value_and_must_have_one_element():
    tp, ep, _, _ = _steps("SGD", {"lr": torch.tensor(0.1), "momentum": 0.9})
    np.testing.assert_allclose(ep.detach().numpy(), tp.detach().numpy(), rtol=1e-13)
    as_float, _, _, _ = _steps("SGD", {"lr": 0.1, "momentum": 0.9})   # float32(0.1) != 0.1
    assert not np.allclose(as_float.detach().numpy(), tp.detach().numpy(), rtol=1e-13,
                           atol=0)
    for lib in (torch, ember):
        with pytest.raises(ValueError, match="Tensor lr must be 1-element"):
            lib.optim.SGD([lib.nn.Parameter(lib.ones(2))], lr=lib.tensor([0.1, 0.1]))


def test_named_parameters_and_duplicates():
    for lib in (torch, ember):
        a, b = lib.nn.Parameter(lib.ones(2)), lib.nn.Parameter(lib.ones(2))
        opt = lib.optim.SGD([("a", a), ("b", b)], lr=0.1)
        assert opt.param_groups[0]["param_names"] == ["a", "b"]
        assert opt.state_dict()["param_groups"][0]["param_names"] == ["a", "b"]
        with pytest.raises(ValueError, match="with/without names"):
            lib.optim.SGD([("a", a), b], lr=0.1)
        with pytest.raises(ValueError, match="with/without names"):
            opt.add_param_group({"params": [lib.nn.Parameter(lib.ones(1))]})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lib.optim.SGD([a, a], lr=0.1)
        assert any("duplicate parameters" in str(w.message) for w in caught), lib.__name__


def test_differentiable_and_fused_refusals_match_torch():
    for lib in (torch, ember):
        p = lib.nn.Parameter(lib.ones(2))
        with pytest.raises(RuntimeError, match="foreach"):
            lib.optim.Adam([p], fused=True, foreach=True)
        with pytest.raises(RuntimeError, match="differentiable"):
            lib.optim.SGD([p], fused=True, differentiable=True)
        opt = lib.optim.Adam([p], differentiable=True)
        p.grad = lib.ones(2)
        with pytest.raises(RuntimeError, match="leaf Variable"):
            opt.step()
        z = lib.nn.Parameter(lib.ones(2, dtype=lib.complex64))
        opt = lib.optim.Adam([z], fused=True)
        z.grad = lib.ones(2, dtype=lib.complex64)
        with pytest.raises(RuntimeError, match="floating point"):
            opt.step()


@pytest.mark.parametrize("name,kwargs", [("Adadelta", {}), ("Adamax", {}), ("NAdam", {}),
                                         ("RAdam", {"weight_decay": 0.1}), ("Rprop", {}),
                                         ("ASGD", {"t0": 1}),
                                         ("Adagrad", {"initial_accumulator_value": 0.1})])
def test_complex_parameters_update_as_real_pairs(name, kwargs):
    tp, ep, topt, eopt = _steps(name, kwargs, dtype="complex128")
    np.testing.assert_allclose(ep.detach().numpy(), tp.detach().numpy(), rtol=1e-10,
                               atol=1e-12)
    for key, value in topt.state[tp].items():
        np.testing.assert_allclose(np.asarray(eopt.state[ep][key].numpy()), value.numpy(),
                                   rtol=1e-6, atol=1e-10, err_msg=key)


def test_rprop_float64_step_sizes_are_exact():
    tp, ep, topt, eopt = _steps("Rprop", {}, n=4)
    np.testing.assert_array_equal(eopt.state[ep]["step_size"].numpy(),
                                  topt.state[tp]["step_size"].numpy())


def test_adagrad_initializes_state_of_groups_added_later():
    for lib in (torch, ember):
        a, b = lib.nn.Parameter(lib.ones(2)), lib.nn.Parameter(lib.ones(2))
        opt = lib.optim.Adagrad([a], initial_accumulator_value=0.5)
        opt.add_param_group({"params": [b]})
        b.grad = lib.ones(2)
        opt.step()
        assert opt.state[b]["sum"].tolist() == [1.5, 1.5]


@pytest.mark.parametrize("name,kwargs,shape", [
    ("ASGD", {"t0": 2, "weight_decay": 0.1}, (3,)),
    ("ASGD", {"t0": 1, "foreach": True, "lambd": 0.1}, (3,)),
    ("Adafactor", {}, (4, 3)),
    ("Adafactor", {"weight_decay": 0.1, "maximize": True, "d": 1.5}, (3,)),
])
def test_asgd_and_adafactor_match_torch(name, kwargs, shape):
    tp, ep, topt, eopt = _steps(name, kwargs, n=5, shape=shape)
    np.testing.assert_allclose(ep.detach().numpy(), tp.detach().numpy(), rtol=1e-10)
    assert set(eopt.state[ep]) == set(topt.state[tp])
    for key, value in topt.state[tp].items():
        np.testing.assert_allclose(eopt.state[ep][key].numpy(), value.numpy(), rtol=1e-7,
                                   err_msg=key)


def test_adafactor_refuses_complex_parameters():
    for lib in (torch, ember):
        z = lib.nn.Parameter(lib.ones(2, 2, dtype=lib.complex64))
        z.grad = lib.ones(2, 2, dtype=lib.complex64)
        with pytest.raises(RuntimeError, match="complex"):
            lib.optim.Adafactor([z]).step()


def test_lbfgs_strong_wolfe_on_complex_parameters():
    values = np.array([1.5 - 0.5j, -0.3 + 2j])

    def run(lib):
        z = lib.nn.Parameter(lib.tensor(values))
        opt = lib.optim.LBFGS([z], line_search_fn="strong_wolfe", max_iter=6)

        def closure():
            opt.zero_grad()
            loss = ((z - 1).abs() ** 2).sum() + (z.abs() ** 4).sum()
            loss.backward()
            return loss
        for _ in range(2):
            opt.step(closure)
        return z.detach().numpy(), opt.state[z]["func_evals"], opt.state[z]["n_iter"]
    ours, ref = run(ember), run(torch)
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-9)
    assert ours[1:] == ref[1:]


@pytest.mark.parametrize("make", [
    lambda lib, o: lib.optim.lr_scheduler.StepLR(o, 2),
    lambda lib, o: lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(o, 2),
    lambda lib, o: lib.optim.swa_utils.SWALR(o, swa_lr=0.01),
])
def test_scheduler_state_dict_keys_are_torchs(make):
    states = []
    for lib in (torch, ember):
        opt = lib.optim.SGD([lib.nn.Parameter(lib.ones(2))], lr=0.1)
        sched = make(lib, opt)
        for _ in range(3):
            opt.step()
            sched.step()
        states.append({k: v for k, v in sched.state_dict().items() if not callable(v)})
    ours, ref = states[1], states[0]
    assert set(ours) == set(ref)
    assert ours["_step_count"] == ref["_step_count"]


def test_sequential_lr_restarts_the_next_schedulers_count():
    counts = []
    for lib in (torch, ember):
        lrs = lib.optim.lr_scheduler
        opt = lib.optim.SGD([lib.nn.Parameter(lib.ones(2))], lr=0.1)
        first, second = lrs.LinearLR(opt, 0.1, total_iters=2), lrs.ExponentialLR(opt, 0.9)
        sched = lrs.SequentialLR(opt, [first, second], milestones=[2])
        for _ in range(5):
            opt.step()
            sched.step()
        counts.append((first._step_count, second._step_count, sched.get_last_lr()))
    assert counts[1][:2] == counts[0][:2]
    np.testing.assert_allclose(counts[1][2], counts[0][2], rtol=1e-12)


def test_sparse_adam_updates_only_the_rows_the_gradient_holds():
    start = np.random.default_rng(3).standard_normal((5, 2))
    rows = [np.array([1, 3]), np.array([3, 4, 0])]

    def run(lib):
        p = lib.nn.Parameter(lib.tensor(start))
        opt = lib.optim.SparseAdam([p], lr=0.1)
        for i, at in enumerate(rows):
            dense = np.zeros((5, 2))
            dense[at] = np.random.default_rng(i).standard_normal((len(at), 2))
            p.grad = lib.tensor(dense).to_sparse(1)
            opt.step()
        opt.zero_grad(set_to_none=False)
        return p.detach().numpy(), opt.state[p]["exp_avg_sq"].numpy(), opt.state[p]["step"]
    ours, ref = run(ember), run(torch)
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-12)
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-12)
    assert ours[2] == ref[2] == 2
    for lib in (torch, ember):
        p = lib.nn.Parameter(lib.ones(2))
        p.grad = lib.ones(2)
        with pytest.raises(RuntimeError, match="dense gradients"):
            lib.optim.SparseAdam([p]).step()


@pytest.mark.parametrize("kwargs,shape", [({}, (3, 4)), ({"nesterov": False,
                                                          "adjust_lr_fn": "match_rms_adamw",
                                                          "lr": 0.02}, (5, 2))])
def test_muon_matches_torch_bit_for_bit(kwargs, shape):
    tp, ep, topt, eopt = _steps("Muon", kwargs, n=4, dtype="float64", shape=shape)
    np.testing.assert_array_equal(ep.detach().numpy(), tp.detach().numpy())
    for lib in (torch, ember):
        with pytest.raises(ValueError, match="2D parameters"):
            lib.optim.Muon([lib.nn.Parameter(lib.ones(3))])


@pytest.mark.parametrize("name", ["Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Adagrad",
                                  "SparseAdam"])
def test_float32_tensor_lr_scalar_math_rounds_as_torch(name):
    """torch keeps a tensor lr a float32 0-d tensor, so 1 - lr * weight_decay and
    lr / bias_correction round to float32 even for a float64 model."""
    kwargs = {"lr": torch.tensor(0.01)}
    if name not in ("Adagrad", "SparseAdam"):
        kwargs["weight_decay"] = 0.1
    if name == "SparseAdam":
        tp, ep = _pair((4, 2))
        topt, eopt = torch.optim.SparseAdam([tp], **kwargs), ember.optim.SparseAdam(
            [ep], lr=ember.tensor(0.01))
        for i in range(3):
            g = np.random.default_rng(i).standard_normal((4, 2))
            tp.grad, ep.grad = torch.tensor(g).to_sparse(), ember.tensor(g).to_sparse()
            topt.step()
            eopt.step()
    else:
        tp, ep, _, _ = _steps(name, kwargs, n=4)
    np.testing.assert_allclose(ep.detach().numpy(), tp.detach().numpy(), rtol=1e-13)


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop", "ASGD"])
def test_loads_an_older_torch_state_dict(name):
    """A state_dict saved by an older torch: no foreach/differentiable/... keys in its
    groups and 'step' as a Python number. torch fills the flags and makes 'step' a
    tensor; so does ember, and both continue alike."""
    import copy
    tp = torch.nn.Parameter(torch.tensor([0.3, -0.2, 0.7], dtype=torch.float64))
    opt = getattr(torch.optim, name)([tp])
    for i in range(2):
        tp.grad = torch.tensor([0.1 * (i + 1), -0.3, 0.2], dtype=torch.float64)
        opt.step()
    old = copy.deepcopy(opt.state_dict())
    for group in old["param_groups"]:
        for key in ("foreach", "differentiable", "fused", "capturable",
                    "decoupled_weight_decay"):
            group.pop(key, None)
    for st in old["state"].values():
        st["step"] = float(st["step"])
    results = []
    for lib in (torch, ember):
        p = lib.nn.Parameter(lib.tensor(tp.detach().numpy().copy()))
        resumed = getattr(lib.optim, name)([p])
        sd = copy.deepcopy(old)
        if lib is ember:
            sd["state"] = {k: {kk: ember.tensor(v.numpy()) if isinstance(v, torch.Tensor)
                               else v for kk, v in st.items()} for k, st in sd["state"].items()}
        resumed.load_state_dict(sd)
        p.grad = lib.tensor(np.array([0.5, 0.1, -0.2]))
        resumed.step()
        results.append((p.detach().numpy(), resumed.state[p]["step"],
                        set(resumed.param_groups[0])))
    (ours, our_step, our_keys), (ref, ref_step, ref_keys) = results[1], results[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-13)
    assert isinstance(our_step, ember.Tensor) and our_step.item() == ref_step.item() == 3
    assert our_keys == ref_keys


def test_scheduler_stepped_before_the_optimizer_warns_as_torch():
    for lib in (torch, ember):
        opt = lib.optim.SGD([lib.nn.Parameter(lib.ones(2))], lr=0.1)
        sched = lib.optim.lr_scheduler.StepLR(opt, 2)
        with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
            sched.step()
        opt = lib.optim.SGD([lib.nn.Parameter(lib.ones(2))], lr=0.1)
        sched = lib.optim.lr_scheduler.StepLR(opt, 2)
        opt.step()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sched.step()
