"""ember.utils.checkpoint: the same values and gradients as running the function
directly (inputs and captured parameters, dropout's mask included), the function
recomputed in backward, torch's use_reentrant rules."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import ember
from ember.utils.checkpoint import checkpoint, checkpoint_sequential


def values(t):
    return t.detach().numpy()


class Block(ember.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = ember.nn.Linear(4, 4)
        self.drop = ember.nn.Dropout(0.5)
        self.calls = 0

    def forward(self, x, scale=1.0):
        self.calls += 1
        return self.drop(self.lin(x).tanh()) * scale


def grads_of(block, x, run):
    block.zero_grad()
    x.grad = None
    ember.manual_seed(7)
    out = run(x)
    (out * ember.arange(out.numel()).reshape(out.shape)).sum().backward()
    return values(out), values(x.grad), values(block.lin.weight.grad), values(block.lin.bias.grad)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_checkpoint_matches_direct_run_and_recomputes(use_reentrant):
    block, x = Block(), ember.randn(3, 4, requires_grad=True)
    direct = grads_of(block, x, block)
    block.calls = 0
    checked = grads_of(block, x, lambda v: checkpoint(block, v, use_reentrant=use_reentrant))
    assert block.calls == 2, "one run forward, one recomputation in backward"
    for want, got in zip(direct, checked):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_non_reentrant_keyword_arguments_autograd_grad_and_double_backward():
    block, x = Block(), ember.randn(2, 4, dtype=ember.float64, requires_grad=True)
    block.double().eval()
    out = checkpoint(block, x, scale=3.0, use_reentrant=False)
    gx, gw = ember.autograd.grad(out.sum(), [x, block.lin.weight], create_graph=True)
    want_gx, want_gw = ember.autograd.grad(block(x, scale=3.0).sum(), [x, block.lin.weight],
                                           create_graph=True)
    np.testing.assert_allclose(values(gx), values(want_gx), rtol=1e-12)
    np.testing.assert_allclose(values(gw), values(want_gw), rtol=1e-12)
    (second,) = ember.autograd.grad(gx.sum(), [x])
    (want_second,) = ember.autograd.grad(want_gx.sum(), [x])
    np.testing.assert_allclose(values(second), values(want_second), rtol=1e-10)


def test_reentrant_rules_follow_torch():
    block = Block()
    with pytest.raises(ValueError, match="Unexpected keyword arguments: scale"):
        checkpoint(block, ember.randn(2, 4), scale=2.0, use_reentrant=True)
    with pytest.warns(UserWarning, match="None of the inputs have requires_grad=True"):
        out = checkpoint(block, ember.randn(2, 4), use_reentrant=True)
    assert not out.requires_grad
    with pytest.warns(UserWarning, match="use_reentrant parameter should be passed explicitly"):
        checkpoint(block, ember.randn(2, 4, requires_grad=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = checkpoint(block, ember.randn(2, 4), use_reentrant=False)
    assert out.requires_grad, "the block's parameters require grad"


def test_checkpoint_sequential_matches_the_sequential():
    ember.manual_seed(0)
    model = ember.nn.Sequential(*[ember.nn.Linear(4, 4) for _ in range(5)])
    x = ember.randn(3, 4, requires_grad=True)
    out = checkpoint_sequential(model, 2, x, use_reentrant=False)
    out.sum().backward()
    got = [values(p.grad) for p in model.parameters()] + [values(x.grad)]
    model.zero_grad()
    x.grad = None
    np.testing.assert_allclose(values(out), values(model(x)), rtol=1e-6)
    model(x).sum().backward()
    want = [values(p.grad) for p in model.parameters()] + [values(x.grad)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)
