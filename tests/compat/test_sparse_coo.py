"""Sparse COO tensors against torch: construction checks, coalescing rules, what
needs a dense tensor, and the sparse gradient of torch.sparse.mm."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402

_INDICES = [[0, 1, 1, 2], [2, 0, 0, 1]]
_VALUES = [3.0, 4.0, 5.0, 6.0]


@pytest.mark.parametrize("lib", [torch, ember], ids=["torch", "ember"])
def test_construction_errors_match_torch(lib):
    with pytest.raises(RuntimeError, match="same nnz"):
        lib.sparse_coo_tensor(_INDICES, [1.0, 2.0], (3, 3))
    with pytest.raises(RuntimeError, match="inconsistent with indices"):
        lib.sparse_coo_tensor(_INDICES, _VALUES, (2, 3), check_invariants=True)
    uncoalesced = lib.sparse_coo_tensor(_INDICES, _VALUES, (3, 3))
    with pytest.raises(RuntimeError, match="uncoalesced"):
        uncoalesced.indices()


def _inferred_size_and_grad(lib):
    sparse = lib.sparse_coo_tensor(_INDICES, _VALUES, requires_grad=True)
    dense = lib.tensor(np.arange(6, dtype=np.float32).reshape(3, 2))
    lib.sparse.mm(sparse, dense).sum().backward()
    grad = sparse.grad.coalesce()
    return (tuple(sparse.shape), grad.indices().numpy(), grad.values().numpy(),
            sparse.coalesce().values().detach().numpy())


def test_inferred_size_coalescing_and_sparse_gradient_match_torch():
    for got, want in zip(_inferred_size_and_grad(ember), _inferred_size_and_grad(torch)):
        np.testing.assert_allclose(got, want)


def _products(lib):
    sparse = lib.sparse_coo_tensor(_INDICES, _VALUES, (3, 3))
    dense = lib.tensor(np.arange(9, dtype=np.float32).reshape(3, 3))
    return [lib.mm(sparse, dense), lib.matmul(sparse, dense[:, 0]), dense @ sparse,
            lib.addmm(dense, sparse, dense, beta=0.5, alpha=2.0), lib.spmm(sparse, dense)]


def test_dense_products_take_sparse_operands_as_torch_does():
    for got, want in zip(_products(ember), _products(torch)):
        np.testing.assert_allclose(got.numpy(), want.numpy())


def test_dense_ops_refuse_sparse_tensors_by_name():
    sparse = ember.sparse_coo_tensor(_INDICES, _VALUES, (3, 3))
    with pytest.raises(TypeError, match="exp: a sparse COO tensor"):
        ember.exp(sparse)               # exp(0) is 1: not an op of the stored values
    with pytest.raises(NotImplementedError, match="to_dense"):
        ember.exp(sparse)
    with pytest.raises(RuntimeError, match=r"Use add\(dense, sparse\) instead"):
        sparse + ember.ones(3, 3)
    with pytest.raises(NotImplementedError, match="'cumsum' is not supported"):
        sparse.cumsum(0)
    assert sparse.is_sparse and not ember.ones(1).is_sparse
    assert ember.ones(2).to_dense() is not None
