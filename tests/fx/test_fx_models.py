"""Built-in models through ember.fx: interpreting, transforming and regenerating
code match eager; ShapeProp scales to a 1000-layer model."""
from __future__ import annotations

import time

import numpy as np
import pytest

import ember
import ember.fx as fx
import ember.jit
import ember.nn as nn
from ember.ir.registry import is_op
from tests.fx.models_util import BUILTIN_MODELS, build


def assert_same(got, want):
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_interpreting_a_traced_builtin_model_matches_eager(name):
    model, x = build(name)
    gm = fx.symbolic_trace(model)
    assert_same(fx.Interpreter(gm).run(x), model(x))
    assert_same(gm(x), model(x))


def insert_identity_after_each_op(gm) -> int:
    """Follow every tensor-valued node (module or op call) with `* 1.0` and reroute
    its users there; getattr/getitem nodes yield sizes and are left alone."""
    count = 0
    for node in gm.graph.nodes:
        if node.op != "call_module" and not is_op(node.target):
            continue
        with gm.graph.inserting_after(node):
            scaled = gm.graph.call_function(ember.mul, (node, 1.0))
        node.replace_all_uses_with(scaled, delete_user_cb=lambda user: user is not scaled)
        count += 1
    gm.graph.lint()
    gm.recompile()
    return count


@pytest.mark.parametrize("name", ["mlp", "small_cnn", "resnet18", "transformer_classifier"])
def test_regenerated_code_after_a_transform_matches_eager(name):
    model, x = build(name)
    gm = fx.symbolic_trace(model)
    inserted = insert_identity_after_each_op(gm)
    assert gm.code.count("ember.mul(") == inserted > 0
    x2 = BUILTIN_MODELS[name][1]()             # a fresh random input too
    for inp in (x, x2):
        assert_same(gm(inp), model(inp))
        assert_same(fx.Interpreter(gm).run(inp), model(inp))


@pytest.mark.parametrize("name", ["mlp", "small_cnn", "resnet18", "transformer_classifier"])
def test_jit_trace_of_builtin_model_matches_eager_on_new_inputs(name):
    model, x = build(name)
    jm = ember.jit.trace(model, x)
    assert {n.op for n in jm.graph.nodes} <= {"placeholder", "get_attr", "call_function",
                                              "output"}
    x2 = BUILTIN_MODELS[name][1]()
    assert_same(jm(x2), model(x2))
    assert_same(fx.Interpreter(jm).run(x2), model(x2))


def test_shape_prop_on_a_1000_layer_model():
    layers = []
    for _ in range(500):
        layers += [nn.Linear(8, 8), nn.ReLU()]
    gm = fx.symbolic_trace(nn.Sequential(*layers))
    start = time.perf_counter()
    fx.ShapeProp(gm).propagate(ember.randn(4, 8))
    elapsed = time.perf_counter() - start
    print(f"\nShapeProp over {len(gm.graph)} nodes: {elapsed * 1e3:.1f} ms")
    computing = [n for n in gm.graph.nodes if n.op == "call_module"]
    assert len(computing) == 1000
    assert all(n.meta["val"].shape == (4, 8) for n in computing)
    assert computing[-1].meta["tensor_meta"].dtype is ember.float32
