"""A compiled training step's saved values keep the strides its backward was compiled
for: two `chunk` pieces (views with their parent's row stride) saved by the forward
plan once came back as compact copies, and the backward read them with the parent's
stride (garbage gradients; found by nn.GRU's gates)."""
import numpy as np

import ember


def test_backward_of_saved_chunk_pieces_matches_eager():
    ember.manual_seed(0)
    w = ember.randn(6, 3, requires_grad=True)
    x = ember.randn(2, 3)

    def f(x):
        a, b, c = (x @ w.t()).chunk(3, -1)
        return (b * c).sum()
    ember.compile(f)(x).backward()
    compiled = w.grad.numpy().copy()
    w.grad = None
    f(x).backward()
    np.testing.assert_allclose(compiled, w.grad.numpy(), rtol=1e-5, atol=1e-6)
