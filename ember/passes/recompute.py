"""Recomputation in whole training-step graphs: the backward re-derives cheap forward
values from fewer, already materialized ones instead of reading them from memory.

A compiled training step (`compile_train_step`) is one graph: forward, loss, backward
and the optimizer update. Fusion writes every value a later kernel reads, so each
forward value the backward reads is written by the forward kernel and read back: a
BatchNorm + ReLU forward wrote x - mean, x-hat, the ReLU output and its mask (13 bytes
per element) for the backward, where the convolution's output (written anyway: no
reduction fuses into a convolution) and the per-channel statistics give all of them.
At resnet18's stem at batch 64 that is 3 x 205 MB written and read back per step.

This pass picks the values the backward keeps reading with the min-cut rule of
`passes.partition` (functorch's rematerialization): the forward values are a flow
network whose edge capacity is what saving a value costs, cheap deterministic ops
(pointwise, views, shape changes) are recomputable, everything else and the inputs are
fed by the source, and every value the backward reads drains to the sink. What saving
costs differs from the partitioner's: a value that the forward materializes anyway
(read by an op that no kernel fuses: a convolution, a GEMM, a pooling with indices, a
graph output; or produced by one) costs almost nothing; a fusible intermediate costs
its bytes. Then each backward read of a value outside the cut is given a copy of the
chain that computes it from the cut, marked `meta['recomputed']`, which `fuse` keeps
out of forward groups: the copies fuse into the backward kernels that read them.

Forward and backward are told apart by reachability, not by meta: the forward is every
node the step's loss and new buffers (running statistics) depend on. The pass runs when
`ctx.options['recompute']` is true (the CUDA backend's training steps); elsewhere it
does nothing.
"""
from __future__ import annotations

import operator

from ..ir.fused import EPILOGUE_ANCHORS, is_lowerable
from ..ir.graph import Graph, Node, OpKind, ancestors, map_arg, nodes_in
from ..ir.meta import TensorMeta
from ..ir.registry import is_op
from .manager import PassContext, register_pass
from .maxflow import Unbounded, min_cut_source_side
from .partition import flow_edges

MATERIALIZED_COST = 1      # bytes: saving a value the forward writes anyway


@register_pass("recompute")
def recompute(graph: Graph, ctx: PassContext) -> int:
    """Training steps: the backward recomputes cheap forward values (min cut)."""
    if not ctx.options.get("recompute"):
        return 0
    from .fuse import _remaining_mutations, functionalize_inplace
    functionalize_inplace(graph)        # relu_ -> relu, as fuse does first
    if _remaining_mutations(graph):
        return 0                        # fuse leaves such graphs unfused
    forward = _forward_nodes(graph)
    if not forward:
        return 0
    reads = _backward_reads(graph, forward)
    if not reads:
        return 0
    saved = _min_cut(graph, forward, reads)
    if saved is None:
        return 0
    for node in forward:
        node.meta["step_forward"] = True         # fuse keeps recomputed copies apart
    return _rewrite(graph, forward, reads, saved)


def _forward_nodes(graph: Graph) -> set[Node]:
    """What the loss and the new buffers depend on (the step's output is (loss, updates,
    buffers)); empty when the output is not shaped so."""
    out = graph.output_node
    value = out.args[0] if out is not None and out.args else None
    if not (isinstance(value, tuple) and len(value) == 3 and isinstance(value[0], Node)):
        return set()
    return ancestors([value[0]] + list(nodes_in(value[2])))


def _backward_reads(graph: Graph, forward: set[Node]) -> set[Node]:
    reads = set()
    for node in graph.nodes:
        if node in forward or node.op == OpKind.output:
            continue
        reads.update(n for n in node.all_input_nodes
                     if n in forward and n.op not in (OpKind.get_attr, OpKind.placeholder))
    return reads


def _materialized(node: Node) -> bool:
    """True when `node`'s value is written to memory whatever is saved: no generated
    kernel computes it (a GEMM/conv, an op without a kernel), or such an op reads it, in
    the forward or in the backward (a pooling backward reads its input: a recomputed
    copy would be written for it). A fusion plan would tell more (a value two kernels
    read), but planning the groups twice costs about a second for resnet18's step."""
    if _opaque(node):
        return True
    return any(_opaque(u) or u.op == OpKind.output for u in node.users)


def _opaque(node: Node) -> bool:
    if node.op != OpKind.call_function or node.target is operator.getitem:
        return False
    if not is_op(node.target) or not is_lowerable(node):
        return True
    return node.target.name in EPILOGUE_ANCHORS


def _min_cut(graph: Graph, forward: set[Node], reads: set[Node]):
    def cost(node: Node, val: TensorMeta) -> int:
        return MATERIALIZED_COST if _materialized(node) else max(1, val.nbytes)
    # a value written anyway is available to the backward as it is: recomputing it
    # (a ReLU output a convolution reads) would write it a second time
    flow = flow_edges([n for n in graph.nodes if n in forward], forward, reads, cost,
                      available=_materialized)
    try:
        reachable = min_cut_source_side(flow, "source", "sink")
    except Unbounded:
        return None
    return {n for n in forward if ("in", n) in reachable and ("out", n) not in reachable}


def _rewrite(graph: Graph, forward: set[Node], reads: set[Node], saved: set[Node]) -> int:
    """Backward reads of values outside the cut go to copies of their chains."""
    copies: dict[Node, Node] = {}
    made = 0

    def copy_of(node: Node, before: Node) -> Node:
        nonlocal made
        if node in saved or node not in forward or node.op in (OpKind.get_attr,
                                                                 OpKind.placeholder):
            return node
        hit = copies.get(node)
        if hit is None:
            args = [copy_of(n, before) for n in node.all_input_nodes]   # inputs first
            del args
            with graph.inserting_before(before):
                hit = graph.node_copy(node, lambda n: copy_of(n, before))
            hit.meta["recomputed"] = True
            hit.meta["phase"] = "backward"
            hit.meta.pop("step_forward", None)
            copies[node] = hit
            made += 1
        return hit

    for node in list(graph.nodes):
        if node in forward or node.op == OpKind.output or node.meta.get("recomputed"):
            continue
        targets = [n for n in node.all_input_nodes if n in reads and n not in saved]
        if not targets:
            continue
        mapping = {n: copy_of(n, node) for n in targets}
        node.args = map_arg(node.args, lambda n: mapping.get(n, n))
        node.kwargs = map_arg(node.kwargs, lambda n: mapping.get(n, n))
    return made
