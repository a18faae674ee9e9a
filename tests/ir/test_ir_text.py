"""Textual IR: print-then-parse gives an equal graph (every built-in model, random
graphs), and malformed text / inconsistent graphs are rejected with positions."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

import ember
import ember.fx as fx
from ember.ir import graphs_equal, parse, print_graph, verify
from ember.ir.errors import ParseError, VerifyError
from ember.ir.meta import TensorMeta
from ember.ir.registry import OPS
from ember.ir.symbolic import GraphBuilder
from tests.fx.models_util import BUILTIN_MODELS, build


def assert_round_trips(graph, locs: bool = False):
    text = print_graph(graph, locs=locs)
    again = parse(text)
    assert graphs_equal(again, graph), text
    assert print_graph(again, locs=locs) == text


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_builtin_model_graph_round_trips(name):
    model, x = build(name)
    gm = fx.symbolic_trace(model)
    fx.ShapeProp(gm).propagate(x)
    assert any("val" in n.meta for n in gm.graph.nodes if n.op != "output")
    assert_round_trips(gm.graph)
    assert_round_trips(gm.graph, locs=True)


# --- random graphs ---------------------------------------------------------------------------
UNARY = ["relu", "sin", "exp", "neg", "tanh", "sigmoid", "abs"]
BINARY = ["add", "mul", "sub", "maximum"]


def _random_step(draw, values, base_shape):
    kind = draw(st.sampled_from(["unary", "binary", "scalar", "sum", "cast"]))
    x = values[draw(st.integers(0, len(values) - 1))]
    if kind == "unary":
        return OPS[draw(st.sampled_from(UNARY))](x)
    if kind == "binary":
        y = values[draw(st.integers(0, len(values) - 1))]
        return OPS[draw(st.sampled_from(BINARY))](x, y)
    if kind == "scalar":
        return x * draw(st.floats(-3, 3, allow_nan=False, width=32)) + 1
    if kind == "sum":
        dim = draw(st.integers(0, len(base_shape) - 1))
        return x.sum(dim=[dim], keepdim=True)      # keeps every value broadcastable
    return OPS["convert_element_type"](x, draw(st.sampled_from([ember.float64,
                                                                ember.float32])))


@st.composite
def random_graphs(draw):
    """A random DAG of registry ops over broadcast-compatible shapes, built by GraphBuilder."""
    base_shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    n_inputs = draw(st.integers(1, 3))
    with GraphBuilder() as builder:
        values = []
        for i in range(n_inputs):
            shape = tuple(s if draw(st.booleans()) else 1 for s in base_shape)
            values.append(builder.placeholder(f"in{i}", TensorMeta(shape, ember.float32)))
        for _ in range(draw(st.integers(1, 8))):
            values.append(_random_step(draw, values, base_shape))
        n_out = draw(st.integers(1, 2))
        builder.output(tuple(values[-n_out:]) if n_out > 1 else values[-1])
    return builder.graph


@settings(deadline=None, max_examples=40)
@given(random_graphs())
def test_random_graph_round_trips_with_and_without_locs(graph):
    verify(graph)
    assert_round_trips(graph)
    assert_round_trips(graph, locs=True)
    assert any("loc" in n.meta for n in graph.nodes), "GraphBuilder records the user line"


def test_locs_print_only_when_asked():
    with GraphBuilder() as builder:
        x = builder.placeholder("x", TensorMeta((2,), ember.float32))
        builder.output(x.relu())
    assert "loc(" not in print_graph(builder.graph)
    text = print_graph(builder.graph, locs=True)
    assert 'loc("test_ir_text.py:' in text
    assert parse(text).nodes[1].meta["loc"] == builder.graph.nodes[1].meta["loc"]


# --- malformed text -------------------------------------------------------------------------
@pytest.mark.parametrize("text,position,expected", [
    ("graph(%x):\n  %0 = relu(%x) :: f32\n  return %0", "2:18", "expected one of"),
    ("graph(%x):\n  %0 = relu(%x)\n", "2:15", "unexpected end of input; expected one of"),
    ("graph(%x):\n  %0 = relu(%x) $\n  return %0", "2:17", "unexpected character '$'"),
    ("graph(%x):\n  %0 = relu(%y)\n  return %0", "2:13", "undefined value %y"),
    ("graph(%x):\n  %0 = relu(%x)\n  %0 = relu(%x)\n  return %0", "3:3", "defined twice"),
    ("graph(%x: q32[3]):\n  return %x", "1:11", "unknown dtype 'q32'"),
    ("graph(%x):\n  %0 = no_such_op(%x)\n  return %0", "2:8", "unknown op 'no_such_op'"),
    ("graph(%x):\n  %0 = relu(%x, foo)\n  return %0", "2:17", "unknown name 'foo'"),
    ("graph(%x):\n  %0 = call_function \"nowhere.fn\"(%x)\n  return %0", "2:22",
     "cannot resolve function"),
])
def test_malformed_ir_gives_line_column_and_what_was_expected(text, position, expected):
    with pytest.raises(ParseError) as err:
        parse(text)
    message = str(err.value)
    assert message.startswith(position + ":"), message
    assert expected in message


# --- the verifier ---------------------------------------------------------------------------
def test_verifier_rejects_wrong_arity_naming_the_node():
    g = parse("graph(%x: f32[4,8]):\n  %0 = relu(%x, %x) : f32[4,8]\n  return %0")
    with pytest.raises(VerifyError, match=r"^%0: relu\(\) takes 1 positional"):
        verify(g)
    g = parse("graph(%x: f32[4,8]):\n  %0 = add(%x) : f32[4,8]\n  return %0")
    with pytest.raises(VerifyError, match=r"^%0: .*missing required argument 'other'"):
        verify(g)


def test_verifier_rejects_wrong_shapes_naming_the_node():
    g = parse("graph(%x: f32[4,8]):\n  %0 = relu(%x) : f32[4,9]\n  return %0")
    with pytest.raises(VerifyError, match=r"^%0 is typed f32\[4,9\] but relu gives f32\[4,8\]"):
        verify(g)
    g = parse("graph(%x: f32[4,8], %w: f32[3,2]):\n  %0 = matmul(%x, %w) : f32[4,2]\n"
              "  return %0")
    with pytest.raises(VerifyError, match=r"^%0: matmul: .*4x8 and 3x2"):
        verify(g)


def test_verifier_names_nodes_as_printed_with_their_source_line():
    text = ("graph(%x: f32[4,8], %y: f32[4,8]):\n"
            "  %0 = add(%x, %y) : f32[4,8] loc(\"model.py:3 in forward\")\n"
            "  %1 = mul(%0, %x) : f32[4,8] loc(\"model.py:4 in forward\")\n"
            "  %2 = mul(%1, %y) : f32[4,9] loc(\"model.py:5 in forward\")\n"
            "  return %2")
    g = parse(text)
    assert [n.name for n in g.nodes[2:4]] == ["add", "mul"]      # internal names differ
    with pytest.raises(VerifyError) as err:
        verify(g)
    message = str(err.value)
    assert message.startswith("%2 is typed f32[4,9] but mul gives f32[4,8]"), message
    assert "%2 = mul(%1, %y) : f32[4,9]" in message            # the line as `ember opt` prints it
    assert "model.py:5 in forward" in message
    assert "%mul" not in message


def test_verifier_rejects_use_before_definition():
    g = parse("graph(%x: f32[4]):\n  %0 = relu(%x) : f32[4]\n  %1 = neg(%0) : f32[4]\n"
              "  return %1")
    relu, neg = g.nodes[1], g.nodes[2]
    neg.append(relu)                       # move relu after its user
    with pytest.raises(VerifyError, match="%0 uses %1 before it is defined"):
        verify(g)                          # as printed: %0 = neg(%1), then %1 = relu(%x)
    assert "%0 = neg(%1)" in print_graph(g)
