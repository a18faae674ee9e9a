"""Training-mode batch_norm's fused eager path (frontend/nn/_batch_norm_eager.py, issue 22):
values, gradients, running statistics and double backward against torch, and the
op-by-op path kept where the fused one does not apply."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.nn.functional as EF
from ember.frontend.nn import _batch_norm_eager


@pytest.mark.parametrize("shape, affine", [((4, 3, 5, 6), True), ((6, 5), True),
                                           ((3, 4, 7), False), ((2, 3, 2, 2, 3), True)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_training_batch_norm_matches_torch(shape, affine, dtype, rng):
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 1.5).astype(dtype)
    w, b = rng.standard_normal(c).astype(dtype), rng.standard_normal(c).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    rm, rv = rng.standard_normal(c).astype(dtype), (rng.random(c) + 0.5).astype(dtype)
    ex = ember.tensor(x, requires_grad=True)
    ew = ember.tensor(w, requires_grad=True) if affine else None
    eb = ember.tensor(b, requires_grad=True) if affine else None
    erm, erv = ember.tensor(rm), ember.tensor(rv)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True) if affine else None
    tb = torch.tensor(b, requires_grad=True) if affine else None
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    assert _batch_norm_eager.fused_batch_norm_applies(ex, erm, erv, ew, eb)
    out = EF.batch_norm(ex, erm, erv, ew, eb, True, 0.2, 1e-3)
    tout = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, True, 0.2, 1e-3)
    assert out.grad_fn is not None and out.dtype == ex.dtype and out.stride() == tout.stride()
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), **tol)
    np.testing.assert_allclose(erm.numpy(), trm.numpy(), **tol)
    np.testing.assert_allclose(erv.numpy(), trv.numpy(), **tol)
    out.backward(ember.tensor(g))
    tout.backward(torch.tensor(g))
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), **tol)
    if affine:
        np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), **tol)
        np.testing.assert_allclose(eb.grad.numpy(), tb.grad.numpy(), **tol)


def test_double_backward_through_fused_batch_norm(rng):
    x = rng.standard_normal((4, 3, 2, 2))
    w = rng.standard_normal(3)
    ex, ew = ember.tensor(x, requires_grad=True), ember.tensor(w, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    out = EF.batch_norm(ex, None, None, ew, None, True)
    tout = torch.nn.functional.batch_norm(tx, None, None, tw, None, True)
    (gx,) = ember.autograd.grad((out ** 3).sum(), [ex], create_graph=True)
    (tgx,) = torch.autograd.grad((tout ** 3).sum(), [tx], create_graph=True)
    np.testing.assert_allclose(gx.detach().numpy(), tgx.detach().numpy(), rtol=1e-9, atol=1e-9)
    (gx * gx).sum().backward()
    (tgx * tgx).sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=1e-8, atol=1e-9)


def test_other_layouts_and_errors_keep_the_op_by_op_path(rng):
    x = ember.tensor(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    cl = x.contiguous(memory_format=ember.channels_last)
    assert not _batch_norm_eager.fused_batch_norm_applies(cl, None, None, None, None)
    out = EF.batch_norm(cl, None, None, training=True)
    assert out.is_contiguous(memory_format=ember.channels_last)
    half_w = ember.ones(3, dtype=ember.float64)
    assert not _batch_norm_eager.fused_batch_norm_applies(x, None, None, half_w, None)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        EF.batch_norm(ember.ones(1, 3), None, None, training=True)


def test_batch_norm_module_trains_as_torch(rng):
    x = rng.standard_normal((8, 4, 5, 5)).astype(np.float32)
    em, tm = ember.nn.BatchNorm2d(4), torch.nn.BatchNorm2d(4)
    for _ in range(2):
        em(ember.tensor(x)).sum().backward()
        tm(torch.tensor(x)).sum().backward()
    np.testing.assert_allclose(em.running_var.numpy(), tm.running_var.numpy(), rtol=1e-5)
    np.testing.assert_allclose(em.weight.grad.numpy(), tm.weight.grad.numpy(), atol=1e-4)
    assert int(em.num_batches_tracked.item()) == 2
