"""The compile-time shortcuts of the passes make what their plain forms made: simplify's
skipping of settled nodes (against full rescans after every rewrite), fusion's checker on
a group's nodes (against the checker on the group graph `extract_group` builds), and the
garbage collector's freeze around a compile (undone after it)."""
from __future__ import annotations

import copy
import gc

import numpy as np
import pytest

import ember
from ember.compiler.compile import backend_compiling
from ember.ir import fused as F
from ember.ir.meta import meta_of
from ember.ir.printer import print_graph
from ember.ir.symbolic import build_graph
from ember.passes import PassContext, cleanup, run_passes
from ember.passes import fuse as fuse_module


def _rescanning_simplify(graph) -> int:
    """simplify as first written: after each rewrite, the mutated set again and a scan
    from the first node."""
    changed, progress = 0, True
    while progress:
        progress = False
        mutated = cleanup.mutated_values(graph)
        for node in graph.nodes:
            rule = cleanup._rule_for(node)
            if rule is None or node._erased or \
                    rule is not cleanup._functional_inplace and \
                    cleanup._touches_mutated(node, mutated):
                continue
            replacement = rule(node)
            if replacement is None or replacement in mutated or \
                    not cleanup.same_type(node, replacement):
                continue
            cleanup.replace_node(node, replacement)
            changed, progress = changed + 1, True
            break
    return changed


def _chains(x, y):
    # rewrites late in the graph that free earlier in-place ops (relu_ of a temporary whose
    # other reader goes away), reshape/permute chains, identities, and a write through a
    # view (a non-empty mutated set)
    t = x * 2.0
    u = (t * 1.0 + 0.0).reshape(4, 8).reshape(32).reshape(8, 4)
    a = t.relu_()
    b = (-(-(a / 1.0))).transpose(0, 1).transpose(0, 1)
    v = y.view(32)
    v.add_(1.0)
    w = (y * 1.0).permute(1, 0).permute(1, 0).contiguous().contiguous()
    return b + u + w + y


def _freed_later(x):
    # the in-place relu_ of n is refused while the later -n reads n too; -n reads the
    # written n, so -(-t) must not become t (the value is -relu(-t))
    t = x * 2.0
    n = -t
    a = n.relu_()
    return a, -n


def test_simplify_equals_full_rescans():
    for fn, inputs, least in ((_chains, [ember.randn(8, 4), ember.randn(8, 4)], 2),
                              (_freed_later, [ember.randn(8, 4)], 0)):
        graph, _ = build_graph(fn, [meta_of(x) for x in inputs])
        reference = copy.deepcopy(graph)
        changed = run_passes(graph, "simplify").changes("simplify")
        assert changed == _rescanning_simplify(reference) >= least
        assert print_graph(graph) == print_graph(reference)


def _neg_after_write(t):
    n = -t
    n.relu_()
    return -n


def _permute_after_write(t):
    p = (t * 2.0).permute(1, 0)
    p.exp_()
    return p.permute(1, 0)


def _reshape_after_write(t):
    r = (t + 1.0).reshape(32)
    r.neg_()
    return r.reshape(8, 4) * 1.0


@pytest.mark.parametrize("fn", [_neg_after_write, _permute_after_write, _reshape_after_write,
                                _freed_later, _chains])
def test_simplify_never_reads_through_an_in_place_write(fn):
    # -(-x) -> x and chain rules look through their input; a write between must stop them
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((8, 4)).astype(np.float32)
              for _ in range(2 if fn is _chains else 1)]
    eager = fn(*[ember.tensor(a.copy()) for a in arrays])
    compiled = ember.compile(fn)(*[ember.tensor(a.copy()) for a in arrays])
    eager = eager if isinstance(eager, tuple) else (eager,)
    compiled = compiled if isinstance(compiled, tuple) else (compiled,)
    for e, c in zip(eager, compiled):
        np.testing.assert_allclose(c.numpy(), e.numpy(), rtol=1e-6, atol=1e-6)


def _block(x, w, gamma, beta):
    y = ember.nn.functional.conv2d(x, w, padding=1)
    y = ember.nn.functional.batch_norm(y, None, None, gamma, beta, training=True)
    z = y.relu() + x
    return z.softmax(1).sum((2, 3)), z.mean()


def test_fusion_checker_on_nodes_answers_as_on_the_group_graph():
    args = [ember.randn(2, 4, 6, 6), ember.randn(4, 4, 3, 3), ember.randn(4), ember.randn(4)]
    graph, _ = build_graph(_block, [meta_of(a) for a in args])
    run_passes(graph, "decompose,cse,dce", PassContext())
    asked = []
    saved = fuse_module._problem

    def both(g, nodes):
        inputs, outputs = fuse_module._boundary(nodes)
        on_nodes = F._group_checker[0].on_nodes(nodes, inputs, outputs)
        on_graph = F.group_problem(fuse_module.extract_group(nodes)[0])
        asked.append((on_nodes is None, on_graph is None))
        return on_graph
    fuse_module._problem = both
    try:
        fuse_module.plan_groups(graph)
    finally:
        fuse_module._problem = saved
    assert len(asked) > 5 and {a for a, _ in asked} == {True, False}
    assert all(a == b for a, b in asked)


def test_compile_freezes_the_heap_only_meanwhile():
    assert gc.get_freeze_count() == 0
    with backend_compiling(object(), "test"):
        assert gc.get_freeze_count() > 0
        with backend_compiling(object(), "nested"):
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()                             # the program's own freeze is left alone
    try:
        frozen = gc.get_freeze_count()
        with backend_compiling(object(), "test"):
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
