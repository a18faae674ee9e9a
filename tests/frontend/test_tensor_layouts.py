"""torch.layout as PyTorch code uses it: `t.layout`, `layout=` on factories, pickling."""
import pickle

import pytest
import torch

import ember


def test_tensor_layout_is_strided_like_torch():
    assert ember.zeros(2).layout is ember.strided
    assert str(torch.zeros(2).layout).replace("torch", "ember") == str(ember.zeros(2).layout)
    assert not ember.zeros(2).is_sparse


@pytest.mark.parametrize("factory, args", [
    ("zeros", (2, 3)), ("ones", (2,)), ("empty", (2,)), ("full", ((2,), 1.5)),
    ("arange", (4,)), ("linspace", (0, 1, 5)), ("eye", (3,)), ("rand", (2,)),
    ("randn", (2,)), ("randint", (5, (3,))), ("randperm", (4,)), ("scalar_tensor", (2.0,)),
])
def test_factories_take_strided_layout_and_pin_memory(factory, args):
    made = getattr(ember, factory)(*args, layout=ember.strided, pin_memory=False)
    oracle = getattr(torch, factory)(*args, layout=torch.strided, pin_memory=False)
    assert tuple(made.shape) == tuple(oracle.shape)
    assert str(made.dtype).split(".")[-1] == str(oracle.dtype).split(".")[-1]


def test_like_factories_take_layout():
    x = ember.ones(2, 2)
    assert ember.zeros_like(x, layout=x.layout).layout is ember.strided


def test_sparse_layout_is_refused_naming_the_factory():
    # zeros / empty with layout=sparse_coo make an empty sparse tensor, as torch's
    with pytest.raises(ValueError, match=r"ones\(\).*layout=ember.sparse_coo"):
        ember.ones(2, layout=ember.sparse_coo)
    with pytest.raises(TypeError, match="layout"):
        ember.ones(2, layout="strided")


def test_layouts_pickle_to_themselves():
    for layout in (ember.strided, ember.sparse_coo, ember.sparse_csr):
        assert pickle.loads(pickle.dumps(layout)) is layout
