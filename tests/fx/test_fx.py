"""torch.fx behaviours users rely on, replicated for ember.fx, plus the textual IR."""
from __future__ import annotations

import copy
import operator
import pickle

import numpy as np
import pytest

import ember
import ember.fx as fx
import ember.nn as nn
from ember.ir.parser import graphs_equal, parse
from ember.ir.printer import print_graph
from ember.ir.errors import ParseError, TraceError


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(ember.randn(4))
        self.register_buffer("shift", ember.randn(4))

    def forward(self, x):
        return x * self.scale + self.shift


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Inner()
        self.lin = nn.Linear(4, 4)

    def forward(self, x, bias=1.0):
        y = self.inner(x).relu()
        y = self.lin(y) + self.inner(y)        # a module used twice
        return {"out": y.sum(dim=1, keepdim=True) + bias, "aux": (y, x.shape[0])}


def close(a, b):
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_nested_modules_trace_and_match_eager():
    m = Outer()
    gm = fx.symbolic_trace(m)
    x = ember.randn(3, 4)
    got, want = gm(x), m(x)
    close(got["out"], want["out"])
    close(got["aux"][0], want["aux"][0])
    assert got["aux"][1] == 3
    targets = [n.target for n in gm.graph.nodes if n.op == "call_module"]
    assert targets == ["lin"], "nn.Linear is a leaf; Inner is traced through"
    attrs = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    assert attrs == {"inner.scale", "inner.shift"}


def test_generated_code_is_readable_python():
    gm = fx.symbolic_trace(Outer())
    assert "def forward(self, x, bias = 1.0):" in gm.code
    assert "relu = add.relu();  add = None" in gm.code     # method call; dead value freed
    assert "lin = self.lin(relu)" in gm.code
    assert "mul = x * inner_scale" in gm.code               # operators print infix


def test_concrete_args_specialize():
    def f(x, flag):
        if flag:
            return x + 1
        return x - 1
    gm = fx.symbolic_trace(f, concrete_args={"flag": True})
    x = ember.randn(2)
    close(gm(x, True), x + 1)       # as in torch.fx: the argument stays, guarded
    with pytest.raises(AssertionError, match="flag has been specialized to have value True"):
        gm(x, False)


def test_data_dependent_control_flow_names_the_user_line():
    def f(x):
        if x.sum() > 0:         # the offending line
            return x
        return -x
    with pytest.raises(TraceError) as err:
        fx.symbolic_trace(f)
    msg = str(err.value)
    assert "test_fx.py" in msg and "if x.sum() > 0" in msg and "concrete_args" in msg


def test_leaf_module_override():
    class AllLeaves(fx.Tracer):
        def is_leaf_module(self, m, name):
            return True
    m = Outer()
    graph = AllLeaves().trace(m)
    assert [n.target for n in graph.nodes if n.op == "call_module"] == ["inner", "lin", "inner"]


def my_helper(x):
    return x.relu() if x.ndim > 0 else x      # would fail when traced with proxies


fx.wrap("my_helper")


def test_wrap_records_call_function():
    def f(x):
        return my_helper(x) + 1
    gm = fx.symbolic_trace(f)
    fns = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert any(getattr(t, "__name__", "") == "my_helper" for t in fns)
    x = ember.randn(3)
    close(gm(x), x.relu() + 1)


def test_swap_relu_for_gelu_and_recompile():
    gm = fx.symbolic_trace(Outer())
    for node in gm.graph.nodes:
        if node.op == "call_method" and node.target == "relu":
            node.op, node.target = "call_function", ember.nn.functional.gelu
    gm.recompile()
    assert "ember.nn.functional.gelu(add)" in gm.code and ".relu()" not in gm.code
    x = ember.randn(3, 4)
    m = Outer()
    close(fx.GraphModule(m, gm.graph)(x)["out"],
          (m.lin(ember.nn.functional.gelu(m.inner(x))) + m.inner(ember.nn.functional.gelu(
              m.inner(x)))).sum(dim=1, keepdim=True) + 1.0)


def test_insert_and_delete_nodes():
    def f(x):
        return x.exp() * 2
    gm = fx.symbolic_trace(f)
    exp_node = next(n for n in gm.graph.nodes if n.op == "call_method" and n.target == "exp")
    with gm.graph.inserting_after(exp_node):
        neg = gm.graph.call_function(ember.neg, (exp_node,))
    exp_node.replace_all_uses_with(neg, delete_user_cb=lambda u: u is not neg)
    gm.recompile()
    x = ember.randn(4)
    close(gm(x), -x.exp() * 2)
    mul = next(n for n in gm.graph.nodes if n.target is operator.mul)
    mul.replace_all_uses_with(neg)
    gm.graph.erase_node(mul)
    gm.recompile()
    close(gm(x), -x.exp())
    gm.graph.lint()


def test_replace_pattern():
    def f(x, y):
        return (x + y).relu() * 2 + (y + x).relu()

    def pattern(a, b):
        return (a + b).relu()

    def replacement(a, b):
        return (a - b).sigmoid()
    gm = fx.symbolic_trace(f)
    matches = fx.replace_pattern(gm, pattern, replacement)
    assert len(matches) == 2
    x, y = ember.randn(5), ember.randn(5)
    close(gm(x, y), (x - y).sigmoid() * 2 + (y - x).sigmoid())


def test_interpreter_and_transformer():
    m = Outer()
    gm = fx.symbolic_trace(m)
    x = ember.randn(3, 4)
    close(fx.Interpreter(gm).run(x, 1.0)["out"], m(x)["out"])

    class ReluToTanh(fx.Transformer):
        def call_method(self, target, args, kwargs):
            if target == "relu":
                return ember.tanh(*args)
            return super().call_method(target, args, kwargs)
    new = ReluToTanh(gm).transform()
    assert "ember.tanh(" in new.code and ".relu()" not in new.code
    y = m.inner(x).tanh()
    close(new(x)["out"], (m.lin(y) + m.inner(y)).sum(dim=1, keepdim=True) + 1.0)


def test_shape_prop_fills_meta_without_compute():
    gm = fx.symbolic_trace(Outer())
    fx.ShapeProp(gm).propagate(ember.randn(3, 4), 1.0)
    lin = next(n for n in gm.graph.nodes if n.op == "call_module")
    assert lin.meta["val"].shape == (3, 4) and lin.meta["val"].dtype is ember.float32


def test_deepcopy_and_pickle_round_trip():
    m = Outer()
    gm = fx.symbolic_trace(m)
    x = ember.randn(3, 4)
    for clone in (copy.deepcopy(gm), pickle.loads(pickle.dumps(gm))):
        close(clone(x)["out"], m(x)["out"])
        assert clone.code == gm.code


def test_kwargs_inplace_and_method_calls():
    def f(x):
        y = x.clone()
        y.add_(1)
        return y.view(-1, 2).sum(dim=0), ember.add(x, y, alpha=2)
    gm = fx.symbolic_trace(f)
    x = ember.randn(4)
    a, b = gm(x)
    ea, eb = f(x)
    close(a, ea)
    close(b, eb)
    assert [(n.op, n.target) for n in gm.graph.nodes if "add" in n.name] == \
        [("call_method", "add_"), ("call_function", ember.add)]
    add = next(n for n in gm.graph.nodes if n.target is ember.add)
    assert add.kwargs == {"alpha": 2}      # arguments as written


def test_print_parse_round_trip_of_a_traced_model():
    gm = fx.symbolic_trace(Outer())
    fx.ShapeProp(gm).propagate(ember.randn(3, 4), 1.0)
    text = print_graph(gm.graph)
    assert graphs_equal(parse(text), gm.graph)
    assert print_graph(parse(text)) == text


@pytest.mark.parametrize("text,where", [
    ("graph(%x):\n  %0 = relu(%y)\n  return %0", "2:"),
    ("graph(%x):\n  %0 = relu(%x\n  return %0", "3:"),
    ("graph(%x):\n  %0 = no_such_op(%x)\n  return %0", "2:"),
])
def test_malformed_ir_names_line_and_column(text, where):
    with pytest.raises(ParseError) as err:
        parse(text)
    assert str(err.value).startswith(where)


def test_verifier_names_the_pass_and_the_node():
    from ember.ir.errors import VerifyError
    from ember.ir.verifier import verify
    g = parse("graph(%x: f32[4,8], %w: f32[8]):\n  %0 = add(%x, %w) : f32[4,9]\n  return %0")
    with pytest.raises(VerifyError) as err:
        verify(g, after="fuse-pointwise")
    assert "after 'fuse-pointwise'" in str(err.value) and "f32[4,8]" in str(err.value)
    g = parse("graph(%x: f32[4,8], %w: f32[9,2]):\n  %0 = add(%x, %w) : f32[4,2]\n  return %0")
    with pytest.raises(VerifyError, match=r"\[4, 8\] and \[9, 2\]"):
        verify(g)
