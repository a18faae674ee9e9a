"""MaskedTensor against torch.masked.MaskedTensor: construction, the parts, reductions,
normalizations, elementwise and shape ops, autograd, printing and the errors (the
ground of PyTorch's test_maskedtensor.py, in cases of our own). Results compare their
masks exactly and their data where the mask is True."""
from __future__ import annotations

import numpy as np
import pytest

from sparse_suite_harness import Cases, run_case, run_error_case

case = Cases()
err = Cases()
# torch warns that its MaskedTensor API is a prototype, on every use
pytestmark = pytest.mark.filterwarnings("ignore:The PyTorch API of MaskedTensors",
                                        "ignore:It is not recommended to create a MaskedTensor")

X = np.array([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]], dtype=np.float32)
M = np.array([[True, False, True], [False, True, True]])
M_ROW_EMPTY = np.array([[True, False, True], [False, False, False]])


def mt(lib, mask=M, data=X, **kwargs):
    return lib.masked.masked_tensor(lib.tensor(data), lib.tensor(mask), **kwargs)


@case
def construct_and_parts(lib):
    t = mt(lib)
    return t, t.get_data(), t.get_mask()


@case
def metadata(lib):
    t = mt(lib)
    return tuple(t.shape), t.dim(), t.size(0), t.dtype, t.numel(), len(t), t.layout, \
        t.is_sparse


@case
def contiguity(lib):
    t = mt(lib)
    return t.is_contiguous(), t.t().is_contiguous(), t.t().contiguous().is_contiguous(), \
        tuple(t.stride())


@case
def assert_close_ignores_masked_out_data(lib):
    lib.testing.assert_close(mt(lib), mt(lib, data=np.where(M, X, 99.0).astype(np.float32)))
    return True


@case
def as_masked_tensor(lib):
    return lib.masked.as_masked_tensor(lib.tensor(X), lib.tensor(M))


@case
def is_masked_tensor(lib):
    return lib.masked.is_masked_tensor(mt(lib)), lib.masked.is_masked_tensor(lib.ones(2))


@case
def to_tensor_fills(lib):
    return mt(lib).to_tensor(0), mt(lib).to_tensor(-1.5)


@case
def int_data(lib):
    t = mt(lib, data=np.array([[1, 2, 3], [4, 5, 6]]))
    return t, t.sum(), t.dtype


# --- reductions -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "prod", "argmax",
                                  "argmin", "var", "std"])
@pytest.mark.parametrize("dim", [None, 0, 1], ids=lambda d: f"dim{d}")
def test_reduction(name, dim):
    if dim is None and name in ("argmax", "argmin", "var", "std", "prod"):
        pytest.skip("torch's MaskedTensor takes these over one dim")
    run_case(lambda lib: getattr(mt(lib), name)() if dim is None
             else getattr(mt(lib), name)(dim))


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "prod", "argmax", "var"])
def test_reduction_fully_masked_row(name):
    run_case(lambda lib: getattr(mt(lib, M_ROW_EMPTY), name)(1))


@case
def sum_keepdim(lib):
    return mt(lib).sum(1, keepdim=True)


@case
def torch_sum_function(lib):
    return lib.sum(mt(lib), 0)


@case
def mean_function(lib):
    return lib.mean(mt(lib), 1)


@case
def sum_all_masked_out(lib):
    return mt(lib, np.zeros_like(M)).sum()


@case
def all_of_comparison(lib):
    return (mt(lib) > 0).all()


@case
def reduction_item(lib):
    return mt(lib).sum().item()


# --- normalizations -------------------------------------------------------------------
@case
def softmax_function(lib):
    return lib.softmax(mt(lib), 1)


@case
def functional_softmax(lib):
    return lib.nn.functional.softmax(mt(lib), -1)


@case
def softmax_dim0(lib):
    return lib.softmax(mt(lib), 0)


# --- elementwise --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["exp", "sin", "cos", "tanh", "sigmoid", "abs", "neg",
                                  "floor", "ceil", "round", "square", "isnan", "sign"])
def test_unary_method(name):
    run_case(lambda lib: getattr(mt(lib), name)())


@pytest.mark.parametrize("name", ["sqrt", "log", "log1p", "rsqrt"])
def test_unary_on_abs(name):
    run_case(lambda lib: getattr(mt(lib).abs(), name)())


@case
def torch_sin_function(lib):
    return lib.sin(mt(lib))


@case
def neg_operator(lib):
    return -mt(lib)


@case
def add_same_mask(lib):
    return mt(lib) + mt(lib)


@case
def sub_mul_div_same_mask(lib):
    a, b = mt(lib), mt(lib, data=X * 2 + 10)
    return a - b, a * b, a / b


@case
def scalar_arithmetic(lib):
    t = mt(lib)
    return t + 1, t * 2, t / 4, t - 0.5, 3 * t, t ** 2


@case
def with_plain_tensor(lib):
    return mt(lib) + lib.tensor(X), mt(lib) * lib.tensor(X)


@case
def comparisons(lib):
    t = mt(lib)
    return t > 0, t <= 1, t == t


@case
def floor_divide_and_mod(lib):
    return mt(lib) // 2, mt(lib) % 2


@case
def clamp(lib):
    return mt(lib).clamp(min=0)


@case
def where_with_masked(lib):
    return lib.where(lib.tensor(M), mt(lib), mt(lib) * 2)


@case
def maximum(lib):
    return lib.maximum(mt(lib), mt(lib, data=-X))


@case
def pow_method(lib):
    return mt(lib).pow(3)


@case
def in_place_add(lib):
    t = mt(lib)
    t.add_(mt(lib))
    return t


@case
def ones_like(lib):
    return lib.ones_like(mt(lib))


# --- shape ops --------------------------------------------------------------------------
@case
def transpose_and_t(lib):
    return mt(lib).t(), mt(lib).transpose(0, 1)


@case
def indexing(lib):
    t = mt(lib)
    return t[0], t[:, 1:], t[1, 2]


@case
def reshape_view_flatten(lib):
    t = mt(lib)
    return t.reshape(3, 2), t.view(6), t.flatten()


@case
def unsqueeze_expand(lib):
    t = mt(lib)
    return t.unsqueeze(0), t[0:1].expand(2, 3)


@case
def cat_and_stack(lib):
    return lib.cat([mt(lib), mt(lib)]), lib.stack([mt(lib), mt(lib)])


@case
def clone_detach_to(lib):
    t = mt(lib)
    return t.clone(), t.detach(), t.to(lib.float64), t.double()


# --- autograd -------------------------------------------------------------------------
@case
def grad_of_sum(lib):
    t = mt(lib, requires_grad=True)
    (t * 2).sum().backward()
    return t.grad


@case
def grad_of_softmax(lib):
    t = mt(lib, requires_grad=True)
    s = lib.softmax(t, 1)
    (s * mt(lib, data=np.arange(6.0, dtype=np.float32).reshape(2, 3))).sum().backward()
    return t.grad


@case
def grad_flags(lib):
    t = mt(lib, requires_grad=True)
    return t.requires_grad, t.is_leaf


@case
def grad_of_mean_dim(lib):
    t = mt(lib, requires_grad=True)
    t.mean(1).sum().backward()
    return t.grad


# --- printing -------------------------------------------------------------------------
@case
def repr_2d(lib):
    return repr(mt(lib))


@case
def repr_1d_int(lib):
    return repr(lib.masked.masked_tensor(lib.tensor([1, 2, 3]), lib.tensor([True, False,
                                                                             True])))


@case
def repr_0d(lib):
    return repr(mt(lib).sum())


@case
def repr_fully_masked_row(lib):
    return repr(mt(lib, M_ROW_EMPTY))


@pytest.mark.parametrize("fn,opts", case.params())
def test_case(fn, opts):
    run_case(fn, **opts)


@err(match="mask must have dtype bool")
def err_mask_not_bool(lib):
    lib.masked.masked_tensor(lib.tensor(X), lib.tensor(M.astype(np.int64)))


@err(match="data.dim\\(\\) must equal mask.dim\\(\\)")
def err_mask_rank(lib):
    lib.masked.masked_tensor(lib.tensor(X), lib.tensor(M[0]))


@err(match="Input masks must match")
def err_masks_differ(lib):
    mt(lib) + mt(lib, ~M)


@err(match="(?i)tolist")
def err_tolist(lib):
    mt(lib).tolist()


@err(match="cumsum")
def err_cumsum_sees_masked_out_elements(lib):
    mt(lib).cumsum(1)


@err(match="max")
def err_max_without_dim(lib):
    mt(lib).max()


def test_assert_close_reports_different_masks():
    # torch's MaskedTensor fails inside its comparison (a RuntimeError); ember reports the
    # masks' mismatch as any assert_close failure
    import ember
    with pytest.raises(AssertionError, match="not close"):
        ember.testing.assert_close(mt(ember), mt(ember, ~M))


@pytest.mark.parametrize("fn,opts", err.params())
def test_error(fn, opts):
    run_error_case(fn, **opts)
