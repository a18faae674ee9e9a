"""Behaviour from PyTorch's test/optim/test_lrscheduler.py, run with torch as the oracle:
each scheduler's lr sequence over N epochs for two param groups (and momentum where it
cycles), get_last_lr, the closed forms of step(epoch), state_dict round trips, composed
schedulers, the warnings torch gives (step order, the deprecated epoch argument, get_lr
outside step) and the errors of bad arguments."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "utils"))
from suitedata_oracle import both, raises_both  # noqa: E402


def _optimizer(lib, kind="SGD", lrs=(0.05, 0.5)):
    params = [lib.nn.Parameter(lib.zeros(2)) for _ in lrs]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]
    if kind == "Adam":
        return lib.optim.Adam(groups, lr=lrs[0])
    if kind == "plain":
        return lib.optim.SGD(groups, lr=lrs[0])
    return lib.optim.SGD(groups, lr=lrs[0], momentum=0.9)


def _momentum(group):
    return group["betas"][0] if "betas" in group else group.get("momentum")


def _trace(lib, make, epochs=12, kind="SGD", metrics=None):
    """(lrs, last_lr, momentum) before each epoch's steps, stepping in the new order."""
    optimizer = _optimizer(lib, kind)
    scheduler = make(lib.optim.lr_scheduler, optimizer)
    seen = []
    for epoch in range(epochs):
        seen.append(([g["lr"] for g in optimizer.param_groups], scheduler.get_last_lr(),
                     [_momentum(g) for g in optimizer.param_groups]))
        optimizer.step()
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[epoch % len(metrics)])
    seen.append([g["lr"] for g in optimizer.param_groups])
    return seen


SCHEDULES = {
    "StepLR": lambda s, o: s.StepLR(o, step_size=3, gamma=0.1),
    "StepLR_gamma_half": lambda s, o: s.StepLR(o, 2, 0.5),
    "MultiStepLR": lambda s, o: s.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.1),
    "MultiStepLR_repeated": lambda s, o: s.MultiStepLR(o, milestones=[3, 3, 7], gamma=0.5),
    "MultiStepLR_unsorted": lambda s, o: s.MultiStepLR(o, milestones=[9, 2, 5], gamma=0.3),
    "ExponentialLR": lambda s, o: s.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda s, o: s.CosineAnnealingLR(o, T_max=10, eta_min=1e-3),
    "CosineAnnealingLR_past_Tmax": lambda s, o: s.CosineAnnealingLR(o, T_max=4),
    "WarmRestarts": lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=3, eta_min=1e-4),
    "WarmRestarts_Tmult": lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=2),
    "LinearLR": lambda s, o: s.LinearLR(o, start_factor=0.5, total_iters=4),
    "LinearLR_down": lambda s, o: s.LinearLR(o, start_factor=1.0, end_factor=0.1,
                                             total_iters=6),
    "ConstantLR": lambda s, o: s.ConstantLR(o, factor=0.5, total_iters=4),
    "ConstantLR_default": lambda s, o: s.ConstantLR(o),
    "PolynomialLR": lambda s, o: s.PolynomialLR(o, total_iters=6, power=0.9),
    "PolynomialLR_linear": lambda s, o: s.PolynomialLR(o, total_iters=4),
    "LambdaLR": lambda s, o: s.LambdaLR(o, lr_lambda=lambda e: 0.95 ** e),
    "LambdaLR_per_group": lambda s, o: s.LambdaLR(o, [lambda e: e / 10, lambda e: 0.9 ** e]),
    "MultiplicativeLR": lambda s, o: s.MultiplicativeLR(o, lr_lambda=lambda e: 0.9),
    "MultiplicativeLR_per_group": lambda s, o: s.MultiplicativeLR(
        o, [lambda e: 0.9, lambda e: 1.0 if e < 4 else 0.5]),
    "CyclicLR_triangular": lambda s, o: s.CyclicLR(o, base_lr=[0.01, 0.1], max_lr=[0.1, 1.0],
                                                   step_size_up=2, step_size_down=3),
    "CyclicLR_triangular2": lambda s, o: s.CyclicLR(o, 0.01, 0.1, step_size_up=2,
                                                    mode="triangular2"),
    "CyclicLR_exp_range": lambda s, o: s.CyclicLR(o, 0.01, 0.1, step_size_up=3,
                                                  mode="exp_range", gamma=0.8),
    "CyclicLR_scale_fn_iterations": lambda s, o: s.CyclicLR(
        o, 0.01, 0.1, step_size_up=2, scale_fn=lambda x: 1 / (1 + x), scale_mode="iterations"),
    "CyclicLR_no_momentum": lambda s, o: s.CyclicLR(o, 0.01, 0.1, step_size_up=2,
                                                    cycle_momentum=False),
    "OneCycleLR_cos": lambda s, o: s.OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=13),
    "OneCycleLR_linear": lambda s, o: s.OneCycleLR(o, max_lr=1.0, total_steps=13,
                                                   anneal_strategy="linear", pct_start=0.4),
    "OneCycleLR_three_phase": lambda s, o: s.OneCycleLR(o, max_lr=1.0, total_steps=13,
                                                        three_phase=True, div_factor=10.0),
    "OneCycleLR_epochs": lambda s, o: s.OneCycleLR(o, max_lr=0.5, epochs=2,
                                                   steps_per_epoch=7, cycle_momentum=False),
    "SequentialLR": lambda s, o: s.SequentialLR(
        o, [s.ConstantLR(o, factor=0.1, total_iters=2), s.ExponentialLR(o, gamma=0.9)],
        milestones=[3]),
    "SequentialLR_three": lambda s, o: s.SequentialLR(
        o, [s.LinearLR(o, start_factor=0.2, total_iters=3), s.StepLR(o, 2, 0.5),
            s.CosineAnnealingLR(o, T_max=4)], milestones=[3, 7]),
    "SequentialLR_warmup_cosine": lambda s, o: s.SequentialLR(
        o, [s.LinearLR(o, start_factor=0.1, total_iters=4), s.CosineAnnealingLR(o, 8)],
        milestones=[4]),
    "ChainedScheduler": lambda s, o: s.ChainedScheduler(
        [s.ConstantLR(o, factor=0.1, total_iters=2), s.ExponentialLR(o, gamma=0.9)]),
    "ChainedScheduler_three": lambda s, o: s.ChainedScheduler(
        [s.StepLR(o, 3, 0.1), s.LinearLR(o, start_factor=0.5, total_iters=4),
         s.MultiStepLR(o, [5, 8], 0.5)]),
    "ChainedScheduler_optimizer_arg": lambda s, o: s.ChainedScheduler(
        [s.ExponentialLR(o, gamma=0.9), s.LambdaLR(o, lambda e: 1 / (e + 1))], optimizer=o),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_lr_sequence_matches_torch(name):
    both(lambda lib: _trace(lib, SCHEDULES[name]))


@pytest.mark.parametrize("name", ["CyclicLR_triangular", "CyclicLR_exp_range",
                                  "OneCycleLR_cos", "OneCycleLR_three_phase",
                                  "ExponentialLR", "SequentialLR"])
def test_lr_sequence_with_adam_betas(name):
    both(lambda lib: _trace(lib, SCHEDULES[name], kind="Adam"))


PLATEAU = {
    "min_rel": (lambda s, o: s.ReduceLROnPlateau(o, patience=1, factor=0.5),
                [10, 9, 9, 9, 9, 8, 8, 8]),
    "max_rel": (lambda s, o: s.ReduceLROnPlateau(o, mode="max", patience=0, factor=0.5,
                                                 threshold=0.1), [1, 1.05, 1.2, 1.2, 1.5]),
    "min_abs_cooldown": (lambda s, o: s.ReduceLROnPlateau(
        o, patience=0, cooldown=2, threshold_mode="abs", threshold=0.5), [5, 4.9, 4.8, 4, 4]),
    "max_abs": (lambda s, o: s.ReduceLROnPlateau(o, mode="max", threshold_mode="abs",
                                                 threshold=0.1, patience=1), [1, 1.05, 1.1, 1]),
    "min_lr_list": (lambda s, o: s.ReduceLROnPlateau(o, patience=0, factor=0.1,
                                                     min_lr=[0.01, 0.2]), [3, 3, 3, 3]),
    "eps": (lambda s, o: s.ReduceLROnPlateau(o, patience=0, factor=0.99, eps=0.01),
            [1, 1, 1]),
}


@pytest.mark.parametrize("name", sorted(PLATEAU))
def test_reduce_lr_on_plateau_matches_torch(name):
    make, metrics = PLATEAU[name]
    both(lambda lib: _trace(lib, make, epochs=14, metrics=metrics))


def test_reduce_lr_on_plateau_tensor_metric_and_state():
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=1)
        for value in (1.0, 1.0, 1.0, 0.5, 0.5):
            optimizer.step()
            scheduler.step(lib.tensor(value))
        state = scheduler.state_dict()
        return (scheduler.get_last_lr(), scheduler.num_bad_epochs, scheduler.best,
                scheduler.last_epoch, scheduler.cooldown_counter,
                sorted(k for k in state if not k.startswith("_")))
    both(case)


CLOSED_FORM = {
    "StepLR": lambda s, o: s.StepLR(o, 3, 0.1),
    "MultiStepLR": lambda s, o: s.MultiStepLR(o, [2, 5, 9], 0.1),
    "ExponentialLR": lambda s, o: s.ExponentialLR(o, 0.9),
    "CosineAnnealingLR": lambda s, o: s.CosineAnnealingLR(o, T_max=5, eta_min=0.01),
    "LinearLR": lambda s, o: s.LinearLR(o, start_factor=0.2, total_iters=5),
    "ConstantLR": lambda s, o: s.ConstantLR(o, factor=0.25, total_iters=3),
    "PolynomialLR": lambda s, o: s.PolynomialLR(o, total_iters=5, power=2.0),
    "LambdaLR": lambda s, o: s.LambdaLR(o, lambda e: 1 / (1 + e)),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
def test_step_with_epoch_uses_the_closed_form(name):
    """step(epoch) jumps (and warns that the argument is deprecated), in any order."""
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = CLOSED_FORM[name](lib.optim.lr_scheduler, optimizer)
        seen = []
        for epoch in (1, 4, 2, 7, 7, 0, 10):
            optimizer.step()
            scheduler.step(epoch)
            seen.append((scheduler.last_epoch, scheduler.get_last_lr()))
        return seen
    both(case, warns="epoch parameter in `scheduler.step()`")


def test_warm_restarts_fractional_epochs():
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=2,
                                                                        T_mult=2)
        seen = []
        for epoch in range(8):
            for batch in range(4):
                optimizer.step()
                scheduler.step(epoch + batch / 4)
                seen.append((scheduler.T_cur, scheduler.T_i, scheduler.get_last_lr()))
        return seen
    both(case, check_warnings=False)


# --- warnings about the call order ----------------------------------------------------------
def test_scheduler_step_before_optimizer_step_warns():
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.StepLR(optimizer, 3)
        scheduler.step()
        return scheduler.get_last_lr()
    both(case, warns="Detected call of `lr_scheduler.step()` before `optimizer.step()`")


def test_step_order_warning_with_epoch_argument():
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.StepLR(optimizer, 3)
        scheduler.step(2)
        return scheduler.get_last_lr()
    both(case, warns="before `optimizer.step()`")


def test_step_order_warning_when_resuming():
    def case(lib):
        optimizer = _optimizer(lib)
        for group in optimizer.param_groups:
            group["initial_lr"] = 0.3
        scheduler = lib.optim.lr_scheduler.StepLR(optimizer, 3, last_epoch=10)
        scheduler.step()
        return scheduler.get_last_lr(), scheduler.last_epoch
    both(case, warns="before `optimizer.step()`")


def test_new_pattern_gives_no_warning():
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.MultiStepLR(optimizer, [2, 4])
        for _ in range(6):
            optimizer.step()
            scheduler.step()
        return scheduler.get_last_lr()
    both(case)


def test_optimizer_step_overridden_after_construction_warns():
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.ExponentialLR(optimizer, 0.5)
        optimizer.step = lambda: None
        optimizer.step()
        scheduler.step()
        return scheduler.get_last_lr()
    both(case, warns="has been overridden after learning rate scheduler")


def test_get_lr_outside_step_warns():
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.StepLR(optimizer, 2)
        optimizer.step()
        scheduler.step()
        return scheduler.get_lr()
    both(case, warns="please use `get_last_lr()`")


def test_second_scheduler_on_the_same_optimizer_does_not_warn():
    def case(lib):
        optimizer = _optimizer(lib)
        first = lib.optim.lr_scheduler.StepLR(optimizer, 2)
        second = lib.optim.lr_scheduler.ExponentialLR(optimizer, 0.9)
        seen = []
        for _ in range(5):
            optimizer.step()
            first.step()
            second.step()
            seen.append(first.get_last_lr() + second.get_last_lr())
        return seen
    both(case)


# --- state_dict -----------------------------------------------------------------------------
STATEFUL = {
    "StepLR": lambda s, o: s.StepLR(o, 3, 0.1),
    "MultiStepLR": lambda s, o: s.MultiStepLR(o, [2, 5], 0.5),
    "CosineAnnealingLR": lambda s, o: s.CosineAnnealingLR(o, 6),
    "WarmRestarts": lambda s, o: s.CosineAnnealingWarmRestarts(o, 2, 2),
    "CyclicLR": lambda s, o: s.CyclicLR(o, 0.01, 0.1, step_size_up=2),
    "OneCycleLR": lambda s, o: s.OneCycleLR(o, 1.0, total_steps=20),
    "LinearLR": lambda s, o: s.LinearLR(o, 0.5, total_iters=4),
    "ReduceLROnPlateau": lambda s, o: s.ReduceLROnPlateau(o, patience=0),
    "SequentialLR": lambda s, o: s.SequentialLR(
        o, [s.ConstantLR(o, 0.5, 2), s.ExponentialLR(o, 0.8)], milestones=[3]),
    "ChainedScheduler": lambda s, o: s.ChainedScheduler(
        [s.ConstantLR(o, 0.5, 2), s.ExponentialLR(o, 0.8)]),
}


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_state_dict_round_trip_continues_the_schedule(name):
    """A fresh scheduler given another's state_dict carries on its schedule exactly; the
    state_dict names the same public entries as torch's."""
    def case(lib):
        make = STATEFUL[name]
        plateau = name == "ReduceLROnPlateau"
        optimizer = _optimizer(lib)
        scheduler = make(lib.optim.lr_scheduler, optimizer)
        for i in range(5):
            optimizer.step()
            scheduler.step(*([3 - i % 2] if plateau else []))
        state = scheduler.state_dict()
        optimizer2 = _optimizer(lib)
        optimizer2.load_state_dict(optimizer.state_dict())
        scheduler2 = make(lib.optim.lr_scheduler, optimizer2)
        scheduler2.load_state_dict(state)
        seen = []
        for i in range(5):
            for opt, sched in ((optimizer, scheduler), (optimizer2, scheduler2)):
                opt.step()
                sched.step(*([2] if plateau else []))
            seen.append((scheduler.get_last_lr(), scheduler2.get_last_lr(),
                         [g["lr"] for g in optimizer2.param_groups]))
        return seen, sorted(k for k in state if not k.startswith("_"))
    both(case)


def test_lambda_lr_state_dict_keeps_callable_objects_state():
    class Decay:
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, epoch):
            return self.rate ** epoch

    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.LambdaLR(optimizer, [Decay(0.5), lambda e: 1.0])
        state = scheduler.state_dict()
        other = lib.optim.lr_scheduler.LambdaLR(optimizer, [Decay(0.9), lambda e: 2.0])
        other.load_state_dict(state)
        optimizer.step()
        other.step()
        return state["lr_lambdas"], other.lr_lambdas[0].rate, other.get_last_lr()
    both(case)


def test_cyclic_lr_state_dict_drops_the_scale_function():
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.CyclicLR(optimizer, 0.01, 0.1, step_size_up=2,
                                                    mode="triangular2")
        state = scheduler.state_dict()
        return sorted(k for k in state if not k.startswith("_")), \
            any(callable(v) for v in state.values())
    both(case)


# --- argument errors ------------------------------------------------------------------------
@pytest.mark.parametrize("make,words", [
    (lambda s, o: s.StepLR("not an optimizer", 2), ["is not an Optimizer"]),
    (lambda s, o: s.ConstantLR(o, factor=1.5), ["Constant multiplicative factor"]),
    (lambda s, o: s.LinearLR(o, start_factor=0), ["Starting multiplicative factor"]),
    (lambda s, o: s.LinearLR(o, end_factor=1.5), ["Ending multiplicative factor"]),
    (lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=0), ["Expected positive integer T_0"]),
    (lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=2, T_mult=0),
     ["Expected integer T_mult >= 1"]),
    (lambda s, o: s.ReduceLROnPlateau(o, factor=1.0), ["Factor should be < 1.0."]),
    (lambda s, o: s.ReduceLROnPlateau(o, mode="avg"), ["mode avg is unknown!"]),
    (lambda s, o: s.ReduceLROnPlateau(o, threshold_mode="x"), ["threshold mode x is unknown"]),
    (lambda s, o: s.ReduceLROnPlateau(o, min_lr=[0.1]), ["expected 2 min_lrs"]),
    (lambda s, o: s.CyclicLR(o, 0.01, 0.1, mode="sawtooth"), ["mode is invalid"]),
    (lambda s, o: s.OneCycleLR(o, 1.0), ["You must define either total_steps OR"]),
    (lambda s, o: s.OneCycleLR(o, 1.0, total_steps=0), ["Expected positive integer total_steps"]),
    (lambda s, o: s.OneCycleLR(o, 1.0, epochs=-1, steps_per_epoch=2),
     ["Expected positive integer epochs"]),
    (lambda s, o: s.OneCycleLR(o, 1.0, total_steps=10, pct_start=1.5), ["pct_start"]),
    (lambda s, o: s.OneCycleLR(o, 1.0, total_steps=10, anneal_strategy="exp"),
     ["anneal_strategy must be one of 'cos' or 'linear'"]),
    (lambda s, o: s.LambdaLR(o, [lambda e: 1.0]), ["Expected 2 lr_lambdas, but got 1"]),
    (lambda s, o: s.SequentialLR(o, [s.StepLR(o, 2)], milestones=[3]),
     ["number of schedulers provided to be one more"]),
    (lambda s, o: s.StepLR(o, 2, last_epoch=3), ["param 'initial_lr' is not specified"]),
])
def test_bad_arguments_raise_as_torch(make, words):
    raises_both(lambda lib: make(lib.optim.lr_scheduler, _optimizer(lib)), *words)


def test_cycle_momentum_needs_a_momentum_optimizer():
    raises_both(lambda lib: lib.optim.lr_scheduler.CyclicLR(
        lib.optim.Adagrad([lib.nn.Parameter(lib.zeros(1))]), 0.01, 0.1),
        "optimizer must support momentum", kind=ValueError)
    raises_both(lambda lib: lib.optim.lr_scheduler.OneCycleLR(
        lib.optim.Adagrad([lib.nn.Parameter(lib.zeros(1))]), 0.01, total_steps=4),
        "optimizer must support momentum", kind=ValueError)


def test_one_cycle_past_total_steps_raises():
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.OneCycleLR(optimizer, 1.0, total_steps=3)
        for _ in range(4):
            optimizer.step()
            scheduler.step()
    raises_both(case, "Tried to step 4 times", "total steps is 3", kind=ValueError)


def test_warm_restarts_negative_epoch_raises():
    def case(lib):
        optimizer = _optimizer(lib)
        lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, 2).step(-1)
    raises_both(case, "Expected non-negative epoch", kind=ValueError)


def test_sequential_lr_rejects_schedulers_of_another_optimizer():
    def case(lib):
        first, second = _optimizer(lib), _optimizer(lib)
        s = lib.optim.lr_scheduler
        s.SequentialLR(first, [s.StepLR(first, 2), s.StepLR(second, 2)], milestones=[2])
    raises_both(case, "same optimizer", kind=ValueError)


def test_chained_scheduler_rejects_schedulers_of_another_optimizer():
    def case(lib):
        first, second = _optimizer(lib), _optimizer(lib)
        s = lib.optim.lr_scheduler
        s.ChainedScheduler([s.StepLR(first, 2), s.StepLR(second, 2)])
    raises_both(case, "same optimizer", kind=ValueError)


def test_resuming_with_last_epoch_continues_from_initial_lr():
    def case(lib):
        optimizer = _optimizer(lib)
        for group in optimizer.param_groups:
            group["initial_lr"] = 1.0
        scheduler = lib.optim.lr_scheduler.StepLR(optimizer, 2, gamma=0.5, last_epoch=4)
        seen = [scheduler.get_last_lr(), scheduler.base_lrs, scheduler.last_epoch]
        for _ in range(4):
            optimizer.step()
            scheduler.step()
            seen.append(scheduler.get_last_lr())
        return seen
    both(case)


def test_tensor_lr_stays_the_same_tensor():
    def case(lib):
        weight = lib.nn.Parameter(lib.zeros(2))
        lr = lib.tensor(0.1)
        optimizer = lib.optim.SGD([weight], lr=lr)
        scheduler = lib.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5)
        seen = []
        for _ in range(3):
            optimizer.step()
            scheduler.step()
            seen.append((optimizer.param_groups[0]["lr"] is lr, float(lr)))
        return seen
    both(case)


@pytest.mark.parametrize("kind", ["SequentialLR", "ChainedScheduler"])
def test_composed_schedulers_reject_reduce_lr_on_plateau(kind):
    def case(lib):
        optimizer = _optimizer(lib)
        s = lib.optim.lr_scheduler
        inner = [s.StepLR(optimizer, 2), s.ReduceLROnPlateau(optimizer)]
        if kind == "SequentialLR":
            s.SequentialLR(optimizer, inner, milestones=[2])
        else:
            s.ChainedScheduler(inner)
    raises_both(case, "does not support `ReduceLROnPlateau`", "index 1", kind=ValueError)


def test_sequential_lr_of_a_chained_scheduler():
    def make(s, o):
        chained = s.ChainedScheduler([s.ConstantLR(o, 0.5, 3), s.ExponentialLR(o, 0.9)])
        return s.SequentialLR(o, [chained, s.StepLR(o, 2, 0.5)], milestones=[4])
    both(lambda lib: _trace(lib, make))


@pytest.mark.parametrize("min_lr", [0.001, [0.001, 0.002]])
def test_reduce_lr_on_plateau_after_a_param_group_is_added(min_lr):
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0,
                                                             min_lr=min_lr)
        optimizer.add_param_group({"params": [lib.nn.Parameter(lib.zeros(1))], "lr": 1.0})
        for _ in range(3):
            optimizer.step()
            scheduler.step(1.0)
        return scheduler.get_last_lr(), scheduler.min_lrs
    if isinstance(min_lr, list):
        raises_both(case, "number of param groups", "(3)", "(2)", kind=RuntimeError)
    else:
        both(case)


def test_reduce_lr_on_plateau_epoch_argument_warns():
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=0)
        optimizer.step()
        scheduler.step(1.0, 5)
        return scheduler.last_epoch
    both(case, warns="epoch parameter in `scheduler.step()`")


@pytest.mark.parametrize("name", ["ExponentialLR", "MultiplicativeLR", "LinearLR",
                                  "PolynomialLR", "StepLR", "CosineAnnealingLR", "ConstantLR"])
def test_resumed_scheduler_keeps_the_lr_on_its_first_step(name):
    """Built with last_epoch >= 0 (a resumed run), the constructor's step leaves the lr."""
    def run(lib):
        optimizer = _optimizer(lib)
        for group in optimizer.param_groups:
            group["initial_lr"] = 2 * group["lr"]
        s = lib.optim.lr_scheduler
        scheduler = {
            "ExponentialLR": lambda: s.ExponentialLR(optimizer, 0.5, last_epoch=2),
            "MultiplicativeLR": lambda: s.MultiplicativeLR(optimizer, lambda e: 0.5,
                                                           last_epoch=2),
            "LinearLR": lambda: s.LinearLR(optimizer, 0.5, total_iters=4, last_epoch=1),
            "PolynomialLR": lambda: s.PolynomialLR(optimizer, total_iters=5, last_epoch=1),
            "StepLR": lambda: s.StepLR(optimizer, 2, last_epoch=1),
            "CosineAnnealingLR": lambda: s.CosineAnnealingLR(optimizer, 6, last_epoch=2),
            "ConstantLR": lambda: s.ConstantLR(optimizer, 0.5, total_iters=3, last_epoch=1),
        }[name]()
        seen = [scheduler.get_last_lr()]
        for _ in range(5):
            optimizer.step()
            scheduler.step()
            seen.append(scheduler.get_last_lr())
        return seen
    both(run)


def test_a_users_own_scheduler_subclass():
    """The common warm-up pattern: subclass LRScheduler (or the old _LRScheduler name)
    and define get_lr from base_lrs and last_epoch."""
    def case(lib):
        s = lib.optim.lr_scheduler

        class Warmup(s.LRScheduler):
            def __init__(self, optimizer, warmup, last_epoch=-1):
                self.warmup = warmup
                super().__init__(optimizer, last_epoch)

            def get_lr(self):
                scale = min(1.0, (self.last_epoch + 1) / self.warmup)
                return [base * scale for base in self.base_lrs]

        class OldName(s._LRScheduler):
            def get_lr(self):
                return [base * 0.5 ** self.last_epoch for base in self.base_lrs]

        seen = []
        for make in (lambda o: Warmup(o, 4), lambda o: OldName(o)):
            optimizer = _optimizer(lib)
            scheduler = make(optimizer)
            for _ in range(6):
                optimizer.step()
                scheduler.step()
                seen.append(scheduler.get_last_lr())
            seen.append(sorted(k for k in scheduler.state_dict() if not k.startswith("_")))
        return seen
    both(case)


def test_get_lr_with_a_wrong_signature_fails_at_construction():
    def case(lib):
        class Broken(lib.optim.lr_scheduler.LRScheduler):
            def get_lr(self, step):
                return [1.0]
        Broken(_optimizer(lib))
    raises_both(case, kind=TypeError)


def test_no_reference_cycles_through_the_scheduler():
    """A scheduler that goes out of scope is freed at once (no cycle for the garbage
    collector to find), after steps too."""
    import gc
    import weakref

    def case(lib):
        def run():
            param = lib.zeros(10, requires_grad=True)
            optimizer = lib.optim.SGD([param], lr=0.5)
            scheduler = lib.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
            param.sum().backward()
            optimizer.step()
            scheduler.step()
            return weakref.ref(scheduler), weakref.ref(optimizer)

        gc.disable()
        try:
            scheduler_ref, optimizer_ref = run()
            return scheduler_ref() is None, optimizer_ref() is None
        finally:
            gc.enable()
    both(case)


def test_optimizer_step_replaced_with_a_wrapper_method_warns():
    def case(lib):
        import types
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.StepLR(optimizer, 3)
        old_step = optimizer.step

        def new_step(opt, *args, **kwargs):
            return old_step(*args, **kwargs)

        optimizer.step = types.MethodType(new_step, optimizer)
        for _ in range(3):
            optimizer.step()
            scheduler.step()
        return scheduler.get_last_lr()
    both(case, warns="`optimizer.step()` has been overridden")


@pytest.mark.parametrize("other", ["MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                                   "LinearLR"])
def test_reduce_lr_on_plateau_compounded_with_another_scheduler(other):
    """Both step the same optimizer each epoch: their changes compose."""
    def case(lib):
        s = lib.optim.lr_scheduler
        optimizer = _optimizer(lib, lrs=(0.5, 0.5))
        plateau = s.ReduceLROnPlateau(optimizer, patience=2, cooldown=1,
                                      threshold_mode="abs", threshold=0.1)
        second = {"MultiStepLR": lambda: s.MultiStepLR(optimizer, [3, 8, 12], 0.1),
                  "ExponentialLR": lambda: s.ExponentialLR(optimizer, 0.5),
                  "CosineAnnealingLR": lambda: s.CosineAnnealingLR(optimizer, 10, 1e-10),
                  "LinearLR": lambda: s.LinearLR(optimizer, 0.4, total_iters=4)}[other]()
        seen = []
        for epoch in range(16):
            optimizer.step()
            second.step()
            plateau.step(10 - epoch * 0.0165)
            seen.append([g["lr"] for g in optimizer.param_groups])
        return seen
    both(case)


@pytest.mark.parametrize("T_mult,epochs", [
    (1, [0, 1, 2, 3, 4, 5, 12, 27, 3, 4, 5, 6, 13]),
    (2, [0, 1, 2, 3, 4, 5, 25, 32, 33, 34, 80, 81, 3]),
    (3, [0, 0.1, 0.2, 0.3, 1.3, 2.3, 17.5, 18.5, 19.5, 29.5, 30.5, 31.5, 50]),
])
def test_warm_restarts_interleaved_explicit_epochs(T_mult, epochs):
    def case(lib):
        optimizer = _optimizer(lib)
        scheduler = lib.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=10, T_mult=T_mult, eta_min=1e-10)
        seen = []
        for epoch in epochs[1:]:
            optimizer.step()
            scheduler.step(epoch)
            seen.append((scheduler.T_cur, scheduler.T_i, scheduler.last_epoch,
                         [g["lr"] for g in optimizer.param_groups]))
            optimizer.step()
            scheduler.step()
            seen.append((scheduler.T_cur, scheduler.T_i, [g["lr"] for g in optimizer.param_groups]))
        return seen
    both(case, check_warnings=False)


@pytest.mark.parametrize("mode", ["triangular2", "exp_range", "custom"])
def test_cyclic_lr_state_dict_restores_the_mode(mode):
    def case(lib):
        def scale_fn(x):
            return 0.5

        def make(optimizer, **kwargs):
            return lib.optim.lr_scheduler.CyclicLR(optimizer, base_lr=1, max_lr=5,
                                                   step_size_up=2, cycle_momentum=False,
                                                   **kwargs)
        kwargs = {"scale_fn": scale_fn} if mode == "custom" else {"mode": mode, "gamma": 0.9}
        optimizer = lib.optim.Adam([lib.nn.Parameter(lib.zeros(1))])
        scheduler = make(optimizer, **kwargs)
        for _ in range(3):
            optimizer.step()
            scheduler.step()
        restored = make(optimizer, **({"scale_fn": scale_fn} if mode == "custom" else {}))
        state = scheduler.state_dict()
        restored.load_state_dict(state)
        seen = []
        for _ in range(6):
            optimizer.step()
            restored.step()
            seen.append(restored.get_last_lr())
        return restored.mode, seen, any(callable(v) for v in state.values())
    both(case)


def test_swalr_after_multiplicative_and_its_errors():
    def case(lib):
        optimizer = _optimizer(lib)
        s = lib.optim.lr_scheduler
        before = s.MultiplicativeLR(optimizer, lr_lambda=lambda epoch: 0.9)
        swa = lib.optim.swa_utils.SWALR(optimizer, anneal_epochs=4, anneal_strategy="linear",
                                        swa_lr=[0.01, 0.02])
        seen = []
        for epoch in range(12):
            seen.append([g["lr"] for g in optimizer.param_groups])
            optimizer.step()
            (swa if epoch >= 5 else before).step()
        return seen
    both(case, check_warnings=False)
    for kwargs, words in (({"anneal_strategy": "exponential", "swa_lr": 1.0},
                           "anneal_strategy must"),
                          ({"anneal_epochs": -1, "swa_lr": 1.0}, "anneal_epochs must"),
                          ({"anneal_epochs": 1.7, "swa_lr": 1.0}, "anneal_epochs must"),
                          ({"swa_lr": [1.0, 0.1, 0.01]}, "swa_lr must")):
        raises_both(lambda lib: lib.optim.swa_utils.SWALR(_optimizer(lib), **kwargs), words,
                    kind=ValueError)


TENSOR_LR = {
    "StepLR": lambda s, o: s.StepLR(o, 1, 0.5),
    "CosineAnnealingLR": lambda s, o: s.CosineAnnealingLR(o, 4),
    "ExponentialLR": lambda s, o: s.ExponentialLR(o, 0.5),
    "LambdaLR": lambda s, o: s.LambdaLR(o, lambda e: 0.5 ** e),
    "LinearLR": lambda s, o: s.LinearLR(o, 0.25, total_iters=3),
    "PolynomialLR": lambda s, o: s.PolynomialLR(o, total_iters=4, power=2.0),
    "CyclicLR": lambda s, o: s.CyclicLR(o, 0.01, 0.1, step_size_up=2),
    "OneCycleLR": lambda s, o: s.OneCycleLR(o, 0.5, total_steps=8),
    "SequentialLR": lambda s, o: s.SequentialLR(
        o, [s.ConstantLR(o, 0.5, 2), s.ExponentialLR(o, 0.8)], milestones=[2]),
    "ReduceLROnPlateau": lambda s, o: s.ReduceLROnPlateau(o, patience=0),
}


@pytest.mark.parametrize("name", sorted(TENSOR_LR))
def test_tensor_lr_schedules(name):
    """A tensor lr (as compiled optimizer steps use) follows the same schedule, stays the
    group's one tensor, and what the scheduler keeps (base_lrs, initial_lr, get_last_lr)
    are copies that later steps do not change."""
    def case(lib):
        weight = lib.nn.Parameter(lib.zeros(2))
        lr = lib.tensor(0.1)
        optimizer = lib.optim.SGD([weight], lr=lr, momentum=0.9)
        scheduler = TENSOR_LR[name](lib.optim.lr_scheduler, optimizer)
        history = []
        for _ in range(6):
            optimizer.step()
            scheduler.step(*([1.0] if name == "ReduceLROnPlateau" else []))
            history.append(scheduler.get_last_lr())
        group = optimizer.param_groups[0]
        return (history, float(lr), group["lr"] is lr, getattr(scheduler, "base_lrs", None),
                group.get("initial_lr"), history[-1][0] is group["lr"])
    both(case)


RESUMABLE = {
    "CosineAnnealingLR": lambda s, o, k: s.CosineAnnealingLR(o, 6, last_epoch=k),
    "CosineAnnealingWarmRestarts": lambda s, o, k: s.CosineAnnealingWarmRestarts(
        o, 3, last_epoch=k),
    "CyclicLR": lambda s, o, k: s.CyclicLR(o, 0.01, 0.1, step_size_up=2, last_epoch=k),
    "OneCycleLR": lambda s, o, k: s.OneCycleLR(o, 1.0, total_steps=12, last_epoch=k),
    "MultiStepLR": lambda s, o, k: s.MultiStepLR(o, [4, 6], last_epoch=k),
    "LambdaLR": lambda s, o, k: s.LambdaLR(o, lambda e: 0.9 ** e, last_epoch=k),
}


@pytest.mark.parametrize("last_epoch", [0, 3])
@pytest.mark.parametrize("name", sorted(RESUMABLE))
def test_resuming_from_last_epoch_with_saved_group_values(name, last_epoch):
    """A resumed run: the param groups hold what the schedulers wrote there (initial_lr,
    OneCycleLR's max_lr/min_lr and momenta) and the scheduler is built with last_epoch."""
    def case(lib):
        optimizer = _optimizer(lib)
        for group in optimizer.param_groups:
            group.update(initial_lr=2 * group["lr"], max_lr=1.0, min_lr=0.001,
                         max_momentum=0.95, base_momentum=0.85)
        scheduler = RESUMABLE[name](lib.optim.lr_scheduler, optimizer, last_epoch)
        seen = [scheduler.get_last_lr()]
        for _ in range(5):
            optimizer.step()
            scheduler.step()
            seen.append((scheduler.get_last_lr(), [_momentum(g) for g in optimizer.param_groups]))
        return seen
    both(case)
