"""Remove mutations from a traced graph: what `make_fx(func.functionalize(f))` records.

A trace of eager code records in-place ops as they ran (`add_`, `copy_` into a `select`
view for `y[0] = 5`, `index_put_`). torch.func.functionalize makes the trace record
their out-of-place forms instead, and ember does the same as a rewrite of the recorded
graph, walking it in order:

- an in-place op becomes its functional op (`add_` -> `add`, `copy_` -> `copy`), whose
  node now holds the tensor's new value; later reads of the tensor (or of the in-place
  op's result, an alias of it) read that node;
- a mutation through a view is written back into the view's base with the view's
  scatter (`select_scatter`, `slice_scatter`, `diagonal_scatter`, or the inverse
  reshape / transpose / permute), up the chain of views to the base;
- a view taken before its base changed is taken again from the new base where it is
  read next (views alias their base);
- an input that was mutated gets its final value copied back with one `copy_` before
  the output, as torch's functionalized graphs end (so does a module buffer or constant
  the trace reads as an attribute, BatchNorm's running statistics).

A mutation through a view this cannot invert (as_strided, unfold, expand...) raises
`CannotFunctionalize`; the caller then keeps the graph with its mutations.
"""
from __future__ import annotations

from ...ir.graph import Graph, Node, map_arg
from ...ir.registry import OPS, Tag


class CannotFunctionalize(Exception):
    """A mutation this rewrite cannot express without aliasing."""


_RESHAPES = ("view", "reshape", "_unsafe_view", "squeeze", "unsqueeze", "flatten",
             "view_as", "unflatten")
_IDENTITIES = ("detach", "alias", "lift_fresh")


def _op_tags(node: Node) -> set:
    return set(getattr(node.target, "tags", ())) if node.op == "call_function" else set()


def _is_inplace(node: Node) -> bool:
    return Tag.INPLACE in _op_tags(node)


def _is_view(node: Node) -> bool:
    return Tag.VIEW in _op_tags(node)


class _Functionalizer:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.alias: dict[Node, Node] = {}       # in-place result -> the tensor it mutated
        self.parent: dict[Node, Node] = {}      # view -> the tensor it views
        self.root: dict[Node, Node] = {}        # view -> the base at the end of its chain
        self.views_of: dict[Node, list[Node]] = {}
        self.current: dict[Node, Node] = {}     # tensor -> the node holding its value now
        self.mutated_inputs: list[Node] = []

    # --- reading values --------------------------------------------------------------
    def resolve(self, node: Node) -> Node:
        while node in self.alias:
            node = self.alias[node]
        return node

    def latest(self, node: Node, before: Node) -> Node:
        node = self.resolve(node)
        if node in self.current:
            return self.current[node]
        if node not in self.parent:              # a value this walk has not met: as is
            return node
        source = self.latest(self.parent[node], before)   # the view, taken again
        rest = map_arg(tuple(node.args[1:]), lambda a: self.latest(a, before))
        with self.graph.inserting_before(before):
            again = self.graph.call_function(node.target, (source, *rest), dict(node.kwargs))
        again.meta.update(node.meta)
        self.current[node] = again
        return again

    # --- the walk -------------------------------------------------------------------
    def run(self) -> None:
        for node in list(self.graph.nodes):
            if node.op in ("placeholder", "get_attr"):
                self.current[node] = node
            elif node.op == "output":
                self.finish(node)
            elif _is_inplace(node):
                self.mutation(node)
            else:
                originals = node.args
                node.args = map_arg(node.args, lambda a: self.latest(a, node))
                node.kwargs = map_arg(node.kwargs, lambda a: self.latest(a, node))
                if _is_view(node) and originals and isinstance(originals[0], Node):
                    parent = self.resolve(originals[0])
                    self.parent[node] = parent
                    root = self.root.get(parent, parent)
                    self.root[node] = root
                    self.views_of.setdefault(root, []).append(node)
                self.current[node] = node

    def mutation(self, node: Node) -> None:
        op = node.target
        functional = getattr(op, "functional", None)
        if functional is None or not node.args or not isinstance(node.args[0], Node):
            raise CannotFunctionalize(f"{op} has no out-of-place form")
        target = self.resolve(node.args[0])
        node.args = map_arg(node.args, lambda a: self.latest(a, node))
        node.kwargs = map_arg(node.kwargs, lambda a: self.latest(a, node))
        node.target = functional
        node._rename(functional.name)                   # `add`, as torch's graph names it
        self.alias[node] = target
        value, tensor, cursor = node, target, node
        while tensor in self.parent:                    # write back up the view chain
            parent = self.parent[tensor]
            base = self.latest(parent, node)
            with self.graph.inserting_after(cursor):
                value = self._scatter(tensor, base, value)
            value.meta.update(parent.meta)
            cursor, tensor = value, parent
        for view in self.views_of.get(tensor, ()):      # views of the old value: stale
            self.current.pop(view, None)
        self.current[tensor] = value
        self.current[target] = node
        if tensor.op in ("placeholder", "get_attr") and tensor not in self.mutated_inputs:
            self.mutated_inputs.append(tensor)

    def _scatter(self, view: Node, base: Node, value: Node) -> Node:
        """`base` with `value` written where `view` looks into it."""
        name = getattr(view.target, "name", "")
        rest = tuple(view.args[1:])
        call = self.graph.call_function
        if name in ("select", "slice", "diagonal"):
            return call(OPS[f"{name}_scatter"], (base, value, *rest), dict(view.kwargs))
        if name in _RESHAPES:
            return call(OPS["reshape"], (value, list(_shape(view.args[0]))))
        if name == "transpose":
            return call(OPS["transpose"], (value, *rest))
        if name == "t":
            return call(OPS["t"], (value,))
        if name == "permute":
            dims = list(rest[0])
            inverse = [dims.index(i) for i in range(len(dims))]
            return call(OPS["permute"], (value, inverse))
        if name in _IDENTITIES:
            return value
        raise CannotFunctionalize(f"a mutation through a '{name}' view")

    def finish(self, output: Node) -> None:
        output.args = map_arg(output.args, lambda a: self.latest(a, output))
        for placeholder in self.mutated_inputs:        # the input's final value, copied in
            with self.graph.inserting_before(output):
                self.graph.call_function(OPS["copy_"], (placeholder,
                                                        self.current[placeholder]))


def _shape(node) -> tuple:
    value = node.meta.get("val") if isinstance(node, Node) else None
    if value is None or not hasattr(value, "shape"):
        raise CannotFunctionalize("a view of a tensor whose shape the trace did not record")
    return tuple(value.shape)


def functionalize_graph(graph: Graph) -> None:
    """Rewrites `graph` in place (see the module's docstring); raises CannotFunctionalize
    where it cannot, having possibly changed part of the graph (re-trace to recover)."""
    _Functionalizer(graph).run()
    graph.eliminate_dead_code()
    graph.lint()
