"""The fusion pass: groups are legal kernels, results are unchanged, textual IR round-trips."""
import numpy as np
import pytest

import ember
from ember.ir.fused import FusedGroup
from ember.ir.meta import contiguous_format
from ember.ir.registry import OPS
from ember.ir.meta import meta_of
from ember.ir.parser import graphs_equal, parse
from ember.ir.symbolic import build_graph, call_graph
from ember.ir.verifier import verify
from ember.passes.fuse import fuse
from ember.passes.layout import insert_conversion
from ember.passes.manager import PassContext


def fused(fn, *inputs):
    graph, constants = build_graph(fn, [meta_of(t) for t in inputs])
    n_ops = len([n for n in graph.nodes if n.op == "call_function"])
    fuse(graph, PassContext(constants=constants))
    verify(graph)
    return graph, constants, n_ops


def groups(graph):
    return [n.target for n in graph.nodes if isinstance(n.target, FusedGroup)]


def check_same(fn, graph, constants, inputs, rtol=1e-6):
    want, got = fn(*inputs), call_graph(graph, inputs, constants)
    for w, g in zip(want if isinstance(want, tuple) else (want,),
                    got if isinstance(got, tuple) else (got,)):
        np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=rtol, atol=1e-6)


def test_pointwise_chain_becomes_one_group():
    fn = lambda x, w, b: ember.nn.functional.gelu(x * w + b) * ember.sigmoid(x)  # noqa: E731
    inputs = (ember.randn(8, 16), ember.randn(16), ember.randn(16))
    graph, constants, _ = fused(fn, *inputs)
    [group] = groups(graph)
    assert group.kind == "pointwise" and len(group.ops) == 5
    check_same(fn, graph, constants, inputs)


def test_golden_text_softmax_after_linear_is_an_epilogue():
    fn = lambda x, w: ember.softmax(ember.nn.functional.linear(x, w).relu(), -1)  # noqa: E731
    graph, _, _ = fused(fn, ember.randn(4, 8), ember.randn(6, 8))
    assert ember.ir.print_graph(graph) == """\
graph(%arg0: f32[4,8], %arg1: f32[6,8]):
  %0 = fused "fused_0" epilogue(%arg0, %arg1) {
    graph(%in0: f32[4,8], %in1: f32[6,8]):
      %0 = linear(%in0, %in1) : f32[4,6]
      %1 = relu(%0) : f32[4,6]
      %2 = softmax(%1, -1) : f32[4,6]
      return %2
  } : f32[4,6]
  return %0
"""
    assert graphs_equal(parse(ember.ir.print_graph(graph)), graph)


def test_two_reduction_spaces_split_into_two_groups():
    fn = lambda x: x.sum(0).exp() * 2, lambda x: x.sum(1)  # noqa: E731
    both = lambda x: (x.sum(0).exp() * 2, (x * 3).sum(1))  # noqa: E731
    graph, constants, _ = fused(both, ember.randn(5, 7))
    assert len(groups(graph)) == 2
    check_same(both, graph, constants, (ember.randn(5, 7),))


def test_no_cycle_through_an_extern_op():
    # a -> exp -> (matmul) -> add(exp, matmul): exp and add must not join around the matmul
    fn = lambda a, w: a.exp() + a.exp() @ w  # noqa: E731
    graph, constants, _ = fused(fn, ember.randn(4, 4), ember.randn(4, 4))
    check_same(fn, graph, constants, (ember.randn(4, 4), ember.randn(4, 4)))


def test_transformer_layer_softmax_and_layernorm_each_inside_one_group():
    layer = ember.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
    x = ember.randn(2, 5, 32)
    graph, constants, n_ops = fused(layer, x)
    owners = {}
    for group in groups(graph):
        for op in group.ops:
            if getattr(op, "name", "") in ("softmax", "layer_norm"):
                owners.setdefault(op.name, []).append(group.name)
    assert len(owners["softmax"]) == 1 and len(owners["layer_norm"]) == 2
    remaining = [n for n in graph.nodes if n.op == "call_function" and
                 getattr(n.target, "name", "") in ("softmax", "layer_norm")]
    assert not remaining
    print(f"transformer layer: {len(groups(graph))} fused groups from {n_ops} ops")
    check_same(layer, graph, constants, (x,), rtol=1e-5)


@pytest.mark.parametrize("make, shape", [
    (lambda: ember.models.resnet18(num_classes=10).eval(), (1, 3, 32, 32)),
    (lambda: ember.models.small_cnn().eval(), (2, 1, 28, 28)),
    (lambda: ember.models.mlp(64, (32, 16)).eval(), (4, 64)),
], ids=["resnet18", "small_cnn", "mlp"])
def test_models_keep_their_results(make, shape):
    model, x = make(), ember.randn(*shape)
    graph, constants, n_ops = fused(model, x)
    print(f"{len(groups(graph))} fused groups from {n_ops} ops")
    assert groups(graph)
    check_same(model, graph, constants, (x,), rtol=1e-5)
    assert graphs_equal(parse(ember.ir.print_graph(graph)), graph)


def test_inplace_relu_on_a_temporary_is_fused():
    def fn(x):
        y = x * 2
        return ember.nn.functional.relu(y, inplace=True) + 1
    graph, constants, _ = fused(fn, ember.randn(3, 3))
    [group] = groups(graph)
    assert [op.name for op in group.ops] == ["mul", "relu", "add"]


def test_mutation_through_a_view_keeps_the_graph_unfused():
    def fn(x):
        v = x.transpose(0, -1)
        v.add_(1.0)
        return x + x, v
    x = ember.randn(3, 4)
    graph, constants, _ = fused(fn, x)
    assert not groups(graph)
    got = call_graph(graph, [x.clone()], constants)
    want = fn(x.clone())
    np.testing.assert_allclose(got[0].numpy(), want[0].numpy())


def test_inplace_on_a_view_of_a_temporary_is_not_functionalized():
    def fn(x):
        y = x * 2
        y.t().relu_()
        return y + 1
    x = ember.randn(3, 3)
    graph, constants, _ = fused(fn, x)
    np.testing.assert_allclose(call_graph(graph, [x], constants).numpy(), fn(x).numpy())


def test_dead_values_form_no_group():
    def fn(x):
        (x * 3).exp()          # unused
        return x + 1
    graph, constants, _ = fused(fn, ember.randn(4))
    assert all(g.n_outputs >= 1 for g in groups(graph))


def test_cycle_check_sees_paths_through_other_groups():
    """Group B = {b2, b4}; merging A = {a1, a3} where a1 -> b4 and b2 -> a3 has no
    cyclic node path, but A would need B's output and B A's: a cycle between kernels
    (it broke compiling timm's hrnet_w18_small)."""
    from ember.passes.fuse import _creates_cycle
    x = ember.randn(4)
    def fn(x):
        a1 = ember.relu(x)
        b2 = ember.exp(x)
        a3 = ember.neg(b2) + a1
        b4 = ember.sin(b2) * a1
        return a3, b4
    graph, _ = build_graph(fn, [meta_of(x)])
    named = {n.target.name: n for n in graph.nodes if n.op == "call_function"
             and hasattr(n.target, "name")}
    a1, b2, neg, a3 = named["relu"], named["exp"], named["neg"], named["add"]
    sin, b4 = named["sin"], named["mul"]
    order = {n: i for i, n in enumerate(graph.nodes)}
    group = {b2: 1, sin: 1, b4: 1}
    members = {1: [b2, sin, b4]}
    merged = sorted([a1, neg, a3], key=order.__getitem__)
    assert not _creates_cycle(merged, order)           # no node path re-enters
    assert _creates_cycle(merged, order, group, members, horizon=len(order))


def _pool_then_flatten(x):
    """A channels-last max pool read by a flatten: the layout pass converts the pool's
    result to NCHW (the flatten's order), as before a classifier's Linear."""
    return ember.nn.functional.max_pool2d(x, 2).flatten(1)


@pytest.mark.parametrize("apart", [False, True])
def test_pool_conversions_apart_option(apart):
    """With `pool_conversions_apart` (the CPU drivers) the NHWC -> NCHW conversion of a
    pool's result is a kernel of its own; without it, it joins the pool's group."""
    x = ember.randn(2, 8, 6, 6).contiguous(memory_format=ember.channels_last)
    graph, constants = build_graph(_pool_then_flatten, [meta_of(x)])
    pool = next(n for n in graph.nodes if n.op == "call_function" and
                "max_pool2d" in n.target.name)
    conversion = insert_conversion(pool, contiguous_format)
    for user in [u for u in pool.users if u is not conversion]:
        user.replace_input_with(pool, conversion)
    fuse(graph, PassContext(constants=constants, options={"pool_conversions_apart": apart}))
    verify(graph)
    kernels = [[op.name for op in g.ops] for g in groups(graph)]
    holding_pool = [ops for ops in kernels if any("max_pool2d" in o for o in ops)]
    assert len(holding_pool) == 1
    assert (OPS["contiguous"].name in holding_pool[0]) is not apart, kernels
    check_same(_pool_then_flatten, graph, constants, (x,))
