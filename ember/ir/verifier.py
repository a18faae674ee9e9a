"""The IR verifier: SSA form, arity against the registry, and shape/dtype
consistency (each registry node's recorded type equals what its meta rule says).

`verify(graph, after="pass-name")` raises a VerifyError naming the pass, the node
and its source line. Nodes are named as `print_graph` prints them (`%2`, placeholders
by their names), so the message can be matched against `ember opt` output.
"""
from __future__ import annotations

from .errors import EmberError, VerifyError
from .graph import Graph, Node, OpKind, map_arg
from .meta import TensorMeta
from .printer import format_node, format_type, value_names
from .registry import is_op


def verify(graph: Graph, after: str | None = None) -> None:
    prefix = f"after '{after}': " if after else ""
    names = value_names(graph)
    try:
        graph.lint(names, check_targets=False)   # constants may live in the PassContext
    except VerifyError as err:
        raise VerifyError(prefix + str(err)) from None
    for node in graph.nodes:
        if node.op == OpKind.call_function and is_op(node.target):
            _check_op_node(node, f"{prefix}%{names[node]}", _where(node, names))


def _where(node: Node, names: dict) -> str:
    """The node's printed line, then the user's source line when the node has one."""
    loc = node.meta.get("loc")
    return f"\n  {format_node(node, names)}" + (f"\n  from {loc}" if loc else "")


def _check_op_node(node: Node, name: str, where: str) -> None:
    op = node.target
    try:
        bound = op.schema.bind(node.args, node.kwargs)
    except EmberError as err:
        raise VerifyError(f"{name}: {err}{where}") from None
    recorded = node.meta.get("val")
    inputs = map_arg(bound, lambda n: n.meta.get("val"))
    if recorded is None or any(isinstance(n, Node) and n.meta.get("val") is None
                               for n in node.all_input_nodes):
        return
    try:
        expected = op.meta(*inputs)
    except EmberError as err:
        raise VerifyError(f"{name}: {op.name}: {err}{where}") from None
    if not _same_types(expected, recorded):
        raise VerifyError(f"{name} is typed {format_type(recorded)} but "
                          f"{op.name} gives {format_type(expected)}{where}")


def _same_types(a, b) -> bool:
    if isinstance(a, TensorMeta) and isinstance(b, TensorMeta):
        return a.shape == b.shape and a.dtype is b.dtype
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_types(x, y) for x, y in zip(a, b))
    return a == b
