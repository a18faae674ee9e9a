"""Graph analyses that want a general graph library: `to_networkx`.

networkx is imported here only, so `ember.ir` (and the runtime) load without it.
"""
from __future__ import annotations

from .graph import Graph, OpKind
from .meta import TensorMeta


def to_networkx(graph: Graph):
    """A networkx.DiGraph with one vertex per node (keyed by node name) and def->use edges.

    Vertex attributes: `op` (the op kind's name), `target` (the target's printable
    name), `shape` and `dtype` (from meta['val'] when it is a tensor, else None),
    `index` (position in the graph). Vertices are added in graph order, so the
    graph's own order is one topological order of the DiGraph.
    """
    import networkx as nx
    g = nx.DiGraph()
    for index, node in enumerate(graph.nodes):
        val = node.meta.get("val")
        is_tensor = isinstance(val, TensorMeta)
        g.add_node(node.name, op=node.op.value, target=_target_text(node), index=index,
                   shape=tuple(val.shape) if is_tensor else None,
                   dtype=val.dtype.short if is_tensor else None)
    for node in graph.nodes:
        for inp in node.all_input_nodes:
            g.add_edge(inp.name, node.name)
    return g


def _target_text(node) -> str:
    return "output" if node.op == OpKind.output else node.target_name
