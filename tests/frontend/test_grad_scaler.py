"""ember.amp.GradScaler against torch.amp.GradScaler on the CPU: the scale sequence,
growth tracker and parameters over steps with injected inf/NaN gradients, explicit
unscale_, the errors of a misused scaler, state_dict round trips, and a disabled scaler."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ember


def _run(lib, steps: int = 14, bad_steps=(2, 5, 6, 11), unscale_at=(4, 9)):
    """(scale, growth tracker, params) after each step of SGD on a linear loss."""
    scaler = lib.amp.GradScaler("cpu", init_scale=8.0, growth_interval=3)
    p = lib.nn.Parameter(lib.ones(3))
    opt = lib.optim.SGD([p], lr=0.1, momentum=0.5)
    seq = []
    for i in range(steps):
        opt.zero_grad()
        loss = (p * lib.tensor([1.0, 2.0, 3.0])).sum()
        scaler.scale(loss).backward()
        if i in bad_steps:
            grad = p.grad.clone()
            grad[1] = float("nan") if i % 2 else float("inf")
            p.grad = grad
        if i in unscale_at:
            scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        seq.append((scaler.get_scale(), scaler.state_dict()["_growth_tracker"],
                    [round(v, 5) for v in p.detach().tolist()]))
    return seq, scaler


def test_scale_sequence_matches_torch_with_injected_infs():
    want, t_scaler = _run(torch)
    got, e_scaler = _run(ember)
    assert got == want
    assert e_scaler.state_dict() == t_scaler.state_dict()


def test_growth_stops_at_float32_overflow():
    for lib in (torch, ember):
        scaler = lib.amp.GradScaler("cpu", init_scale=2.0 ** 127, growth_interval=1)
        p = lib.nn.Parameter(lib.ones(1))
        opt = lib.optim.SGD([p], lr=0.0)
        (scaler.scale(p.sum()) * 0).backward()
        scaler.step(opt)
        scaler.update()
        assert scaler.get_scale() == 2.0 ** 127


def test_scale_nested_outputs_and_unscaled_grads():
    scaler = ember.amp.GradScaler("cpu", init_scale=4.0)
    a, b = ember.ones(2), ember.ones(1, dtype=ember.bfloat16)
    out = scaler.scale([a, (b,)])
    assert out[0].tolist() == [4.0, 4.0] and out[1][0].dtype is ember.bfloat16
    p = ember.nn.Parameter(ember.ones(2))
    opt = ember.optim.SGD([p], lr=1.0)
    scaler.scale((p * 3).sum()).backward()
    assert p.grad.tolist() == [12.0, 12.0]
    scaler.unscale_(opt)
    assert p.grad.tolist() == [3.0, 3.0]


def _misuse(lib):
    """The messages of each misuse, in order."""
    messages = []

    def attempt(fn):
        try:
            fn()
            messages.append(None)
        except (RuntimeError, AssertionError, ValueError) as err:
            messages.append((type(err).__name__, str(err)))

    scaler = lib.amp.GradScaler("cpu")
    p = lib.nn.Parameter(lib.ones(2))
    opt = lib.optim.SGD([p], lr=0.1)
    attempt(lambda: scaler.unscale_(opt))                   # no scale() yet
    scaler.scale(p.sum()).backward()
    attempt(lambda: scaler.unscale_(opt))
    attempt(lambda: scaler.unscale_(opt))                   # twice
    attempt(lambda: scaler.step(opt, closure=lambda: 0))
    attempt(lambda: scaler.step(opt))
    attempt(lambda: scaler.step(opt))                       # twice
    attempt(lambda: scaler.unscale_(opt))                   # after step
    attempt(lambda: scaler.update(lib.tensor([1.0, 2.0])))
    attempt(lambda: scaler.update())
    attempt(lambda: scaler.update())                        # nothing recorded
    attempt(lambda: lib.amp.GradScaler("cpu", growth_factor=0.5))
    half = lib.nn.Parameter(lib.ones(2, dtype=lib.float16))
    half.grad = lib.ones(2, dtype=lib.float16)
    attempt(lambda: scaler.unscale_(lib.optim.SGD([half], lr=1.0)))
    attempt(lambda: lib.amp.GradScaler("cpu").load_state_dict({}))
    return messages


def test_misuse_errors_match_torch():
    assert _misuse(ember) == _misuse(torch)


def test_state_dict_round_trip_and_setters():
    _, source = _run(ember, steps=5)
    target = ember.amp.GradScaler("cpu")
    target.load_state_dict(source.state_dict())
    assert target.state_dict() == source.state_dict()
    assert target.get_scale() == source.get_scale()
    target.set_growth_factor(3.0)
    target.set_backoff_factor(0.25)
    target.set_growth_interval(7)
    assert (target.get_growth_factor(), target.get_backoff_factor(),
            target.get_growth_interval()) == (3.0, 0.25, 7)
    torch_scaler = torch.amp.GradScaler("cpu")
    torch_scaler.load_state_dict(source.state_dict())
    assert torch_scaler.state_dict() == source.state_dict()


def test_disabled_scaler_is_transparent():
    scaler = ember.amp.GradScaler("cpu", enabled=False)
    x = ember.ones(2)
    assert scaler.scale(x) is x and scaler.get_scale() == 1.0 and scaler.state_dict() == {}
    p = ember.nn.Parameter(ember.ones(1))
    opt = ember.optim.SGD([p], lr=1.0)
    p.sum().backward()
    scaler.step(opt)
    scaler.update()
    assert p.tolist() == [0.0]
    if not ember.cuda.is_available():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert not ember.amp.GradScaler("cuda").is_enabled()
        assert "CUDA is not available" in str(caught[0].message)
        with pytest.warns(FutureWarning, match="torch.cuda.amp.GradScaler"):
            ember.cuda.amp.GradScaler()


def test_fp16_training_with_scaler_matches_torch():
    """A float16-autocast step on the CPU with loss scaling: losses and parameters."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 5)).astype(np.float32)
    w = rng.standard_normal((2, 5)).astype(np.float32)
    results = []
    for lib in (torch, ember):
        weight = lib.nn.Parameter(lib.tensor(w))
        opt = lib.optim.SGD([weight], lr=0.1)
        scaler = lib.amp.GradScaler("cpu", init_scale=2.0 ** 10)
        losses = []
        for _ in range(3):
            opt.zero_grad()
            with lib.autocast("cpu", dtype=lib.float16):
                loss = lib.nn.functional.mse_loss(lib.nn.functional.linear(lib.tensor(x), weight),
                                                  lib.zeros(8, 2))
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(float(loss.item()))
        results.append((losses, np.array(weight.detach().tolist())))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-2)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-2, atol=1e-3)
