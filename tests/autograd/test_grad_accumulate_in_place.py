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
    # add's derivative hands the same gradient to both leaves; a user's grad_output is
    # the first .grad of a leaf: neither may change when the leaves accumulate again
    a = ember.ones(3, requires_grad=True)
    b = ember.ones(3, requires_grad=True)
    (a + b).sum().backward()
    b_first = b.grad
    for _ in range(3):
        (a + b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full(3, 4.0))
    np.testing.assert_array_equal(b.grad.numpy(), np.full(3, 4.0))
    np.testing.assert_array_equal(b_first.numpy(), np.ones(3))
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
