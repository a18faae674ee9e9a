"""Embedding(sparse=True) / F.embedding(sparse=True) / EmbeddingBag(sparse=True): sparse
COO weight gradients, and the optimizers that take them, against torch."""
import numpy as np
import pytest
import torch

import ember

INDICES = [[1, 2], [2, 5], [1, 1]]


def _pair(padding_idx=None):
    t = torch.nn.Embedding(10, 3, sparse=True, padding_idx=padding_idx)
    e = ember.nn.Embedding(10, 3, sparse=True, padding_idx=padding_idx)
    with ember.no_grad():
        e.weight.copy_(ember.tensor(t.weight.detach().numpy()))
    return t, e


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_gradient_is_torchs_sparse_coo(padding_idx):
    t, e = _pair(padding_idx)
    t(torch.tensor(INDICES)).pow(2).sum().backward()
    e(ember.tensor(INDICES)).pow(2).sum().backward()
    tg, eg = t.weight.grad, e.weight.grad
    assert eg.is_sparse and eg.layout == ember.sparse_coo and not eg.is_coalesced()
    assert np.array_equal(eg._indices().numpy(), tg._indices().numpy())
    np.testing.assert_allclose(eg._values().numpy(), tg._values().numpy(), rtol=1e-6)
    t(torch.tensor(INDICES)).sum().backward()          # a second backward accumulates
    e(ember.tensor(INDICES)).sum().backward()
    assert e.weight.grad.is_sparse
    # (sums of entries near zero: torch adds them in another order, so an atol too)
    np.testing.assert_allclose(e.weight.grad.to_dense().numpy(),
                               t.weight.grad.to_dense().numpy(), rtol=1e-6, atol=1e-6)


def test_sparse_plus_dense_use_of_one_weight_gives_a_dense_gradient():
    t, e = _pair()
    (t(torch.tensor(INDICES)).sum() + t.weight.pow(2).sum()).backward()
    (e(ember.tensor(INDICES)).sum() + e.weight.pow(2).sum()).backward()
    assert not e.weight.grad.is_sparse and not t.weight.grad.is_sparse
    np.testing.assert_allclose(e.weight.grad.numpy(), t.weight.grad.numpy(), rtol=1e-6)


def test_functional_embedding_sparse_and_scale_grad_by_freq_refused_as_torch():
    w = ember.randn(6, 2, requires_grad=True)
    ember.nn.functional.embedding(ember.tensor([1, 1, 3]), w, sparse=True).sum().backward()
    assert w.grad.is_sparse and w.grad.to_dense().sum(1).tolist() == [0, 4, 0, 2, 0, 0]
    with pytest.raises(RuntimeError, match="scale_grad_by_freq not supported with sparse"):
        ember.nn.functional.embedding(ember.tensor([1]), w, scale_grad_by_freq=True,
                                      sparse=True).sum().backward()


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_embedding_bag_sparse_gradient(mode):
    t = torch.nn.EmbeddingBag(10, 3, mode=mode, sparse=True, padding_idx=4)
    e = ember.nn.EmbeddingBag(10, 3, mode=mode, sparse=True, padding_idx=4)
    with ember.no_grad():
        e.weight.copy_(ember.tensor(t.weight.detach().numpy()))
    idx, off = [1, 2, 4, 5, 1], [0, 2]
    t(torch.tensor(idx), torch.tensor(off)).pow(2).sum().backward()
    e(ember.tensor(idx), ember.tensor(off)).pow(2).sum().backward()
    assert e.weight.grad.is_sparse and e.weight.grad._nnz() == t.weight.grad._nnz()
    np.testing.assert_allclose(e.weight.grad.to_dense().numpy(),
                               t.weight.grad.to_dense().numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="max mode does not support sparse weights"):
        ember.nn.EmbeddingBag(10, 3, mode="max", sparse=True)(ember.tensor(idx),
                                                              ember.tensor(off))


def _train(lib, optimizer, kwargs):
    t_weight = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    m = lib.nn.Embedding(10, 3, sparse=True)
    with lib.no_grad():
        m.weight.copy_(lib.tensor(t_weight))
    opt = getattr(lib.optim, optimizer)(m.parameters(), **kwargs)
    for step in range(3):
        opt.zero_grad()
        m(lib.tensor([[1, 2], [2, 5 + step]])).pow(2).sum().backward()
        opt.step()
    return m.weight.detach().numpy()


@pytest.mark.parametrize("optimizer,kwargs", [("SGD", {"lr": 0.1}),
                                              ("SGD", {"lr": 0.1, "momentum": 0.9}),
                                              ("SparseAdam", {"lr": 0.1}),
                                              ("Adagrad", {"lr": 0.1})])
def test_optimizers_step_on_sparse_gradients_as_torch(optimizer, kwargs):
    np.testing.assert_allclose(_train(ember, optimizer, kwargs),
                               _train(torch, optimizer, kwargs), rtol=1e-5, atol=1e-6)


def test_adam_refuses_sparse_gradients_as_torch():
    with pytest.raises(RuntimeError) as want:
        _train(torch, "Adam", {"lr": 0.1})
    with pytest.raises(RuntimeError) as got:
        _train(ember, "Adam", {"lr": 0.1})
    assert str(got.value) == str(want.value)
