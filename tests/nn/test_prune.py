"""nn.utils.prune against torch.nn.utils.prune (the pruning tutorial's calls): masks,
parameter/buffer names, forward values, gradients, iterative and global pruning,
remove. Random methods are compared by counts (their draws are ember's own)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as tprune

import ember
import ember.nn.utils.prune as eprune


def _pair(rng, build):
    ours, ref = build(ember), build(torch)
    with torch.no_grad():
        for (name, p), q in zip(ref.named_parameters(), ours.parameters()):
            value = rng.standard_normal(tuple(p.shape)).astype(np.float32)
            p.copy_(torch.from_numpy(value))
            with ember.no_grad():
                q.copy_(ember.tensor(value))
    return ours, ref


def _conv(lib):
    return lib.nn.Conv2d(2, 4, 3)


def _check_same(ours, ref, x):
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in ref.named_buffers()]
    assert list(ours.state_dict()) == list(ref.state_dict())
    for name, buf in ref.named_buffers():
        np.testing.assert_array_equal(dict(ours.named_buffers())[name].numpy(), buf.numpy())
    out, out_ref = ours(ember.tensor(x)), ref(torch.from_numpy(x))
    np.testing.assert_allclose(out.detach().numpy(), out_ref.detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    out.sum().backward()
    out_ref.sum().backward()
    for (name, p), q in zip(ref.named_parameters(), ours.parameters()):
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)


@pytest.mark.parametrize("steps", [
    [("l1_unstructured", dict(name="weight", amount=0.3))],
    [("l1_unstructured", dict(name="bias", amount=2))],
    [("ln_structured", dict(name="weight", amount=0.5, n=2, dim=0))],
    [("ln_structured", dict(name="weight", amount=1, n=1, dim=1))],
    [("l1_unstructured", dict(name="weight", amount=0.2)),        # iterative pruning
     ("ln_structured", dict(name="weight", amount=0.5, n=2, dim=0)),
     ("l1_unstructured", dict(name="weight", amount=5))],
])
def test_pruning_matches_torch(steps, rng):
    ours, ref = _pair(rng, _conv)
    for fn, kwargs in steps:
        getattr(eprune, fn)(ours, **kwargs)
        getattr(tprune, fn)(ref, **kwargs)
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    _check_same(ours, ref, x)
    assert eprune.is_pruned(ours) and tprune.is_pruned(ref)
    for name in {kwargs["name"] for _, kwargs in steps}:
        eprune.remove(ours, name)
        tprune.remove(ref, name)
    assert not eprune.is_pruned(ours)
    ours.zero_grad()
    ref.zero_grad()
    _check_same(ours, ref, x)


def test_global_unstructured_and_custom_mask_match_torch(rng):
    def build(lib):
        return lib.nn.Sequential(lib.nn.Linear(4, 6), lib.nn.ReLU(), lib.nn.Linear(6, 3))
    ours, ref = _pair(rng, build)
    for prune, model in ((eprune, ours), (tprune, ref)):
        prune.global_unstructured([(model[0], "weight"), (model[2], "weight")],
                                  pruning_method=prune.L1Unstructured, amount=0.4)
    mask = np.array([1, 0, 1], dtype=np.float32)
    eprune.custom_from_mask(ours[2], "bias", ember.tensor(mask))
    tprune.custom_from_mask(ref[2], "bias", torch.from_numpy(mask))
    x = rng.standard_normal((2, 4)).astype(np.float32)
    _check_same(ours, ref, x)
    zeros = sum(int((m.weight == 0).sum()) for m in (ours[0], ours[2]))
    assert zeros == round(0.4 * (24 + 18))


def test_random_pruning_counts():
    ember.manual_seed(0)
    layer = ember.nn.Linear(5, 4)
    eprune.random_unstructured(layer, "weight", amount=0.25)
    assert int((layer.weight_mask == 0).sum()) == 5
    eprune.random_structured(layer, "weight", amount=2, dim=0)
    rows_alive = (layer.weight_mask.sum(dim=1) != 0).sum().item()
    assert rows_alive == 2


def test_errors_like_torch():
    layer = ember.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="should be smaller than the number of parameters"):
        eprune.l1_unstructured(layer, "weight", amount=10)
    with pytest.raises(ValueError, match="float in the range"):
        eprune.l1_unstructured(layer, "weight", amount=1.5)
    with pytest.raises(ValueError, match="has to be pruned before"):
        eprune.remove(ember.nn.Linear(2, 2), "weight")
