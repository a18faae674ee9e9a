"""Batchnorm folding on real models: resnet18 in eval mode after 'default-inference'
has no batchnorm left, in either form (the batch_norm op or the sub/div/mul/add
that ember.nn's eval BatchNorm traces to), and computes the same values."""
from __future__ import annotations

import numpy as np

import ember
from ember.ir.fused import FusedGroup
from ember.ir.registry import OPS
from ember.ir.symbolic import build_graph, call_graph
from ember.ir.meta import meta_of
from ember.passes import PassContext, run_passes
from tests.passes.test_cleanup import OWN_INFERENCE, _randomize_batchnorms

AFFINE_OPS = {"batch_norm", "sub", "div", "mul", "rsqrt", "sqrt"}


def _op_counts(graph, counts=None) -> dict[str, int]:
    """Registry ops by name, counting those inside fused groups too."""
    counts = {} if counts is None else counts
    for n in graph.nodes:
        if n.op == "call_function" and isinstance(n.target, FusedGroup):
            _op_counts(n.target.graph, counts)
        elif n.op == "call_function" and hasattr(n.target, "name"):
            counts[n.target.name] = counts.get(n.target.name, 0) + 1
    return counts


def _batchnorm_count(model) -> int:
    return sum(1 for m in model.modules() if type(m).__name__.startswith("BatchNorm"))


def test_resnet18_default_inference_folds_every_batchnorm():
    model = _randomize_batchnorms(ember.models.resnet18(num_classes=4)).eval()
    x = ember.randn(1, 3, 32, 32)
    graph, constants = build_graph(model, [meta_of(x)], ["x"])
    want = call_graph(graph, [x], constants).detach().numpy()
    ctx = PassContext(dict(constants))
    report = run_passes(graph, "default-inference", ctx, verify_each=True)
    assert _batchnorm_count(model) == 20
    assert report.changes("fold-bn") == 20          # one fold per batchnorm
    assert not AFFINE_OPS & set(_op_counts(graph))  # nothing of them is left
    got = call_graph(graph, [x], ctx.constants).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    # what is left right after this file's passes (later passes regroup it): the convs,
    # the 8 residual adds and the classifier's bias add (linear is decomposed)
    graph, constants = build_graph(model, [meta_of(x)], ["x"])
    run_passes(graph, OWN_INFERENCE, PassContext(dict(constants)))
    counts = _op_counts(graph)
    assert counts["conv2d"] == 20 and counts["add"] == 8 + 1, counts


def test_batch_norm_op_after_conv_with_bias_and_linear():
    rng = np.random.default_rng(0)
    t = lambda *s: ember.tensor(rng.uniform(0.5, 1.5, s).astype(np.float32))  # noqa: E731
    conv_w, conv_b, fc_w = t(6, 3, 3, 3), t(6), t(5, 6)
    stats = [t(6) for _ in range(4)]
    fc_stats = [t(5) for _ in range(4)]

    def net(x):
        y = OPS["conv2d"](x, conv_w, conv_b, [1, 1], [1, 1])
        y = OPS["batch_norm"](y, *stats, eps=1e-3)
        y = y.mean([2, 3])
        y = OPS["linear"](y, fc_w)
        return OPS["batch_norm"](y, *fc_stats)

    x = ember.randn(2, 3, 5, 5)
    graph, constants = build_graph(net, [meta_of(x)])
    want = call_graph(graph, [x], constants).detach().numpy()
    ctx = PassContext(dict(constants))
    report = run_passes(graph, "fold,fold-bn,dce", ctx, verify_each=True)
    assert report.changes("fold-bn") == 2
    assert "batch_norm" not in _op_counts(graph)
    got = call_graph(graph, [x], ctx.constants).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_training_graphs_are_not_folded():
    model = _randomize_batchnorms(ember.models.small_cnn()).eval()
    x = ember.randn(2, 1, 8, 8)
    graph, constants = build_graph(model, [meta_of(x)])
    report = run_passes(graph, "fold,fold-bn", PassContext(dict(constants), inference=False))
    assert report.changes("fold-bn") == 0
    assert _op_counts(graph)["sub"] == 2
