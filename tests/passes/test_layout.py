"""Layout propagation: conv regions go channels-last with the fewest conversions, the
caller's input/output layouts are honoured, and values never change."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ember
from ember.ir.fused import FusedGroup
from ember.ir.meta import TensorMeta, channels_last, contiguous_format, meta_of
from ember.ir.registry import OPS
from ember.ir.symbolic import GraphBuilder, build_graph, call_graph
from ember.passes import PassContext, PassError, run_passes
from tests.passes.test_cleanup import _randomize_batchnorms

F = ember.nn.functional


def conversions(graph) -> list:
    """contiguous(...) nodes, inside fused groups too: the permute-and-copy kernels."""
    found = []
    for n in graph.nodes:
        if n.op == "call_function" and isinstance(n.target, FusedGroup):
            found += conversions(n.target.graph)
        elif n.op == "call_function" and getattr(n.target, "name", "") == "contiguous":
            found.append(n)
    return found


def conv_formats(graph) -> set:
    """How the conv outputs are laid out (NHWC when both read alike: 1x1 spatial)."""
    return {channels_last if n.meta["val"].is_contiguous(channels_last) else contiguous_format
            for n in graph.nodes if getattr(n.target, "name", "") == "conv2d"}


def run_layout(fn, inputs, pipeline="layout", **options):
    """Trace fn, run the pipeline, check the values, return the graph."""
    graph, constants = build_graph(fn, [meta_of(t) for t in inputs])
    want = call_graph(graph, [t.clone() for t in inputs], constants)   # clones: in-place ops
    ctx = PassContext(dict(constants), options=options)
    run_passes(graph, pipeline, ctx, verify_each=True)
    got = call_graph(graph, [t.clone() for t in inputs], ctx.constants)
    for w, g in zip(want if isinstance(want, tuple) else (want,),
                    got if isinstance(got, tuple) else (got,)):
        np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=1e-5,
                                   atol=1e-5)
    return graph


def _w(*shape):
    return ember.randn(*shape) * 0.3


def conv_block(x, w1=_w(6, 3, 3, 3), w2=_w(6, 6, 3, 3), b=_w(6)):
    y = F.relu(F.conv2d(x, w1, b, padding=1))
    y = F.max_pool2d(y, 2)
    z = F.conv2d(y, w2, padding=1)
    return F.relu(z + y)


def test_resnet18_channels_last_one_conversion_in_none_out():
    model = _randomize_batchnorms(ember.models.resnet18(num_classes=4)).eval()
    x = ember.randn(1, 3, 32, 32)
    graph = run_layout(model, [x], "fold,fold-bn,dce,layout")
    [entry] = conversions(graph)           # the input, once; the [1,4] output needs none
    assert entry.args[0].op == "placeholder"
    assert entry.kwargs["memory_format"] is channels_last
    assert conv_formats(graph) == {channels_last}


def test_conv_region_output_goes_back_to_the_callers_layout():
    x = ember.randn(2, 3, 8, 8)
    graph = run_layout(conv_block, [x])
    first, last = conversions(graph)
    assert first.kwargs["memory_format"] is channels_last and first.args[0].name == "arg0"
    assert last.kwargs["memory_format"] is contiguous_format
    assert list(graph.output_node.all_input_nodes) == [last]
    assert graph.output_node.args[0].meta["val"].is_contiguous()
    assert conv_formats(graph) == {channels_last}


@pytest.mark.parametrize("inputs, outputs, expected", [
    ("nhwc", "keep", 1),     # input already NHWC; output converted back to NCHW
    ("any", "any", 0),       # the caller takes whatever the region chose
    ("nchw", "nhwc", 1),     # input converted; output stays NHWC
    ("any", "nchw", 1),
])
def test_caller_fixes_input_and_output_layouts(inputs, outputs, expected):
    graph = run_layout(conv_block, [ember.randn(2, 3, 8, 8)], input_layout=inputs,
                       output_layout=outputs)
    assert len(conversions(graph)) == expected
    placeholder = graph.placeholders[0].meta["val"]
    assert placeholder.is_contiguous(channels_last if inputs in ("nhwc", "any")
                                     else contiguous_format)
    result = graph.output_node.args[0].meta["val"]
    assert result.is_contiguous(channels_last if outputs in ("nhwc", "any")
                                else contiguous_format)


def test_one_channel_input_conv_writes_channels_last_for_the_next_conv():
    """A one-channel input reads alike in both layouts, so the first conv's meta rule
    gives a contiguous output; the pass converts that output (the conv kernel stores it
    channels-last) so the pool and the second conv run channels-last."""
    w1, w2 = _w(6, 1, 3, 3), _w(4, 6, 3, 3)

    def two_convs(x):
        return F.conv2d(F.max_pool2d(F.relu(F.conv2d(x, w1, padding=1)), 2), w2).mean((2, 3))
    graph = run_layout(two_convs, [ember.randn(2, 1, 8, 8)])
    [converted] = conversions(graph)
    assert converted.args[0].target.name == "conv2d"
    assert conv_formats(graph) == {contiguous_format, channels_last}
    pool = next(n for n in graph.nodes if getattr(n.target, "name", "") == "max_pool2d")
    assert pool.meta["val"].memory_format is channels_last

    def one_conv(x):
        return F.relu(F.conv2d(x, w1, padding=1))
    assert not conversions(run_layout(one_conv, [ember.randn(2, 1, 8, 8)]))


def test_layout_nchw_keeps_everything_contiguous():
    graph = run_layout(conv_block, [ember.randn(2, 3, 8, 8)], layout="nchw")
    assert not conversions(graph) and conv_formats(graph) == {contiguous_format}


def test_graph_without_conv_is_left_alone():
    fn = lambda x: (F.max_pool2d(x.relu(), 2) * 2).sum([2, 3])  # noqa: E731
    graph = run_layout(fn, [ember.randn(2, 3, 8, 8)])
    assert not conversions(graph)


def test_reshape_reads_row_major_so_the_region_exits_once():
    w = _w(4, 3, 3, 3)

    def fn(x):
        y = F.conv2d(x, w, padding=1).relu()
        return y.reshape(2, -1), y.flatten(1), y.sum([2, 3])
    graph = run_layout(fn, [ember.randn(2, 3, 5, 5)])
    formats = [c.kwargs["memory_format"] for c in conversions(graph)]
    assert formats == [channels_last, contiguous_format]   # one exit shared by both reshapes


def test_concatenation_along_channels_carries_the_layout():
    w1, w2, w3 = _w(4, 3, 1, 1), _w(5, 3, 3, 3), _w(2, 9, 1, 1)

    def fn(x):
        y = ember.cat([F.conv2d(x, w1), F.conv2d(x, w2, padding=1).sigmoid()], 1)
        return F.conv2d(F.avg_pool2d(y, 2), w3)
    graph = run_layout(fn, [ember.randn(1, 3, 6, 6)])
    assert len(conversions(graph)) == 2     # input in, result out
    cat = next(n for n in graph.nodes if getattr(n.target, "name", "") == "cat")
    assert cat.meta["val"].memory_format is channels_last


def test_multi_output_node_between_convolutions():
    # chunk's pieces of a channels-last value are strided (neither layout): each piece is a
    # region entry of its own; a conversion of chunk itself (a list) failed in the pass
    w1, w2 = _w(8, 3, 3, 3), _w(4, 4, 3, 3)

    def fn(x):
        a, b = F.conv2d(x, w1, padding=1).chunk(2, dim=1)
        return ember.cat([F.conv2d(a, w2, padding=1), b], 1)
    graph = run_layout(fn, [ember.randn(2, 3, 8, 8)])
    chunk = next(n for n in graph.nodes if getattr(n.target, "name", "") == "chunk")
    assert all(u.target is not OPS["contiguous"] for u in chunk.users)


def test_values_mutated_in_place_are_left_alone():
    w = _w(3, 3, 1, 1)

    def fn(x):
        y = F.conv2d(x, w)
        OPS["relu_"](x)                       # mutates the input the conv read
        return y + x
    graph = run_layout(fn, [ember.randn(1, 3, 4, 4)])
    assert not conversions(graph)


def test_bad_option_and_fused_input_are_refused():
    graph, constants = build_graph(conv_block, [meta_of(ember.randn(1, 3, 4, 4))])
    with pytest.raises(PassError, match="output_layout='nwhc'"):
        run_passes(graph, "layout", PassContext(constants, options={"output_layout": "nwhc"}))
    run_passes(graph, "fuse", PassContext(constants))
    with pytest.raises(PassError, match="must run before 'fuse'"):
        run_passes(graph, "layout", PassContext(constants))


# --- random graphs -----------------------------------------------------------------------------
def _conv(b, pool, a, k):
    channels = (k % 3) + 2
    return F.conv2d(a, _constant(channels, a.shape[1], 3, 3) * 0.3, padding=1)


def _same_shape(pool, a, k):
    same = [v for v in pool if v.shape == a.shape]
    return same[k % len(same)]


STEPS = {
    "conv": _conv,
    "relu": lambda b, pool, a, k: a.relu(),
    "sigmoid": lambda b, pool, a, k: a.sigmoid(),
    "add": lambda b, pool, a, k: a + _same_shape(pool, a, k),
    "mul_bias": lambda b, pool, a, k: a * _constant(1, a.shape[1], 1, 1),
    "pool": lambda b, pool, a, k: F.max_pool2d(a, 2) if a.shape[-1] >= 2 else a,
    "avg_pool": lambda b, pool, a, k: F.avg_pool2d(a, 3, 1, 1),
    "cat": lambda b, pool, a, k: ember.cat([a, _same_shape(pool, a, k)], 1),
    "softmax_c": lambda b, pool, a, k: a.softmax(1),
    "mean_keep": lambda b, pool, a, k: a - a.mean([2, 3], keepdim=True),
    "flatten_back": lambda b, pool, a, k: a.flatten(2).reshape(list(a.shape)),
    "chunk_swap": lambda b, pool, a, k: ember.cat(a.chunk(2, 1)[::-1], 1),
}
programs = st.lists(st.tuples(st.sampled_from(sorted(STEPS)), st.integers(0, 7),
                              st.integers(0, 7)), min_size=1, max_size=8)


_WEIGHTS = [np.random.default_rng(0)]


def _constant(*shape):
    """A weight the graph holds as a constant (ember.randn inside the builder would be a
    sampling node, drawing anew at every run, as in a compiled function)."""
    return ember.tensor(_WEIGHTS[0].standard_normal(shape).astype(np.float32))


def build_random_graph(program, seed):
    """A DAG over one NCHW input: each step applies an op to an earlier value."""
    _WEIGHTS[0] = np.random.default_rng(seed)
    with GraphBuilder() as b:
        pool = [b.placeholder("x", TensorMeta((2, 3, 6, 6), ember.float32))]
        for name, i, k in program:
            pool.append(STEPS[name](b, pool, pool[i % len(pool)], k))
        b.output((pool[-1], pool[len(pool) // 2]))
    return b.graph, b.constants


# dce first: fuse cannot yet make a group of values nobody reads (a kernel with no output)
@pytest.mark.parametrize("pipeline", ["layout", "dce,layout,fuse,memplan", "dce,fuse,memplan"])
@settings(max_examples=8, deadline=None)
@given(program=programs, seed=st.integers(0, 2**16))
def test_layout_fuse_memplan_preserve_results_on_random_graphs(pipeline, program, seed):
    graph, constants = build_random_graph(program, seed)
    x = ember.tensor(np.random.default_rng(seed).standard_normal((2, 3, 6, 6)).astype(np.float32))
    want = call_graph(graph, [x], constants)
    ctx = PassContext(dict(constants), options={"layout": "nhwc"} if seed % 2 else {})
    run_passes(graph, pipeline, ctx, verify_each=True)
    got = call_graph(graph, [x], ctx.constants)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=1e-4, atol=1e-5)
    if pipeline == "layout":
        assert_fewest_conversions(graph, forced=seed % 2 == 1,
                                  convs=any(name == "conv" for name, _, _ in program))


def assert_fewest_conversions(graph, forced: bool, convs: bool) -> None:
    """Each conversion changes the layout, and no value is converted twice to one format;
    with neither a conv nor a forced layout there are none."""
    found = conversions(graph)
    if not forced and not convs:
        assert not found
    pairs = [(c.args[0], c.kwargs["memory_format"]) for c in found]
    assert len(set(pairs)) == len(pairs)
    for value, fmt in pairs:
        assert not value.meta["val"].is_contiguous(fmt), f"{value} is already {fmt}"
