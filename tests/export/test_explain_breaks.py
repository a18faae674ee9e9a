"""explain() on functions that read a tensor's value in Python: graph_count,
graph_break_count and break_reasons as torch._dynamo.explain counts them for the same
function (each stretch of ops between such reads is one graph)."""
from __future__ import annotations

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _bar(lib):
    def bar(a, b):
        x = a / (lib.abs(a) + 1)
        if b.sum() < 0:
            b = b * -1
        return x * b
    return bar


def _item(lib):
    def item(a):
        b = a.sin()
        v = b.sum().item()
        return b * v
    return item


def _return_only(lib):
    def return_only(a):
        if a.sum() > 0:
            return a
        return -a
    return return_only


def _two_breaks(lib):
    def two(a):
        a = a * 2
        if a.max() > 100:
            a = a - 1
        a = a.cos()
        if a.min() < -100:
            a = a + 1
        return a + 3
    return two


def _no_break(lib):
    return lambda a: a.relu() + 1


CASES = {"bar": (_bar, 2), "item": (_item, 1), "return_only": (_return_only, 1),
         "two_breaks": (_two_breaks, 1), "no_break": (_no_break, 1)}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", sorted(CASES))
def test_explain_counts_like_torch(name):
    make, n_args = CASES[name]
    data = [np.random.default_rng(i).standard_normal(6).astype(np.float32)
            for i in range(n_args)]
    if name == "return_only":
        data = [np.abs(d) for d in data]
    torch._dynamo.reset()
    want = torch._dynamo.explain(make(torch))(*[torch.tensor(d) for d in data])
    got = ember._dynamo.explain(make(ember))(*[ember.tensor(d) for d in data])
    assert (got.graph_count, got.graph_break_count, len(got.break_reasons)) == \
        (want.graph_count, want.graph_break_count, len(want.break_reasons))
    assert len(got.ops_per_graph) == len(want.ops_per_graph)
    for reason in got.break_reasons:
        assert "test_explain_breaks.py" in reason.location and reason.source.startswith("if")\
            or ".item()" in reason.reason
