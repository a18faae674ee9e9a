"""The forward/backward partitioners: fwd then bwd equals the joint graph; the min cut
saves no more bytes than the naive split, and strictly fewer where pointwise work after
a matmul can be recomputed."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.ir.meta import TensorMeta
from ember.ir.parser import graphs_equal, parse
from ember.ir.symbolic import build_graph, call_graph
from ember.ir.verifier import verify
from ember.passes.autograd import cotangent_placeholders, joint_graph, trace_joint
from ember.passes.partition import (PartitionError, default_partition, is_recomputable,
                                    min_cut_partition)

from tests.oracle import assert_close

F32 = ember.float32
PARTITIONERS = [default_partition, min_cut_partition]


def _chain_after_matmul(x, w):
    return ember.matmul(x, w).exp().cos().sin().tanh().sum()


def _pointwise_chain(x):
    return (x.sin() * 2).exp().tanh().sum()


def _joint(fn, *shapes, seed="ones"):
    graph, constants = build_graph(fn, [TensorMeta(s, F32) for s in shapes])
    return joint_graph(graph, list(range(len(shapes))), seed=seed), constants


def _mlp_joint():
    model = ember.models.mlp(in_features=12, hidden=(16, 8), num_classes=4)
    x = ember.randn(5, 12)
    joint, constants = trace_joint(model, [x])
    inputs = [p.detach() for p in model.parameters()] + [x]
    return joint, constants, inputs


def _check_split(joint, constants, inputs, cotangents, partition):
    fwd, bwd, report = partition(joint)
    for g in (fwd, bwd):
        verify(g)
        assert graphs_equal(parse(ember.ir.print_graph(g)), g)
    want_outs, want_grads = call_graph(joint, list(inputs) + list(cotangents), constants)
    outs, saved = call_graph(fwd, list(inputs), constants)
    assert len(saved) == len(report.saved if partition is min_cut_partition
                             else report.naive_saved)
    grads = call_graph(bwd, list(saved) + list(cotangents), constants)
    for got, want in zip(list(grads) + [outs], list(want_grads) + [want_outs]):
        assert_close(got, want, rtol=1e-6, atol=1e-6)
    return report


@pytest.mark.parametrize("partition", PARTITIONERS, ids=lambda p: p.__name__)
def test_forward_then_backward_equals_joint(partition, rng):
    joint, constants = _joint(_chain_after_matmul, (6, 5), (5, 7))
    _check_split(joint, constants, [ember.randn(6, 5), ember.randn(5, 7)], [], partition)
    joint, constants, inputs = _mlp_joint()
    cot = [ember.tensor(rng.standard_normal(p.meta["val"].shape).astype(np.float32))
           for p in cotangent_placeholders(joint)]
    _check_split(joint, constants, inputs, cot, partition)


def test_min_cut_saves_fewer_bytes_on_pointwise_chain_after_matmul():
    joint, constants = _joint(_chain_after_matmul, (8, 16), (16, 32))
    report = _check_split(joint, constants, [ember.randn(8, 16), ember.randn(16, 32)], [],
                          min_cut_partition)
    print("\nchain after matmul:", report)
    assert report.saved_bytes < report.naive_saved_bytes
    assert report.recomputed, "the pointwise chain should be recomputed in the backward"
    saved_ops = {n.target_name for n in joint.nodes if n.name in report.saved}
    assert not saved_ops & {"cos", "sin", "tanh"}, report


def test_min_cut_never_saves_more_than_naive():
    joint, _ = _joint(_pointwise_chain, (64,))
    chain = min_cut_partition(joint)[2]
    mlp = min_cut_partition(_mlp_joint()[0])[2]
    print("\npointwise chain:", chain, "\nmlp:", mlp)
    assert chain.saved_bytes <= chain.naive_saved_bytes
    assert mlp.saved_bytes <= mlp.naive_saved_bytes


def test_expensive_and_random_values_are_never_recomputed():
    def f(x, w):
        h = ember.nn.functional.dropout(ember.matmul(x, w), 0.5, training=True)
        return (h.sin() * h).sum()
    joint, constants = _joint(f, (4, 6), (6, 3))
    fwd, bwd, report = min_cut_partition(joint)
    recomputed = [n for n in bwd.nodes if n.meta.get("phase") == "forward"
                  and n.op == "call_function"]
    assert all(is_recomputable(n) for n in recomputed)
    assert not any(n.target_name in ("matmul", "native_dropout", "dropout", "bernoulli")
                   for n in recomputed), report
    ember.manual_seed(3)
    x, w = ember.randn(4, 6), ember.randn(6, 3)
    ember.manual_seed(7)
    _, want = call_graph(joint, [x, w], constants)
    ember.manual_seed(7)
    _, saved = call_graph(fwd, [x, w], constants)
    for got, expected in zip(call_graph(bwd, list(saved), constants), want):
        assert_close(got, expected)


def test_partition_refuses_a_graph_that_is_not_joint():
    graph, _ = build_graph(lambda x: x.sin(), [TensorMeta((3,), F32)])
    with pytest.raises(PartitionError, match="joint graph"):
        min_cut_partition(graph)
