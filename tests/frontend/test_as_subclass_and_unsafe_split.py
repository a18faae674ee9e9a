"""Tensor.as_subclass and unsafe_split_with_sizes against torch."""
import numpy as np
import torch

import ember


def test_as_subclass_shares_memory_and_stays_on_the_graph():
    class Mine(ember.Tensor):
        pass

    class TorchMine(torch.Tensor):
        pass

    x, tx = ember.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    y, ty = x.as_subclass(Mine), tx.as_subclass(TorchMine)
    assert isinstance(y, Mine) and y.requires_grad == ty.requires_grad
    assert y.is_leaf == ty.is_leaf
    (y * ember.arange(3.)).sum().backward()
    (ty * torch.arange(3.)).sum().backward()
    assert np.array_equal(x.grad.numpy(), tx.grad.numpy())
    plain = ember.zeros(3)
    plain.as_subclass(Mine)[1] = 2.0
    assert plain.tolist() == [0.0, 2.0, 0.0]


def test_unsafe_split_with_sizes_matches_torch():
    x = np.arange(12.0).reshape(3, 4)
    got = ember.unsafe_split_with_sizes(ember.tensor(x), [1, 3], 1)
    want = torch.unsafe_split_with_sizes(torch.tensor(x), [1, 3], 1)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.array_equal(g.numpy(), w.numpy())
    assert [tuple(p.shape) for p in ember.tensor(x).unsafe_split_with_sizes([2, 1])] == \
        [tuple(p.shape) for p in torch.tensor(x).unsafe_split_with_sizes([2, 1])]


def test_top_level_grad_scaler_is_amps_as_in_torch():
    assert (torch.GradScaler is torch.amp.GradScaler) and \
        (ember.GradScaler is ember.amp.GradScaler)
