"""Tensor.resize_ / resize_as_: shapes, kept contents and refusals, as PyTorch."""
import pytest
import torch

import ember


def test_resize_keeps_the_storage_prefix_and_grows():
    x, tx = ember.arange(6.0).reshape(2, 3), torch.arange(6.0).reshape(2, 3)
    assert x.resize_(4).tolist() == tx.resize_(4).tolist()
    assert x.resize_(2, 3).tolist() == tx.resize_(2, 3).tolist()   # shrunk storage kept
    x.resize_(3, 3)
    assert x.shape == (3, 3) and x[:2].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert x.is_contiguous()


def test_resize_as_and_refusals():
    y = ember.zeros(2, 2)
    assert ember.resize_as_(y, ember.ones(5)) is y and y.shape == (5,)
    with pytest.raises(RuntimeError, match="require grad"):
        ember.ones(2, requires_grad=True).resize_(3)
    with pytest.raises(RuntimeError, match="negative dimension"):
        ember.ones(2).resize_(-1)
