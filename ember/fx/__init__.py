"""`import ember.fx` — re-exports ember.frontend.fx.

A package laid out like torch.fx, so code written against torch.fx finds its imports:
`ember.fx.node`, `ember.fx.graph`, `ember.fx.graph_module`, `ember.fx.proxy`,
`ember.fx.interpreter`, `ember.fx.subgraph_rewriter`, `ember.fx._symbolic_trace`,
`ember.fx.immutable_collections`, `ember.fx.passes.shape_prop`,
`ember.fx.passes.split_module`, `ember.fx.passes.graph_drawer` and
`ember.fx.experimental.optimization` and the rest of docs/fx.md's list. Each submodule
re-exports what ember/frontend/fx implements.
"""
from ..frontend.fx import *  # noqa: F401,F403
from ..frontend.fx import __all__  # noqa: F401
from ..ir.graph import has_side_effect  # noqa: F401
from . import (node, graph, graph_module, proxy, interpreter,  # noqa: F401
               subgraph_rewriter, passes, experimental, _symbolic_trace,
               immutable_collections, operator_schemas, traceback, _pytree)
