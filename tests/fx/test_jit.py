"""ember.jit.trace: eager recording into the fx IR (torch.jit.trace semantics)."""
from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest

import ember
import ember.fx as fx
import ember.jit
import ember.nn as nn
from ember.ir import graphs_equal, parse, print_graph, verify
from ember.ir.errors import TraceError


def assert_same(got, want):
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def branchy(x, y):
    if x.sum() > 0:                       # specializes to the example's branch
        return (x * 2).relu() + y
    return x - y


def test_trace_specializes_on_the_example_branch_and_warns():
    positive = ember.randn(4).abs() + 0.1
    expected = r"\(bool\(\)\) at test_jit.py:\d+ in branchy"
    with pytest.warns(ember.jit.TracerWarning, match=expected):
        gm = ember.jit.trace(branchy, (positive, ember.randn(4)))
    ops = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert ops == [ember.mul, ember.relu, ember.add], "the branch condition is dead code"
    x, y = -positive, ember.randn(4)
    assert_same(gm(x, y), (x * 2).relu() + y)        # the traced path, not eager's branch
    assert not np.allclose(gm(x, y).numpy(), branchy(x, y).numpy())


def test_item_warns_and_bakes_the_value():
    def f(x):
        return x * x.max().item()
    x = ember.tensor([1.0, 3.0])
    with pytest.warns(ember.jit.TracerWarning, match=r"\.item\(\)"):
        gm = ember.jit.trace(f, x)
    assert_same(gm(ember.tensor([1.0, 5.0])), ember.tensor([3.0, 15.0]))


def test_no_warning_without_conversions():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ember.jit.trace(lambda x: (x.exp() + 1).sum(dim=0), ember.randn(3, 2))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.register_buffer("offset", ember.randn(4))
        self.table = ember.randn(4)                # a plain tensor attribute

    def forward(self, x):
        h = self.lin(x).tanh() + self.offset
        return h * self.table, h.detach().sum()


def test_module_parameters_and_buffers_are_get_attr():
    model = Net()
    x = ember.randn(2, 3)
    gm = ember.jit.trace(model, x)
    attrs = [n.target for n in gm.graph.nodes if n.op == "get_attr"]
    assert sorted(attrs) == ["_tensor_constant0", "lin.bias", "lin.weight", "offset"]
    assert gm.lin.weight is model.lin.weight and gm.offset is model.offset
    assert dict(gm.named_parameters()).keys() == {"lin.weight", "lin.bias"}
    placeholders = [n.name for n in gm.graph.placeholders]
    assert placeholders == ["x"]
    x2 = ember.randn(5, 3)
    for got, want in zip(gm(x2), model(x2)):
        assert_same(got, want)


def test_meta_and_locs_are_recorded():
    gm = ember.jit.trace(Net(), ember.randn(2, 3))
    for node in gm.graph.nodes:
        if node.op == "output":
            continue
        assert "val" in node.meta, node.name
    tanh = next(n for n in gm.graph.nodes if n.target is ember.tanh)
    assert tanh.meta["val"].shape == (2, 4)
    assert tanh.meta["loc"].startswith("test_jit.py:") and "in forward" in tanh.meta["loc"]
    verify(gm.graph)
    text = print_graph(gm.graph, locs=True)
    assert graphs_equal(parse(text), gm.graph)


def test_traced_module_code_printing_and_pickling():
    model = Net()
    gm = ember.jit.trace(model, ember.randn(2, 3))
    assert "def forward(self, x):" in gm.code and "ember.tanh(" in gm.code
    assert "self.lin.weight" in gm.code
    assert "def forward" in str(gm)
    x = ember.randn(3, 3)
    for clone in (pickle.loads(pickle.dumps(gm)), copy.deepcopy(gm)):
        assert clone.code == gm.code
        for got, want in zip(clone(x), model(x)):
            assert_same(got, want)
    assert isinstance(gm, fx.GraphModule)


def test_multi_output_ops_and_in_place_ops():
    def f(x):
        values, indices = x.max(dim=1)
        y = x.clone()
        y.add_(1)
        return values + y.sum(dim=1), indices
    x = ember.randn(3, 4)
    gm = ember.jit.trace(f, x)
    x2 = ember.randn(3, 4)
    got, want = gm(x2), f(x2)
    assert_same(got[0], want[0])
    assert (got[1].numpy() == want[1].numpy()).all()


def test_check_trace_and_bad_example_inputs():
    gm = ember.jit.trace(lambda x: x.sin(), ember.randn(3), check_trace=True)
    assert_same(gm(ember.zeros(2)), ember.zeros(2))
    with pytest.raises(TraceError, match=r"example input 'flag' is a bool.*\n  at test_jit.py"):
        ember.jit.trace(lambda x, flag: x, (ember.randn(2), True))


def test_jit_final_and_annotations_are_typings_names():
    """torch.jit.Final and torch.jit.annotations' names are typing's (timm uses both)."""
    import typing

    import torch
    from ember.jit.annotations import BroadcastingList2, Dict, List, Optional, Tuple
    assert ember.jit.Final is torch.jit.Final is typing.Final
    assert (List, Tuple, Dict, Optional) == (typing.List, typing.Tuple, typing.Dict,
                                             typing.Optional)
    assert BroadcastingList2[int] == typing.List[int]
