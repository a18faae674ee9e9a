"""A case runs once with lib=torch and once with lib=ember; the results must agree.

Results may be dense tensors, sparse tensors (COO / CSR / CSC / BSR), MaskedTensors,
numbers, strings and nested tuples/lists of these. A sparse result agrees when its layout,
shape, dtype and dense value agree, and, for COO, whether it is coalesced; coalesced COO
and the compressed layouts also compare their index tensors, which are then canonical.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import ember

LIBS = {"torch": torch, "ember": ember}


def _layout_name(layout) -> str:
    return str(layout).rsplit(".", 1)[-1]


def _dtype_name(dtype) -> str:
    return str(dtype).rsplit(".", 1)[-1]


def _dense(x) -> np.ndarray:
    x = x.detach() if x.requires_grad else x
    if x.dtype in (torch.bfloat16, ember.bfloat16):
        x = x.float()
    return x.numpy()


def _is_masked(x) -> bool:
    return type(x).__name__ == "MaskedTensor"


def assert_same(got, want, rtol=1e-5, atol=1e-6, path="result", exact_dtype=True):
    """Recursive comparison of an ember result `got` against torch's `want`."""
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)), f"{path}: {type(got)} is not a sequence"
        assert len(got) == len(want), f"{path}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, rtol, atol, f"{path}[{i}]", exact_dtype)
        return
    if _is_masked(want):
        assert _is_masked(got), f"{path}: {type(got).__name__} is not a MaskedTensor"
        assert_same(got.get_mask(), want.get_mask(), path=f"{path}.mask")
        mask = _dense(want.get_mask())
        g, w = _dense(got.get_data()), _dense(want.get_data())
        assert g.shape == w.shape, f"{path}: shape {g.shape} != {w.shape}"
        np.testing.assert_allclose(np.where(mask, g, 0), np.where(mask, w, 0), rtol=rtol,
                                   atol=atol, equal_nan=True, err_msg=path)
        return
    if isinstance(want, torch.Tensor):
        assert hasattr(got, "layout"), f"{path}: {type(got).__name__} is not a tensor"
        assert _layout_name(got.layout) == _layout_name(want.layout), \
            f"{path}: layout {got.layout} != {want.layout}"
        assert tuple(got.shape) == tuple(want.shape), \
            f"{path}: shape {tuple(got.shape)} != {tuple(want.shape)}"
        if exact_dtype:
            assert _dtype_name(got.dtype) == _dtype_name(want.dtype), \
                f"{path}: dtype {got.dtype} != {want.dtype}"
        if want.layout == torch.strided:
            np.testing.assert_allclose(_dense(got), _dense(want), rtol=rtol, atol=atol,
                                       equal_nan=True, err_msg=path)
            return
        _assert_same_sparse(got, want, rtol, atol, path)
        return
    if isinstance(want, float):
        assert got == pytest.approx(want, rel=rtol, abs=atol, nan_ok=True), path
        return
    if isinstance(want, (torch.dtype, torch.layout)):
        assert str(got).rsplit(".", 1)[-1] == str(want).rsplit(".", 1)[-1], path
        return
    assert got == want, f"{path}: {got!r} != {want!r}"


def _assert_same_sparse(got, want, rtol, atol, path):
    assert got.sparse_dim() == want.sparse_dim(), f"{path}: sparse_dim"
    assert got.dense_dim() == want.dense_dim(), f"{path}: dense_dim"
    np.testing.assert_allclose(_dense(got.to_dense()), _dense(want.to_dense()), rtol=rtol,
                               atol=atol, equal_nan=True, err_msg=f"{path}.to_dense()")
    if want.layout == torch.sparse_coo:
        assert got.is_coalesced() == want.is_coalesced(), f"{path}: is_coalesced"
        if want.is_coalesced():
            assert_same(got.indices(), want.indices(), path=f"{path}.indices()")
            assert_same(got.values(), want.values(), rtol, atol, f"{path}.values()")
        return
    compressed, plain = {"sparse_csr": ("crow_indices", "col_indices"),
                         "sparse_bsr": ("crow_indices", "col_indices"),
                         "sparse_csc": ("ccol_indices", "row_indices"),
                         "sparse_bsc": ("ccol_indices", "row_indices")}[
                             _layout_name(want.layout)]
    for name in (compressed, plain):
        assert_same(getattr(got, name)(), getattr(want, name)(), path=f"{path}.{name}()")
    assert_same(got.values(), want.values(), rtol, atol, f"{path}.values()")


def run_case(fn, rtol=1e-5, atol=1e-6, exact_dtype=True):
    want = fn(torch)
    got = fn(ember)
    assert_same(got, want, rtol, atol, exact_dtype=exact_dtype)


def run_error_case(fn, match: str):
    """torch raises; ember raises an exception of a kind torch's could be caught as, with
    a message matching `match` (which names the op or what was wrong)."""
    with pytest.raises(Exception) as want:
        fn(torch)
    with pytest.raises(Exception) as got:
        fn(ember)
    kinds = (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError)
    want_kind = next(k for k in kinds + (Exception,) if isinstance(want.value, k))
    assert isinstance(got.value, want_kind) or isinstance(got.value, RuntimeError) and \
        want_kind is NotImplementedError, \
        f"torch raised {type(want.value).__name__}, ember {type(got.value).__name__}: {got.value}"
    assert re.search(match, str(got.value)), f"message {str(got.value)!r} lacks {match!r}"


class Cases:
    """A registry of named cases, turned into one parametrized test each."""

    def __init__(self):
        self.items = {}

    def __call__(self, fn=None, **options):
        def register(f):
            assert f.__name__ not in self.items, f.__name__
            self.items[f.__name__] = (f, options)
            return f
        return register(fn) if fn is not None else register

    def params(self):
        return [pytest.param(f, opts, id=name) for name, (f, opts) in self.items.items()]
