"""Behaviours found by running PyTorch's common_nn test dicts against ember
(tools/nntests.py), each checked directly against torch."""
from __future__ import annotations

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _ember_copy(t_mod, e_mod):
    e_mod.load_state_dict({k: ember.tensor(v.detach().numpy())
                           for k, v in t_mod.state_dict().items()})
    return e_mod


@pytest.mark.parametrize("name,spatial", [("Conv1d", (5,)), ("Conv2d", (5, 4)),
                                          ("Conv3d", (3, 4, 3)),
                                          ("ConvTranspose2d", (5, 4))])
def test_conv_backward_on_empty_batch(name, spatial):
    t = getattr(torch.nn, name)(4, 6, 3).double()
    e = _ember_copy(t, getattr(ember.nn, name)(4, 6, 3).double())
    shape = (0, 4) + spatial
    xt = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    xe = ember.zeros(shape, dtype=ember.float64, requires_grad=True)
    yt, ye = t(xt), e(xe)
    yt.sum().backward()
    ye.sum().backward()
    assert tuple(ye.shape) == tuple(yt.shape)
    assert tuple(xe.grad.shape) == tuple(xt.grad.shape)
    np.testing.assert_array_equal(e.weight.grad.numpy(), t.weight.grad.numpy())
    np.testing.assert_array_equal(e.bias.grad.numpy(), t.bias.grad.numpy())


def test_tensor_new_with_a_size_is_a_shape():
    """`out.new(out.shape).normal_()` (PyTorch's own test code): a Size is a shape, a list
    or tuple is data."""
    e, t = ember.randn(2, 3), torch.randn(2, 3)
    assert tuple(e.new(e.shape).shape) == tuple(t.new(t.shape).shape) == (2, 3)
    assert e.new([2, 3]).tolist() == t.new([2, 3]).tolist()
    assert e.new((2, 3)).tolist() == t.new((2, 3)).tolist()
    assert tuple(ember.FloatTensor(e.shape).shape) == tuple(torch.FloatTensor(t.shape).shape)
    assert ember.FloatTensor([2, 3]).tolist() == torch.FloatTensor([2, 3]).tolist()


@pytest.mark.parametrize("kwargs", [dict(sparse=True), dict(max_norm=1.5),
                                    dict(norm_type=1.0, max_norm=2.0),
                                    dict(scale_grad_by_freq=True), dict(padding_idx=1)])
def test_embedding_repr(kwargs):
    assert repr(ember.nn.Embedding(4, 3, **kwargs)) == repr(torch.nn.Embedding(4, 3, **kwargs))
