"""Sparse gradients in nn and optim against torch: Embedding / EmbeddingBag with
sparse=True, the gradients' accumulation, and SGD / Adagrad / SparseAdam stepping on them
(the sparse parts of PyTorch's test_nn.py and test_optim.py, in cases of our own)."""
from __future__ import annotations

import numpy as np
import pytest

from sparse_suite_harness import Cases, run_case, run_error_case

case = Cases()
err = Cases()
# torch warns once per process that it does not check sparse invariants by default
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks",
                                        "ignore:Sparse CSR tensor support is in beta")

WEIGHT = np.random.default_rng(7).standard_normal((8, 3)).astype(np.float32)
LOOKUP = [[1, 4, 4], [0, 7, 1]]


def embedding(lib, **kwargs):
    m = lib.nn.Embedding(8, 3, sparse=True, **kwargs)
    with lib.no_grad():
        m.weight.copy_(lib.tensor(WEIGHT))
    return m


def bag(lib, **kwargs):
    m = lib.nn.EmbeddingBag(8, 3, sparse=True, **kwargs)
    with lib.no_grad():
        m.weight.copy_(lib.tensor(WEIGHT))
    return m


def _grad(m):
    g = m.weight.grad
    return g.layout, g.is_coalesced(), g._nnz(), g.to_dense(), g.coalesce()


@case
def embedding_grad_uncoalesced_entries(lib):
    m = embedding(lib)
    m(lib.tensor(LOOKUP)).sum().backward()
    return _grad(m), m.weight.grad._indices(), m.weight.grad._values()


@case
def embedding_grad_weighted_output(lib):
    m = embedding(lib)
    (m(lib.tensor(LOOKUP)) * lib.arange(3.0)).pow(2).sum().backward()
    return _grad(m)


@case
def embedding_grad_padding_idx(lib):
    m = embedding(lib, padding_idx=4)
    m(lib.tensor(LOOKUP)).sum().backward()
    return _grad(m)


@case
def embedding_grad_1d_input(lib):
    m = embedding(lib)
    m(lib.tensor([3, 3, 6])).sum().backward()
    return _grad(m)


@case
def embedding_grad_accumulates_over_backwards(lib):
    m = embedding(lib)
    m(lib.tensor(LOOKUP)).sum().backward()
    m(lib.tensor([[2, 2]])).mul(3).sum().backward()
    return _grad(m)


@case
def embedding_grad_two_lookups_one_graph(lib):
    m = embedding(lib)
    (m(lib.tensor([1, 2])).sum() + m(lib.tensor([2, 3])).pow(2).sum()).backward()
    return m.weight.grad.to_dense()


@case
def embedding_from_pretrained_sparse(lib):
    m = lib.nn.Embedding.from_pretrained(lib.tensor(WEIGHT), freeze=False, sparse=True)
    m(lib.tensor([5, 0])).sum().backward()
    return _grad(m)


@case
def functional_embedding_sparse(lib):
    w = lib.tensor(WEIGHT, requires_grad=True)
    lib.nn.functional.embedding(lib.tensor(LOOKUP), w, sparse=True).sum().backward()
    return w.grad.to_dense(), w.grad.layout


@case
def functional_embedding_sparse_padding(lib):
    w = lib.tensor(WEIGHT, requires_grad=True)
    lib.nn.functional.embedding(lib.tensor(LOOKUP), w, padding_idx=1,
                                sparse=True).sum().backward()
    return w.grad.to_dense()


@case
def embedding_max_norm_sparse(lib):
    m = embedding(lib, max_norm=1.0)
    out = m(lib.tensor(LOOKUP))
    out.sum().backward()
    return out, m.weight, _grad(m)


@case
def embedding_grad_after_zero_grad_cycle(lib):
    m = embedding(lib)
    opt = lib.optim.SGD(m.parameters(), lr=0.1)
    for lookup in ([1, 2], [3, 3, 7]):
        opt.zero_grad()
        m(lib.tensor(lookup)).sum().backward()
    return _grad(m)


@case
def embedding_output_same_as_dense(lib):
    return embedding(lib)(lib.tensor(LOOKUP))


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_embedding_bag_offsets_grad(mode):
    def fn(lib):
        m = bag(lib, mode=mode)
        out = m(lib.tensor([1, 4, 4, 0, 7]), lib.tensor([0, 2, 2]))
        out.pow(2).sum().backward()
        return out, _grad(m)
    run_case(fn)


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_embedding_bag_2d_input_grad(mode):
    def fn(lib):
        m = bag(lib, mode=mode)
        out = m(lib.tensor(LOOKUP))
        (out * lib.tensor([1.0, -2.0, 3.0])).sum().backward()
        return out, _grad(m)
    run_case(fn)


@case
def embedding_bag_per_sample_weights(lib):
    m = bag(lib, mode="sum")
    w = lib.tensor([0.5, 2.0, -1.0, 1.0, 3.0])
    out = m(lib.tensor([1, 4, 4, 0, 7]), lib.tensor([0, 3]), per_sample_weights=w)
    out.sum().backward()
    return out, m.weight.grad.to_dense()


@case
def embedding_bag_include_last_offset(lib):
    m = bag(lib, mode="sum", include_last_offset=True)
    out = m(lib.tensor([1, 4, 4, 0, 7]), lib.tensor([0, 2, 5]))
    out.sum().backward()
    return out, m.weight.grad.to_dense()


@case
def embedding_bag_padding_idx(lib):
    m = bag(lib, mode="mean", padding_idx=4)
    out = m(lib.tensor([1, 4, 4, 0, 7]), lib.tensor([0, 3]))
    out.sum().backward()
    return out, m.weight.grad.to_dense()


@case
def functional_embedding_bag_sparse(lib):
    w = lib.tensor(WEIGHT, requires_grad=True)
    out = lib.nn.functional.embedding_bag(lib.tensor([1, 2, 2, 5]), w, lib.tensor([0, 1]),
                                          mode="sum", sparse=True)
    out.sum().backward()
    return out, w.grad.layout, w.grad.to_dense()


# --- optimizers -----------------------------------------------------------------------
def _train(lib, optimizer, kwargs, steps=3):
    m = embedding(lib)
    opt = getattr(lib.optim, optimizer)(m.parameters(), **kwargs)
    for step in range(steps):
        opt.zero_grad()
        m(lib.tensor([[1, 2], [2, 5 + step]])).pow(2).sum().backward()
        opt.step()
    return m.weight


@pytest.mark.parametrize("optimizer,kwargs", [
    ("SGD", {"lr": 0.05}), ("SGD", {"lr": 0.05, "momentum": 0.5}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "nesterov": True}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1}),
    ("SGD", {"lr": 0.05, "maximize": True}),
    ("SparseAdam", {"lr": 0.05}), ("SparseAdam", {"lr": 0.02, "betas": (0.8, 0.99)}),
    ("SparseAdam", {"lr": 0.05, "eps": 1e-3}), ("SparseAdam", {"lr": 0.05, "maximize": True}),
    ("Adagrad", {"lr": 0.1}), ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.5}),
    ("Adagrad", {"lr": 0.1, "eps": 1e-3}),
], ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={w}" for k, w in v.items()))
def test_optimizer_steps_on_sparse_grads(optimizer, kwargs):
    run_case(lambda lib: _train(lib, optimizer, kwargs), rtol=1e-5, atol=1e-6)


@case
def sparse_adam_state_after_steps(lib):
    m = embedding(lib)
    opt = lib.optim.SparseAdam(m.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        m(lib.tensor([1, 3])).sum().backward()
        opt.step()
    state = opt.state[m.weight]
    return state["step"] if isinstance(state["step"], int) else state["step"].item(), \
        state["exp_avg"], state["exp_avg_sq"]


@case
def sparse_adam_with_mixed_param_groups(lib):
    m = embedding(lib)
    lin = lib.nn.Linear(3, 1)
    with lib.no_grad():
        lin.weight.copy_(lib.tensor([[0.5, -1.0, 2.0]]))
        lin.bias.fill_(0.1)
    sparse_opt = lib.optim.SparseAdam(list(m.parameters()), lr=0.05)
    dense_opt = lib.optim.Adam(lin.parameters(), lr=0.05)
    for _ in range(2):
        sparse_opt.zero_grad()
        dense_opt.zero_grad()
        lin(m(lib.tensor([1, 6]))).pow(2).sum().backward()
        sparse_opt.step()
        dense_opt.step()
    return m.weight, lin.weight, lin.bias


@case
def zero_grad_set_to_none_false_on_sparse(lib):
    m = embedding(lib)
    opt = lib.optim.SGD(m.parameters(), lr=0.1)
    m(lib.tensor([1])).sum().backward()
    opt.zero_grad(set_to_none=False)
    g = m.weight.grad
    return g is None or g.to_dense().abs().sum().item() == 0.0


@case
def zero_grad_set_to_none_default(lib):
    m = embedding(lib)
    opt = lib.optim.SparseAdam(m.parameters(), lr=0.1)
    m(lib.tensor([1])).sum().backward()
    opt.zero_grad()
    return m.weight.grad is None


@case
def sgd_step_matches_manual_sparse_update(lib):
    m = embedding(lib)
    opt = lib.optim.SGD(m.parameters(), lr=0.5)
    m(lib.tensor([2, 2, 6])).sum().backward()
    opt.step()
    return m.weight


@pytest.mark.parametrize("fn,opts", case.params())
def test_case(fn, opts):
    run_case(fn, **opts)


@err(match="(?i)sparse")
def err_adam_refuses_sparse(lib):
    _train(lib, "Adam", {"lr": 0.1}, steps=1)


@err(match="(?i)sparse")
def err_adamw_refuses_sparse(lib):
    _train(lib, "AdamW", {"lr": 0.1}, steps=1)


@err(match="(?i)sparse")
def err_rmsprop_refuses_sparse(lib):
    _train(lib, "RMSprop", {"lr": 0.1}, steps=1)


@err(match="(?i)weight_decay|sparse")
def err_adagrad_weight_decay_with_sparse(lib):
    _train(lib, "Adagrad", {"lr": 0.1, "weight_decay": 0.1}, steps=1)


@err(match="(?i)dense|SparseAdam")
def err_sparse_adam_refuses_dense_grads(lib):
    lin = lib.nn.Linear(2, 1)
    opt = lib.optim.SparseAdam(lin.parameters(), lr=0.1)
    lin(lib.ones(1, 2)).sum().backward()
    opt.step()


@err(match="(?i)scale_grad_by_freq")
def err_scale_grad_by_freq_sparse(lib):
    m = lib.nn.Embedding(4, 2, sparse=True, scale_grad_by_freq=True)
    m(lib.tensor([1, 1])).sum().backward()


@err(match="(?i)max")
def err_embedding_bag_max_sparse(lib):
    bag(lib, mode="max")(lib.tensor([1, 2]), lib.tensor([0]))


@err(match=r"add\(sparse, dense\) is not supported")
def err_sgd_weight_decay_sparse(lib):
    _train(lib, "SGD", {"lr": 0.1, "weight_decay": 0.1}, steps=1)


@pytest.mark.parametrize("fn,opts", err.params())
def test_error(fn, opts):
    run_error_case(fn, **opts)
