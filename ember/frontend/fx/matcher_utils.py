"""SubgraphMatcher: every occurrence of a pattern graph in a graph, with torch.fx's
matching rules (torch.fx.passes.utils.matcher_utils).

- A pattern node matches a graph node of the same op kind and target whose args
  and kwargs match in turn (same count, same kwarg names, literals equal unless
  `ignore_literals`). Matching is one-to-one: a graph node stands for one pattern
  node.
- Pattern placeholders match any value (a node or a literal), consistently, unless
  `match_placeholder`; the pattern's output node takes part only with
  `match_output`.
- The nodes the pattern returns are the anchors the search starts from; a match is
  kept only when every other matched node is used only inside the match.
- With `remove_overlapping_matches`, a match sharing a non-placeholder node with an
  earlier one is dropped.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from ...ir.graph import Graph, Node, OpKind


@dataclass
class InternalMatch:
    anchors: list
    nodes_map: dict = field(default_factory=dict)       # pattern node -> graph node/value
    placeholder_nodes: list = field(default_factory=list)
    returning_nodes: list = field(default_factory=list)
    name_node_map: dict = field(default_factory=dict)

    def __copy__(self):
        return InternalMatch(anchors=list(self.anchors), nodes_map=dict(self.nodes_map),
                             placeholder_nodes=list(self.placeholder_nodes),
                             returning_nodes=list(self.returning_nodes),
                             name_node_map=dict(self.name_node_map))


class SubgraphMatcher:
    def __init__(self, pattern: Graph, match_output: bool = False,
                 match_placeholder: bool = False, remove_overlapping_matches: bool = True,
                 ignore_literals: bool = False):
        self.pattern = pattern
        self.match_output = match_output
        self.match_placeholder = match_placeholder
        self.remove_overlapping_matches = remove_overlapping_matches
        self.ignore_literals = ignore_literals
        outputs = [n for n in pattern.nodes if n.op == OpKind.output]
        if len(outputs) != 1:
            raise ValueError("the pattern graph must have exactly one output node")
        output = outputs[0]
        self.pattern_placeholder_nodes = [n for n in pattern.nodes
                                          if n.op == OpKind.placeholder]
        self.pattern_returning_nodes = [n for n in _flatten(output.args) if isinstance(n, Node)]
        # the anchors are the pattern's sinks: returned values nothing else in the
        # pattern uses (torch.fx's); the other returned values are reached from them
        self.pattern_anchors = [output] if match_output else \
            list(dict.fromkeys(n for n in self.pattern_returning_nodes
                               if (n.op != OpKind.placeholder or match_placeholder)
                               and len(n.users) == 1))

    # --- one node ---------------------------------------------------------------------------
    def _nodes_are_equal(self, pn: Node, gn: Node) -> bool:
        if not self.match_placeholder and pn.op == OpKind.placeholder:
            return True
        if pn.op != gn.op:
            return False
        if pn.op in (OpKind.placeholder, OpKind.output):
            return True
        if pn.op == OpKind.get_attr:
            return True     # attributes of two modules: any get_attr stands for another
        return pn.target == gn.target

    def _match_literals(self, pn, gn, match: InternalMatch) -> bool:
        if isinstance(pn, Node):        # a pattern input taking a literal
            if pn.op != OpKind.placeholder:
                return False
            if pn in match.nodes_map:
                return match.nodes_map[pn] == gn
            match.nodes_map[pn] = gn
            return True
        if isinstance(gn, Node):
            return False
        return self.ignore_literals or (type(pn) is type(gn) and pn == gn)

    def _match_args(self, pa, ga, match: InternalMatch) -> bool:
        if isinstance(pa, Node) and isinstance(ga, Node):
            return self._match_nodes(pa, ga, match)
        if isinstance(pa, (list, tuple)) and isinstance(ga, (list, tuple)):
            return len(pa) == len(ga) and all(self._match_args(a, b, match)
                                              for a, b in zip(pa, ga))
        if isinstance(pa, dict) and isinstance(ga, dict):
            return list(pa) == list(ga) and all(self._match_args(pa[k], ga[k], match)
                                                for k in pa)
        return self._match_literals(pa, ga, match)

    def _match_nodes(self, pn: Node, gn: Node, match: InternalMatch) -> bool:
        if pn in match.nodes_map:
            return match.nodes_map[pn] is gn
        if gn in match.nodes_map.values() and pn.op != OpKind.placeholder:
            return False        # one-to-one: gn already stands for another pattern node
        if not self._nodes_are_equal(pn, gn):
            return False
        saved = dict(match.nodes_map)
        match.nodes_map[pn] = gn
        if pn.op == OpKind.placeholder and not self.match_placeholder:
            return True
        if len(pn.args) == len(gn.args) and list(pn.kwargs) == list(gn.kwargs) and \
                self._match_args(pn.args, gn.args, match) and \
                self._match_args(pn.kwargs, gn.kwargs, match):
            return True
        match.nodes_map = saved
        return False

    # --- the graph ----------------------------------------------------------------------------
    def _is_contained(self, nodes_map: dict) -> bool:
        """Every matched interior node is used only by matched nodes."""
        inside = {gn for pn, gn in nodes_map.items() if pn.op != OpKind.placeholder
                  and isinstance(gn, Node)}
        for pn, gn in nodes_map.items():
            if pn.op in (OpKind.placeholder, OpKind.output) or \
                    pn in self.pattern_returning_nodes:
                continue
            if any(user not in inside for user in gn.users):
                return False
        return True

    def match(self, graph: Graph) -> list[InternalMatch]:
        candidates = {anchor: [n for n in graph.nodes if self._nodes_are_equal(anchor, n)]
                      for anchor in self.pattern_anchors}
        matches = []
        for combo in itertools.product(*candidates.values()):
            match = InternalMatch(anchors=list(self.pattern_anchors))
            if all(self._match_nodes(pn, gn, match)
                   for pn, gn in zip(self.pattern_anchors, combo)) and \
                    self._is_contained(match.nodes_map):
                self._complete(match)
                matches.append(match)
        matches = _distinct(matches)
        if self.remove_overlapping_matches:
            matches = self._without_overlaps(matches)
        return matches

    def _complete(self, match: InternalMatch) -> None:
        match.placeholder_nodes = [match.nodes_map[pn] for pn in self.pattern_placeholder_nodes
                                   if pn in match.nodes_map]
        match.returning_nodes = [match.nodes_map[pn] for pn in self.pattern_returning_nodes]

    @staticmethod
    def _without_overlaps(matches: list) -> list:
        kept, used = [], set()
        for m in matches:
            interior = {gn for pn, gn in m.nodes_map.items()
                        if pn.op not in (OpKind.placeholder, OpKind.output)}
            if interior & used:
                continue
            kept.append(m)
            used |= interior
        return kept


def _distinct(matches: list) -> list:
    """One match per set of matched graph nodes (anchors tried in another order
    find the same match again)."""
    seen, out = set(), []
    for m in matches:
        key = frozenset((id(pn), id(gn)) for pn, gn in m.nodes_map.items())
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def _flatten(value) -> list:
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flatten(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    return [value]


__all__ = ["SubgraphMatcher", "InternalMatch"]
