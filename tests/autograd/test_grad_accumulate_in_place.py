"""Gradient accumulation into an existing .grad (autograd/engine.py AccumulateGrad):
in place once the buffer is the engine's own, PyTorch's values, and never into memory
something else shares (issue 22)."""
from __future__ import annotations

import numpy as np
import torch

import ember


def test_repeated_backward_accumulates_like_torch(rng):
    x = rng.standard_normal((3, 4))
    w = ember.tensor(x, requires_grad=True)
    tw = torch.tensor(x, requires_grad=True)
    for k in range(4):
        (w * (k + 1.5)).sin().sum().backward()
        (tw * (k + 1.5)).sin().sum().backward()
        np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-12)


def test_owned_buffer_is_reused_in_place():
    w = ember.ones(5, requires_grad=True)
    for _ in range(2):
        (w * 2).sum().backward()
    buffer = w.grad
    ptr = buffer.data_ptr()
    (w * 2).sum().backward()
    assert w.grad is buffer and w.grad.data_ptr() == ptr
    np.testing.assert_array_equal(w.grad.numpy(), np.full(5, 6.0))


def test_shared_first_gradients_are_never_written():
    # add's derivative hands the same gradient to both leaves (a view of the cotangent
    # backward started from): each leaf's .grad is its own copy, so accumulating into one
    # never changes the other; .grad then stays the same object, added into in place, as
    # torch's (a reference taken after the first backward sees the later sums)
    a = ember.ones(3, requires_grad=True)
    b = ember.ones(3, requires_grad=True)
    (a + b).sum().backward()
    b_first = b.grad
    ta, tb = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    (ta + tb).sum().backward()
    tb_first = tb.grad
    for _ in range(3):
        (a + b).sum().backward()
        (ta + tb).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full(3, 4.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.full(3, 4.0))
    assert (b_first is b.grad) == (tb_first is tb.grad)
    np.testing.assert_array_equal(b_first.numpy(), tb_first.numpy())
    leaf = ember.zeros(3, requires_grad=True)
    g = ember.ones(3)
    for _ in range(3):
        leaf.backward(g)
    np.testing.assert_array_equal(g.numpy(), np.ones(3))
    np.testing.assert_array_equal(leaf.grad.numpy(), np.full(3, 3.0))


def test_create_graph_accumulation_stays_out_of_place():
    w = ember.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(3):
        (w ** 3).sum().backward(create_graph=True)
    assert w.grad.requires_grad
    np.testing.assert_allclose(w.grad.detach().numpy(), 3 * 3 * np.array([1.0, 4.0]))


def test_gradient_viewing_the_callers_cotangent_is_copied():
    """Flatten's input gradient is a view of the grad_output given to backward: zeroing
    .grad (as PyTorch's test_noncontig does) leaves the caller's tensor intact (ember
    copies it; torch's .grad aliases it and its zero_() clears the caller's tensor too),
    and the next backward adds into the same .grad in place, as torch's does."""
    x = ember.randn(2, 3, 4, dtype=ember.float64, requires_grad=True)
    out = ember.nn.Flatten()(x)
    go = ember.randn(*out.shape, dtype=ember.float64)
    kept = go.numpy().copy()
    out.backward(go, retain_graph=True)
    grad = x.grad
    x.grad.zero_()
    np.testing.assert_array_equal(go.numpy(), kept)
    out.backward(go)
    assert x.grad is grad
    np.testing.assert_array_equal(x.grad.numpy().reshape(2, -1), kept)
