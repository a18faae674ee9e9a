"""torch.native_* normalizations, native_dropout_backward and constant_pad_nd against torch:
all outputs (the saved statistics too) and the running-statistics update."""
import numpy as np
import torch

import ember


def _pair(shape, seed=0):
    arr = np.random.default_rng(seed).standard_normal(shape)
    return ember.tensor(arr), torch.tensor(arr)


def _close(a, b):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_native_batch_norm_training_updates_running_stats():
    (x, tx), (w, tw), (b, tb) = _pair((4, 3, 5)), _pair(3, 1), _pair(3, 2)
    rm, trm = ember.zeros(3, dtype=ember.float64), torch.zeros(3, dtype=torch.float64)
    rv, trv = ember.ones(3, dtype=ember.float64), torch.ones(3, dtype=torch.float64)
    got = ember.native_batch_norm(x, w, b, rm, rv, True, 0.3, 1e-5)
    want = torch.native_batch_norm(tx, tw, tb, trm, trv, True, 0.3, 1e-5)
    for g, e in zip(got, want):
        _close(g, e)
    _close(rm, trm)
    _close(rv, trv)


def test_native_batch_norm_eval_uses_running_stats():
    (x, tx), (rm, trm) = _pair((4, 3)), _pair(3, 1)
    rv, trv = ember.full([3], 2.0, dtype=ember.float64), torch.full([3], 2.0, dtype=torch.float64)
    got = ember.native_batch_norm(x, None, None, rm, rv, False, 0.1, 1e-5)
    want = torch.native_batch_norm(tx, None, None, trm, trv, False, 0.1, 1e-5)
    _close(got[0], want[0])
    assert tuple(got[1].shape) == tuple(want[1].shape) == (0,)


def test_native_layer_and_group_norm_statistics():
    (x, tx), (w, tw) = _pair((2, 4, 3)), _pair((4, 3), 1)
    for g, e in zip(ember.native_layer_norm(x, [4, 3], w, None, 1e-5),
                    torch.native_layer_norm(tx, [4, 3], tw, None, 1e-5)):
        _close(g, e)
    for g, e in zip(ember.native_group_norm(x, None, None, 2, 4, 3, 2, 1e-5),
                    torch.native_group_norm(tx, None, None, 2, 4, 3, 2, 1e-5)):
        _close(g, e)


def test_constant_pad_nd_and_dropout_backward():
    x, tx = _pair((2, 3))
    _close(ember.constant_pad_nd(x, [1, 2, 0, 1], 0.5),
           torch.constant_pad_nd(tx, [1, 2, 0, 1], 0.5))
    mask = np.array([[True, False, True]] * 2)
    _close(ember.native_dropout_backward(x, ember.tensor(mask), 2.0),
           torch.ops.aten.native_dropout_backward(tx, torch.tensor(mask), 2.0))
