"""Training-mode max_pool2d over tiling windows (frontend/nn/_max_pool_eager.py, issue 22):
values and gradients equal the op path bit for bit and torch's; double backward works;
other calls keep the op path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.nn.functional as EF
from ember.frontend.nn import _max_pool_eager


def _input(rng, shape, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, :2, :2] = 1.0                                   # a tie inside one window
    x[0, 1, 0, 0] = np.nan                                  # a NaN first in its window
    x[-1, 0, 1, 0] = x[-1, 0, 1, 1] = np.nan                # two NaNs in one window: the
    # reference's argmax picks the first (PyTorch's CPU kernel the last): compared with
    # the op path only
    x[0, -1, 2:4, 2:4] = -np.inf                            # a window of -inf only
    return x


@pytest.mark.parametrize("shape, k", [((2, 3, 8, 8), 2), ((2, 2, 7, 9), 3),
                                      ((1, 3, 6, 7), [2, 3])])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_max_pool_matches_op_path_and_torch(shape, k, dtype, rng):
    x = _input(rng, shape, dtype)
    ex = ember.tensor(x, requires_grad=True)
    ks = [k, k] if isinstance(k, int) else list(k)
    assert _max_pool_eager.tiled_max_pool_applies(ex, ks, ks, [0, 0], [1, 1], False)
    out = EF.max_pool2d(ex, k)
    assert out.grad_fn.name_() == "MaxPool2DWithIndicesBackward"
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.nn.functional.max_pool2d(tx, k)
    np.testing.assert_array_equal(out.detach().numpy(), tout.detach().numpy())
    g = rng.standard_normal(tout.shape).astype(dtype)
    out.backward(ember.tensor(g))
    tout.backward(torch.tensor(g))
    one_nan = np.ones(x.shape, bool)
    one_nan[-1, 0] = False
    np.testing.assert_array_equal(ex.grad.numpy()[one_nan], tx.grad.numpy()[one_nan])
    # the op path (no grad recorded on the input: plain op, then its derivative rule)
    ex2 = ember.tensor(x, requires_grad=True)
    op_out = ember.ir.registry.OPS["max_pool2d"](ex2, ks, ks, [0, 0], [1, 1], False)
    op_out.backward(ember.tensor(g))
    np.testing.assert_array_equal(ex2.grad.numpy(), ex.grad.numpy())


def test_double_backward_through_fused_max_pool(rng):
    x = rng.standard_normal((2, 2, 4, 6))
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (gx,) = ember.autograd.grad((EF.max_pool2d(ex, 2) ** 2).sum(), [ex], create_graph=True)
    (tgx,) = torch.autograd.grad((torch.nn.functional.max_pool2d(tx, 2) ** 2).sum(), [tx],
                                 create_graph=True)
    np.testing.assert_allclose(gx.detach().numpy(), tgx.detach().numpy())
    (gx * gx).sum().backward()
    (tgx * tgx).sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy())


def test_other_calls_keep_the_op_path(rng):
    x = ember.tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
    applies = _max_pool_eager.tiled_max_pool_applies
    assert not applies(x, [3, 3], [2, 2], [1, 1], [1, 1], False)     # overlapping windows
    assert not applies(x, [2, 2], [2, 2], [0, 0], [1, 1], True)      # ceil_mode
    assert not applies(x.detach(), [2, 2], [2, 2], [0, 0], [1, 1], False)
    cl = x.detach().contiguous(memory_format=ember.channels_last).requires_grad_()
    assert not applies(cl, [2, 2], [2, 2], [0, 0], [1, 1], False)
    out = EF.max_pool2d(cl, 2)
    assert out.is_contiguous(memory_format=ember.channels_last)
    with ember.no_grad():
        assert not applies(x, [2, 2], [2, 2], [0, 0], [1, 1], False)
    with pytest.raises(Exception):
        EF.max_pool2d(x, 9)                                            # bigger than input


@pytest.mark.parametrize("nan_grad", [False, True])
def test_fused_max_pool_backward_signed_zero_and_nan_gradients(rng, nan_grad):
    """The tiled backward multiplies by the winner mask: -0.0 and NaN gradients must
    still come out as the op path's scatter gives them (+0.0 off the winners)."""
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    g = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    g[0, 0, 0, :] = -0.0
    if nan_grad:
        g[1, 2, 3, 3] = np.nan
    ex = ember.tensor(x, requires_grad=True)
    EF.max_pool2d(ex, 2).backward(ember.tensor(g))
    ex2 = ember.tensor(x, requires_grad=True)
    ember.ir.registry.OPS["max_pool2d"](ex2, [2, 2], [2, 2], [0, 0], [1, 1], False).backward(
        ember.tensor(g))
    np.testing.assert_array_equal(ex.grad.numpy(), ex2.grad.numpy())
    zeros = ex.grad.numpy()[ex.grad.numpy() == 0]
    assert zeros.size and not np.signbit(zeros).any()       # +0.0, as the scatter-add
