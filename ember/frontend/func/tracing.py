"""Tracing a user function into a graph, the first step of every ember.func transform.

Each transform builds the function's graph over symbolic inputs, rewrites the graph
(batch_graph, joint_graph, jvp_graph) and runs the result with `call_graph` on the
values it was given. Those values may be real Tensors (the graph runs eagerly) or
SymbolicTensors of an enclosing transform's graph (the graph is inlined there), which
is why vmap(grad(f)) or jacrev(jacfwd(f)) need no special cases.

A function may also close over values of an enclosing graph (the x in
`vmap(lambda x: vmap(lambda y: x * y)(ys))(xs)`). `CapturingBuilder` turns each such
value into an extra placeholder of the inner graph and remembers the outer value, so
the inner transform treats it as an input it does not transform.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ember.ir.errors import TraceError
from ember.ir.graph import Graph, Node, OpKind
from ember.ir.registry import Tag
from ember.ir.meta import TensorMeta, meta_of
from ember.ir.symbolic import GraphBuilder, SymbolicTensor, call_graph

from . import pytree


def is_tensor_like(value) -> bool:
    """A real Tensor or a SymbolicTensor: what a transform may take as an input."""
    return isinstance(value, SymbolicTensor) or (hasattr(value, "_array") and
                                                 hasattr(value, "dtype"))


class CapturingBuilder(GraphBuilder):
    """A GraphBuilder that lifts symbolic values of other graphs into placeholders."""

    def __init__(self):
        super().__init__()
        self.captured: list[SymbolicTensor] = []       # the outer values, in order
        self._lifted: dict[int, SymbolicTensor] = {}

    def handle(self, op, bound: tuple):
        return self.record(op, self._lift(bound))

    def _lift(self, value):
        if isinstance(value, SymbolicTensor) and value.node.graph is not self.graph:
            return self._capture(value)
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            return type(value)(self._lift(v) for v in value)
        return value

    def _capture(self, outer: SymbolicTensor) -> SymbolicTensor:
        inner = self._lifted.get(id(outer))
        if inner is None:
            placeholders = self.graph.placeholders
            where = self.graph.inserting_after(placeholders[-1]) if placeholders else \
                self.graph.inserting_before(None)
            with where:
                inner = self.placeholder(f"captured{len(self.captured)}", outer.meta)
            self.captured.append(outer)
            self._lifted[id(outer)] = inner
        return inner


@dataclass
class Traced:
    """A function's graph: placeholders are the inputs, then the captured outer values."""
    graph: Graph
    constants: dict
    captured: list
    out_spec: pytree.TreeSpec
    n_inputs: int
    aux: Any = field(default=None)

    def run(self, graph: Graph, inputs: list) -> list:
        """Run a transformed `graph` (same placeholders) on inputs + captured values."""
        result = call_graph(graph, list(inputs) + list(self.captured), self.constants)
        return list(result) if isinstance(result, (list, tuple)) else [result]


def trace(fn: Callable, metas: list[TensorMeta], names=None) -> Traced:
    """Trace `fn(*symbolic inputs)`; its output pytree must hold tensors only."""
    names = names or [f"arg{i}" for i in range(len(metas))]
    with CapturingBuilder() as builder:
        inputs = [builder.placeholder(n, m) for n, m in zip(names, metas)]
        result = fn(*inputs)
        leaves, spec = pytree.flatten(result)
        for leaf in leaves:
            if not is_tensor_like(leaf):
                raise TraceError(f"a transformed function must return tensors (or "
                                 f"tuples/lists/dicts of them), got {type(leaf).__name__}")
        builder.output(tuple(_lift_output(builder, leaf) for leaf in leaves))
    _functionalize_view_mutations(builder.graph)
    return Traced(builder.graph, builder.constants, builder.captured, spec, len(metas))


def _functionalize_view_mutations(graph: Graph) -> None:
    """`y[0] = v` on a local tensor records `copy_` into a select view, which the graph
    passes (autograd, vmap) refuse as aliasing; rewrite such graphs to their out-of-place
    form (scatters into the base), as torch.func's transforms see them."""
    from ..fx.functionalize_graph import CannotFunctionalize, functionalize_graph
    if any(_mutates_a_view(n) for n in graph.nodes):
        try:
            functionalize_graph(graph)
        except CannotFunctionalize:
            pass    # the pass that meets the mutation names it and the user's line


def _mutates_a_view(node) -> bool:
    target = node.target
    if node.op != OpKind.call_function or Tag.INPLACE not in getattr(target, "tags", ()):
        return False
    mutated = node.args[0] if node.args else None
    if not isinstance(mutated, Node) or mutated.op == OpKind.placeholder:
        return False
    return _is_view(mutated) or any(_is_view(u) for u in mutated.users)


def _is_view(node) -> bool:
    return node.op == OpKind.call_function and Tag.VIEW in getattr(node.target, "tags", ())


def _lift_output(builder: CapturingBuilder, leaf):
    """An output that is an input passed through, or an outer value, still needs a node."""
    if isinstance(leaf, SymbolicTensor):
        return builder._lift(leaf)
    return leaf


def tensor_meta(value) -> TensorMeta:
    if isinstance(value, SymbolicTensor):
        return value.meta
    return meta_of(value)


def output_leaves(graph: Graph) -> list:
    out = next(n for n in reversed(graph.nodes) if n.op == OpKind.output)
    return list(out.args[0])
