"""Indexing as PyTorch's test_indexing.py pins it down: advanced index combinations
(adjacent and separated), bool masks, None/Ellipsis, index dtypes, lists read as tuples
(with torch's deprecation warning), setitem broadcasting and casting, index_put_ with
accumulate, the index_* / masked_* / scatter family, and which results are views. Each
case runs with torch and ember and compares values, shapes and error kinds."""
from __future__ import annotations

import numpy as np
import pytest

from torch_suite_common import both, raises_both


def _t(L):
    return L.arange(24.).reshape(2, 3, 4)


GETITEM = {
    "two_lists": lambda L: _t(L)[[0, 1], [1, 2]],
    "separated_advanced": lambda L: _t(L)[[0, 1], :, [1, 2]],
    "adjacent_advanced_after_slice": lambda L: _t(L)[:, [0, 1], [1, 2]].shape,
    "broadcast_advanced_around_slice": lambda L: _t(L)[[[0], [1]], 1:, [1, 2]].shape,
    "full_mask": lambda L: (lambda t: t[t > 20])(_t(L)),
    "mask_on_dim1": lambda L: _t(L)[:, L.tensor([True, False, True])],
    "bool_list": lambda L: _t(L)[[True, False]],
    "python_bools": lambda L: [_t(L)[True].shape, _t(L)[False].shape],
    "two_dim_mask": lambda L: _t(L)[L.ones(2, 3, dtype=L.bool)].shape,
    "none_ellipsis_int": lambda L: _t(L)[None, ..., None, 1].shape,
    "negative_ints": lambda L: _t(L)[-1, -1, -1],
    "negative_list": lambda L: _t(L)[[-1, -2]].shape,
    "zero_dim_int_tensor": lambda L: _t(L)[L.tensor(1)].shape,
    "zero_dim_bool_tensor": lambda L: _t(L)[L.tensor(True)].shape,
    "int32_index": lambda L: _t(L)[L.tensor([1], dtype=L.int32)].shape,
    "numpy_index": lambda L: _t(L)[np.array([1, 0])].shape,
    "numpy_2d_index": lambda L: _t(L)[np.array([[0, 1], [1, 0]])].shape,
    "numpy_int": lambda L: _t(L)[np.int64(1)].shape,
    "tuple_of_lists": lambda L: _t(L)[([0, 1], [0, 1])].shape,
    "slice_out_of_range": lambda L: [_t(L)[:, 5:10].shape, _t(L)[:, -10:2].shape],
    "empty_long_index": lambda L: _t(L)[L.tensor([], dtype=L.long)].shape,
    "empty_list_index": lambda L: _t(L)[[]].shape,
}


@pytest.mark.parametrize("name", sorted(GETITEM))
def test_getitem(name):
    both(GETITEM[name])


@pytest.mark.parametrize("index", [
    lambda L: [slice(None), 1], lambda L: [L.tensor(0), L.tensor(1)],
    lambda L: [[0, 1], [1, 0]], lambda L: [0, None], lambda L: [0, Ellipsis],
], ids=["slice", "tensors", "nested_lists", "none", "ellipsis"])
def test_list_holding_indices_is_a_tuple_with_a_warning(index):
    both(lambda L: _t(L)[index(L)], warns="non-tuple sequence for multidimensional indexing")

    def setter(L):
        t = _t(L)
        t[index(L)] = -1.
        return t
    both(setter, warns="non-tuple sequence")


def test_uint8_index_is_a_deprecated_mask():
    both(lambda L: _t(L)[L.tensor([1, 0], dtype=L.uint8)], warns="uint8 is now deprecated")


@pytest.mark.parametrize("fn, kind", [
    (lambda L: _t(L)[0, 0, 0, 0], IndexError),
    (lambda L: _t(L)[[0, 5]], IndexError),
    (lambda L: _t(L)[L.tensor([True, False, True])], IndexError),
    (lambda L: _t(L)[L.tensor([1.])], IndexError),
    (lambda L: _t(L)[::-1], ValueError),
    (lambda L: _t(L)[::0], ValueError),
    (lambda L: L.zeros(3).index_select(0, L.tensor([3])), IndexError),
    (lambda L: L.zeros(2, 3).gather(1, L.tensor([[3]])), RuntimeError),
], ids=["too_many", "out_of_range", "mask_shape", "float_index", "negative_step",
        "zero_step", "index_select_range", "gather_range"])
def test_getitem_refusals(fn, kind):
    raises_both(fn, kind=kind)


def _set(index, value):
    def f(L):
        t = _t(L)
        t[index(L) if callable(index) else index] = value(L) if callable(value) else value
        return t
    return f


SETITEM = {
    "row_broadcast": _set(0, lambda L: L.tensor([1., 2, 3, 4])),
    "mask_scalar": lambda L: (lambda t: (t.__setitem__(t > 10, 0), t)[1])(_t(L)),
    "mask_values": lambda L: (lambda t: (t.__setitem__(L.tensor([True, False, True, False]),
                                                       L.tensor([1., 2])), t)[1])(L.zeros(4)),
    "mask_row_broadcast": lambda L: (lambda t: (t.__setitem__(
        L.tensor([True, False, True]), L.tensor([1., 2])), t)[1])(L.zeros(3, 2)),
    "advanced_rows_broadcast": lambda L: (lambda t: (t.__setitem__(
        [0, 2], L.tensor([5., 6])), t)[1])(L.zeros(3, 2)),
    "zero_dim_value": _set(1, lambda L: L.tensor(5)),
    "none_index": _set((None, 1), 4.),
    "ellipsis": _set(Ellipsis, 1.),
    "int_target_casts": lambda L: (lambda t: (t.__setitem__(0, 2.7), t.__setitem__(
        slice(1, None), L.tensor([1.9, -1.9])), t)[2])(L.zeros(3, dtype=L.int64)),
    "int_target_mask_float": lambda L: (lambda t: (t.__setitem__(
        L.tensor([True, False, True]), 2.9), t)[1])(L.zeros(3, dtype=L.int32)),
    "chained_views": lambda L: (lambda t: (t[0].__setitem__(1, 5), t[:, 2].__setitem__(1, 6),
                                           t)[2])(L.zeros(2, 3)),
}


@pytest.mark.parametrize("name", sorted(SETITEM))
def test_setitem(name):
    both(SETITEM[name])


def test_setitem_records_autograd():
    def f(L):
        t = L.zeros(3)
        v = L.ones(1, requires_grad=True)
        t[0] = v[0] * 2
        t.sum().backward()
        return [t.requires_grad, t.grad_fn is not None, v.grad]
    both(f)


@pytest.mark.parametrize("fn, kind", [
    (lambda L: _t(L).__setitem__(0, L.ones(2, 4)), RuntimeError),
    (lambda L: L.zeros(3).__setitem__(slice(None, None, -1), 1), ValueError),
    (lambda L: L.zeros(3, requires_grad=True).__setitem__(0, 1), RuntimeError),
], ids=["shape", "negative_step", "leaf_requires_grad"])
def test_setitem_refusals(fn, kind):
    raises_both(fn, kind=kind)


def test_index_put_and_family():
    both(lambda L: [
        L.zeros(3).index_put_((L.tensor([0, 0, 2]),), L.tensor([1., 2, 3]), accumulate=True),
        L.zeros(3).index_put((L.tensor([1, 2]),), L.tensor(5.)),
        L.zeros(3).index_put_((L.tensor([True, False, True]),), L.tensor(5.)),
        L.zeros(2, 3).index_put_((L.tensor([0, 1]), L.tensor([2, 0])), L.tensor([1., 2]),
                                 accumulate=True),
        L.zeros(3).index_add_(0, L.tensor([0, 0]), L.tensor([1., 2]), alpha=2),
        L.zeros(3).index_copy_(0, L.tensor([2, 0]), L.tensor([1., 2])),
        L.zeros(2, 3).index_fill_(1, L.tensor([0, 2]), -1),
        L.zeros(2, 3).masked_fill(L.tensor([True, False, True]), 1.),
        L.zeros(3).masked_fill(L.tensor([True, False, True]), L.tensor(2.)),
        L.zeros(3).masked_scatter(L.tensor([True, False, True]), L.tensor([5., 6, 7])),
        L.arange(6).reshape(2, 3).masked_select(L.tensor([True, False, True])),
        L.arange(6).reshape(2, 3).take(L.tensor([[0, 5]])),
        L.take_along_dim(L.arange(6.).reshape(2, 3), L.tensor([[0], [2]]), dim=1),
        L.zeros(3).scatter_reduce(0, L.tensor([0, 0, 1]), L.tensor([1., 2, 3]), reduce="amax",
                                  include_self=False),
        L.zeros(3).scatter_add_(0, L.tensor([0, 0, 1]), L.tensor([1., 2, 3])),
        L.zeros(2, 3).scatter_(1, L.tensor([[1], [2]]), 5.),
        L.zeros(2, 2).put_(L.tensor([0, 3]), L.tensor([1., 2])),
        L.tensor([0, 1]).nonzero(as_tuple=True), L.tensor(5).nonzero(),
        L.tensor(5).nonzero(as_tuple=True)])
    raises_both(lambda L: L.zeros(2, 3).masked_fill(L.tensor([1, 0, 1]), 1.), "bool")
    raises_both(lambda L: L.zeros(3).masked_fill(L.tensor([True, False, True]),
                                                 L.tensor([2.])), "0-dimensional")


def test_basic_indexing_gives_views_advanced_gives_copies():
    def f(L):
        t = _t(L)
        a = t[0, 1:]
        b = t[[0]]
        a[0, 0] = -5
        b[0, 0, 0] = -7
        return [t[0, :2, 0], a._is_view(), b._is_view()]
    both(f)
