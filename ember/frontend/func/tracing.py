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

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

from ember.ir.errors import TraceError
from ember.ir.graph import Graph, Node, OpKind
from ember.ir.registry import OPS, Tag
from ember.ir.meta import TensorMeta, meta_of
from ember.ir.symbolic import GraphBuilder, SymbolicTensor, call_graph

from ..autograd.grad_mode import is_grad_enabled, set_grad_enabled
from . import pytree


def is_tensor_like(value) -> bool:
    """A real Tensor or a SymbolicTensor: what a transform may take as an input."""
    return isinstance(value, SymbolicTensor) or (hasattr(value, "_array") and
                                                 hasattr(value, "dtype"))


class CapturingBuilder(GraphBuilder):
    """A GraphBuilder that lifts symbolic values of other graphs into placeholders."""

    def __init__(self, stop_at_no_grad: bool = True):
        super().__init__()
        self.stop_at_no_grad = stop_at_no_grad
        self.captured: list[SymbolicTensor] = []       # the outer values, in order
        self._lifted: dict[int, SymbolicTensor] = {}

    def handle(self, op, bound: tuple):
        value = self.record(op, self._lift(bound))
        if self.stop_at_no_grad and op is not OPS["detach"] and not is_grad_enabled():
            # computed under no_grad() inside the function: a constant to an enclosing
            # grad/vjp (torch.func.grad respects an inner no_grad), so record the stop
            value = _detached(value)
        return value

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
    # inputs (placeholder indices) and captured tensors (constant names) the function
    # updates in place (lift_input_mutations): their new values are the graph's last
    # outputs, written back by the caller
    mutated_inputs: list = field(default_factory=list)

    def run(self, graph: Graph, inputs: list) -> list:
        """Run a transformed `graph` (same placeholders) on inputs + captured values."""
        result = call_graph(graph, list(inputs) + list(self.captured), self.constants)
        return list(result) if isinstance(result, (list, tuple)) else [result]


def _detached(value):
    if isinstance(value, SymbolicTensor):
        return OPS["detach"](value)
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_detached(v) for v in value)
    return value


@contextlib.contextmanager
def _detach_records():
    """`t.detach()` on a traced value records the detach op (where graph autograd stops)
    instead of returning the value itself, as torch.func.grad stops at a detach."""
    saved = SymbolicTensor.__dict__.get("detach")
    SymbolicTensor.detach = lambda self: OPS["detach"](self)
    try:
        yield
    finally:
        if saved is None:
            del SymbolicTensor.detach
        else:
            SymbolicTensor.detach = saved


def trace(fn: Callable, metas: list[TensorMeta], names=None, *,
          grad_enabled: bool | None = None, stop_at_no_grad: bool = True) -> Traced:
    """Trace `fn(*symbolic inputs)`; its output pytree must hold tensors only.

    `grad_enabled`: the grad mode the function runs under (None: the caller's); grad
    and vjp trace with it on, as torch.func.grad ignores an outer no_grad().
    `stop_at_no_grad`: values computed under an inner no_grad() are detached (reverse
    mode); jvp passes False, as no_grad() does not stop forward-mode tangents."""
    names = names or [f"arg{i}" for i in range(len(metas))]
    mode = contextlib.nullcontext() if grad_enabled is None else set_grad_enabled(grad_enabled)
    with mode, _detach_records(), CapturingBuilder(stop_at_no_grad) as builder:
        inputs = [builder.placeholder(n, m) for n, m in zip(names, metas)]
        result = fn(*inputs)
        leaves, spec = pytree.flatten(result)
        for leaf in leaves:
            if not is_tensor_like(leaf):
                raise TraceError(f"a transformed function must return tensors (or "
                                 f"tuples/lists/dicts of them), got {type(leaf).__name__}")
        builder.output(tuple(_lift_output(builder, leaf) for leaf in leaves))
    _functionalize_local_mutations(builder.graph)
    return Traced(builder.graph, builder.constants, builder.captured, spec, len(metas))


def _functionalize_local_mutations(graph: Graph) -> None:
    """`y[0] = v` on a local tensor records `copy_` into a select view, which the graph
    passes (autograd, vmap) refuse as aliasing, and `y[idx] = v` an index_put_ vmap has
    no in-place rule for; rewrite such graphs to their out-of-place form (scatters into
    the base), as torch.func's transforms see them."""
    from ..fx.functionalize_graph import CannotFunctionalize, functionalize_graph
    if any(_mutates_locally(n) for n in graph.nodes):
        try:
            functionalize_graph(graph)
        except CannotFunctionalize:
            pass    # the pass that meets the mutation names it and the user's line


def _mutates_locally(node) -> bool:
    target = node.target
    if node.op != OpKind.call_function or Tag.INPLACE not in getattr(target, "tags", ()):
        return False
    mutated = node.args[0] if node.args else None
    if not isinstance(mutated, Node) or mutated.op == OpKind.placeholder:
        return False
    # through a view, or an in-place op the passes have no in-place rule for
    # (index_put_ from `y[idx] = v`, scatter_, masked_scatter_)
    return _is_view(mutated) or any(_is_view(u) for u in mutated.users) or \
        Tag.POINTWISE not in target.tags


def _is_view(node) -> bool:
    return node.op == OpKind.call_function and Tag.VIEW in getattr(node.target, "tags", ())


def lift_input_mutations(traced: Traced) -> None:
    """grad/vjp/jvp of a function that updates an input or a captured tensor in place
    (training batch norm's running statistics): the graph is made functional and each
    updated tensor's final value becomes an extra output after the function's, which the
    caller copies into the tensor, as torch.func's transforms update it."""
    from ..fx.functionalize_graph import CannotFunctionalize, functionalize_graph
    graph = traced.graph
    placeholders = graph.placeholders[:traced.n_inputs]
    sources = set(placeholders) | {n for n in graph.nodes if n.op == OpKind.get_attr}
    if not any(_is_inplace(n) and n.args and n.args[0] in sources for n in graph.nodes):
        return
    try:
        functionalize_graph(graph)
    except CannotFunctionalize:
        return      # the autograd pass names the update it refuses
    output = next(n for n in reversed(graph.nodes) if n.op == OpKind.output)
    finals = []
    for node in list(graph.nodes):
        if node.op == OpKind.call_function and node.target is OPS["copy_"] and \
                node.args[0] in sources and not node.users:
            target = node.args[0]       # an input (its index) or a captured tensor (name)
            traced.mutated_inputs.append(placeholders.index(target) if target.op ==
                                         OpKind.placeholder else target.target)
            final = node.args[1]
            final.meta.setdefault("val", node.args[0].meta["val"])   # the input's meta
            finals.append(final)
            graph.erase_node(node)
    output.args = (tuple(output.args[0]) + tuple(finals),)


def _is_inplace(node) -> bool:
    return node.op == OpKind.call_function and Tag.INPLACE in getattr(node.target, "tags", ())


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
