"""Tracing bad input (errors at the user's line), Tracer options (autowrap_modules,
param_shapes_constant) and split_module."""
from __future__ import annotations

import inspect
import math
import operator
import os
from math import floor

import numpy as np
import pytest

import ember
import ember.fx as fx
import ember.nn as nn
from ember.ir.errors import TraceError

THIS_FILE = os.path.basename(__file__)


def assert_same(got, want):
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def line_of(fn, text: str) -> int:
    """Line number of the first source line of `fn` containing `text`."""
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


# --- bad input ------------------------------------------------------------------------------
def branch_on_data(x):
    if x.sum() > 0:
        return x
    return -x


def length_of_proxy(x):
    return x * len(x)


def int_of_proxy(x):
    return x * int(x)


def proxy_as_index(x):
    table = [1.0, 2.0, 3.0]
    return x * table[x]


def loop_over_proxy(x):
    total = 0
    for row in x:
        total = total + row
    return total


@pytest.mark.parametrize("fn,offending,what", [
    (branch_on_data, "if x.sum() > 0:", "bool()"),
    (length_of_proxy, "return x * len(x)", "len()"),
    (int_of_proxy, "return x * int(x)", "int()"),
    (proxy_as_index, "return x * table[x]", "use as an index"),
    (loop_over_proxy, "for row in x:", "iteration"),
], ids=lambda v: getattr(v, "__name__", None))
def test_unsupported_python_on_proxies_names_the_user_line(fn, offending, what):
    with pytest.raises(TraceError) as err:
        fx.symbolic_trace(fn)
    message = str(err.value)
    assert f"{THIS_FILE}:{line_of(fn, offending)} in {fn.__name__}" in message
    assert offending in message and what in message
    assert "concrete_args" in message and "leaf module" in message


def test_leaf_module_escape_hatch_for_data_dependent_control_flow():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.branchy = Branchy()

        def forward(self, x):
            return self.branchy(x) + 1

    class BranchyIsLeaf(fx.Tracer):
        def is_leaf_module(self, m, name):
            return isinstance(m, Branchy) or super().is_leaf_module(m, name)

    model = Model()
    with pytest.raises(TraceError):
        fx.symbolic_trace(model)
    gm = fx.GraphModule(model, BranchyIsLeaf().trace(model))
    for x in (ember.randn(3).abs(), -ember.randn(3).abs()):
        assert_same(gm(x), model(x))


# --- Tracer options ------------------------------------------------------------------------
class ScaledAttentionScore(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Parameter(ember.randn(6, 4))

    def forward(self, q):
        scale = math.sqrt(q.shape[-1])          # a Proxy shape: needs autowrap of math
        return (q @ self.proj.t()) / scale + self.proj.shape[0]


def test_autowrap_modules_records_math_calls_as_leaves():
    model = ScaledAttentionScore()
    gm = fx.symbolic_trace(model)               # math is autowrapped by default, as in torch
    sqrt_nodes = [n for n in gm.graph.nodes if n.target is math.sqrt]
    assert len(sqrt_nodes) == 1 and sqrt_nodes[0].op == "call_function"
    q = ember.randn(2, 4)
    assert_same(gm(q), model(q))
    assert math.sqrt(4.0) == 2.0, "math is restored after tracing"
    with pytest.raises(TraceError):             # without it, sqrt needs a concrete value
        fx.Tracer(autowrap_modules=()).trace(model)


def half_rows(x):
    return x + floor(x.shape[0] / 2)       # `floor` imported from math at the top


def test_autowrap_modules_patches_names_imported_from_the_module():
    gm = fx.symbolic_trace(half_rows)
    assert any(n.target is math.floor for n in gm.graph.nodes)
    assert floor is math.floor, "the module's global is restored after tracing"
    x = ember.randn(5, 2)
    assert_same(gm(x), x + 2)


def test_param_shapes_constant():
    model = ScaledAttentionScore()
    symbolic = fx.Tracer().trace(model)
    getattr_targets = [n.args[1] for n in symbolic.nodes if n.target is getattr]
    assert getattr_targets.count("shape") == 2     # q.shape and proj.shape are recorded
    constant = fx.Tracer(param_shapes_constant=True).trace(model)
    assert [n.args[1] for n in constant.nodes if n.target is getattr] == ["shape"]
    add = next(n for n in constant.nodes if n.target is operator.add)
    assert add.args[1] == 6                        # proj.shape[0] baked in
    gm = fx.GraphModule(model, constant)
    q = ember.randn(3, 4)
    assert_same(gm(q), model(q))


def test_parameters_become_one_get_attr_each():
    model = ScaledAttentionScore()
    graph = fx.Tracer(param_shapes_constant=True).trace(model)
    assert [n.target for n in graph.nodes if n.op == "get_attr"] == ["proj"]


# --- split_module -------------------------------------------------------------------------
class ThreeStages(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin1 = nn.Linear(4, 5)
        self.lin2 = nn.Linear(5, 5)
        self.bias = nn.Parameter(ember.randn(5))

    def forward(self, x, y):
        a = self.lin1(x).relu()
        b = self.lin2(a) + self.bias
        return b * a + y.sum(), a


def test_split_module_partitions_and_matches_eager():
    model = ThreeStages()
    gm = fx.symbolic_trace(model)
    stage = {"lin1": 0, "relu": 0, "lin2": 1, "add": 1}

    def callback(node):
        return stage.get(node.name, 2)
    qualnames = {}
    split = fx.split_module(gm, model, callback, qualname_map=qualnames)
    calls = [n for n in split.graph.nodes if n.op == "call_module"]
    assert [n.target for n in calls] == ["submod_0", "submod_1", "submod_2"]
    # relu's value crosses into partitions 1 and 2, and is an output too; the bias
    # parameter (a get_attr) stays in the base module and is passed in, as torch does
    assert [p.name for p in split.submod_1.graph.placeholders] == ["relu", "bias"]
    assert sorted(p.name for p in split.submod_2.graph.placeholders) == ["add", "relu", "y"]
    # called submodules live in the partition that uses them
    assert qualnames == {"submod_0.lin1": "lin1", "submod_1.lin2": "lin2"}
    assert split.bias is model.bias
    x, y = ember.randn(3, 4), ember.randn(2)
    got, want = split(x, y), model(x, y)
    assert_same(got[0], want[0])
    assert_same(got[1], want[1])


def test_split_module_orders_partitions_by_dependency():
    def f(x):
        a = x.sin()            # partition "late"
        b = x.cos()            # partition "early", used by a's partition
        return a + b
    gm = fx.symbolic_trace(f)
    part = {"sin": "late", "cos": "early", "add": "late"}
    split = fx.split_module(gm, gm, lambda n: part[n.name])
    assert [n.target for n in split.graph.nodes if n.op == "call_module"] == \
        ["submod_early", "submod_late"]
    x = ember.randn(4)
    assert_same(split(x), f(x))
    with pytest.raises(ember.EmberError, match="appears before partitions it uses"):
        fx.split_module(gm, gm, lambda n: part[n.name], keep_original_order=True)


def test_split_module_rejects_cyclic_partitions():
    def f(x):
        a = x.sin()
        b = a.cos()
        return b.exp()
    gm = fx.symbolic_trace(f)
    part = {"sin": 0, "cos": 1, "exp": 0}
    with pytest.raises(ember.EmberError, match="cycle"):
        fx.split_module(gm, gm, lambda n: part[n.name])


def test_split_module_calls_a_stateful_callback_once_per_node_as_torch():
    """The torch.fx tutorial's round-robin partitioner: the generated code matches torch's."""
    torch = pytest.importorskip("torch")

    def build(lib):
        class MyModule(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.param = lib.nn.Parameter(lib.rand(3, 4))
                self.linear = lib.nn.Linear(4, 5)

            def forward(self, x, y):
                z = self.linear(x + self.param).clamp(min=0.0, max=1.0)
                w = self.linear(y).clamp(min=0.0, max=1.0)
                return z + w
        module = MyModule()
        counter = [0]

        def round_robin(node):
            counter[0] += 1
            return (counter[0] - 1) % 3
        split = lib.fx.passes.split_module.split_module(lib.fx.symbolic_trace(module),
                                                        module, round_robin)
        return module, split
    import torch.fx.passes.split_module  # noqa: F401
    _, torch_split = build(torch)
    module, split = build(ember)
    assert split.code.replace("ember.", "torch.") == torch_split.code
    x, y = ember.rand(3, 4), ember.rand(3, 4)
    assert_same(split(x, y), module(x, y))


def test_split_module_torch_location():
    from ember.fx.passes.split_module import split_module
    assert split_module is fx.split_module
