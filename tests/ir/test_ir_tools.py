"""ember.ir's exports, to_networkx and the Graphviz drawer."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

import ember
import ember.fx as fx
import ember.nn as nn
from ember.ir import GraphDrawer, to_networkx
from ember.ir.errors import EmberError


class ConvBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.scale = nn.Parameter(ember.ones(2, 1, 1))

    def forward(self, x):
        y = self.conv(x).relu() * self.scale
        return y + x


def traced_block():
    gm = fx.symbolic_trace(ConvBlock())
    fx.ShapeProp(gm).propagate(ember.randn(1, 1, 4, 4))
    return gm


def test_ir_package_loads_without_lark_or_networkx():
    code = ("import sys, ember.ir, ember.runtime\n"
            "g = ember.ir.Graph(); g.output(g.placeholder('x'))\n"
            "ember.ir.print_graph(g)\n"
            "bad = [m for m in ('lark', 'networkx') if m in sys.modules]\n"
            "assert not bad, bad\n"
            "ember.ir.parse('graph(%x):\\n  return %x')\n"
            "assert 'lark' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ir_exports_the_graph_api():
    from ember.ir.graph import Graph, Node, OpKind
    assert (ember.ir.Graph, ember.ir.Node, ember.ir.OpKind) == (Graph, Node, OpKind)
    assert {"print_graph", "parse", "verify", "to_networkx", "graphs_equal"} <= \
        set(dir(ember.ir))
    with pytest.raises(AttributeError):
        ember.ir.no_such_name


def test_to_networkx_vertices_edges_and_order():
    import networkx as nx
    gm = traced_block()
    g = to_networkx(gm.graph)
    names = [n.name for n in gm.graph.nodes]
    assert list(g.nodes) == names
    # the graph's order is a topological order: the index-preferring sort reproduces it
    order = nx.lexicographical_topological_sort(g, key=lambda v: g.nodes[v]["index"])
    assert list(order) == names
    assert all(g.nodes[u]["index"] < g.nodes[v]["index"] for u, v in g.edges)
    for node in gm.graph.nodes:
        assert set(g.predecessors(node.name)) == {i.name for i in node.all_input_nodes}
    assert g.nodes["conv"]["op"] == "call_module" and g.nodes["conv"]["target"] == "conv"
    assert g.nodes["conv"]["shape"] == (1, 2, 4, 4) and g.nodes["conv"]["dtype"] == "f32"
    relu = next(n for n in gm.graph.nodes if n.op == "call_method" and n.target == "relu")
    assert g.nodes[relu.name]["target"] == "relu"
    assert g.has_edge("conv", relu.name) and g.has_edge("x", "add") and g.has_edge("add", "output")


def test_drawer_dot_structure():
    gm = traced_block()
    dot = GraphDrawer(gm, "block").get_dot_graph()
    assert dot.startswith('digraph "block" {') and dot.rstrip().endswith("}")
    vertices = dict(re.findall(r'^  "(\w+)" \[label="([^"]*)"', dot, flags=re.M))
    assert list(vertices) == [n.name for n in gm.graph.nodes]
    edges = re.findall(r'^  "(\w+)" -> "(\w+)";', dot, flags=re.M)
    assert sorted(edges) == sorted((i.name, n.name) for n in gm.graph.nodes
                                   for i in n.all_input_nodes)
    assert vertices["conv"] == r"conv\ncall_module\ntarget=conv\nf32[1,2,4,4]"
    style = dict(re.findall(r'^  "(\w+)" \[label="[^"]*", (shape=\w+)', dot, flags=re.M))
    assert style["x"] == "shape=ellipse" and style["scale"] == "shape=note"
    assert style["conv"] == "shape=box" and style["output"] == "shape=doubleoctagon"


def test_drawer_writes_dot_and_explains_missing_graphviz(tmp_path):
    gm = traced_block()
    drawer = fx.GraphDrawer(gm, "block")
    path = drawer.write(str(tmp_path / "g.dot"))
    assert open(path).read() == drawer.get_dot_graph()
    from ember.fx.passes.graph_drawer import FxGraphDrawer
    assert FxGraphDrawer is GraphDrawer
    with pytest.raises(EmberError, match="unknown suffix '.pdf'"):
        drawer.write(str(tmp_path / "g.pdf"))
    if shutil.which("dot") is None:
        with pytest.raises(EmberError, match="Graphviz 'dot' program, which is not installed"):
            drawer.write(str(tmp_path / "g.svg"))
    else:
        drawer.write(str(tmp_path / "g.svg"))
        assert "<svg" in (tmp_path / "g.svg").read_text()


def test_drawer_rejects_non_graphs():
    with pytest.raises(TypeError, match="needs a Graph or a GraphModule"):
        GraphDrawer(42)
