"""Conv/pooling/linear checks the op table cannot express: channels_last layouts,
error messages that name both shapes, and a larger conv against torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ember
from tests.oracle import assert_close


def _pair(rng, *shape, dtype=np.float32):
    a = rng.standard_normal(shape).astype(dtype)
    return ember.tensor(a), torch.from_numpy(a.copy())


def _cl(e, t):
    return e.to(memory_format=ember.channels_last), t.to(memory_format=torch.channels_last)


CASES = [
    ("conv2d", lambda m, x, w: m.conv2d(x, w, padding=1)),
    ("conv_transpose2d", lambda m, x, w: m.conv_transpose2d(x, w.transpose(0, 1), stride=2)),
    ("max_pool2d", lambda m, x, w: m.max_pool2d(x, 2)),
    ("avg_pool2d", lambda m, x, w: m.avg_pool2d(x, 3, 2, 1)),
    ("adaptive_avg_pool2d", lambda m, x, w: m.adaptive_avg_pool2d(x, [2, 3])),
]


def _mod(lib):
    if lib is ember:
        return ember
    class T:
        conv2d = staticmethod(F.conv2d)
        conv_transpose2d = staticmethod(F.conv_transpose2d)
        max_pool2d = staticmethod(F.max_pool2d)
        avg_pool2d = staticmethod(F.avg_pool2d)
        adaptive_avg_pool2d = staticmethod(F.adaptive_avg_pool2d)
    return T


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,fn", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("which", ["input", "weight", "both"])
def test_channels_last_parity(rng, name, fn, which, dtype):
    ex, tx = _pair(rng, 2, 4, 7, 6, dtype=dtype)
    ew, tw = _pair(rng, 4, 4, 3, 3, dtype=dtype)
    if which in ("input", "both"):
        ex, tx = _cl(ex, tx)
    if which in ("weight", "both"):
        ew, tw = _cl(ew, tw)
    ex.requires_grad_(True)
    tx.requires_grad_(True)
    eo, to = fn(_mod(ember), ex, ew), fn(_mod(torch), tx, tw)
    assert_close(eo, to, rtol=1e-4, atol=1e-5, what=name)
    assert eo.is_contiguous(memory_format=ember.channels_last) == \
        to.is_contiguous(memory_format=torch.channels_last), f"{name}: output memory format"
    cot = rng.standard_normal(tuple(to.shape)).astype(dtype)
    (eg,) = ember.autograd.grad((eo * ember.tensor(cot)).sum(), [ex])
    (tg,) = torch.autograd.grad((to * torch.from_numpy(cot)).sum(), [tx])
    assert_close(eg, tg, rtol=1e-4, atol=1e-5, what=f"{name} grad")


def test_max_pool2d_with_indices_matches_torch(rng):
    ex, tx = _pair(rng, 2, 3, 9, 8)
    ev, ei = ember.max_pool2d_with_indices(ex, 3, 2, 1, 2, True)
    tv, ti = F.max_pool2d(tx, 3, 2, 1, 2, True, return_indices=True)
    assert_close(ev, tv)
    assert ei.dtype == ember.int64
    np.testing.assert_array_equal(ei.numpy(), ti.numpy())


def test_larger_conv_against_torch(rng):
    ex, tx = _pair(rng, 4, 8, 32, 32)
    ew, tw = _pair(rng, 16, 8, 3, 3)
    eb, tb = _pair(rng, 16)
    for kw in [dict(padding=1), dict(stride=2, padding="valid"), dict(padding="same",
                                                                      dilation=2)]:
        if kw.get("stride") == 2:
            kw = dict(stride=2)
        assert_close(ember.conv2d(ex, ew, eb, **kw), F.conv2d(tx, tw, tb, **kw),
                     rtol=1e-4, atol=1e-4, what=str(kw))


def test_conv2d_channel_mismatch_names_both_shapes():
    x = ember.zeros(8, 4, 32, 32)
    w = ember.zeros(16, 3, 3, 3)
    with pytest.raises(ember.ShapeError) as err:
        ember.conv2d(x, w)
    msg = str(err.value)
    assert "conv2d" in msg and "[16, 3, 3, 3]" in msg and "[8, 4, 32, 32]" in msg
    assert "expected input with 3 channels" in msg


def test_conv_errors():
    with pytest.raises(ember.ShapeError, match="strided"):
        ember.conv2d(ember.zeros(1, 3, 8, 8), ember.zeros(2, 3, 3, 3), stride=2, padding="same")
    with pytest.raises(ember.ShapeError, match=r"\[1, 3, 2, 2\].*|too small"):
        ember.conv2d(ember.zeros(1, 3, 2, 2), ember.zeros(2, 3, 3, 3))
    with pytest.raises(ember.DTypeError, match="same dtype"):
        ember.conv2d(ember.zeros(1, 3, 8, 8, dtype=ember.float64), ember.zeros(2, 3, 3, 3))
    with pytest.raises(ember.ShapeError, match="bias"):
        ember.conv2d(ember.zeros(1, 3, 8, 8), ember.zeros(2, 3, 3, 3), ember.zeros(3))
    with pytest.raises(ember.ShapeError, match="half of effective kernel size"):
        ember.max_pool2d(ember.zeros(1, 1, 8, 8), 2, 2, 2)


def test_matmul_errors_name_both_shapes():
    with pytest.raises(ember.ShapeError, match=r"mat1 and mat2 shapes cannot be multiplied "
                                               r"\(2x3 and 4x5\)"):
        ember.matmul(ember.zeros(2, 3), ember.zeros(4, 5))
    with pytest.raises(ember.ShapeError, match=r"2x3 and 4x5"):
        ember.mm(ember.zeros(2, 3), ember.zeros(4, 5))
    with pytest.raises(ember.DTypeError, match="same dtype"):
        ember.mm(ember.zeros(2, 3), ember.zeros(3, 5, dtype=ember.float64))
    with pytest.raises(ember.ShapeError, match="at least 1D"):
        ember.matmul(ember.tensor(1.0), ember.zeros(3))


def test_einsum_second_derivative(rng):
    ea, ta = _pair(rng, 3, 4, dtype=np.float64)
    eb, tb = _pair(rng, 4, 5, dtype=np.float64)
    for t in (ea, eb, ta, tb):
        t.requires_grad_(True)
    eo = ember.einsum("ij,jk->ik", [ea, eb])
    to = torch.einsum("ij,jk->ik", ta, tb)
    (eg,) = ember.autograd.grad((eo * eo).sum(), [ea], create_graph=True)
    (tg,) = torch.autograd.grad((to * to).sum(), [ta], create_graph=True)
    (egg,) = ember.autograd.grad((eg * eg).sum(), [eb])
    (tgg,) = torch.autograd.grad((tg * tg).sum(), [tb])
    assert_close(egg, tgg, rtol=1e-8, atol=1e-10)
