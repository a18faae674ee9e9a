"""ember.fx: torch.fx-style symbolic tracing, GraphModule, Interpreter and friends."""
from ...ir.graph import Graph, Node, map_arg
from .proxy import Proxy, ProxyableClassMeta, install as _install_proxy
from .tracer import PH, Tracer, symbolic_trace, wrap
from .graph_module import GraphModule
from .interpreter import Interpreter, Transformer
from .shape_prop import ShapeProp, MetaTensor, install as _install_meta
from .codegen import install as _install_codegen
from . import subgraph_rewriter
from .subgraph_rewriter import replace_pattern
from .split_module import split_module
from ...ir.drawer import GraphDrawer

_install_proxy()
_install_meta()
_install_codegen()

__all__ = ["Graph", "Node", "map_arg", "Proxy", "ProxyableClassMeta", "PH", "Tracer",
           "symbolic_trace", "wrap",
           "GraphModule", "Interpreter", "Transformer", "ShapeProp", "subgraph_rewriter",
           "replace_pattern", "split_module", "GraphDrawer"]
