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


class DotGraph(str):
    """DOT text that also answers pydot's writing calls, as torch's
    `FxGraphDrawer(gm, name).get_dot_graph().write_svg("g.svg")` is written:
    `write_raw`/`write_dot` (the text), `write_svg`/`write_png`/`write_pdf` and
    `create_svg`/`create_png` (through Graphviz's `dot`)."""

    def write_raw(self, path) -> None:
        with open(path, "w") as f:
            f.write(str(self))

    write_dot = write_raw

    def write(self, path, format: str = "raw") -> None:    # noqa: A002 - pydot's name
        if format in ("raw", "dot"):
            self.write_raw(path)
        else:
            _render(str(self), format, os.fspath(path))

    def write_svg(self, path) -> None:
        _render(str(self), "svg", os.fspath(path))

    def write_png(self, path) -> None:
        _render(str(self), "png", os.fspath(path))

    def write_pdf(self, path) -> None:
        _render(str(self), "pdf", os.fspath(path))

    def create_svg(self) -> bytes:
        return _render_bytes(str(self), "svg")

    def create_png(self) -> bytes:
        return _render_bytes(str(self), "png")


class GraphDrawer:
    def __init__(self, graph_or_module, name: str = "graph"):
        graph = graph_or_module if isinstance(graph_or_module, Graph) \
            else getattr(graph_or_module, "graph", None)
        if not isinstance(graph, Graph):
            raise TypeError(f"GraphDrawer needs a Graph or a GraphModule, "
                            f"got {type(graph_or_module).__name__}")
        self.graph = graph
        self.name = name

    def get_dot_graph(self, submod_name: str | None = None) -> DotGraph:
        lines = [f"digraph {_quote(self.name)} {{", "  rankdir=TB;",
                 '  node [fontname="monospace", fontsize=10];']
        for node in self.graph.nodes:
            style = _STYLES.get(node.op, _DEFAULT_STYLE)
            lines.append(f"  {_quote(node.name)} [label={_quote(_label(node))}, {style}];")
        for node in self.graph.nodes:
            for inp in node.all_input_nodes:
                lines.append(f"  {_quote(inp.name)} -> {_quote(node.name)};")
        lines.append("}")
        return DotGraph("\n".join(lines) + "\n")

    def get_main_dot_graph(self) -> DotGraph:
        return self.get_dot_graph()

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


def _render_bytes(dot_text: str, fmt: str) -> bytes:
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"graph.{fmt}")
        _render(dot_text, fmt, path)
        with open(path, "rb") as f:
            return f.read()


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
