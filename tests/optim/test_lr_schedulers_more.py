"""The lr schedulers beyond StepLR/MultiStepLR/Cosine/OneCycle/LambdaLR, against torch:
the lr (and, for CyclicLR, momentum) after every step, get_last_lr, state_dict round trip."""
from __future__ import annotations

import math

import pytest
import torch

import ember

SCHEDULERS = {
    "ExponentialLR": lambda ls, o: ls.ExponentialLR(o, gamma=0.9),
    "MultiplicativeLR": lambda ls, o: ls.MultiplicativeLR(o, lr_lambda=lambda e: 0.95),
    "ConstantLR": lambda ls, o: ls.ConstantLR(o, factor=0.5, total_iters=3),
    "LinearLR": lambda ls, o: ls.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=4),
    "PolynomialLR": lambda ls, o: ls.PolynomialLR(o, total_iters=5, power=2.0),
    "WarmRestarts": lambda ls, o: ls.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2,
                                                                  eta_min=0.001),
    "WarmRestartsMult1": lambda ls, o: ls.CosineAnnealingWarmRestarts(o, T_0=3),
    "CyclicTriangular": lambda ls, o: ls.CyclicLR(o, base_lr=0.01, max_lr=0.1,
                                                 step_size_up=2, step_size_down=3),
    "CyclicTriangular2": lambda ls, o: ls.CyclicLR(o, 0.01, 0.1, step_size_up=2,
                                                  mode="triangular2"),
    "CyclicExpRange": lambda ls, o: ls.CyclicLR(o, 0.01, 0.1, step_size_up=2,
                                               mode="exp_range", gamma=0.9),
    "Sequential": lambda ls, o: ls.SequentialLR(
        o, [ls.LinearLR(o, start_factor=0.5, total_iters=2), ls.ExponentialLR(o, gamma=0.9)],
        milestones=[2]),
    "Chained": lambda ls, o: ls.ChainedScheduler(
        [ls.ConstantLR(o, factor=0.5, total_iters=2), ls.ExponentialLR(o, gamma=0.9)]),
}


def _run(lib, make, steps=9):
    weight = lib.nn.Parameter(lib.ones(2))
    optimizer = lib.optim.SGD([weight, ], lr=0.1, momentum=0.9)
    scheduler = make(lib.optim.lr_scheduler, optimizer)
    seen = [(optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["momentum"])]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        seen.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["momentum"]))
    return seen, scheduler.get_last_lr()


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_schedule_matches_torch(name):
    ours, ours_last = _run(ember, SCHEDULERS[name])
    ref, ref_last = _run(torch, SCHEDULERS[name])
    assert len(ours) == len(ref)
    for (lr, mom), (lr_ref, mom_ref) in zip(ours, ref):
        assert math.isclose(lr, lr_ref, rel_tol=1e-9, abs_tol=1e-15)
        assert math.isclose(mom, mom_ref, rel_tol=1e-9)
    assert ours_last == pytest.approx(ref_last, rel=1e-9)


def test_warm_restarts_fractional_epochs_match_torch():
    def run(lib):
        optimizer = lib.optim.SGD([lib.nn.Parameter(lib.ones(1))], lr=0.5)
        scheduler = lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=2,
                                                                       T_mult=2)
        lrs = []
        for epoch in range(5):
            for batch in range(3):
                scheduler.step(epoch + batch / 3)
                lrs.append(optimizer.param_groups[0]["lr"])
        return lrs
    assert run(ember) == pytest.approx(run(torch), rel=1e-9)


@pytest.mark.parametrize("kwargs", [
    dict(mode="min", factor=0.5, patience=1),
    dict(mode="max", factor=0.1, patience=0, cooldown=2, threshold_mode="abs",
         threshold=0.05),
    dict(mode="min", factor=0.5, patience=0, min_lr=0.02),
])
def test_reduce_on_plateau_matches_torch(kwargs):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.96, 0.5, 0.5, 0.51, 0.52, 0.53]

    def run(lib):
        optimizer = lib.optim.Adam([lib.nn.Parameter(lib.ones(1))], lr=0.1)
        scheduler = lib.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs)
        lrs = []
        for metric in metrics:
            scheduler.step(lib.tensor(metric))      # a 0-d loss tensor, as in tutorials
            lrs.append(optimizer.param_groups[0]["lr"])
        return lrs, scheduler.get_last_lr(), scheduler.num_bad_epochs, scheduler.best
    ours, ref = run(ember), run(torch)
    assert ours[0] == pytest.approx(ref[0], rel=1e-12)
    assert ours[1] == pytest.approx(ref[1], rel=1e-12)
    assert ours[2:] == pytest.approx(ref[2:], rel=1e-6)
    assert isinstance(ember.optim.lr_scheduler.ReduceLROnPlateau(
        ember.optim.SGD([ember.nn.Parameter(ember.ones(1))], lr=0.1)),
        ember.optim.lr_scheduler.LRScheduler)


def test_sequential_state_dict_resumes():
    def make(lib):
        optimizer = lib.optim.SGD([lib.nn.Parameter(lib.ones(1))], lr=0.1)
        ls = lib.optim.lr_scheduler
        return optimizer, ls.SequentialLR(optimizer, [ls.ConstantLR(optimizer, factor=0.5,
                                                                    total_iters=2),
                                                      ls.ExponentialLR(optimizer, 0.8)], [3])
    optimizer, scheduler = make(ember)
    for _ in range(4):
        scheduler.step()
    state = scheduler.state_dict()
    expected = []
    for _ in range(3):
        scheduler.step()
        expected.append(optimizer.param_groups[0]["lr"])
    optimizer2, scheduler2 = make(ember)
    scheduler2.load_state_dict(state)
    optimizer2.param_groups[0]["lr"] = state["_last_lr"][0]
    resumed = []
    for _ in range(3):
        scheduler2.step()
        resumed.append(optimizer2.param_groups[0]["lr"])
    assert resumed == pytest.approx(expected)


def test_bad_arguments_are_refused_like_torch():
    optimizer = ember.optim.SGD([ember.nn.Parameter(ember.ones(1))], lr=0.1)
    ls = ember.optim.lr_scheduler
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        ls.ReduceLROnPlateau(optimizer, factor=1.5)
    with pytest.raises(ValueError, match="number of milestone"):
        ls.SequentialLR(optimizer, [ls.ExponentialLR(optimizer, 0.9)], milestones=[1])
    with pytest.raises(ValueError, match="T_0"):
        ls.CosineAnnealingWarmRestarts(optimizer, T_0=0)
    adagrad = ember.optim.Adagrad([ember.nn.Parameter(ember.ones(1))])
    with pytest.raises(ValueError, match="momentum"):
        ls.CyclicLR(adagrad, 0.01, 0.1)
