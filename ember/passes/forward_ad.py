"""Forward-mode autograd as a graph transform: `jvp_graph(graph, wrt) -> Graph`.

    placeholders: the graph's placeholders, then one tangent per `wrt` input
                  (named tangent0, tangent1, ...; same shape and dtype as the input)
    output:       (outputs, tangent outputs)   — tangents mirror the outputs' structure

The tangent of each node comes from, in order of preference:
1. the op's declared `jvp` rule, called as `op.jvp(tangents, <schema args by name>[, out])`
   with `tangents` a tuple aligned with the op's tensor inputs (Tensor[] arguments
   expanded, None where an input has no tangent) — the convention of the eager
   forward-AD in `frontend/autograd/forward_ad.py`;
2. for a view of a single tensor: the same view of the tangent (views are linear);
3. otherwise the VJP rule, transposed. The VJP is linear in its cotangent u, so with a
   dummy u, `J v = d/du <vjp(u), v>` (the "double vjp" trick): build vjp(u) in the
   graph, then run reverse mode over just those nodes from seeds v back to u
   (`autograd.backprop`). The result never reads u's value; the nodes that do are dead
   and are removed at the end, so the derived rule costs what a hand-written one would.
   The pairing is Re<vjp(u), v>, which is also right for complex values under PyTorch's
   conjugate convention (the VJP is the real adjoint of the JVP).

Outputs that do not depend on any `wrt` input get zero tangents (torch.func.jvp's
behaviour). Nodes get meta['phase'] 'forward' or 'tangent'.
"""
from __future__ import annotations

import operator
from typing import Sequence

from ember.ir import autodiff
from ember.ir.errors import AutogradError
from ember.ir.graph import Graph, Node, OpKind, map_arg, nodes_in
from ember.ir.registry import NOT_DIFFERENTIABLE, OpDef, Tag, is_op
from ember.ir.symbolic import GraphBuilder, SymbolicTensor

from .autograd import (NodeSums, backprop, copy_with_sources, flat_grads,
                       is_differentiable_meta, out_value, requires_grad_nodes, symbolic,
                       tensor_inputs, where)

__all__ = ["jvp_graph", "tangent_placeholders"]

TANGENT = "tangent"


def jvp_graph(graph: Graph, wrt: Sequence[int | str]) -> Graph:
    """The forward-mode graph of `graph`; see the module docstring."""
    builder = GraphBuilder(record_locations=False)
    with builder:
        out_value, sources = copy_with_sources(graph, builder, wrt, "jvp_graph")
        forward = list(builder.graph.nodes)
        tangents = _TangentMap()
        for i, source in enumerate(sources):
            tangents.add(source, _tangent_placeholder(builder, source, i))
        for node in forward:
            _propagate(node, tangents)
        out_tangents = map_arg(out_value, tangents.for_output)
        builder.output((out_value, out_tangents))
    _finish(builder.graph)
    return builder.graph


def tangent_placeholders(graph: Graph) -> list[Node]:
    return [p for p in graph.placeholders if p.meta.get("phase") == TANGENT]


def _tangent_placeholder(builder: GraphBuilder, source: Node, index: int) -> SymbolicTensor:
    graph = builder.graph
    with graph.inserting_after(graph.placeholders[-1]):
        tangent = builder.placeholder(f"tangent{index}", source.meta["val"])
    tangent.node.meta["phase"] = TANGENT
    return tangent


class _TangentMap(NodeSums):
    """The tangent of each value (a tuple for multi-output nodes); absent: zero."""

    def for_output(self, node: Node) -> Node:
        tangent = self.by_node.get(node)
        if tangent is None:
            meta = node.meta["val"]
            tangent = autodiff.zeros(meta.shape, meta.dtype)
        return tangent.node


def _propagate(node: Node, tangents: _TangentMap) -> None:
    if node.op in (OpKind.placeholder, OpKind.get_attr, OpKind.output):
        return
    if not any(tangents.get(i) is not None for i in node.all_input_nodes):
        return
    if node.op == OpKind.call_function and node.target is operator.getitem:
        parent, index = node.args
        tangent = tangents.get(parent)[index]
        if tangent is not None:
            tangents.add(node, tangent)
        return
    if node.op != OpKind.call_function or not is_op(node.target):
        raise AutogradError(f"cannot differentiate through {node.op.value} "
                            f"{node.target_name} (%{node.name}); forward mode needs registry "
                            f"ops{where(node)}")
    result = _op_tangent(node, node.target, tangents)
    if result is not None:
        tangents.add(node, result)


def _op_tangent(node: Node, op: OpDef, tangents: _TangentMap):
    if op.derivative is NOT_DIFFERENTIABLE:
        return None
    bound = op.schema.bind(node.args, node.kwargs)
    inputs = tensor_inputs(op, bound)
    in_tangents = tuple(tangents.get(n) for n in inputs)
    out = out_value(node)
    if op.jvp is not None:
        return _declared(op, bound, out, in_tangents)
    if op.has_tag(Tag.VIEW) and len(inputs) == 1:
        return _view_tangent(op, bound, in_tangents[0])
    if not op.is_differentiable:
        raise AutogradError(f"{op.name}: no jvp rule and no derivative to derive one from "
                            f"(%{node.name}){where(node)}")
    return derived_jvp(op, bound, out, inputs, in_tangents)


def _declared(op: OpDef, bound: tuple, out, in_tangents: tuple):
    kwargs = op.schema.as_kwargs(map_arg(bound, symbolic))
    if op._derivative_wants_out:
        kwargs["out"] = out
    result = op.jvp(in_tangents, **kwargs)
    return tuple(result) if isinstance(result, (tuple, list)) else result


def _view_tangent(op: OpDef, bound: tuple, tangent):
    (index,) = op.schema.tensor_arg_indices
    args = list(map_arg(bound, symbolic))
    args[index] = tangent
    call_args, call_kwargs = op.schema.unbind(tuple(args))
    return op(*call_args, **call_kwargs)


def derived_jvp(op: OpDef, bound: tuple, out, inputs: list, in_tangents: tuple):
    """J v from the VJP rule by transposition (see the module docstring)."""
    graph = inputs_graph(bound)
    start = len(graph)                        # everything from here on is the vjp(u) region
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    dummies = [autodiff.zeros(o.shape, o.dtype) if is_differentiable_meta(o.meta) else None
               for o in outs]
    g = tuple(d if d is not None else autodiff.zeros(o.shape, o.dtype)
              for d, o in zip(dummies, outs))
    raw = op.call_derivative(g if isinstance(out, (tuple, list)) else g[0],
                             map_arg(bound, symbolic), out)
    seeds = []
    for input_node, w, v in zip(inputs, flat_grads(raw, len(inputs), op), in_tangents):
        if w is not None and v is not None and isinstance(input_node, Node):
            meta = input_node.meta["val"]
            seeds.append((autodiff.fit_grad(w, meta.shape, meta.dtype).node, v))
    region = graph.nodes[start:]
    u_nodes = [d.node for d in dummies if d is not None]
    req = requires_grad_nodes(region, u_nodes)
    grads = backprop(region, req, [(n, v) for n, v in seeds if n in req])
    result = [grads.get(d.node) if d is not None else None for d in dummies]
    return tuple(result) if isinstance(out, (tuple, list)) else result[0]


def inputs_graph(bound: tuple) -> Graph:
    (first, *_) = nodes_in(bound)
    return first.graph


# --- helpers -----------------------------------------------------------------------------------
def _finish(graph: Graph) -> None:
    for node in graph.nodes:
        node.meta.setdefault("phase", TANGENT)
    graph.eliminate_dead_code(lambda n: n.meta.get("phase") == "forward")
