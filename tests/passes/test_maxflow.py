"""passes/maxflow.py: the partitioners' min cut gives networkx.minimum_cut's source side
(the set is the same for every maximum flow), infinite edges, repeated edges and
unbounded networks included."""
import random

import networkx as nx
import pytest

from ember.passes.maxflow import Unbounded, min_cut_source_side


def _random_edges(rng: random.Random):
    n = rng.randint(2, 30)
    vertices = ["source", "sink"] + [("v", i) for i in range(n)]
    edges = []
    for _ in range(rng.randint(1, 90)):
        u, v = rng.choice(vertices), rng.choice(vertices)
        cap = None if rng.random() < 0.3 else rng.choice([0, 1, 2, 3, 8, rng.randint(1, 10**6)])
        edges.append((u, v, cap))
    return edges + [("source", ("v", 0), None), (("v", n - 1), "sink", 5)]


def _networkx_side(edges):
    graph = nx.DiGraph()
    for u, v, cap in edges:
        graph.add_edge(u, v) if cap is None else graph.add_edge(u, v, capacity=cap)
    try:
        return nx.minimum_cut(graph, "source", "sink")[1][0]
    except nx.NetworkXUnbounded:
        return "unbounded"


def _ember_side(edges):
    try:
        return min_cut_source_side(edges, "source", "sink")
    except Unbounded:
        return "unbounded"


@pytest.mark.parametrize("seed", range(4))
def test_random_networks_cut_as_networkx(seed):
    rng = random.Random(seed)
    for _ in range(150):
        edges = _random_edges(rng)
        assert _ember_side(edges) == _networkx_side(edges), edges


def test_ties_take_the_cut_nearest_the_sink():
    # two cuts of 3: after "a" or after "b"; the source side is the largest one
    edges = [("source", "a", None), ("a", "b", 3), ("b", "c", 3), ("c", "sink", None)]
    assert min_cut_source_side(edges, "source", "sink") == {"source", "a", "b"}
    assert _networkx_side(edges) == {"source", "a", "b"}


def test_a_long_chain_needs_no_recursion():
    edges = [("source", 0, None)] + [(i, i + 1, 10) for i in range(5000)] + [(5000, "sink", 1)]
    assert min_cut_source_side(edges, "source", "sink") == {"source"} | set(range(5001))


def test_an_infinite_path_is_unbounded_and_missing_ends_are_named():
    with pytest.raises(Unbounded):
        min_cut_source_side([("source", "a", None), ("a", "sink", None)], "source", "sink")
    with pytest.raises(ValueError, match="sink"):
        min_cut_source_side([("source", "a", 1)], "source", "sink")
