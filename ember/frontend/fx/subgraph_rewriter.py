"""replace_pattern: find every non-overlapping occurrence of a traced pattern in a
GraphModule and splice in a traced replacement (torch.fx's subgraph_rewriter).

Matching is SubgraphMatcher's (matcher_utils.py): same op kinds and targets, equal
literals (any literal with `ignore_literals`), pattern placeholders bind to any
value, matched interior nodes used only inside the match. Each match's returned
values are replaced by the replacement's outputs (a tuple output replaces several),
the replacement is inserted before the first user of those values, and the matched
nodes are erased; nothing else in the graph changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from ...ir.graph import Graph, Node, OpKind
from ..nn.modules.module import Module
from .matcher_utils import InternalMatch, SubgraphMatcher
from .tracer import symbolic_trace


class Match(NamedTuple):
    anchor: Node        # the pattern node the match was found from
    nodes_map: dict     # pattern node -> graph node


@dataclass
class ReplacedPatterns:
    anchor: Node
    nodes_map: dict
    replacements: list = field(default_factory=list)   # the nodes inserted


def _graph_of(obj) -> Graph:
    if isinstance(obj, Graph):
        return obj
    return getattr(obj, "graph", None) if hasattr(obj, "graph") and \
        isinstance(getattr(obj, "graph"), Graph) else symbolic_trace(obj).graph


def replace_pattern(gm, pattern, replacement) -> list[Match]:
    """Replace every match of `pattern` in `gm` by `replacement`; returns the matches."""
    replaced = _replace_pattern(gm, pattern, replacement)
    return [Match(anchor=r.anchor, nodes_map=r.nodes_map) for r in replaced]


def replace_pattern_with_filters(gm, pattern, replacement=None,
                                 match_filters: list[Callable] | None = None,
                                 ignore_literals: bool = False,
                                 replacement_callback: Callable | None = None,
                                 node_name_match: str = "") -> list[ReplacedPatterns]:
    """replace_pattern, keeping only the matches every `match_filters` entry accepts
    (`filter(match, original_graph, pattern_graph) -> bool`). `replacement_callback
    (match, original_graph, pattern_graph) -> Graph` gives each match its own
    replacement; `node_name_match` keeps matches whose anchor's name contains it."""
    return _replace_pattern(gm, pattern, replacement, match_filters, ignore_literals,
                            replacement_callback, node_name_match)


def _replace_pattern(gm, pattern, replacement, match_filters=None, ignore_literals=False,
                     replacement_callback=None, node_name_match="") -> list[ReplacedPatterns]:
    original = gm.graph
    pattern_graph = _graph_of(pattern)
    matcher = SubgraphMatcher(pattern_graph, match_output=False, match_placeholder=False,
                              remove_overlapping_matches=True,
                              ignore_literals=ignore_literals)
    matches = [m for m in matcher.match(original)
               if all(f(m, original, pattern_graph) for f in match_filters or ())]
    if node_name_match:
        matches = [m for m in matches
                   if any(node_name_match in gn.name for gn in m.returning_nodes)]
    common = _graph_of(replacement) if replacement is not None else None
    changed: dict = {}          # a replaced node -> the node that replaced it
    results = []
    for m in matches:
        repl = replacement_callback(m, original, pattern_graph) if replacement_callback \
            else common
        inserted = _splice(original, pattern_graph, m, repl, changed)
        results.append(ReplacedPatterns(anchor=m.anchors[0], nodes_map=m.nodes_map,
                                        replacements=inserted))
    if isinstance(replacement, Module):
        _copy_missing_attributes(gm, replacement)
    gm.recompile()
    return results


def _insert_point(graph: Graph, returning: list):
    """Before the first user of the values the match returns (or right after the
    last of them when nothing uses them)."""
    users = {u for n in returning for u in n.users}
    for node in graph.nodes:
        if node in users:
            return node
    position = max(graph.nodes.index(n) for n in returning)
    later = graph.nodes[position + 1:]
    return later[0] if later else None


def _splice(graph: Graph, pattern: Graph, m: InternalMatch, repl: Graph,
            changed: dict) -> list[Node]:
    repl_inputs = [n for n in repl.nodes if n.op == OpKind.placeholder]
    if len(repl_inputs) != len(m.placeholder_nodes):
        raise ValueError(f"the replacement takes {len(repl_inputs)} inputs, the pattern "
                         f"{len(m.placeholder_nodes)}")
    val_map = {}
    for i, (rn, gn) in enumerate(zip(repl_inputs, m.placeholder_nodes)):
        original = gn
        while isinstance(gn, Node) and gn in changed:   # an earlier match's output
            gn = changed[gn]
        val_map[rn] = gn
        if gn is not original:      # the match reports the node it now reads (torch's)
            m.placeholder_nodes[i] = gn
            for pn, value in m.nodes_map.items():
                if value is original:
                    m.nodes_map[pn] = gn
    before = set(graph.nodes)
    anchor = _insert_point(graph, m.returning_nodes)
    context = graph.inserting_before(anchor) if anchor is not None else graph.inserting_after()
    with context:
        copied = graph.graph_copy(repl, val_map)
    outputs = copied if isinstance(copied, (list, tuple)) else (copied,)
    if len(outputs) != len(m.returning_nodes):
        raise ValueError(f"the replacement returns {len(outputs)} values, the pattern "
                         f"{len(m.returning_nodes)}")
    for gn, new in zip(m.returning_nodes, outputs):
        gn.replace_all_uses_with(new)
        changed[gn] = new
    for pn in reversed(pattern.nodes):
        if pn.op not in (OpKind.placeholder, OpKind.output):
            gn = m.nodes_map[pn]
            if not gn.users:
                graph.erase_node(gn)
    return [n for n in graph.nodes if n not in before]


def _copy_missing_attributes(gm, replacement: Module) -> None:
    """After rewriting with a replacement module (torch.fx's rule): submodules no
    node uses any more are deleted, and submodules and attributes the spliced-in
    nodes read that `gm` lacks are copied (deep) from the replacement."""
    import copy
    from .graph_module import _copy_attr
    gm.delete_all_unused_submodules()
    for node in gm.graph.nodes:
        if node.op not in (OpKind.get_attr, OpKind.call_module):
            continue
        try:
            _fetch(gm, node.target)
            continue                     # gm's own attribute takes precedence
        except AttributeError:
            pass
        try:
            value = _fetch(replacement, node.target)
        except AttributeError:
            raise RuntimeError(f"the rewrite created a {node.op} node of '{node.target}', "
                               "which neither the module nor the replacement has") from None
        _copy_attr({node.target: copy.deepcopy(value)}, gm, node.target)
    gm.graph.lint()


def _fetch(obj, target: str):
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


__all__ = ["Match", "ReplacedPatterns", "replace_pattern", "replace_pattern_with_filters"]
