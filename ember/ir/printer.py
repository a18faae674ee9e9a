"""Graph -> text. Deterministic: placeholders keep their names, every other value
is numbered in order (%0, %1, ...), one node per line, keywords as `k=v`, the
type after `:`. Source locations print only when asked (`locs=True`), so golden
files do not churn when a user's line moves.

    graph(%x: f32[8,3,32,32], %w: f32[16,3,3,3]):
      %0 = conv2d(%x, %w, None, [1, 1], [1, 1]) : f32[8,16,32,32]
      %1 = relu(%0) : f32[8,16,32,32]
      return %1
"""
from __future__ import annotations

import math

from .dtypes import DType
from .graph import Graph, Node, OpKind, target_name
from .meta import MemoryFormat, TensorMeta, contiguous_format
from .symdim import SymDim
from .fused import is_fused
from .registry import is_op


def format_type(val) -> str:
    if isinstance(val, TensorMeta):
        dims = ",".join(str(s) for s in val.shape)
        text = f"{val.dtype.short}[{dims}]"
        if val.memory_format is not contiguous_format:
            text += "{" + val.memory_format.value + "}"
        if val.device != "cpu":
            text += "@" + val.device
        return text
    if isinstance(val, tuple):
        return "(" + ", ".join(format_type(v) for v in val) + ("," if len(val) == 1 else "") + ")"
    if isinstance(val, list):
        return "[" + ", ".join(format_type(v) for v in val) + "]"
    return "?"


def has_tensor_type(val) -> bool:
    """Only tensor types print; Python values a node yields (sizes, flags) do not."""
    if isinstance(val, TensorMeta):
        return True
    if isinstance(val, (tuple, list)):
        return any(has_tensor_type(v) for v in val)
    return False


def format_value(v, names: dict) -> str:
    if isinstance(v, Node):
        return "%" + names[v]
    if isinstance(v, SymDim):
        return f'sym("{v}")'
    if v is None or v is True or v is False:
        return repr(v)
    if isinstance(v, DType):
        return v.short
    if isinstance(v, MemoryFormat):
        return v.value
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, (int, str)):
        return repr(v) if not isinstance(v, str) else _quote(v)
    if isinstance(v, complex):
        return f"complex({v.real!r}, {v.imag!r})"
    if isinstance(v, list):
        return "[" + ", ".join(format_value(x, names) for x in v) + "]"
    if isinstance(v, tuple):
        inner = ", ".join(format_value(x, names) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_quote(str(k))}: {format_value(x, names)}"
                               for k, x in v.items()) + "}"
    if isinstance(v, slice):
        return "slice(" + ", ".join(format_value(x, names) for x in (v.start, v.stop, v.step)) + ")"
    if type(v).__name__ == "device":
        return _quote(str(v))
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return format_value(v.item(), names)
    raise TypeError(f"cannot print constant {v!r} of type {type(v).__name__} in IR text")


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _callee(node: Node) -> str:
    if node.op == OpKind.call_function and is_fused(node.target):
        return f"fused {_quote(node.target.name)} {node.target.kind}"
    if node.op == OpKind.call_function:
        if is_op(node.target):
            return node.target.name
        return f"call_function {_quote(target_name(node.target))}"
    return f"{node.op.value} {_quote(str(node.target))}"


def _args_text(node: Node, names: dict) -> str:
    parts = [format_value(a, names) for a in node.args]
    parts += [f"{k}={format_value(v, names)}" for k, v in node.kwargs.items()]
    return ", ".join(parts)


def _loc_text(node: Node) -> str:
    loc = node.meta.get("loc")
    if not loc:
        return ""
    return f" loc({_quote(str(loc))})"


class _NodeNames(dict):
    """Node -> printed name; a node no longer in its graph (a traced value kept past the
    pass that removed it, shown in an error) prints under its own name."""

    def __missing__(self, node):
        return node.name


def format_node(node: Node, names: dict | None = None, locs: bool = False) -> str:
    names = _NodeNames(names or {n: n.name for n in node.graph.nodes})
    if node.op == OpKind.output:
        return f"return {format_value(node.args[0], names)}"
    if node.op == OpKind.placeholder:
        return f"%{names[node]} = placeholder"
    if node.op == OpKind.get_attr:
        body = f"get_attr {_quote(str(node.target))}"
    else:
        body = f"{_callee(node)}({_args_text(node, names)})"
    val = node.meta.get("val")
    typ = f" : {format_type(val)}" if has_tensor_type(val) else ""
    if node.op == OpKind.call_function and is_fused(node.target):
        body += _region_text(node, locs)
    return f"%{names[node]} = {body}{typ}{_loc_text(node) if locs else ''}{_buffer_text(node)}"


def _buffer_text(node: Node) -> str:
    """The memory plan's slot (meta['buffer'], set by memplan), as a comment the parser skips."""
    entry = node.meta.get("buffer")
    if entry is None:
        return ""
    entries = entry if isinstance(entry[0], tuple) else (entry,)
    return "  # buffer " + ", ".join(f"{slot} ({nbytes} B)" for slot, nbytes in entries)


def _region_text(node: Node, locs: bool) -> str:
    """A fused group's own graph, as a nested region."""
    inner = print_graph(node.target.graph, locs=locs).rstrip("\n").split("\n")
    return " {\n" + "\n".join("    " + line for line in inner) + "\n  }"


def value_names(graph: Graph) -> dict:
    """Placeholders keep their names; other nodes are numbered in order."""
    names, counter = {}, 0
    for n in graph.nodes:
        if n.op == OpKind.placeholder:
            names[n] = n.name
        elif n.op != OpKind.output:
            names[n] = str(counter)
            counter += 1
    return names


def print_graph(graph: Graph, locs: bool = False, names: dict | None = None) -> str:
    names = names or value_names(graph)
    params = []
    for p in graph.placeholders:
        val = p.meta.get("val")
        text = f"%{names[p]}" + (f": {format_type(val)}" if has_tensor_type(val) else "")
        if p.args:                           # a default value (fx keeps it in args)
            text += f" = {format_value(p.args[0], names)}"
        params.append(text)
    lines = [f"graph({', '.join(params)}):"]
    for n in graph.nodes:
        if n.op != OpKind.placeholder:
            lines.append("  " + format_node(n, names, locs))
    return "\n".join(lines) + "\n"
