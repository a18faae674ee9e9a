"""optim.swa_utils against torch: the SWA recipe (AveragedModel + SWALR after a switch
epoch, update_bn at the end), EMA averaging, custom avg_fn, use_buffers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember


def _model(lib):
    return lib.nn.Sequential(lib.nn.Linear(4, 6), lib.nn.BatchNorm1d(6), lib.nn.ReLU(),
                             lib.nn.Linear(6, 2))


def _same_start(rng):
    ours, ref = _model(ember), _model(torch)
    for (_, p), q in zip(ref.named_parameters(), ours.parameters()):
        value = rng.standard_normal(tuple(p.shape)).astype(np.float32)
        with torch.no_grad():
            p.copy_(torch.from_numpy(value))
        with ember.no_grad():
            q.copy_(ember.tensor(value))
    return ours, ref


def _swa_recipe(lib, model, batches, averaged_kwargs, anneal_strategy):
    swa_utils = lib.optim.swa_utils
    optimizer = lib.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    swa_model = swa_utils.AveragedModel(model, **averaged_kwargs(swa_utils))
    scheduler = lib.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    swa_scheduler = swa_utils.SWALR(optimizer, swa_lr=0.05, anneal_epochs=2,
                                    anneal_strategy=anneal_strategy)
    lrs = []
    for epoch in range(5):
        for x, y in batches:
            optimizer.zero_grad()
            lib.nn.functional.cross_entropy(model(lib.from_numpy(x)),
                                            lib.from_numpy(y)).backward()
            optimizer.step()
        if epoch >= 2:
            swa_model.update_parameters(model)
            swa_scheduler.step()
        else:
            scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    loader = [(lib.from_numpy(x), lib.from_numpy(y)) for x, y in batches]
    swa_utils.update_bn(loader, swa_model)
    swa_model.eval()
    out = swa_model(lib.from_numpy(batches[0][0]))
    state = {k: v.detach().numpy() for k, v in swa_model.state_dict().items()}
    return lrs, out.detach().numpy(), state


@pytest.mark.parametrize("averaging,anneal_strategy", [
    ("swa", "cos"), ("ema", "linear"), ("avg_fn", "cos"), ("use_buffers", "linear")])
def test_swa_recipe_matches_torch(averaging, anneal_strategy, rng):
    kwargs = {
        "swa": lambda u: {},
        "ema": lambda u: {"multi_avg_fn": u.get_ema_multi_avg_fn(0.9)},
        "avg_fn": lambda u: {"avg_fn": u.get_ema_avg_fn(0.8)},
        "use_buffers": lambda u: {"use_buffers": True},
    }[averaging]
    batches = [(rng.standard_normal((5, 4)).astype(np.float32), rng.integers(0, 2, 5))
               for _ in range(3)]
    ours_model, ref_model = _same_start(rng)
    ours = _swa_recipe(ember, ours_model, batches, kwargs, anneal_strategy)
    ref = _swa_recipe(torch, ref_model, batches, kwargs, anneal_strategy)
    assert ours[0] == pytest.approx(ref[0], rel=1e-9)
    np.testing.assert_allclose(ours[1], ref[1], rtol=1e-4, atol=1e-5)
    assert list(ours[2]) == list(ref[2])
    for key, value in ref[2].items():
        np.testing.assert_allclose(ours[2][key], value, rtol=1e-4, atol=1e-5, err_msg=key)


def test_swalr_arguments_checked():
    optimizer = ember.optim.SGD([ember.nn.Parameter(ember.ones(1))], lr=0.1)
    with pytest.raises(ValueError, match="anneal_strategy"):
        ember.optim.swa_utils.SWALR(optimizer, swa_lr=0.05, anneal_strategy="step")
    with pytest.raises(ValueError, match="anneal_epochs"):
        ember.optim.swa_utils.SWALR(optimizer, swa_lr=0.05, anneal_epochs=-1)
