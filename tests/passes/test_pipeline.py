"""The 'default-inference' pipeline end to end: resnet18 (every batchnorm folded,
channels-last with one conversion in and none out, fused groups counted), the
transformer encoder layer, the MLP and the small CNN — results unchanged."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.ir.fused import FusedGroup
from ember.ir.meta import channels_last, meta_of
from ember.ir.symbolic import build_graph, call_graph
from ember.passes import PIPELINES, PassContext, run_passes
from tests.passes.test_cleanup import _randomize_batchnorms
from tests.passes.test_layout import conversions

BATCHNORM_FORMS = {"batch_norm", "sub", "div", "rsqrt", "sqrt"}


def op_names(graph) -> list[str]:
    """Registry ops by name, those inside fused groups included."""
    names = []
    for n in graph.nodes:
        if n.op == "call_function" and isinstance(n.target, FusedGroup):
            names += op_names(n.target.graph)
        elif n.op == "call_function" and hasattr(n.target, "name"):
            names.append(n.target.name)
    return names


def optimized(model, x, **options):
    """Trace, run default-inference, check values against the eager model."""
    graph, constants = build_graph(model, [meta_of(x)], ["x"])
    n_ops = sum(1 for n in graph.nodes if n.op == "call_function")
    ctx = PassContext(dict(constants), options=options)
    run_passes(graph, "default-inference", ctx, verify_each=True)
    got = call_graph(graph, [x], ctx.constants).detach().numpy()
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    groups = [n.target for n in graph.nodes if isinstance(n.target, FusedGroup)]
    return graph, ctx, n_ops, groups


def test_pipeline_ends_with_layout_fuse_memplan():
    assert PIPELINES["default-inference"][-3:] == ["layout", "fuse", "memplan"]


def test_resnet18_eval():
    model = _randomize_batchnorms(ember.models.resnet18(num_classes=4)).eval()
    x = ember.randn(2, 3, 32, 32)
    graph, ctx, n_ops, groups = optimized(model, x)
    names = op_names(graph)
    assert not BATCHNORM_FORMS & set(names)                 # every batchnorm folded
    assert names.count("conv2d") == 20
    [entry] = conversions(graph)                            # one in; the logits need none
    assert entry.kwargs["memory_format"] is channels_last
    print(f"\nresnet18: {len(groups)} fused groups from {n_ops} original ops; "
          f"{ctx.options['memory_plan'].summary()}")
    assert len(groups) < n_ops


def test_resnet18_returning_feature_maps_converts_once_at_the_output():
    model = _randomize_batchnorms(ember.models.resnet18(num_classes=4)).eval()
    features = lambda x: model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))  # noqa: E731
    x = ember.randn(1, 3, 16, 16)
    graph, constants = build_graph(features, [meta_of(x)], ["x"])
    ctx = PassContext(dict(constants))
    run_passes(graph, "default-inference", ctx, verify_each=True)
    into, out = conversions(graph)
    assert into.kwargs["memory_format"] is channels_last
    assert graph.output_node.args[0].meta["val"].is_contiguous()
    got = call_graph(graph, [x], ctx.constants).detach().numpy()
    np.testing.assert_allclose(got, features(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_transformer_encoder_layer():
    layer = ember.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True).eval()
    x = ember.randn(2, 5, 16)
    traced, _ = build_graph(layer, [meta_of(x)])
    graph, ctx, n_ops, groups = optimized(layer, x)
    print(f"\ntransformer layer: {len(groups)} fused groups from {n_ops} original ops")
    # no 4-d tensors: layout adds nothing to the model's own .contiguous() calls
    assert groups and len(conversions(graph)) == len(conversions(traced))


@pytest.mark.parametrize("make, shape", [
    (lambda: ember.models.mlp(in_features=12, hidden=(8, 6), num_classes=3), (2, 12)),
    (lambda: ember.models.small_cnn(), (2, 1, 8, 8)),
], ids=["mlp", "small_cnn"])
def test_small_models(make, shape):
    model = _randomize_batchnorms(make()).eval()
    graph, ctx, n_ops, groups = optimized(model, ember.randn(*shape))
    print(f"\n{len(groups)} fused groups from {n_ops} original ops")
    assert groups and ctx.options["memory_plan"].values > 0
