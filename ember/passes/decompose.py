"""Decomposition: composite ops rewritten into primitives by their registry entry's
`decomposition` (written with ember op calls; recorded here by a GraphBuilder).

Options (PassContext.options):
  decompose_only: names of the ops to decompose (default: every op that has one);
  decompose_keep: names to leave alone (ops a backend claims with a better kernel).
Decompositions that produce further composite ops are expanded again until only
ops without a decomposition (or kept ones) remain.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node, OpKind, map_arg
from ..ir.symbolic import GraphBuilder, SymbolicTensor
from ..ir.registry import OpDef, Tag, is_op
from .cleanup import same_type
from .manager import PassContext, PassError, register_pass

MAX_ROUNDS = 16     # decompositions nest a few levels deep; more means a cycle


def wants_decomposition(node: Node, ctx: PassContext) -> bool:
    if node.op != OpKind.call_function or not is_op(node.target):
        return False
    op: OpDef = node.target
    if op.decomposition is None or op.schema.returns_tuple or \
            op.tags & {Tag.RANDOM, Tag.INPLACE}:
        return False
    only = ctx.options.get("decompose_only")
    if only is not None and op.name not in only:
        return False
    if _reads_quantized(node):
        return False      # float decompositions do not hold for quantized kernels' values
    return op.name not in ctx.options.get("decompose_keep", ())


def _reads_quantized(node: Node) -> bool:
    """An operand of the node is a quantized value (an int8 graph's sigmoid, mean...)."""
    for value in node.all_input_nodes:
        val = value.meta.get("val")
        if getattr(getattr(val, "dtype", None), "is_quantized", False):
            return True
    return False


def _as_node(value, graph: Graph) -> Node:
    if not isinstance(value, SymbolicTensor) or value.node.graph is not graph:
        raise PassError(f"a decomposition returned {value!r}, not a value of the graph")
    return value.node


def decompose_node(node: Node) -> Node:
    """Emit node's decomposition just before it; returns the node holding the result."""
    graph = node.graph
    op: OpDef = node.target
    bound = op.schema.bind(node.args, node.kwargs)
    before = set(graph.nodes)
    with graph.inserting_before(node), GraphBuilder(graph, record_locations=False) as b:
        wrapped = map_arg(bound, b.wrap)
        result = op.decomposition(*wrapped)
    if b.constants:
        raise PassError(f"the decomposition of {op.name} made tensor constants "
                        f"{sorted(b.constants)}; write it with ops on its inputs")
    for new in graph.nodes:
        if new not in before and "loc" in node.meta:
            new.meta["loc"] = node.meta["loc"]
    return _as_node(result, graph)


@register_pass("decompose", provides=("decomposed",), preserves=("shapes",))
def decompose_composites(graph: Graph, ctx: PassContext) -> int:
    """Replace each composite op by its decomposition into primitives."""
    changed = 0
    for _ in range(MAX_ROUNDS):
        todo = [n for n in graph.nodes if wants_decomposition(n, ctx)]
        if not todo:
            return changed
        for node in todo:
            replacement = decompose_node(node)
            if not same_type(node, replacement):
                raise PassError(f"the decomposition of {node.target.name} gives "
                                f"{replacement.meta.get('val')}, not {node.meta.get('val')}")
            node.replace_all_uses_with(replacement)
            graph.erase_node(node)
            changed += 1
    raise PassError(f"decompositions still produce composite ops after {MAX_ROUNDS} rounds")
