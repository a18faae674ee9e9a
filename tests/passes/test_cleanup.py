"""Each pass preserves results: on random graphs (built with GraphBuilder, drawn by
hypothesis) and on every built-in model, comparing the graph's values before and
after the pass on the same inputs. Plus unit checks the goldens cannot express."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ember
from ember.ir.meta import meta_of
from ember.ir.registry import OPS
from ember.ir.symbolic import GraphBuilder, build_graph, call_graph
from ember.nn import init
from ember.passes import PassContext, run_passes

# the passes of this file's owner, alone and as 'default-inference' ran them before later
# passes (layout, fuse, memplan) joined it; those test themselves
OWN_INFERENCE = "simplify,fold,fold-bn,decompose,simplify,fold,cse,dce"
PIPELINES = ["dce", "cse", "fold", "simplify", "decompose", "fold,fold-bn", "cleanup",
             OWN_INFERENCE]
F = ember.nn.functional


# --- random graphs ---------------------------------------------------------------------------
def _unary(name):
    return lambda b, pool, a, k: OPS[name](a)


def _binary(name):
    def step(b, pool, a, k):
        same = [v for v in pool if v.shape == a.shape]
        return OPS[name](a, same[k % len(same)])
    return step


def _swap_back(b, pool, a, k):
    """transpose twice / reshape round trips: food for simplify."""
    if a.ndim < 2:
        return a.reshape([1, -1]).reshape(list(a.shape))
    return a.transpose(0, 1).transpose(-1, -2 if a.ndim == 2 else 1)


STEPS = {
    "relu": _unary("relu"), "tanh": _unary("tanh"), "neg": _unary("neg"),
    "sigmoid": _unary("sigmoid"), "gelu": lambda b, pool, a, k: F.gelu(a),
    "silu": lambda b, pool, a, k: F.silu(a),
    "softmax": lambda b, pool, a, k: a.softmax(-1),
    "add": _binary("add"), "mul": _binary("mul"), "sub": _binary("sub"),
    "times_one": lambda b, pool, a, k: a * 1,
    "plus_zero": lambda b, pool, a, k: a + 0,
    "plus_const": lambda b, pool, a, k: a + ember.full(list(a.shape[-1:]), float(k % 3)),
    "swap_back": _swap_back,
    "transpose": lambda b, pool, a, k: a.transpose(0, -1),
    "sum_keep": lambda b, pool, a, k: a.sum([-1], keepdim=True) + a,
    "mean": lambda b, pool, a, k: a.mean([0]),
    "var": lambda b, pool, a, k: a.var([-1], keepdim=True) * a,
    # in-place steps: merging or forwarding across them would be wrong
    "relu_": lambda b, pool, a, k: OPS["relu_"](a),
    "add_view_": lambda b, pool, a, k: OPS["add_"](a.transpose(0, -1), 1.0),
}

programs = st.lists(st.tuples(st.sampled_from(sorted(STEPS)), st.integers(0, 7),
                              st.integers(0, 7)), min_size=1, max_size=12)


def build_program(program):
    """A graph over two f32 inputs; each step applies an op to a value from the pool."""
    metas = [meta_of(ember.randn(3, 4)), meta_of(ember.randn(3, 4))]
    with GraphBuilder() as b:
        pool = [b.placeholder("x", metas[0]), b.placeholder("y", metas[1])]
        for name, i, k in program:
            pool.append(STEPS[name](b, pool, pool[i % len(pool)], k))
        b.output((pool[-1], pool[len(pool) // 2]))
    return b.graph, b.constants


def assert_same_results(graph_before, graph_after, inputs, constants_before, ctx):
    want = call_graph(graph_before, [i.clone() for i in inputs], constants_before)
    got = call_graph(graph_after, [i.clone() for i in inputs], ctx.constants)
    want = want if isinstance(want, tuple) else (want,)
    got = got if isinstance(got, tuple) else (got,)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("pipeline", PIPELINES)
@settings(max_examples=12, deadline=None)
@given(program=programs, seed=st.integers(0, 2**16))
def test_passes_preserve_results_on_random_graphs(pipeline, program, seed):
    before, constants = build_program(program)
    after, _ = build_program(program)
    rng = np.random.default_rng(seed)
    inputs = [ember.tensor(rng.standard_normal((3, 4)).astype(np.float32)) for _ in range(2)]
    ctx = PassContext(dict(constants))
    run_passes(after, pipeline, ctx, verify_each=True)
    assert_same_results(before, after, inputs, constants, ctx)


# --- built-in models ---------------------------------------------------------------------------
def _randomize_batchnorms(model, seed=0):
    """Fresh BatchNorms are identities; give them statistics worth folding."""
    ember.manual_seed(seed)
    for m in model.modules():
        if type(m).__name__.startswith("BatchNorm"):
            with ember.no_grad():
                init.normal_(m.running_mean, std=0.2)
                init.uniform_(m.running_var, 0.5, 2.0)
                init.uniform_(m.weight, 0.5, 1.5)
                init.normal_(m.bias, std=0.2)
    return model


def small_models():
    """(name, model in eval mode, example input): every model of ember.models, small."""
    models = ember.models
    return [
        ("mlp", models.mlp(in_features=12, hidden=(8, 6), num_classes=3), ember.randn(2, 12)),
        ("small_cnn", models.small_cnn(), ember.randn(2, 1, 8, 8)),
        ("resnet18", models.resnet18(num_classes=4), ember.randn(1, 3, 32, 32)),
        ("resnet50_family", models.ResNet(models.Bottleneck, [1, 1, 1, 1], num_classes=4),
         ember.randn(1, 3, 32, 32)),
        ("transformer_classifier",
         models.transformer_classifier(vocab_size=20, d_model=16, nhead=2, num_layers=2,
                                       dim_feedforward=32, max_len=16),
         ember.randint(0, 20, (2, 5))),
    ]


def traced(model, example):
    """A graph of registry ops with the parameters as get_attr constants."""
    return build_graph(model, [meta_of(example)], ["input"])


@pytest.fixture(scope="module")
def model_cases():
    ember.manual_seed(0)
    return [(name, _randomize_batchnorms(model).eval(), x) for name, model, x in small_models()]


def test_passes_preserve_results_on_every_built_in_model(model_cases):
    for name, model, x in model_cases:
        reference, constants = traced(model, x)
        want = call_graph(reference, [x], constants).detach().numpy()
        for pipeline in ["dce,cse,simplify", "fold,fold-bn", "decompose", OWN_INFERENCE]:
            graph, constants = traced(model, x)
            ctx = PassContext(dict(constants))
            run_passes(graph, pipeline, ctx, verify_each=True)
            got = call_graph(graph, [x], ctx.constants).detach().numpy()
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5,
                                       err_msg=f"{name} after {pipeline}")


# --- unit checks ---------------------------------------------------------------------------------
def test_fold_respects_training_graphs():
    w = ember.randn(4)
    graph, constants = build_graph(lambda x: x + w.exp(), [meta_of(ember.randn(4))])
    report = run_passes(graph, "fold", PassContext(dict(constants), inference=False))
    assert report.changes("fold") == 0
    report = run_passes(graph, "fold", PassContext(dict(constants)))
    assert report.changes("fold") == 1


def test_fold_size_limit_option():
    graph, constants = build_graph(lambda x: x + ember.full([64, 64], 2.0).exp(),
                                   [meta_of(ember.randn(64, 64))])
    ctx = PassContext(dict(constants), options={"fold_size_limit": 100})
    assert run_passes(graph, "fold", ctx).changes("fold") == 0
    assert run_passes(graph, "fold", PassContext(dict(constants))).changes("fold") == 1


def test_cse_keeps_random_ops():
    graph, constants = build_graph(lambda x: F.dropout(x, 0.5, True) + F.dropout(x, 0.5, True),
                                   [meta_of(ember.randn(8))])
    drops = lambda: sum(1 for n in graph.nodes  # noqa: E731
                        if getattr(n.target, "name", "") == "dropout")
    assert drops() == 2
    run_passes(graph, "cse,dce", PassContext(constants))
    assert drops() == 2
