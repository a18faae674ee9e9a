"""Compressed sparse layouts (CSR, CSC, BSR, BSC) against torch: construction, index
tensors, conversions, products with dense tensors and errors (the basic parts of
PyTorch's test_sparse_csr.py, in cases of our own)."""
from __future__ import annotations

import numpy as np
import pytest

from sparse_suite_harness import Cases, run_case, run_error_case

case = Cases()
err = Cases()
# torch warns once per process that it does not check sparse invariants by default
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks",
                                        "ignore:Sparse CSR tensor support is in beta")

DENSE = np.array([[0, 1.5, 0, 0], [2, 0, 0, -3], [0, 0, 0, 0]], dtype=np.float32)
BLOCKY = np.array([[1, 2, 0, 0], [3, 4, 0, 0], [0, 0, 0, 5], [0, 0, 6, 0]], dtype=np.float32)
CROW, COL, VAL = [0, 1, 3, 3], [1, 0, 3], [1.5, 2.0, -3.0]
RHS = np.arange(8, dtype=np.float32).reshape(4, 2) - 3


def csr(lib):
    return lib.sparse_csr_tensor(lib.tensor(CROW), lib.tensor(COL), lib.tensor(VAL), (3, 4))


@case
def csr_construct(lib):
    s = csr(lib)
    return s, s.layout, s.shape, s.dtype, s._nnz()


@case
def csr_construct_inferred_size(lib):
    return lib.sparse_csr_tensor(CROW, COL, VAL).shape


@case
def csr_parts(lib):
    s = csr(lib)
    return s.crow_indices(), s.col_indices(), s.values()


@case
def csr_flags(lib):
    s = csr(lib)
    return s.is_sparse, s.is_sparse_csr, lib.ones(2).is_sparse_csr


@case
def csr_dtype_argument(lib):
    return lib.sparse_csr_tensor(CROW, COL, VAL, (3, 4), dtype=lib.float64)


@case
def csr_to_dense(lib):
    return csr(lib).to_dense()


@case
def dense_to_sparse_csr(lib):
    return lib.tensor(DENSE).to_sparse_csr()


@case
def dense_to_sparse_layout_csr(lib):
    return lib.tensor(DENSE).to_sparse(layout=lib.sparse_csr)


@case
def dense_to_sparse_csc(lib):
    return lib.tensor(DENSE).to_sparse_csc()


@case
def dense_to_sparse_csc_parts(lib):
    s = lib.tensor(DENSE).to_sparse_csc()
    return s.ccol_indices(), s.row_indices(), s.values(), s.layout


@case
def dense_to_sparse_bsr(lib):
    return lib.tensor(BLOCKY).to_sparse_bsr((2, 2))


@case
def dense_to_sparse_bsr_parts(lib):
    s = lib.tensor(BLOCKY).to_sparse_bsr((2, 2))
    return s.crow_indices(), s.col_indices(), s.values(), s.values().shape


@case
def dense_to_sparse_bsr_1x2(lib):
    return lib.tensor(BLOCKY).to_sparse_bsr((1, 2))


@case
def dense_to_sparse_bsc(lib):
    return lib.tensor(BLOCKY).to_sparse_bsc((2, 2))


@case
def bsr_to_dense(lib):
    s = lib.sparse_bsr_tensor([0, 1, 2], [0, 1], lib.tensor(np.arange(8.0).reshape(2, 2, 2)),
                              (4, 4))
    return s.to_dense()


@case
def csc_construct_to_dense(lib):
    return lib.sparse_csc_tensor([0, 1, 2, 2, 3], [1, 0, 1], [2.0, 1.5, -3.0], (3, 4))


@case
def csr_to_coo(lib):
    return csr(lib).to_sparse()


@case
def csr_to_sparse_coo_method(lib):
    return csr(lib).to_sparse_coo()


@case
def coo_to_csr(lib):
    return lib.tensor(DENSE).to_sparse().to_sparse_csr()


@case
def coo_uncoalesced_to_csr(lib):
    s = lib.sparse_coo_tensor([[1, 0, 1], [3, 1, 3]], [1.0, 2.0, 3.0], (3, 4))
    return s.to_sparse_csr()


@case
def csr_to_csc(lib):
    return csr(lib).to_sparse_csc()


@case
def csr_round_trip(lib):
    return lib.tensor(DENSE).to_sparse_csr().to_dense()


@case
def csr_all_zero(lib):
    return lib.zeros(2, 3).to_sparse_csr()


@case
def csr_int_values(lib):
    return lib.tensor([[0, 3], [4, 0]]).to_sparse_csr()


@case
def csr_matmul_dense(lib):
    return csr(lib) @ lib.tensor(RHS)


@case
def csr_mm_dense(lib):
    return lib.mm(csr(lib), lib.tensor(RHS))


@case
def csr_matmul_vector(lib):
    return lib.matmul(csr(lib), lib.tensor(RHS[:, 0].copy()))


@case
def csr_mv(lib):
    return lib.mv(csr(lib), lib.tensor(RHS[:, 1].copy()))


@case
def dense_matmul_csr(lib):
    return lib.tensor(np.ones((2, 3), dtype=np.float32)) @ csr(lib)


@case
def csr_addmm(lib):
    return lib.addmm(lib.ones(3, 2), csr(lib), lib.tensor(RHS), beta=0.5, alpha=2.0)


@case
def csc_matmul_dense(lib):
    return lib.tensor(DENSE).to_sparse_csc() @ lib.tensor(RHS)


@case
def bsr_matmul_dense(lib):
    return lib.tensor(BLOCKY).to_sparse_bsr((2, 2)) @ lib.tensor(RHS)


@case
def csr_matmul_grad(lib):
    d = lib.tensor(RHS, requires_grad=True)
    (csr(lib) @ d).pow(2).sum().backward()
    return d.grad


@case
def csr_values_grad(lib):
    v = lib.tensor(VAL, requires_grad=True)
    s = lib.sparse_csr_tensor(lib.tensor(CROW), lib.tensor(COL), v, (3, 4))
    (s @ lib.tensor(RHS)).sum().backward()
    return v.grad


@case
def csr_mul_scalar(lib):
    return csr(lib) * 2.0


@case
def csr_neg(lib):
    return -csr(lib)


@case
def csr_abs(lib):
    return csr(lib).abs(), lib.abs(-csr(lib))


@case
def csr_add_csr(lib):
    return csr(lib) + csr(lib)


@case
def dense_add_csr(lib):
    return lib.ones(3, 4) + csr(lib)


@case
def csr_t_is_csc(lib):
    s = csr(lib).t()
    return s.layout, s.shape, s.to_dense()


@case
def csr_clone_detach(lib):
    s = csr(lib)
    return s.clone(), s.detach().requires_grad


@case
def csr_float64(lib):
    return csr(lib).to(lib.float64)


@case
def sparse_mm_with_csr(lib):
    return lib.sparse.mm(csr(lib), lib.tensor(RHS))


@case
def sparse_mm_csr_csr(lib):
    other = lib.tensor(np.ones((4, 3), dtype=np.float32)).to_sparse_csr()
    out = lib.sparse.mm(csr(lib), other)
    return out.layout, out.to_dense()


@case
def sparse_addmm_with_csr(lib):
    return lib.sparse.addmm(lib.ones(3, 2), csr(lib), lib.tensor(RHS))


@case
def csr_sum_all(lib):
    return csr(lib).sum(), lib.sum(csr(lib))


@case
def csr_numel_dim_device(lib):
    s = csr(lib)
    return s.numel(), s.dim(), str(s.device), s.requires_grad, s.sparse_dim(), s.dense_dim()


@pytest.mark.parametrize("fn,opts", case.params())
def test_case(fn, opts):
    run_case(fn, **opts)


@err(match="crow_indices")
def err_csr_crow_length(lib):
    lib.sparse_csr_tensor([0, 1, 3], COL, VAL, (3, 4), check_invariants=True)


@err(match="(?i)col_indices|values|nnz|same")
def err_csr_values_length(lib):
    lib.sparse_csr_tensor(CROW, COL, VAL[:2], (3, 4), check_invariants=True)


@err(match="(?i)col_indices|range|bound")
def err_csr_col_out_of_range(lib):
    lib.sparse_csr_tensor(CROW, [1, 0, 7], VAL, (3, 4), check_invariants=True)


@err(match="(?i)ccol_indices|column")
def err_csr_has_no_ccol(lib):
    csr(lib).ccol_indices()


@err(match="(?i)mm|shape|size|multiplied")
def err_csr_matmul_shape(lib):
    csr(lib) @ lib.ones(3, 2)


@err(match="(?i)blocksize|divisible|block")
def err_bsr_bad_blocksize(lib):
    lib.tensor(DENSE).to_sparse_bsr((2, 3))


@err(match="(?i)exp|csr|sparse")
def err_csr_exp_unsupported(lib):
    lib.exp(csr(lib))


@pytest.mark.parametrize("fn,opts", err.params())
def test_error(fn, opts):
    run_error_case(fn, **opts)
