"""Graphviz drawings of a Graph (torch.fx's FxGraphDrawer, without pydot).

`GraphDrawer(graph_or_module, name).get_dot_graph()` returns DOT text: one vertex
per node labelled with its name, op kind, target and type; def->use edges.
Inputs (placeholders) and stored values (get_attr: parameters, buffers,
constants) are drawn as differently coloured shapes so they stand out from
computation. `write(path)` writes .dot directly, and .svg/.png through the
Graphviz `dot` program, which must be installed for those.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from .errors import EmberError
from .graph import Graph, Node, OpKind
from .printer import format_type, has_tensor_type

# op kind -> DOT vertex attributes; computation nodes share the default style
_STYLES = {
    OpKind.placeholder: 'shape=ellipse, style=filled, fillcolor="#cde8ff"',
    OpKind.get_attr: 'shape=note, style=filled, fillcolor="#ffe9b3"',
    OpKind.output: 'shape=doubleoctagon, style=filled, fillcolor="#d8f5d0"',
}
_DEFAULT_STYLE = 'shape=box, style="rounded,filled", fillcolor="#f2f2f2"'
_RENDERED_FORMATS = {".svg": "svg", ".png": "png"}


class GraphDrawer:
    def __init__(self, graph_or_module, name: str = "graph"):
        graph = graph_or_module if isinstance(graph_or_module, Graph) \
            else getattr(graph_or_module, "graph", None)
        if not isinstance(graph, Graph):
            raise TypeError(f"GraphDrawer needs a Graph or a GraphModule, "
                            f"got {type(graph_or_module).__name__}")
        self.graph = graph
        self.name = name

    def get_dot_graph(self) -> str:
        lines = [f"digraph {_quote(self.name)} {{", "  rankdir=TB;",
                 '  node [fontname="monospace", fontsize=10];']
        for node in self.graph.nodes:
            style = _STYLES.get(node.op, _DEFAULT_STYLE)
            lines.append(f"  {_quote(node.name)} [label={_quote(_label(node))}, {style}];")
        for node in self.graph.nodes:
            for inp in node.all_input_nodes:
                lines.append(f"  {_quote(inp.name)} -> {_quote(node.name)};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def write(self, path: str) -> str:
        """Write the drawing; the format follows the suffix (.dot, .svg, .png)."""
        suffix = os.path.splitext(path)[1].lower()
        dot_text = self.get_dot_graph()
        if suffix == ".dot":
            with open(path, "w") as f:
                f.write(dot_text)
            return path
        if suffix not in _RENDERED_FORMATS:
            raise EmberError(f"GraphDrawer.write: unknown suffix {suffix!r} in {path!r}; "
                             "use .dot, .svg or .png")
        _render(dot_text, _RENDERED_FORMATS[suffix], path)
        return path


def _render(dot_text: str, fmt: str, path: str) -> None:
    exe = shutil.which("dot")
    if exe is None:
        raise EmberError(f"writing {path!r} needs the Graphviz 'dot' program, which is not "
                         "installed (or not on PATH); install graphviz, or write a .dot file "
                         "and render it elsewhere")
    done = subprocess.run([exe, f"-T{fmt}", "-o", path], input=dot_text.encode(),
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise EmberError(f"dot failed on {path!r}: {done.stderr.decode().strip()}")


def _label(node: Node) -> str:
    parts = [node.name, node.op.value]
    if node.op not in (OpKind.placeholder, OpKind.output):
        parts.append(f"target={node.target_name}")
    val = node.meta.get("val")
    if has_tensor_type(val):
        parts.append(format_type(val))
    return "\n".join(parts)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
