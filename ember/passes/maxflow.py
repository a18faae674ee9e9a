"""Minimum source-sink cuts of the partitioners' flow networks (passes/partition.py,
passes/recompute.py), without networkx: importing networkx costs about 0.1 s of CPU, more
than the whole cut of resnet18's training step.

`min_cut_source_side(edges, source, sink)` answers what `networkx.minimum_cut` answers
(its partition's source side): every vertex from which the sink can't be reached in the
residual network of a maximum flow. That set is the same for every maximum flow (it is
the complement of the smallest sink side of a minimum cut), so the partition does not
depend on how the flow was found: Dinic's algorithm here, preflow-push in networkx.
As in networkx, an edge without a capacity (None) is infinite, a repeated edge keeps the
last capacity given, and a path of infinite edges from source to sink is an error
(`Unbounded`).
"""
from __future__ import annotations

from collections import deque
from typing import Hashable, Iterable

INF = float("inf")


class Unbounded(ValueError):
    """A path of infinite capacity joins the source to the sink: no finite cut exists."""


def min_cut_source_side(edges: Iterable[tuple[Hashable, Hashable, int | None]],
                        source: Hashable, sink: Hashable) -> set:
    vertices, heads, residual, out = _network(edges)
    for name, v in (("source", source), ("sink", sink)):
        if v not in vertices:
            raise ValueError(f"min cut: the {name} {v!r} is not in the flow network")
    s, t = vertices[source], vertices[sink]
    if _reaches(out, heads, residual, s, t, infinite_only=True):
        raise Unbounded("min cut: an infinite-capacity path joins the source to the sink")
    _max_flow(out, heads, residual, s, t)
    reaches_sink = _reaching(out, heads, residual, t, len(vertices))
    return {v for v, i in vertices.items() if not reaches_sink[i]}


def _network(edges):
    """Vertices numbered in order of appearance; edge 2k is the k-th edge, 2k+1 its
    reverse (residual capacity 0 until flow runs the other way)."""
    vertices: dict = {}
    capacity: dict = {}
    for u, v, cap in edges:
        for x in (u, v):
            if x not in vertices:
                vertices[x] = len(vertices)
        key = (vertices[u], vertices[v])
        if cap is not None or key not in capacity:   # networkx: attributes update
            capacity[key] = INF if cap is None else cap
    out: list[list[int]] = [[] for _ in vertices]
    heads: list[int] = []
    residual: list = []
    for (u, v), cap in capacity.items():
        if u == v:
            continue                              # a self loop carries no s-t flow
        out[u].append(len(heads))
        heads.append(v)
        residual.append(cap if cap > 0 else 0)
        out[v].append(len(heads))
        heads.append(u)
        residual.append(0)
    return vertices, heads, residual, out


def _reaches(out, heads, residual, s, t, infinite_only=False) -> bool:
    seen = {s}
    queue = deque([s])
    while queue:
        u = queue.popleft()
        for e in out[u]:
            v = heads[e]
            if v not in seen and (residual[e] == INF if infinite_only else residual[e] > 0):
                if v == t:
                    return True
                seen.add(v)
                queue.append(v)
    return False


def _levels(out, heads, residual, s, t, n):
    level = [-1] * n
    level[s] = 0
    queue = deque([s])
    while queue:
        u = queue.popleft()
        for e in out[u]:
            v = heads[e]
            if level[v] < 0 and residual[e] > 0:
                level[v] = level[u] + 1
                queue.append(v)
    return level if level[t] >= 0 else None


def _max_flow(out, heads, residual, s, t) -> None:
    """Dinic: blocking flows along shortest residual paths, iteratively (paths through a
    network's thousands of vertices would overflow Python's recursion limit)."""
    n = len(out)
    while True:
        level = _levels(out, heads, residual, s, t, n)
        if level is None:
            return
        nxt = [0] * n                        # each vertex's next edge to try this phase
        path: list[int] = []
        u = s
        while True:
            if u == t:
                pushed = min(residual[e] for e in path)
                for e in path:
                    residual[e] -= pushed
                    residual[e ^ 1] += pushed
                path.clear()
                u = s
                continue
            edges = out[u]
            i = nxt[u]
            while i < len(edges):
                e = edges[i]
                v = heads[e]
                if residual[e] > 0 and level[v] == level[u] + 1:
                    break
                i += 1
            nxt[u] = i
            if i < len(edges):
                path.append(edges[i])
                u = heads[edges[i]]
                continue
            if u == s:                       # blocked: the next phase
                break
            level[u] = -1                    # a dead end for the rest of this phase
            u = heads[path.pop() ^ 1]
            nxt[u] += 1


def _reaching(out, heads, residual, t, n) -> list[bool]:
    """Which vertices reach `t` through edges with residual capacity left."""
    into: list[list[int]] = [[] for _ in range(n)]
    for e, cap in enumerate(residual):
        if cap > 0:
            into[heads[e]].append(heads[e ^ 1])
    reached = [False] * n
    reached[t] = True
    queue = deque([t])
    while queue:
        v = queue.popleft()
        for u in into[v]:
            if not reached[u]:
                reached[u] = True
                queue.append(u)
    return reached
