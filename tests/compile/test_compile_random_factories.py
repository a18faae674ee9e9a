"""Random factories inside a compiled function draw anew at every call (torch.compile
semantics), instead of the capture's draw baked into the graph as a constant.

rand/randn/randint/randperm (and their *_like forms) draw with NumPy outside ops in
eager mode; under a capture they go through the sampling ops, so the graph holds a node.
"""
from __future__ import annotations

import numpy as np
import pytest

import ember

CASES = {
    "rand": lambda x: ember.rand(64) * x,
    "rand_like": lambda x: ember.rand_like(x * 2.0),
    "randn": lambda x: ember.randn(2, 64, dtype=ember.float64) + x,
    "randn_like": lambda x: ember.randn_like(x),
    "randint": lambda x: ember.randint(0, 10, (64,)) + x,
    "randint_like": lambda x: ember.randint_like(x, 3, 10),
    "randperm": lambda x: ember.randperm(64) + x,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_call_draws_new_values(name):
    compiled = ember.compile(CASES[name])
    x = ember.ones(64)
    first, second = compiled(x), compiled(x)
    assert not ember.equal(first, second)
    eager = CASES[name](x)
    assert (first.dtype, tuple(first.shape)) == (eager.dtype, tuple(eager.shape))


def test_the_draws_follow_each_factory_contract():
    x = ember.zeros(20000)
    u = ember.compile(lambda x: ember.rand_like(x))(x).numpy()
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    n = ember.compile(lambda x: ember.randn_like(x))(x).numpy()
    assert abs(n.mean()) < 0.05 and abs(n.std() - 1) < 0.05
    i = ember.compile(lambda x: ember.randint_like(x, 3, 7))(x).numpy()
    assert set(np.unique(i)) == {3, 4, 5, 6}
    p = ember.compile(lambda x: ember.randperm(1000) + x[:1000].long())(x).numpy()
    assert sorted(p.tolist()) == list(range(1000)) and p.dtype == np.int64


def test_manual_seed_makes_compiled_draws_reproducible():
    compiled = ember.compile(lambda x: ember.rand(8) + x)
    x = ember.zeros(8)
    compiled(x)
    ember.manual_seed(5)
    first = compiled(x)
    ember.manual_seed(5)
    assert ember.equal(compiled(x), first)


def test_the_graph_holds_a_sampling_node_not_a_constant():
    compiled = ember.compile(lambda x: ember.rand(4) * x)
    compiled(ember.ones(4))
    text = ember.ir.print_graph(compiled.graph)
    assert "uniform(" in text and "_constant" not in text


def test_jit_trace_records_the_draw():
    traced = ember.jit.trace(lambda x: ember.rand(16) + x, (ember.zeros(16),))
    assert not ember.equal(traced(ember.zeros(16)), traced(ember.zeros(16)))


def test_eager_draws_are_unchanged_by_the_capture_path():
    ember.manual_seed(11)
    a = ember.rand(5)
    ember.manual_seed(11)
    assert np.array_equal(a.numpy(), np.random.Generator(np.random.PCG64(11)).random(5)
                          .astype(np.float32))
