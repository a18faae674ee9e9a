"""Splitting a joint forward+backward graph into a forward graph and a backward graph.

A joint graph (from `passes.autograd.joint_graph`) marks every node with
meta['phase']: 'forward' or 'backward'. Splitting it means choosing which forward
values the forward graph hands over ("saves") and which the backward graph recomputes:

    forward graph:  placeholders: the primal inputs
                    output:       (forward outputs, (saved values...))
    backward graph: placeholders: the saved values, then the cotangents
                    output:       the gradients (the joint graph's second output)

`default_partition` is the naive split: save every forward value a backward node
reads. `min_cut_partition` chooses the saved set with the smallest total bytes, as
functorch's min-cut rematerialization partitioner does: each forward value is an edge
whose capacity is its size; the source feeds the primal inputs and every value that
must not be recomputed (matmul, conv, reductions, random ops: expensive, or not
reproducible); the backward reads drain to the sink. A minimum source-sink cut
(a max-flow, passes/maxflow.py) is a cheapest set of values from which the backward can
recompute everything else it needs using only cheap ops (pointwise, views, shape
changes, factories). Backward nodes stay in the backward graph either way; get_attr
constants are available to both graphs and are never saved.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

from ember.ir.errors import EmberError
from ember.ir.graph import Graph, Node, OpKind, ancestors, map_arg, nodes_in
from ember.ir.meta import TensorMeta
from ember.ir.registry import Tag, is_op
from ember.passes.maxflow import Unbounded, min_cut_source_side

__all__ = ["PartitionError", "PartitionReport", "default_partition", "min_cut_partition",
           "saved_bytes", "is_recomputable", "flow_network", "flow_edges"]

# tags of ops cheap enough to recompute in the backward instead of saving their result
_CHEAP_TAGS = {Tag.POINTWISE, Tag.VIEW, Tag.SHAPE, Tag.FACTORY}
# never recompute these: a second run would differ (or mutate state)
_NEVER_TAGS = {Tag.RANDOM, Tag.NONDETERMINISTIC, Tag.INPLACE}


class PartitionError(EmberError, ValueError):
    """The graph is not a joint graph this partitioner can split."""


@dataclass
class PartitionReport:
    """What each split saves between the forward and the backward graph, in bytes."""
    saved: list[str]
    saved_bytes: int
    naive_saved: list[str]
    naive_saved_bytes: int
    recomputed: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Saved bytes of the min cut over the naive split's (1.0 when both are 0)."""
        return self.saved_bytes / self.naive_saved_bytes if self.naive_saved_bytes else 1.0

    def __str__(self) -> str:
        return (f"min-cut saves {self.saved_bytes} bytes ({len(self.saved)} values: "
                f"{', '.join(self.saved)}); naive saves {self.naive_saved_bytes} bytes "
                f"({len(self.naive_saved)} values); ratio {self.ratio:.3f}; backward "
                f"recomputes {len(self.recomputed)} values ({', '.join(self.recomputed)})")


# --- classifying the joint graph -------------------------------------------------------------
@dataclass
class _Joint:
    graph: Graph
    forward: list[Node]            # phase 'forward' nodes, graph order (placeholders included)
    outputs: object                # the forward outputs (nodes in a structure)
    grads: object                  # the gradients (nodes in a structure)

    @property
    def forward_set(self) -> set[Node]:
        return set(self.forward)

    def is_backward(self, node: Node) -> bool:
        return node.meta.get("phase") == "backward"


def _split_joint(joint: Graph) -> _Joint:
    out = joint.output_node
    value = out.args[0] if out is not None else None
    if not (isinstance(value, tuple) and len(value) == 2):
        raise PartitionError("partition: expected a joint graph returning "
                             "(outputs, gradients), from passes.autograd.joint_graph")
    missing = [n.name for n in joint.nodes if n.op != OpKind.output and "phase" not in n.meta]
    if missing:
        raise PartitionError(f"partition: nodes without meta['phase']: {missing[:5]}")
    forward = [n for n in joint.nodes if n.meta.get("phase") == "forward"]
    return _Joint(joint, forward, value[0], value[1])


def _backward_reads(j: _Joint) -> list[Node]:
    """Forward values (not constants) that a backward node or a gradient output reads."""
    read = set(nodes_in(j.grads))
    for node in j.graph.nodes:
        if j.is_backward(node):
            read.update(node.all_input_nodes)
    return [n for n in j.forward if n in read and n.op != OpKind.get_attr]


def saved_bytes(nodes) -> int:
    return sum(_nbytes(n.meta.get("val")) for n in nodes)


def _nbytes(val) -> int:
    if isinstance(val, TensorMeta):
        return val.nbytes
    if isinstance(val, (tuple, list)):
        return sum(_nbytes(v) for v in val)
    return 0


def is_recomputable(node: Node) -> bool:
    """Cheap and deterministic: pointwise, views, shape changes, factories, getitem."""
    if node.op != OpKind.call_function:
        return False
    if node.target is operator.getitem:
        return True
    if not is_op(node.target):
        return False
    tags = node.target.tags
    return bool(tags & _CHEAP_TAGS) and not tags & _NEVER_TAGS


# --- the min cut -----------------------------------------------------------------------------
def _min_cut_saved(j: _Joint) -> list[Node]:
    reads = set(_backward_reads(j))
    if not reads:
        return []
    flow = flow_edges(j.forward, j.forward_set, reads)
    try:
        reachable = min_cut_source_side(flow, "source", "sink")
    except Unbounded:
        raise PartitionError("partition: a backward read cannot be saved or recomputed "
                             "(a multi-output value read whole?)") from None
    return [n for n in j.forward if ("in", n) in reachable and ("out", n) not in reachable]


def flow_network(nodes, forward: set[Node], reads: set[Node], cost=None, available=None):
    """The min-cut network over the forward `nodes` for the backward's `reads`, as a
    networkx DiGraph (see `flow_edges`; the partitioners cut the edges themselves)."""
    import networkx as nx
    flow = nx.DiGraph()
    for u, v, capacity in flow_edges(nodes, forward, reads, cost, available):
        if capacity is None:
            flow.add_edge(u, v)
        else:
            flow.add_edge(u, v, capacity=capacity)
    return flow


def flow_edges(nodes, forward: set[Node], reads: set[Node], cost=None, available=None):
    """The min-cut network's edges (u, v, capacity) over the forward `nodes` for the
    backward's `reads`: saving a tensor costs `cost(node, meta)` (default its bytes); a
    placeholder, a node that cannot be recomputed, or one `available(node)` says is
    written anyway comes free from the source. An edge without a capacity (None) is
    infinite (networkx's convention)."""
    for node in nodes:
        if node.op == OpKind.get_attr:
            continue                    # constants: available to both graphs for free
        val = node.meta.get("val")
        if isinstance(val, TensorMeta):
            capacity = val.nbytes if cost is None else cost(node, val)
            yield ("in", node), ("out", node), capacity
        else:
            yield ("in", node), ("out", node), None      # tuples: save their items
        if node.op == OpKind.placeholder or not is_recomputable(node) or \
                (available is not None and available(node)):
            yield "source", ("in", node), None
        for user in node.users:
            if user in forward:
                yield ("out", node), ("in", user), None
        if node in reads:
            yield ("out", node), "sink", None


# --- building the two graphs -------------------------------------------------------------------


def _forward_graph(j: _Joint, saved: list[Node]) -> Graph:
    needed = ancestors(nodes_in(j.outputs) + saved, set())
    graph, env = Graph(), {}
    for node in j.forward:
        if node.op == OpKind.placeholder or node in needed:
            env[node] = graph.node_copy(node, lambda n: env[n])
    graph.output((map_arg(j.outputs, lambda n: env[n]), tuple(env[n] for n in saved)))
    return graph


def _backward_graph(j: _Joint, saved: list[Node]) -> tuple[Graph, list[Node]]:
    saved_set = set(saved)
    tangents = [n for n in j.graph.placeholders if j.is_backward(n)]
    needed = ancestors(nodes_in(j.grads), saved_set | set(tangents))
    graph, env = Graph(), {}
    for node in saved + tangents:
        env[node] = graph.placeholder(node.name)
        env[node].meta = dict(node.meta)
    recomputed = []
    for node in j.graph.nodes:
        if node not in needed or node in env or node.op == OpKind.output:
            continue
        if node.meta.get("phase") == "forward" and node.op != OpKind.get_attr:
            _check_recomputable(node)
            recomputed.append(node)
        env[node] = graph.node_copy(node, lambda n: env[n])
    graph.output(map_arg(j.grads, lambda n: env[n]))
    return graph, recomputed


def _check_recomputable(node: Node) -> None:
    if node.op == OpKind.placeholder or not is_recomputable(node):
        raise PartitionError(f"partition: the backward needs %{node.name} "
                             f"({node.target_name}), which is neither saved nor cheap to "
                             "recompute")


def _split(joint: Graph, choose) -> tuple[Graph, Graph, PartitionReport]:
    j = _split_joint(joint)
    naive = _backward_reads(j)
    saved = choose(j)
    fwd = _forward_graph(j, saved)
    bwd, recomputed = _backward_graph(j, saved)
    report = PartitionReport([n.name for n in saved], saved_bytes(saved),
                             [n.name for n in naive], saved_bytes(naive),
                             [n.name for n in recomputed])
    return fwd, bwd, report


def default_partition(joint: Graph) -> tuple[Graph, Graph, PartitionReport]:
    """The naive split: save every forward value the backward reads; recompute nothing."""
    return _split(joint, _backward_reads)


def min_cut_partition(joint: Graph) -> tuple[Graph, Graph, PartitionReport]:
    """The split that saves the fewest bytes, recomputing cheap ops in the backward."""
    return _split(joint, _min_cut_saved)
