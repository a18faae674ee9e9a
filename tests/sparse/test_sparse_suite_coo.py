"""Sparse COO tensors against torch: construction, metadata, coalescing, conversions,
arithmetic, reductions, products, shape ops, autograd and printing (the ground of
PyTorch's test_sparse.py, in cases of our own)."""
from __future__ import annotations

import numpy as np
import pytest

from sparse_suite_harness import Cases, run_case, run_error_case

case = Cases()
err = Cases()
# torch warns once per process that it does not check sparse invariants by default
pytestmark = pytest.mark.filterwarnings("ignore:Sparse invariant checks",
                                        "ignore:Sparse CSR tensor support is in beta")

IDX = np.array([[0, 1, 1, 2, 0], [2, 0, 0, 1, 2]])          # (0,2) and (1,0) repeated
VAL = np.array([1.0, 2.0, 3.0, 4.0, 5.0], dtype=np.float32)
DENSE = np.array([[0, 1.5, 0, 0], [2, 0, 0, -3], [0, 0, 0, 0]], dtype=np.float32)
HYB_IDX = np.array([[0, 2, 1], [1, 0, 1]])
HYB_VAL = np.arange(6, dtype=np.float32).reshape(3, 2) + 1
RHS = np.arange(12, dtype=np.float32).reshape(3, 4) / 4 - 1


def coo(lib, dtype=None):
    return lib.sparse_coo_tensor(lib.tensor(IDX), lib.tensor(VAL), (3, 3), dtype=dtype)


def ccoo(lib):
    return coo(lib).coalesce()


def hybrid(lib):
    return lib.sparse_coo_tensor(lib.tensor(HYB_IDX), lib.tensor(HYB_VAL), (3, 2, 2))


def dense(lib):
    return lib.tensor(DENSE)


# --- construction -------------------------------------------------------------------
@case
def construct_explicit_size(lib):
    s = coo(lib)
    return s, s.shape, s.size(), s.size(0), s.dim(), s.ndim


@case
def construct_inferred_size(lib):
    s = lib.sparse_coo_tensor(IDX.tolist(), VAL.tolist())
    return s, tuple(s.shape)


@case
def construct_inferred_size_hybrid(lib):
    return lib.sparse_coo_tensor(lib.tensor(HYB_IDX), lib.tensor(HYB_VAL))


@case
def construct_dtype_argument(lib):
    return coo(lib, dtype=lib.float64)


@case
def construct_int_values(lib):
    return lib.sparse_coo_tensor([[0, 1], [1, 0]], [3, 4], (2, 2))


@case
def construct_bool_values(lib):
    s = lib.sparse_coo_tensor([[0, 1], [1, 0]], [True, False], (2, 2))
    return s.dtype, s.to_dense()


@case
def construct_empty(lib):
    s = lib.sparse_coo_tensor(lib.zeros((2, 0), dtype=lib.int64), lib.zeros(0), (3, 4))
    return s, s._nnz(), s.is_coalesced()


@case
def construct_1d(lib):
    return lib.sparse_coo_tensor([[4, 1, 4]], [1.0, 2.0, 3.0], (6,)).coalesce()


@case
def construct_3d(lib):
    idx = [[0, 1, 1], [2, 0, 2], [1, 1, 0]]
    return lib.sparse_coo_tensor(idx, [1.0, 2.0, 3.0], (2, 3, 2)).coalesce()


@case
def construct_requires_grad(lib):
    s = lib.sparse_coo_tensor(IDX, VAL, (3, 3), requires_grad=True)
    return s.requires_grad, s.is_leaf


@case
def construct_is_coalesced_flag(lib):
    s = lib.sparse_coo_tensor([[0, 1], [0, 1]], [1.0, 2.0], (2, 2), is_coalesced=True)
    return s.is_coalesced(), s.indices()


@case
def construct_single_entry_is_coalesced(lib):
    return lib.sparse_coo_tensor([[1], [1]], [2.0], (2, 2)).is_coalesced()


@case
def construct_empty_sparse_factory(lib):
    s = lib.sparse_coo_tensor(size=(2, 3)) if False else lib.zeros(2, 3).to_sparse()
    return s, s._nnz()


@case
def sparse_dim_dense_dim(lib):
    s, h = coo(lib), hybrid(lib)
    return s.sparse_dim(), s.dense_dim(), h.sparse_dim(), h.dense_dim()


@case
def nnz_counts_duplicates(lib):
    s = coo(lib)
    return s._nnz(), s.coalesce()._nnz()


@case
def is_sparse_and_layout(lib):
    s = coo(lib)
    return s.is_sparse, s.layout, dense(lib).is_sparse, dense(lib).layout, s.is_sparse_csr


@case
def dtype_and_device(lib):
    s = coo(lib)
    return s.dtype, str(s.device), s.is_cuda


@case
def numel_of_sparse(lib):
    return coo(lib).numel(), hybrid(lib).numel()


# --- coalescing ---------------------------------------------------------------------
@case
def coalesce_sums_duplicates(lib):
    return ccoo(lib)


@case
def coalesce_sorts_indices(lib):
    s = lib.sparse_coo_tensor([[2, 0, 1], [0, 1, 0]], [1.0, 2.0, 3.0], (3, 2)).coalesce()
    return s.indices(), s.values()


@case
def coalesce_hybrid(lib):
    idx = [[1, 0, 1], [0, 0, 0]]
    val = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    return lib.sparse_coo_tensor(idx, val, (2, 1, 2)).coalesce()


@case
def coalesce_keeps_explicit_zeros(lib):
    s = lib.sparse_coo_tensor([[0, 0], [1, 1]], [1.0, -1.0], (2, 2)).coalesce()
    return s._nnz(), s.values()


@case
def coalesce_is_idempotent(lib):
    c = ccoo(lib)
    return c.coalesce(), c.coalesce().is_coalesced()


@case
def coalesce_int_values(lib):
    return lib.sparse_coo_tensor(IDX, [1, 2, 3, 4, 5], (3, 3)).coalesce()


@case
def private_indices_values_uncoalesced(lib):
    s = coo(lib)
    return s._indices(), s._values()


@case
def indices_values_coalesced(lib):
    c = ccoo(lib)
    return c.indices(), c.values(), c.indices().dtype


# --- conversions --------------------------------------------------------------------
@case
def to_dense_sums_duplicates(lib):
    return coo(lib).to_dense()


@case
def to_dense_hybrid(lib):
    return hybrid(lib).to_dense()


@case
def to_dense_int(lib):
    return lib.sparse_coo_tensor(IDX, [1, 2, 3, 4, 5], (3, 3)).to_dense()


@case
def to_sparse_from_dense(lib):
    return dense(lib).to_sparse()


@case
def to_sparse_sparse_dim_1(lib):
    return dense(lib).to_sparse(1)


@case
def to_sparse_sparse_dim_keyword(lib):
    return lib.tensor(HYB_VAL).reshape(3, 2).to_sparse(sparse_dim=1)


@case
def to_sparse_3d_partial(lib):
    x = lib.tensor(np.array([[[0, 0], [1, 0]], [[0, 0], [0, 0]], [[2, 3], [0, 0]]],
                            dtype=np.float32))
    return x.to_sparse(2), x.to_sparse(1), x.to_sparse()


@case
def to_sparse_all_zero(lib):
    return lib.zeros(3, 2).to_sparse()


@case
def to_sparse_int_and_bool(lib):
    x = lib.tensor([[0, 2], [3, 0]])
    return x.to_sparse(), (x > 0).to_sparse()


@case
def to_sparse_round_trip(lib):
    return dense(lib).to_sparse().to_dense()


@case
def to_sparse_coo_method(lib):
    return dense(lib).to_sparse_coo()


@case
def sparse_to_sparse_is_same(lib):
    c = ccoo(lib)
    return c.to_sparse()


@case
def sparse_to_dtype(lib):
    return ccoo(lib).to(lib.float64), ccoo(lib).double(), coo(lib).to(lib.float64).dtype


@case
def sparse_float_half(lib):
    return ccoo(lib).double().float().dtype


@case
def sparse_type_conversion_int(lib):
    return ccoo(lib).to(lib.int64)


@case
def sparse_cpu_is_noop(lib):
    return ccoo(lib).cpu()


@case
def dense_to_dense_is_copyless(lib):
    d = dense(lib)
    return d.to_dense()


# --- arithmetic ---------------------------------------------------------------------
@case
def mul_scalar(lib):
    return coo(lib) * 2.5


@case
def rmul_scalar(lib):
    return 2 * ccoo(lib)


@case
def div_scalar(lib):
    return ccoo(lib) / 4


@case
def neg(lib):
    return -ccoo(lib)


@case
def neg_method(lib):
    return ccoo(lib).neg()


@case
def mul_method_scalar(lib):
    return ccoo(lib).mul(3.0)


@case
def div_method_scalar(lib):
    return ccoo(lib).div(2.0)


@case
def torch_mul_scalar(lib):
    return lib.mul(ccoo(lib), 2.0)


@case
def add_sparse_sparse(lib):
    return (ccoo(lib) + dense(lib)[:, :3].to_sparse())


@case
def add_sparse_sparse_uncoalesced(lib):
    return (coo(lib) + coo(lib)).to_dense()


@case
def add_sparse_sparse_coalesced_result(lib):
    return (coo(lib) + coo(lib)).coalesce()


@case
def add_method_alpha(lib):
    return ccoo(lib).add(ccoo(lib), alpha=2.0).coalesce()


@case
def torch_add_sparse_sparse(lib):
    return lib.add(ccoo(lib), ccoo(lib)).coalesce()


@case
def sub_sparse_sparse(lib):
    other = dense(lib)[:, :3].to_sparse()
    return (ccoo(lib) - other).coalesce()


@case
def sub_method(lib):
    return ccoo(lib).sub(ccoo(lib) * 0.5).coalesce()


@case
def mul_sparse_sparse(lib):
    other = lib.tensor([[2.0, 0, 3], [1, 0, 0], [0, 5, 0]]).to_sparse()
    return ccoo(lib) * other


@case
def mul_sparse_sparse_uncoalesced(lib):
    return (coo(lib) * coo(lib)).to_dense()


@case
def add_dense_sparse(lib):
    return lib.ones(3, 3) + coo(lib)


@case
def torch_add_dense_sparse(lib):
    return lib.add(lib.ones(3, 3), coo(lib), alpha=2)


@case
def dense_add_method_sparse(lib):
    return lib.ones(3, 3).add(coo(lib))


@case
def dense_sub_sparse(lib):
    return lib.ones(3, 3) - coo(lib)


@case
def dense_iadd_sparse(lib):
    d = lib.ones(3, 3)
    d += coo(lib)
    return d


@case
def dense_add_inplace_sparse(lib):
    d = lib.zeros(3, 3)
    d.add_(coo(lib), alpha=-1)
    return d


@case
def sparse_mul_dense(lib):
    return ccoo(lib) * lib.tensor(RHS[:, :3])


@case
def sparse_mul_dense_broadcast_row(lib):
    return (ccoo(lib) * lib.tensor([1.0, 2.0, 3.0])).to_dense()


@case
def dense_mul_sparse(lib):
    return lib.tensor(RHS[:, :3].copy()) * ccoo(lib), lib.ones(3, 1) * ccoo(lib)


@case
def dense_matmul_method_sparse(lib):
    return lib.tensor(RHS.T.copy()).matmul(ccoo(lib)), lib.sparse.mm(lib.tensor(RHS.T.copy()),
                                                                     ccoo(lib))


@case
def sparse_add_inplace(lib):
    s = ccoo(lib)
    s.add_(ccoo(lib))
    return s.coalesce()


@case
def sparse_mul_inplace(lib):
    s = ccoo(lib)
    s.mul_(2.0)
    return s


@case
def sparse_div_inplace(lib):
    s = ccoo(lib)
    s.div_(2.0)
    return s


@case
def hybrid_add(lib):
    return (hybrid(lib) + hybrid(lib)).coalesce()


@case
def hybrid_mul_scalar(lib):
    return (hybrid(lib) * -1.5).coalesce()


@case
def int_sparse_mul_scalar(lib):
    return lib.sparse_coo_tensor(IDX, [1, 2, 3, 4, 5], (3, 3)).coalesce() * 3


# --- zero-preserving unary ops ------------------------------------------------------
SIGNED = np.array([-4.0, 2.25, -0.5, 9.0], dtype=np.float32)


def signed(lib):
    return lib.sparse_coo_tensor([[0, 1, 2, 3], [3, 2, 1, 0]], lib.tensor(SIGNED), (4, 4))


@pytest.mark.parametrize("name", [
    "abs", "neg", "sign", "sin", "tan", "tanh", "asin", "atan", "sinh", "asinh", "floor",
    "ceil", "round", "trunc", "frac", "expm1", "log1p", "relu", "sgn", "square",
    "deg2rad", "rad2deg", "signbit", "isnan", "isinf", "nan_to_num", "erf",
])
def test_zero_preserving_unary_method(name):
    def fn(lib):
        s = signed(lib).coalesce()
        if name in ("asin", "log1p"):
            s = s * 0.1
        return getattr(s, name)()
    run_case(fn)


@case
def sqrt_of_nonnegative(lib):
    return (signed(lib).coalesce().abs()).sqrt()


@case
def abs_uncoalesced_to_dense(lib):
    return coo(lib).abs().to_dense()


@case
def torch_abs_function(lib):
    return lib.abs(signed(lib).coalesce())


@case
def torch_sqrt_function(lib):
    return lib.sqrt(ccoo(lib))


@case
def torch_neg_function(lib):
    return lib.neg(ccoo(lib))


@case
def torch_tanh_function(lib):
    return lib.tanh(ccoo(lib))


@case
def pow_scalar(lib):
    return ccoo(lib).pow(2)


@case
def pow_operator(lib):
    return ccoo(lib) ** 3


@case
def torch_pow(lib):
    return lib.pow(ccoo(lib), 0.5)


@case
def abs_inplace(lib):
    s = signed(lib).coalesce()
    s.abs_()
    return s


@case
def neg_inplace(lib):
    s = signed(lib).coalesce()
    s.neg_()
    return s


@case
def sqrt_inplace(lib):
    s = ccoo(lib)
    s.sqrt_()
    return s


# --- reductions -----------------------------------------------------------------------
@case
def sum_all(lib):
    return lib.sparse.sum(coo(lib))


@case
def sum_method_all(lib):
    return coo(lib).sum()


@case
def sum_dim0(lib):
    return lib.sparse.sum(coo(lib), 0)


@case
def sum_dim1(lib):
    return lib.sparse.sum(ccoo(lib), dim=1)


@case
def sum_dims_tuple_all(lib):
    return lib.sparse.sum(ccoo(lib), (0, 1))


@case
def sum_negative_dim(lib):
    return lib.sparse.sum(ccoo(lib), -1)


@case
def sum_hybrid_sparse_dim(lib):
    return lib.sparse.sum(hybrid(lib), 0)


@case
def sum_hybrid_dense_dim(lib):
    return lib.sparse.sum(hybrid(lib), 2)


@case
def sum_hybrid_all_sparse_dims(lib):
    return lib.sparse.sum(hybrid(lib), (0, 1))


@case
def sum_3d_two_dims(lib):
    idx = [[0, 1, 1], [2, 0, 2], [1, 1, 0]]
    s = lib.sparse_coo_tensor(idx, [1.0, 2.0, 3.0], (2, 3, 2))
    return lib.sparse.sum(s, (0, 2)), lib.sparse.sum(s, 1)


@case
def sum_dtype(lib):
    return lib.sparse.sum(ccoo(lib), dtype=lib.float64)


@case
def sum_int(lib):
    s = lib.sparse_coo_tensor(IDX, [1, 2, 3, 4, 5], (3, 3))
    return lib.sparse.sum(s), lib.sparse.sum(s, 1)


@case
def sum_method_dim(lib):
    return ccoo(lib).sum(0)


@case
def sparse_softmax(lib):
    return lib.sparse.softmax(ccoo(lib), 1)


@case
def sparse_softmax_dim0(lib):
    return lib.sparse.softmax(coo(lib), 0)


@case
def sparse_log_softmax(lib):
    return lib.sparse.log_softmax(ccoo(lib), 1)


@case
def sparse_log_softmax_negative_dim(lib):
    return lib.sparse.log_softmax(ccoo(lib), -1)


@case
def sparse_softmax_3d(lib):
    idx = [[0, 1, 1, 0], [2, 0, 2, 2], [1, 1, 0, 0]]
    s = lib.sparse_coo_tensor(idx, [1.0, 2.0, 3.0, -1.0], (2, 3, 2))
    return lib.sparse.softmax(s, 2), lib.sparse.softmax(s, 0)


@case
def sparse_softmax_dtype(lib):
    return lib.sparse.softmax(ccoo(lib), 1, dtype=lib.float64)


# --- products -------------------------------------------------------------------------
@case
def sparse_mm(lib):
    return lib.sparse.mm(coo(lib), lib.tensor(RHS))


@case
def torch_mm(lib):
    return lib.mm(ccoo(lib), lib.tensor(RHS))


@case
def sparse_matmul_vector(lib):
    return lib.matmul(coo(lib), lib.tensor(RHS[:, 0]))


@case
def sparse_mv(lib):
    return lib.mv(coo(lib), lib.tensor(RHS[:, 1]))


@case
def sparse_method_mm(lib):
    return coo(lib).mm(lib.tensor(RHS))


@case
def sparse_method_matmul(lib):
    return coo(lib).matmul(lib.tensor(RHS))


@case
def sparse_at_dense(lib):
    return coo(lib) @ lib.tensor(RHS)


@case
def dense_at_sparse(lib):
    return lib.tensor(RHS.T) @ coo(lib)


@case
def dense_mm_sparse(lib):
    return lib.mm(lib.tensor(RHS.T), coo(lib))


@case
def sparse_mm_sparse(lib):
    return lib.sparse.mm(ccoo(lib), ccoo(lib)).to_dense()


@case
def sparse_mm_sparse_layout(lib):
    out = lib.sparse.mm(ccoo(lib), ccoo(lib))
    return out.layout, out.shape


@case
def sparse_addmm(lib):
    return lib.sparse.addmm(lib.ones(3, 4), coo(lib), lib.tensor(RHS))


@case
def sparse_addmm_beta_alpha(lib):
    return lib.sparse.addmm(lib.ones(3, 4), coo(lib), lib.tensor(RHS), beta=0.5, alpha=-2.0)


@case
def torch_addmm_sparse(lib):
    return lib.addmm(lib.ones(3, 4), ccoo(lib), lib.tensor(RHS), beta=2, alpha=0.5)


@case
def torch_spmm(lib):
    return lib.spmm(coo(lib), lib.tensor(RHS))


@case
def sparse_mm_rectangular(lib):
    s = lib.sparse_coo_tensor([[0, 1, 1], [4, 0, 2]], [1.0, 2.0, 3.0], (2, 5))
    return lib.sparse.mm(s, lib.ones(5, 3)), lib.ones(4, 2) @ s


@case
def sparse_mm_float64(lib):
    return lib.sparse.mm(coo(lib, dtype=lib.float64), lib.tensor(RHS).double())


@case
def sparse_mm_empty(lib):
    s = lib.sparse_coo_tensor(lib.zeros((2, 0), dtype=lib.int64), lib.zeros(0), (3, 3))
    return lib.sparse.mm(s, lib.tensor(RHS))


@case
def hspmm(lib):
    return lib.hspmm(ccoo(lib), lib.tensor(RHS)).to_dense()


@case
def smm(lib):
    return lib.smm(ccoo(lib), lib.tensor(RHS)).to_dense()


@case
def bmm_sparse_dense(lib):
    idx = [[0, 1, 1], [0, 1, 2], [1, 0, 2]]
    s = lib.sparse_coo_tensor(idx, [1.0, 2.0, 3.0], (2, 3, 3))
    return lib.bmm(s, lib.ones(2, 3, 2))


# --- shape ops ------------------------------------------------------------------------
@case
def transpose_t(lib):
    return ccoo(lib).t().coalesce()


@case
def transpose_method(lib):
    return coo(lib).transpose(0, 1).to_dense()


@case
def transpose_uncoalesced_flag(lib):
    return coo(lib).transpose(0, 1).is_coalesced(), ccoo(lib).t().is_coalesced()


@case
def transpose_3d(lib):
    idx = [[0, 1, 1], [2, 0, 2], [1, 1, 0]]
    s = lib.sparse_coo_tensor(idx, [1.0, 2.0, 3.0], (2, 3, 2))
    return s.transpose(0, 2).coalesce(), s.transpose(-1, 1).to_dense()


@case
def torch_t_function(lib):
    return lib.t(ccoo(lib)).coalesce()


@case
def t_inplace(lib):
    s = ccoo(lib)
    s.t_()
    return s.coalesce()


@case
def narrow_copy_dim0(lib):
    return ccoo(lib).narrow_copy(0, 1, 2)


@case
def narrow_copy_dim1(lib):
    return ccoo(lib).narrow_copy(1, 0, 2)


@case
def narrow_copy_hybrid_dense_dim(lib):
    return hybrid(lib).narrow_copy(2, 1, 1).coalesce()


@case
def index_select_dim0(lib):
    return ccoo(lib).index_select(0, lib.tensor([2, 0]))


@case
def index_select_dim1_repeat(lib):
    return ccoo(lib).index_select(1, lib.tensor([0, 0, 2])).to_dense()


@case
def torch_index_select(lib):
    return lib.index_select(ccoo(lib), 1, lib.tensor([1])).to_dense()


@case
def index_select_hybrid(lib):
    return hybrid(lib).index_select(0, lib.tensor([1, 2])).to_dense()


@case
def cat_dim0(lib):
    return lib.cat([ccoo(lib), dense(lib)[:, :3].to_sparse()], 0)


@case
def cat_dim1(lib):
    return lib.cat([ccoo(lib), ccoo(lib)], 1).to_dense()


@case
def stack_sparse(lib):
    return lib.stack([ccoo(lib), ccoo(lib) * 2]).to_dense()


@case
def unsqueeze_sparse(lib):
    return ccoo(lib).unsqueeze(0).to_dense(), ccoo(lib).unsqueeze(-1).shape


@case
def clone_sparse(lib):
    s = coo(lib)
    c = s.clone()
    return c, c._values(), c.is_coalesced()


@case
def clone_is_independent(lib):
    s = ccoo(lib)
    c = s.clone()
    c.mul_(10)
    return s


@case
def detach_sparse(lib):
    s = lib.sparse_coo_tensor(IDX, VAL, (3, 3), requires_grad=True)
    d = s.detach()
    return d.requires_grad, d.to_dense()


@case
def zero_inplace(lib):
    s = ccoo(lib)
    s.zero_()
    return s, s._nnz()


@case
def zeros_like_sparse(lib):
    z = lib.zeros_like(ccoo(lib))
    return z, z._nnz()


@case
def sparse_resize_grow(lib):
    s = ccoo(lib)
    s.sparse_resize_((4, 5), 2, 0)
    return s


@case
def sparse_resize_and_clear(lib):
    s = ccoo(lib)
    s.sparse_resize_and_clear_((2, 2), 2, 0)
    return s, s._nnz()


@case
def resize_as_sparse(lib):
    s = ccoo(lib)
    s.resize_as_(lib.sparse_coo_tensor([[0], [0]], [1.0], (4, 4)))
    return s.shape


@case
def sparse_mask(lib):
    return dense(lib)[:, :3].sparse_mask(ccoo(lib))


@case
def copy_into_sparse(lib):
    s = ccoo(lib)
    s.copy_(dense(lib)[:, :3].to_sparse())
    return s


@case
def any_nonzero_count(lib):
    return ccoo(lib)._values().count_nonzero()


# --- autograd -------------------------------------------------------------------------
def _grad_of_sparse_mm(lib, coalesce):
    s = lib.sparse_coo_tensor(IDX, VAL, (3, 3), requires_grad=True)
    d = lib.tensor(RHS, requires_grad=True)
    a = s.coalesce() if coalesce else s
    (lib.sparse.mm(a, d) ** 2).sum().backward()
    return s.grad.coalesce(), d.grad


@case
def grad_through_sparse_mm(lib):
    return _grad_of_sparse_mm(lib, False)


@case
def grad_through_coalesced_sparse_mm(lib):
    return _grad_of_sparse_mm(lib, True)


@case
def grad_of_sparse_mm_layout(lib):
    s = lib.sparse_coo_tensor(IDX, VAL, (3, 3), requires_grad=True)
    lib.sparse.mm(s, lib.ones(3, 2)).sum().backward()
    return s.grad.layout, s.grad.shape


@case
def grad_through_to_dense(lib):
    s = lib.sparse_coo_tensor(IDX, VAL, (3, 3), requires_grad=True)
    (s.to_dense() * lib.tensor(RHS[:, :3])).sum().backward()
    return s.grad.coalesce()


@case
def grad_through_values_of_coalesced(lib):
    v = lib.tensor(VAL, requires_grad=True)
    s = lib.sparse_coo_tensor(lib.tensor(IDX), v, (3, 3)).coalesce()
    (s.values() ** 2).sum().backward()
    return v.grad


@case
def grad_through_sparse_sum(lib):
    v = lib.tensor(VAL, requires_grad=True)
    s = lib.sparse_coo_tensor(lib.tensor(IDX), v, (3, 3))
    (lib.sparse.sum(s) * 3).backward()
    return v.grad


@case
def grad_through_addmm(lib):
    d = lib.tensor(RHS, requires_grad=True)
    b = lib.ones(3, 4, requires_grad=True)
    lib.sparse.addmm(b, coo(lib), d, beta=0.5).sum().backward()
    return d.grad, b.grad


@case
def grad_dense_at_sparse(lib):
    d = lib.tensor(RHS.T.copy(), requires_grad=True)
    (d @ coo(lib)).pow(2).sum().backward()
    return d.grad


@case
def grad_values_through_to_dense(lib):
    v = lib.tensor(VAL, requires_grad=True)
    s = lib.sparse_coo_tensor(lib.tensor(IDX), v, (3, 3))
    s.to_dense().sum(0).pow(2).sum().backward()
    return v.grad


@case
def grad_sparse_mm_float64(lib):
    s = lib.sparse_coo_tensor(IDX, VAL.astype(np.float64), (3, 3), requires_grad=True)
    d = lib.tensor(RHS.astype(np.float64), requires_grad=True)
    lib.sparse.mm(s, d).sin().sum().backward()
    return s.grad.coalesce(), d.grad


@case
def grad_through_softmax_values(lib):
    v = lib.tensor(VAL, requires_grad=True)
    s = lib.sparse_coo_tensor(lib.tensor(IDX), v, (3, 3)).coalesce()
    out = lib.sparse.softmax(s, 1)
    (out.values() * lib.arange(out._nnz())).sum().backward()
    return v.grad


def _gradcheck_input(lib, coalesce=True):
    s = lib.sparse_coo_tensor(lib.tensor(IDX), lib.tensor(VAL.astype(np.float64)), (3, 3))
    return (s.coalesce() if coalesce else s).requires_grad_()


@pytest.mark.parametrize("name,fn", [
    ("sparse_mm", lambda lib, s: lib.sparse.mm(s, lib.tensor(RHS.astype(np.float64)))),
    ("addmm", lambda lib, s: lib.sparse.addmm(lib.ones(3, 4, dtype=lib.float64), s,
                                              lib.tensor(RHS.astype(np.float64)))),
    ("to_dense_scaled", lambda lib, s: (s * 3).to_dense()),
    ("softmax", lambda lib, s: lib.sparse.softmax(s, 1).to_dense()),
    ("log_softmax", lambda lib, s: lib.sparse.log_softmax(s, 0).to_dense()),
    ("sum_dim", lambda lib, s: lib.sparse.sum(s, 0).to_dense()),
    ("sparse_plus_sparse", lambda lib, s: (s + s).to_dense()),
    ("values_sin", lambda lib, s: s.coalesce().values().sin()),
])
@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesced", "uncoalesced"])
def test_gradcheck_masked_over_sparse_input(name, fn, coalesce):
    def check(lib):
        return lib.autograd.gradcheck(lambda s: fn(lib, s), (_gradcheck_input(lib, coalesce),),
                                      masked=True)
    run_case(check)


@case
def requires_grad_method(lib):
    s = ccoo(lib).requires_grad_()
    return s.requires_grad, s.grad is None


# --- more ops torch's COO tensors take -------------------------------------------------
@case
def norm_full(lib):
    return ccoo(lib).norm(), coo(lib).norm(1), lib.norm(signed(lib))


@case
def any_nonzero(lib):
    return ccoo(lib).any(), lib.zeros(2, 2).to_sparse().any()


@case
def select_sparse_dim(lib):
    return ccoo(lib).select(0, 1).coalesce(), ccoo(lib).select(1, 2).to_dense()


@case
def select_hybrid_dense_dim(lib):
    return hybrid(lib).select(2, 1).coalesce()


@case
def getitem_int(lib):
    return ccoo(lib)[1].coalesce(), coo(lib)[0].to_dense(), ccoo(lib)[1, 0].to_dense()


@case
def unbind_rows(lib):
    return tuple(x.coalesce() for x in ccoo(lib).unbind(0))


@case
def permute_sparse_dims(lib):
    idx = [[0, 1, 1], [2, 0, 2], [1, 1, 0]]
    s = lib.sparse_coo_tensor(idx, [1.0, 2.0, 3.0], (2, 3, 2)).coalesce()
    return s.permute(2, 0, 1).coalesce(), s.permute(0, 1, 2), s.permute((1, 0, 2)).is_coalesced()


@case
def floor_divide_scalar(lib):
    return ccoo(lib) // 2, lib.floor_divide(ccoo(lib), 3)


@case
def sum_keepdim(lib):
    return ccoo(lib).sum(1, keepdim=True), hybrid(lib).sum(0, keepdim=True)


@case
def zeros_with_sparse_layout(lib):
    z = lib.zeros(2, 3, layout=lib.sparse_coo)
    return z, z._nnz(), lib.empty((4,), layout=lib.sparse_coo).shape


@case
def sparse_coo_tensor_from_size_only(lib):
    return lib.sparse_coo_tensor((2, 3)).shape if False else lib.zeros((2, 3)).to_sparse()


@case
def is_tensor_of_sparse(lib):
    return lib.is_tensor(ccoo(lib)), lib.is_tensor(lib.tensor(DENSE).to_sparse_csr())


@case
def legacy_type_name(lib):
    return ccoo(lib).type(), ccoo(lib).double().type()


@case
def spdiags_square(lib):
    diags = lib.tensor([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]])
    return lib.sparse.spdiags(diags, lib.tensor([0, 1, -1]), (3, 3))


@case
def spdiags_rectangular(lib):
    diags = lib.tensor([[1.0, 2, 3, 4], [5, 6, 7, 8]])
    return lib.sparse.spdiags(diags, lib.tensor([0, -2]), (4, 3)).to_dense()


@case
def spdiags_csr_layout(lib):
    diags = lib.tensor([[1.0, 2, 3], [4, 5, 6]])
    return lib.sparse.spdiags(diags, lib.tensor([0, 1]), (3, 3), layout=lib.sparse_csr)


@case
def check_invariants_context(lib):
    with lib.sparse.check_sparse_tensor_invariants():
        on = lib.sparse.check_sparse_tensor_invariants.is_enabled()
        try:
            lib.sparse_coo_tensor([[0, 5]], [1.0, 2.0], (3,))
            raised = False
        except RuntimeError:
            raised = True
    return on, raised, lib.sparse.check_sparse_tensor_invariants.is_enabled()


@case
def save_and_load_weights_only(lib):
    import io
    buffer = io.BytesIO()
    lib.save({"adjacency": ccoo(lib), "raw": coo(lib)}, buffer)
    buffer.seek(0)
    loaded = lib.load(buffer, weights_only=True)
    return loaded["adjacency"], loaded["raw"].to_dense(), loaded["raw"].is_coalesced()


@case
def deepcopy_sparse(lib):
    import copy
    return copy.deepcopy(ccoo(lib))


@case
def linear_layer_on_sparse_input(lib):
    lin = lib.nn.Linear(3, 2)
    with lib.no_grad():
        lin.weight.copy_(lib.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]]))
        lin.bias.copy_(lib.tensor([0.1, -0.2]))
    out = lin(ccoo(lib))
    out.pow(2).sum().backward()
    return out, lin.weight.grad, lin.bias.grad


@case
def functional_linear_no_bias(lib):
    return lib.nn.functional.linear(coo(lib), lib.tensor(RHS.T.copy()))


@case
def dropout_on_sparse(lib):
    eval_mode = lib.nn.functional.dropout(ccoo(lib), 0.5, training=False)
    no_drop = lib.nn.functional.dropout(ccoo(lib), 0.0, training=True)
    return eval_mode, no_drop


@case
def assert_close_takes_sparse(lib):
    lib.testing.assert_close(ccoo(lib), ccoo(lib).clone())
    lib.testing.assert_close(coo(lib), coo(lib) * 1.0)
    lib.testing.assert_close(lib.tensor(DENSE).to_sparse_csr(),
                             lib.tensor(DENSE).to_sparse_csr())
    lib.testing.assert_close(ccoo(lib), ccoo(lib).to_dense(), check_layout=False)
    return True


@case
def hasattr_is_false_for_missing_methods(lib):
    return hasattr(ccoo(lib), "no_such_method"), hasattr(ccoo(lib), "coalesce")


@case
def index_select_large_pattern(lib):
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 40, size=(2, 300))
    s = lib.sparse_coo_tensor(lib.tensor(idx), lib.tensor(rng.standard_normal(300)), (40, 40))
    pick = lib.tensor(rng.integers(0, 40, size=25))
    return s.index_select(0, pick).to_dense(), s.index_select(1, pick).to_dense()


@case
def sparse_mm_sparse_random(lib):
    rng = np.random.default_rng(4)
    rows_cols_a = np.stack([rng.integers(0, 20, 60), rng.integers(0, 15, 60)])
    rows_cols_b = np.stack([rng.integers(0, 15, 50), rng.integers(0, 12, 50)])
    a = lib.sparse_coo_tensor(lib.tensor(rows_cols_a), lib.tensor(rng.standard_normal(60)),
                              (20, 15))
    b = lib.sparse_coo_tensor(lib.tensor(rows_cols_b), lib.tensor(rng.standard_normal(50)),
                              (15, 12))
    return lib.sparse.mm(a, b)


@case
def element_metadata(lib):
    s = ccoo(lib)
    return s.is_floating_point(), s.element_size(), s.ndimension(), s.nelement()


# --- printing (ember names its dtypes and layouts ember.*, where torch says torch.*) -----
def _repr(lib, tensor):
    return repr(tensor).replace("ember.", "torch.")


@case
def repr_coalesced(lib):
    return _repr(lib, ccoo(lib))


@case
def repr_uncoalesced(lib):
    return _repr(lib, coo(lib))


@case
def repr_hybrid(lib):
    return _repr(lib, hybrid(lib).coalesce())


@case
def repr_float64(lib):
    return _repr(lib, ccoo(lib).double())


@case
def repr_empty(lib):
    return _repr(lib, lib.zeros(2, 2).to_sparse())


@case
def repr_requires_grad(lib):
    return _repr(lib, lib.sparse_coo_tensor([[0], [1]], [1.0], (2, 2), requires_grad=True))


@pytest.mark.parametrize("fn,opts", case.params())
def test_case(fn, opts):
    run_case(fn, **opts)


# --- errors ---------------------------------------------------------------------------
@err(match="same nnz")
def err_nnz_mismatch(lib):
    lib.sparse_coo_tensor(IDX, [1.0, 2.0], (3, 3))


@err(match="negative")
def err_negative_index(lib):
    lib.sparse_coo_tensor([[0, -1], [0, 0]], [1.0, 2.0], (2, 2), check_invariants=True)


@err(match="inconsistent with indices")
def err_index_out_of_size(lib):
    lib.sparse_coo_tensor([[0, 5], [0, 0]], [1.0, 2.0], (2, 2), check_invariants=True)


@err(match="number of dimensions")
def err_size_rank(lib):
    lib.sparse_coo_tensor(IDX, VAL, (3, 3, 3))


@err(match="uncoalesced")
def err_indices_uncoalesced(lib):
    coo(lib).indices()


@err(match="uncoalesced")
def err_values_uncoalesced(lib):
    coo(lib).values()


@err(match="(?i)mm|multiplied|shape")
def err_mm_shape_mismatch(lib):
    lib.sparse.mm(coo(lib), lib.ones(4, 2))


@err(match="(?i)size|shape")
def err_add_size_mismatch(lib):
    ccoo(lib) + lib.ones(2, 2).to_sparse()


@err(match="(?i)size|shape")
def err_add_dense_size_mismatch(lib):
    lib.ones(4, 4) + ccoo(lib)


@err(match="(?i)index_select|index")
def err_index_select_out_of_range(lib):
    ccoo(lib).index_select(0, lib.tensor([5]))


@err(match="(?i)narrow")
def err_narrow_copy_out_of_range(lib):
    ccoo(lib).narrow_copy(0, 2, 3)


@err(match="(?i)t\\(\\)|2 or fewer|2-D")
def err_t_of_3d(lib):
    hybrid(lib).to_dense().to_sparse().t()


@err(match="(?i)dim|range")
def err_sum_bad_dim(lib):
    lib.sparse.sum(ccoo(lib), 3)


@err(match="(?i)relu|sparse")
def err_dense_op_rejects_sparse(lib):
    lib.nn.functional.conv1d(ccoo(lib).unsqueeze(0), lib.ones(1, 3, 1))


@err(match="(?i)sparse_dim|dimension")
def err_to_sparse_bad_sparse_dim(lib):
    dense(lib).to_sparse(3)


@err(match="(?i)dtype|same")
def err_mm_dtype_mismatch(lib):
    lib.sparse.mm(coo(lib), lib.tensor(RHS).double())


@err(match="(?i)sparse_resize_|shrink|size")
def err_sparse_resize_shrink(lib):
    ccoo(lib).sparse_resize_((1, 1), 2, 0)


@err(match="(?i)view|sparse|strided")
def err_view_of_sparse(lib):
    ccoo(lib).view(9)


@err(match="dtype argument is not supported by sparse_to_dense")
def err_to_dense_dtype(lib):
    coo(lib).to_dense(dtype=lib.float64)


@err(match="Use add\\(dense, sparse\\) instead")
def err_add_sparse_dense(lib):
    ccoo(lib) + lib.ones(3, 3)


@err(match="clamp")
def err_clamp_unsupported(lib):
    ccoo(lib).clamp(min=-1.0, max=2.0)


@err(match="eq")
def err_equal_unsupported(lib):
    lib.equal(ccoo(lib), ccoo(lib))


@err(match="angle")
def err_angle_unsupported(lib):
    ccoo(lib).angle()


@err(match="(?i)pow|exponent")
def err_pow_zero_exponent(lib):
    ccoo(lib).pow(0)


@err(match="(?i)transpose|dense")
def err_transpose_sparse_with_dense_dim(lib):
    hybrid(lib).transpose(0, 2)


@err(match="(?i)same nnz|nnz")
def err_indices_values_nnz_hybrid(lib):
    lib.sparse_coo_tensor(HYB_IDX, HYB_VAL[:2], (3, 2, 2))


@err(match="(?i)norm|dim")
def err_norm_with_dim(lib):
    ccoo(lib).norm(dim=1)


@err(match="(?i)select|index|range")
def err_select_out_of_range(lib):
    ccoo(lib).select(0, 3)


@err(match="(?i)spdiags|duplicate")
def err_spdiags_duplicate_offsets(lib):
    lib.sparse.spdiags(lib.ones(2, 3), lib.tensor([0, 0]), (3, 3))


@err(match="(?i)ones|layout|sparse")
def err_ones_sparse_layout(lib):
    lib.ones(2, layout=lib.sparse_coo)


@err(match="sparse_dim x nnz")
def err_one_dimensional_indices(lib):
    lib.sparse_coo_tensor(lib.tensor([0, 1]), [1.0, 2.0], (2,))


@err(match="(?i)index_select.*vector")
def err_index_select_matrix_index(lib):
    ccoo(lib).index_select(0, lib.tensor([[0, 1]]))


@err(match="not close")
def err_assert_close_sparse_values(lib):
    lib.testing.assert_close(ccoo(lib), ccoo(lib) * 2)


@err(match="layout")
def err_assert_close_sparse_vs_dense(lib):
    lib.testing.assert_close(ccoo(lib), ccoo(lib).to_dense())


@err(match="number of specified values")
def err_assert_close_nnz(lib):
    lib.testing.assert_close(ccoo(lib), coo(lib))


@err(match="(?i)not equal|not close|mismatch")
def err_assert_close_entry_order(lib):
    lib.testing.assert_close(lib.sparse_coo_tensor([[1, 0]], [1.0, 2.0], (2,)),
                             lib.sparse_coo_tensor([[0, 1]], [2.0, 1.0], (2,)))


@pytest.mark.parametrize("fn,opts", err.params())
def test_error(fn, opts):
    run_error_case(fn, **opts)
