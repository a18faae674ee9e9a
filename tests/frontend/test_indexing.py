"""Tensor indexing (reads, writes, gradients, views) against torch on random inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from tests.oracle import assert_close

SHAPE = (4, 5, 6)


def _conv(index, lib):
    """numpy arrays inside an index -> the library's tensors (lists stay lists)."""
    if isinstance(index, tuple):
        return tuple(_conv(i, lib) for i in index)
    if isinstance(index, np.ndarray):
        return ember.tensor(index) if lib == "ember" else torch.from_numpy(index.copy())
    return index


def _pair(rng, shape=SHAPE):
    a = rng.standard_normal(shape).astype(np.float64)
    e = ember.tensor(a).requires_grad_()
    t = torch.from_numpy(a.copy()).requires_grad_()
    return a, e, t


def _grads(rng, e_out, t_out, e_in, t_in):
    c = rng.standard_normal(tuple(t_out.shape))
    (e_out * ember.tensor(c)).sum().backward()
    (t_out * torch.from_numpy(c)).sum().backward()
    for ei, ti in zip(e_in, t_in):
        assert_close(ei.grad, ti.grad, what="grad")


MASK = np.array([True, False, True, True, False])
MASK2 = np.random.default_rng(0).random((4, 5)) > 0.5

READS = {
    "int": (1,),
    "neg_int": (-1, 2),
    "slice": (slice(1, 3),),
    "slice_step": (slice(None), slice(0, 6, 2)),
    "slice_clamped": (slice(-10, 100, 3),),
    "empty_slice": (slice(3, 1),),
    "none": (None, 1, None),
    "ellipsis": (Ellipsis, 2),
    "ellipsis_none": (0, Ellipsis, None),
    "full": (Ellipsis,),
    "empty_tuple": (),
    "list": ([0, 2, 3],),
    "neg_list": ([-1, 0],),
    "array_2d": (np.array([[0, 1], [3, 3]]),),
    "adv_middle": (slice(None), np.array([4, 0, 2])),
    "adv_adjacent": (slice(None), np.array([0, 4]), np.array([1, 5])),
    "adv_separated": (np.array([0, 3]), slice(None), np.array([1, 5])),
    "adv_broadcast": (np.array([[0], [3]]), slice(1, 4), np.array([1, 2, 5])),
    "int_and_adv": (1, slice(None), np.array([0, 2])),
    "adv_int_separated": (np.array([0, 2]), 1, slice(None)),
    "adv_none": (None, np.array([1, 2]), None),
    "bool_mask_1d": (slice(None), MASK),
    "bool_mask_2d": (MASK2,),
    "bool_mask_ellipsis": (slice(None), 0, Ellipsis, np.array([True] * 3 + [False] * 3)),
    "mixed_mask": (slice(None), 0, ..., np.array([True, False, True, False, True, False])),
    "bool_true": (True,),
    "bool_false": (False, 1),
    "bool_0d": (np.array(True), slice(1, 2)),
    "int_0d_tensor": (np.array(2),),
    "list_bools": ([True, False, False, True],),
    "empty_list": ([],),
    "mask_and_int_index": (MASK2, np.array([0, 5, 3])[:1].repeat(int(MASK2.sum()))),
}


@pytest.mark.parametrize("name", sorted(READS))
def test_read_and_gradient(name, rng):
    index = READS[name]
    _, e, t = _pair(rng)
    e_out = e[_conv(index, "ember")]
    t_out = t[_conv(index, "torch")]
    assert tuple(e_out.shape) == tuple(t_out.shape), name
    assert_close(e_out, t_out, what=name)
    _grads(rng, e_out, t_out, [e], [t])


BASIC = ["int", "neg_int", "slice", "slice_step", "none", "ellipsis", "ellipsis_none", "full",
         "empty_tuple", "slice_clamped"]


@pytest.mark.parametrize("name", BASIC)
def test_basic_indexing_returns_views(name, rng):
    a = rng.standard_normal(SHAPE).astype(np.float32)
    e, t = ember.tensor(a), torch.from_numpy(a.copy())
    ev, tv = e[READS[name]], t[READS[name]]
    assert ev._base is e
    assert tuple(ev.stride()) == tuple(tv.stride()), name
    assert ev.storage_offset() == tv.storage_offset(), name
    before = e._version
    ev.add_(1.0)
    tv.add_(1.0)
    assert e._version > before
    assert_close(e, t, what=name)


def test_advanced_indexing_copies(rng):
    e = ember.tensor(rng.standard_normal(SHAPE))
    out = e[[0, 1]]
    out.add_(1.0)
    assert not np.allclose(out.numpy(), e[[0, 1]].numpy())


WRITES = {
    "int": ((1,), (5, 6)),
    "slice": ((slice(1, 3), 2), (2, 6)),
    "slice_step_bcast": ((slice(None), slice(0, 5, 2)), (6,)),
    "scalar": ((Ellipsis, 0), None),
    "none": ((None, 0), (1, 5, 6)),
    "leading_ones": ((0,), (1, 1, 5, 6)),
    "list": (([0, 3],), (2, 5, 6)),
    "adv_separated": ((np.array([0, 2]), slice(None), np.array([1, 3])), (2, 5)),
    "adv_adjacent_bcast": ((slice(None), np.array([[0], [4]]), np.array([1, 2])), (4, 2, 2)),
    "adv_value_bcast": ((np.array([1, 3]),), (6,)),
    "mask": ((slice(None), MASK), (6,)),
    "mask_2d": ((MASK2,), (int(MASK2.sum()), 6)),
    "mixed": ((slice(None), 0, ..., np.array([True, False, True, False, True, False])),
              (4, 3)),
    "bool_true": ((True, 2), (5, 6)),
    "int_and_adv": ((2, np.array([0, 4]), slice(1, 3)), (2, 2)),
}


@pytest.mark.parametrize("name", sorted(WRITES))
def test_write_and_gradient(name, rng):
    index, vshape = WRITES[name]
    _, e, t = _pair(rng)
    if vshape is None:
        ev, tv = 2.5, 2.5
        ins_e, ins_t = [e], [t]
    else:
        v = rng.standard_normal(vshape)
        ev = ember.tensor(v).requires_grad_()
        tv = torch.from_numpy(v.copy()).requires_grad_()
        ins_e, ins_t = [e, ev], [t, tv]
    ex, tx = e * 1.0, t * 1.0
    ex[_conv(index, "ember")] = ev
    tx[_conv(index, "torch")] = tv
    assert_close(ex, tx, what=name)
    _grads(rng, ex, tx, ins_e, ins_t)


def test_write_bumps_version_and_casts(rng):
    e = ember.zeros(3, 4, dtype=ember.int64)
    v0 = e._version
    e[1] = ember.tensor([1.7, 2.2, 3.9, -1.5])
    e[[0, 2], [1, 3]] = 9
    t = torch.zeros(3, 4, dtype=torch.int64)
    t[1] = torch.tensor([1.7, 2.2, 3.9, -1.5])
    t[[0, 2], [1, 3]] = 9
    assert e._version >= v0 + 2
    assert_close(e, t)


def test_write_through_view_updates_base(rng):
    a = rng.standard_normal((4, 5))
    e, t = ember.tensor(a), torch.from_numpy(a.copy())
    ev, tv = e[1:3], t[1:3]
    ev[:, [0, 4]] = 0.0
    tv[:, [0, 4]] = 0.0
    ev[0, 2] = 7.0
    tv[0, 2] = 7.0
    assert_close(e, t)


def test_write_to_leaf_requiring_grad_raises():
    e = ember.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError):
        e[0] = 1.0


def test_copy_method(rng):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
    e, t = ember.tensor(a), torch.from_numpy(a.copy())
    e.copy_(ember.tensor(b))
    t.copy_(torch.from_numpy(b))
    assert_close(e, t)


@pytest.mark.parametrize("index, err", [
    ((4,), IndexError), ((0, -6), IndexError), ((0, 0, 0, 0), IndexError),
    ((slice(None, None, -1),), ValueError),
    (([0, 4],), IndexError), ((np.array([True, False]),), IndexError),
    ((1.5,), IndexError),
])
def test_index_errors(index, err):
    e = ember.zeros(*SHAPE)
    t = torch.zeros(*SHAPE)
    with pytest.raises(err):
        t[_conv(index, "torch")]
    with pytest.raises(err):
        e[_conv(index, "ember")]


def test_out_of_range_message_names_dim_and_size():
    e = ember.zeros(3, 4)
    with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 1 with size 4"):
        e[0, 4]


def test_indexing_result_in_graph_double_backward(rng):
    _, e, t = _pair(rng, (4, 5))
    eo = (e[[0, 2], 1:] ** 2).sum()
    to = (t[[0, 2], 1:] ** 2).sum()
    (eg,) = ember.autograd.grad(eo, [e], create_graph=True)
    (tg,) = torch.autograd.grad(to, [t], create_graph=True)
    assert_close(eg, tg)
    (egg,) = ember.autograd.grad((eg * eg).sum(), [e])
    (tgg,) = torch.autograd.grad((tg * tg).sum(), [t])
    assert_close(egg, tgg)
