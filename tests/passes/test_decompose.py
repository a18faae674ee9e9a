"""Every op with a decomposition gives the op's values, on each of the op's samples,
when the decompose pass rewrites a graph that calls it."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.ir.meta import meta_of
from ember.ir.registry import OPS, Tag
from ember.ir.symbolic import build_graph, call_graph
from ember.passes import PassContext, run_passes
from ember.passes.decompose import wants_decomposition
from tests.oracle import assert_close, to_ember_value

DECOMPOSED = sorted(name for name, op in OPS.items()
                    if op.decomposition is not None and op.samples is not None
                    and not op.schema.returns_tuple and Tag.RANDOM not in op.tags
                    and Tag.INPLACE not in op.tags)


def _graph_of_call(op, args, kwargs):
    """A graph calling `op` with each tensor argument as a placeholder."""
    tensors = [i for i, a in enumerate(args) if isinstance(a, ember.Tensor)]

    def call(*inputs):
        filled = list(args)
        for i, value in zip(tensors, inputs):
            filled[i] = value
        return op(*filled, **kwargs)
    graph, constants = build_graph(call, [meta_of(args[i]) for i in tensors])
    return graph, constants, [args[i] for i in tensors]


def _tolerance(value):
    return (1e-4, 1e-5) if value.dtype in (ember.float32, ember.complex64) else (1e-9, 1e-10)


@pytest.mark.parametrize("name", DECOMPOSED)
def test_decomposition_matches_op(name, rng):
    op = OPS[name]
    checked = 0
    for sample in op.samples(rng):
        args = tuple(to_ember_value(a) for a in sample.args)
        kwargs = {k: to_ember_value(v) for k, v in sample.kwargs.items()}
        try:
            want = op(*args, **kwargs)
        except ember.EmberError:
            continue                     # an error sample: nothing to decompose
        graph, constants, inputs = _graph_of_call(op, args, kwargs)
        report = run_passes(graph, "decompose", PassContext(constants), verify_each=True)
        assert report.changes("decompose") >= 1
        assert not any(wants_decomposition(n, PassContext()) for n in graph.nodes)
        got = call_graph(graph, inputs, constants)
        rtol, atol = _tolerance(want)
        assert_close(got, want, rtol=rtol, atol=atol, what=f"{name} {sample!r}")
        checked += 1
    assert checked, f"{name}: no sample ran"


def test_decompose_only_and_keep_options():
    x = ember.randn(3, 4)
    graph, constants = build_graph(lambda t: ember.nn.functional.gelu(t).softmax(-1),
                                   [meta_of(x)])
    ctx = PassContext(constants, options={"decompose_keep": {"softmax"}})
    run_passes(graph, "decompose", ctx)
    names = [n.target.name for n in graph.nodes if n.op == "call_function"]
    assert "softmax" in names and "gelu" not in names
    assert "erf" in names


def test_decomposition_keeps_source_location():
    x = ember.randn(3, 4)
    graph, constants = build_graph(lambda t: ember.nn.functional.silu(t), [meta_of(x)])
    (silu,) = [n for n in graph.nodes if n.op == "call_function"]
    silu.meta["loc"] = "model.py:3 in forward"
    run_passes(graph, "decompose", PassContext(constants))
    calls = [n for n in graph.nodes if n.op == "call_function"]
    assert {n.target.name for n in calls} == {"sigmoid", "mul"}
    assert all(n.meta["loc"] == "model.py:3 in forward" for n in calls)
    np.testing.assert_allclose(call_graph(graph, [x], constants).numpy(),
                               (x * x.sigmoid()).numpy(), rtol=1e-6)
