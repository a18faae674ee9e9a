"""replace_pattern: find every non-overlapping occurrence of a traced pattern in a
GraphModule and splice in a traced replacement (torch.fx's subgraph_rewriter).

Patterns are matched from their output node backwards: same op kind and target,
same constants, pattern placeholders bind (consistently) to any value. Matched
interior nodes may not be used outside the match.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ...ir.graph import Graph, Node, OpKind, map_arg
from .tracer import symbolic_trace


@dataclass
class Match:
    anchor: Node
    nodes_map: dict = field(default_factory=dict)      # pattern node -> graph node
    placeholder_nodes: list = field(default_factory=list)


class _Matcher:
    def __init__(self, pattern: Graph):
        self.pattern = pattern
        self.placeholders = pattern.placeholders
        (out,) = [n for n in pattern.nodes if n.op == OpKind.output]
        self.anchor = out.args[0]

    def match_at(self, node: Node) -> Match | None:
        mapping: dict = {}
        if not self._match(self.anchor, node, mapping):
            return None
        interior = [g for p, g in mapping.items() if p.op != OpKind.placeholder]
        for p, g in mapping.items():
            if p.op == OpKind.placeholder or g is node:
                continue
            if any(u not in interior for u in g.users):
                return None
        return Match(node, mapping, [mapping[p] for p in self.placeholders])

    def _match(self, p, g, mapping: dict) -> bool:
        if isinstance(p, Node):
            if p.op == OpKind.placeholder:
                if p in mapping:
                    return mapping[p] is g
                mapping[p] = g
                return True
            if not isinstance(g, Node) or p.op != g.op or p.target != g.target:
                return False
            if p in mapping:
                return mapping[p] is g
            mapping[p] = g
            if len(p.args) != len(g.args) or set(p.kwargs) != set(g.kwargs):
                return False
            return all(self._match(a, b, mapping) for a, b in zip(p.args, g.args)) and \
                all(self._match(p.kwargs[k], g.kwargs[k], mapping) for k in p.kwargs)
        if isinstance(p, (list, tuple)):
            return isinstance(g, (list, tuple)) and len(p) == len(g) and \
                all(self._match(a, b, mapping) for a, b in zip(p, g))
        return not isinstance(g, Node) and p == g


def _graph_of(obj) -> Graph:
    return obj if isinstance(obj, Graph) else symbolic_trace(obj).graph


def replace_pattern_with_filters(gm, pattern, replacement,
                                 match_filters: list[Callable] | None = None) -> list[Match]:
    matcher = _Matcher(_graph_of(pattern))
    repl = _graph_of(replacement)
    matches, used = [], set()
    for node in gm.graph.nodes:
        m = matcher.match_at(node)
        if m is None or any(g in used for p, g in m.nodes_map.items()
                            if p.op != OpKind.placeholder):
            continue
        if match_filters and not all(f(m, gm.graph, repl) for f in match_filters):
            continue
        matches.append(m)
        used.update(g for p, g in m.nodes_map.items() if p.op != OpKind.placeholder)
    replaced: dict = {}     # a replaced match's output -> what replaced it
    for m in matches:
        _splice(gm.graph, m, repl, replaced)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return matches


def replace_pattern(gm, pattern, replacement) -> list[Match]:
    """Replace every match of `pattern` in `gm` by `replacement`; returns the matches."""
    return replace_pattern_with_filters(gm, pattern, replacement)


def _splice(graph: Graph, m: Match, repl: Graph, replaced: dict) -> None:
    """Insert `repl` in place of match `m`. A match whose input is an earlier match's
    output (patterns chained in the graph) reads that match's replacement."""
    def current(node):
        while node in replaced:
            node = replaced[node]
        return node
    env = dict(zip(repl.placeholders, (current(n) for n in m.placeholder_nodes)))
    result = None
    with graph.inserting_before(m.anchor):
        for node in repl.nodes:
            if node.op == OpKind.placeholder:
                continue
            if node.op == OpKind.output:
                result = map_arg(node.args[0], lambda n: env[n])
                break
            env[node] = graph.node_copy(node, lambda n: env[n])
    m.anchor.replace_all_uses_with(result)
    if isinstance(result, Node):
        replaced[m.anchor] = result
