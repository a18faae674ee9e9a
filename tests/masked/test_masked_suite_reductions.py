"""torch.masked's reductions and normalizations against torch over a grid of dims,
keepdim, dtype and mask shapes (the ground of PyTorch's test_masked.py, in cases of our
own). Where torch refuses a combination, ember must refuse it too."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from sparse_suite_harness import assert_same

RNG = np.random.default_rng(11)
X = RNG.standard_normal((3, 4)).astype(np.float32)
X3 = RNG.standard_normal((2, 3, 4)).astype(np.float32)
MASK = RNG.random((3, 4)) > 0.35
MASK[2] = False                         # a fully masked-out row
MASK3 = RNG.random((2, 3, 4)) > 0.3
ROW_MASK = np.array([True, False, True, True])     # broadcast over the rows

REDUCTIONS = ["sum", "prod", "amax", "amin", "mean", "argmax", "argmin", "logsumexp",
              "var", "std", "norm"]
NORMALIZATIONS = ["softmax", "log_softmax", "softmin", "normalize", "cumsum", "cumprod"]


def _call(lib, name, data, mask, dim, **kwargs):
    fn = getattr(lib.masked, name)
    x = lib.tensor(data)
    m = None if mask is None else lib.tensor(mask)
    if name == "norm":
        return fn(x, 2.0, dim, mask=m, **kwargs)
    if name == "normalize":
        return fn(x, 2.0, dim, mask=m, **kwargs)
    return fn(x, dim, mask=m, **kwargs)


def _parity(name, data, mask, dim, rtol=1e-5, **kwargs):
    try:
        want = _call(torch, name, data, mask, dim, **kwargs)
    except Exception as refused:       # torch refuses: so must ember
        with pytest.raises(Exception):
            _call(ember, name, data, mask, dim, **kwargs)
        return type(refused)
    got = _call(ember, name, data, mask, dim, **kwargs)
    assert_same(got, want, rtol=rtol, atol=1e-6)
    return None


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("dim", [0, 1, -1, (0, 1)], ids=lambda d: f"dim{d}")
@pytest.mark.parametrize("keepdim", [False, True], ids=["", "keepdim"])
def test_reduction_over_dims(name, dim, keepdim):
    _parity(name, X, MASK, dim, keepdim=keepdim)


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_all_dims(name):
    _parity(name, X, MASK, None)


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_without_mask(name):
    _parity(name, X, None, 1)


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_with_broadcast_mask(name):
    _parity(name, X, ROW_MASK, 1)


@pytest.mark.parametrize("name", REDUCTIONS)
def test_reduction_3d(name):
    _parity(name, X3, MASK3, (0, 2))


@pytest.mark.parametrize("name", ["sum", "prod", "amax", "amin", "mean", "logsumexp",
                                  "var", "std", "norm"])
def test_reduction_dtype_float64(name):
    want = _call(torch, name, X, MASK, 1, dtype=torch.float64)
    got = _call(ember, name, X, MASK, 1, dtype=ember.float64)
    assert_same(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["sum", "prod", "amax", "amin", "argmax", "argmin"])
def test_integer_input(name):
    data = (X * 4).astype(np.int64)
    _parity(name, data, MASK, 0)


@pytest.mark.parametrize("name", NORMALIZATIONS)
@pytest.mark.parametrize("dim", [0, 1, -1], ids=lambda d: f"dim{d}")
def test_normalization(name, dim):
    _parity(name, X, MASK, dim)


@pytest.mark.parametrize("name", NORMALIZATIONS)
def test_normalization_broadcast_mask_and_3d(name):
    _parity(name, X, ROW_MASK, 1)
    _parity(name, X3, MASK3, 1)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin", "normalize"])
def test_normalization_dtype(name):
    want = _call(torch, name, X, MASK, 1, dtype=torch.float64)
    got = _call(ember, name, X, MASK, 1, dtype=ember.float64)
    assert_same(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("unbiased", [True, False])
def test_var_std_unbiased(unbiased):
    for name in ("var", "std"):
        want = getattr(torch.masked, name)(torch.tensor(X), 1, unbiased,
                                           mask=torch.tensor(MASK))
        got = getattr(ember.masked, name)(ember.tensor(X), 1, unbiased,
                                          mask=ember.tensor(MASK))
        assert_same(got, want)


@pytest.mark.parametrize("ord", [1.0, 3.0, float("inf"), float("-inf"), 0.0])
def test_norm_orders(ord):
    want = torch.masked.norm(torch.tensor(X), ord, 1, mask=torch.tensor(MASK))
    got = ember.masked.norm(ember.tensor(X), ord, 1, mask=ember.tensor(MASK))
    assert_same(got, want)


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "softmax"])
def test_float64_gradients(name):
    def grad(lib):
        x = lib.tensor(X.astype(np.float64), requires_grad=True)
        out = getattr(lib.masked, name)(x, 1, mask=lib.tensor(MASK))
        out = lib.where(lib.isfinite(out), out, lib.zeros_like(out))
        (out * lib.arange(out.numel(), dtype=lib.float64).reshape(out.shape)).sum().backward()
        return x.grad
    assert_same(grad(ember), grad(torch), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("lib", [torch, ember], ids=["torch", "ember"])
def test_mask_of_higher_rank_is_refused(lib):
    with pytest.raises(IndexError, match="broadcastable mask"):
        lib.masked.sum(lib.tensor(X[0]), 0, mask=lib.tensor(MASK))


@pytest.mark.parametrize("lib", [torch, ember], ids=["torch", "ember"])
def test_repeated_dim_is_refused(lib):
    with pytest.raises(RuntimeError, match="appears multiple times"):
        lib.masked.sum(lib.tensor(X), (1, 1), mask=lib.tensor(MASK))


_INT = (X * 4).astype(np.int64)
EDGE_CASES = {
    "int_mask": lambda L: L.masked.sum(L.tensor(X), 1, mask=L.tensor(MASK.astype(np.int64))),
    "dim_out_of_range": lambda L: L.masked.sum(L.tensor(X), 3, mask=L.tensor(MASK)),
    "int_mean": lambda L: L.masked.mean(L.tensor(_INT), 1, mask=L.tensor(MASK)),
    "amax_empty_dims": lambda L: L.masked.amax(L.tensor(X), (), mask=L.tensor(MASK)),
    "softmax_dim_none": lambda L: L.masked.softmax(L.tensor(X), None, mask=L.tensor(MASK)),
    "mask_not_broadcastable": lambda L: L.masked.sum(L.tensor(X), 1,
                                                     mask=L.tensor(MASK[:2])),
    "median": lambda L: L.masked.median(L.tensor(X), 1, mask=L.tensor(MASK)),
    "int_var": lambda L: L.masked.var(L.tensor(_INT), 1, mask=L.tensor(MASK)),
    "int_logsumexp": lambda L: L.masked.logsumexp(L.tensor(_INT), 1, mask=L.tensor(MASK)),
    "int_norm": lambda L: L.masked.norm(L.tensor(_INT), 2.0, 1, mask=L.tensor(MASK)),
    "int32_cumsum": lambda L: L.masked.cumsum(L.tensor(_INT.astype(np.int32)), 1,
                                              mask=L.tensor(MASK)),
    "bool_sum": lambda L: L.masked.sum(L.tensor(MASK), 1, mask=L.tensor(MASK)),
    "prod_all_keepdim": lambda L: L.masked.prod(L.tensor(X), None, keepdim=True,
                                                mask=L.tensor(MASK)),
    "logaddexp": lambda L: L.masked.logaddexp(L.tensor(X), L.tensor(X.T.copy().T * 2),
                                              input_mask=L.tensor(MASK),
                                              other_mask=L.tensor(~MASK)),
}


@pytest.mark.parametrize("name", list(EDGE_CASES))
def test_edge_case(name):
    """The same result, or errors of one kind (ember's are subclasses of torch's)."""
    fn = EDGE_CASES[name]
    try:
        want = fn(torch)
    except Exception as refused:
        with pytest.raises(type(refused)):
            fn(ember)
        return
    assert_same(fn(ember), want)
