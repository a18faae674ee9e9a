"""split_const_subgraphs: compute once what depends only on a module's attributes
(torch.fx.experimental.const_fold).

A node is constant when it is a get_attr, or a pure call (Node.is_impure false,
`skip_folding_node_fn` not refusing it) whose inputs are all constant. The constant
nodes that the rest of the graph reads form a separate graph
(`const_subgraph_module`); the main graph reads their values from one attribute,
`_FX_CONST_FOLDED_ATTRS` (a Parameter, or a ParameterList indexed with getitem when
there are several). The first call — or `run_folding()` — runs the constant graph
and stores its results there; later calls only run the main graph.
"""
from __future__ import annotations

import operator
from typing import Callable

from ...ir.graph import Graph, Node, OpKind
from ..nn.modules.container import ParameterList
from ..nn.parameter import Parameter
from ..tensor import Tensor
from .graph_module import GraphModule
from .tracer import symbolic_trace

FOLDED_ATTRS = "_FX_CONST_FOLDED_ATTRS"


class FoldedGraphModule(GraphModule):
    """A GraphModule whose constant part runs once (see the module docstring)."""

    def __init__(self, root, graph: Graph, const_subgraph: Graph | None = None,
                 fx_const_folded_attrs_name: str | None = None,
                 device_for_folded_attrs: str = "cpu"):
        super().__init__(root, graph)
        self.const_subgraph_module = None if const_subgraph is None else \
            GraphModule(root, const_subgraph)
        self.has_folding_been_run = False
        self.fx_const_folded_attrs_name = fx_const_folded_attrs_name
        self.device_for_folded_attrs = device_for_folded_attrs

    def __call__(self, *args, **kwargs):
        if not self.has_folding_been_run:
            self.run_folding()
        return super().__call__(*args, **kwargs)

    def run_folding(self) -> None:
        """Run the constant graph and store its results under the folded attribute."""
        if self.const_subgraph_module is None or self.fx_const_folded_attrs_name is None:
            return
        if self.has_folding_been_run:
            raise RuntimeError("constant folding has already been run on this module")
        folded = self.const_subgraph_module()

        def as_parameter(value) -> Parameter:
            if not isinstance(value, Tensor):        # an int or float result
                from ..factories import tensor
                value = tensor([value])
            return Parameter(value.detach().clone(), requires_grad=value.requires_grad)
        if isinstance(folded, tuple):
            params = ParameterList()
            for value in folded:
                params.append(as_parameter(value))
            setattr(self, self.fx_const_folded_attrs_name, params)
        else:
            setattr(self, self.fx_const_folded_attrs_name, as_parameter(folded))
        self.has_folding_been_run = True


def get_unique_attr_name_in_module(module, name: str) -> str:
    """`name`, or `name_1`, `name_2`, ... the first the module has no attribute of."""
    candidate, i = name, 0
    while hasattr(module, candidate):
        i += 1
        candidate = f"{name}_{i}"
    return candidate


def _constant_nodes(gm: GraphModule, skip_folding_node_fn) -> list[Node]:
    constant: dict = {}
    for node in gm.graph.nodes:
        if node.op in (OpKind.placeholder, OpKind.output):
            continue
        if node.op != OpKind.get_attr and not all(n in constant for n in node.all_input_nodes):
            continue
        if (skip_folding_node_fn and skip_folding_node_fn(node)) or node.is_impure():
            continue
        constant[node] = None
    return list(constant)


def split_const_subgraphs(module, skip_folding_node_fn: Callable[[Node], bool] | None = None,
                          device_for_folded_attrs: str = "cpu") -> FoldedGraphModule:
    """Separate the nodes computed from attributes alone into a graph run once."""
    gm = module if isinstance(module, GraphModule) else symbolic_trace(module)
    constant = _constant_nodes(gm, skip_folding_node_fn)
    is_constant = set(constant)
    if all(n.op == OpKind.get_attr for n in constant):     # nothing to fold
        return FoldedGraphModule(gm, gm.graph)
    # the folded values: computed constants that the rest of the graph reads
    folded = [n for n in constant if n.op != OpKind.get_attr and
              any(u not in is_constant for u in n.users)]
    const_graph = Graph()
    const_env: dict = {}
    for node in constant:
        const_env[node] = const_graph.node_copy(node, lambda n: const_env[n])
    const_graph.output(const_env[folded[0]] if len(folded) == 1
                       else tuple(const_env[n] for n in folded))
    const_graph.eliminate_dead_code()

    attrs_name = get_unique_attr_name_in_module(gm, FOLDED_ATTRS)
    main = Graph()
    env: dict = {}
    for node in gm.graph.placeholders:
        env[node] = main.node_copy(node)
    for node in gm.graph.nodes:      # attributes the rest still reads come first (torch's)
        if node.op == OpKind.get_attr and any(u not in is_constant for u in node.users):
            env[node] = main.node_copy(node)
    attrs = main.create_node(OpKind.get_attr, attrs_name)   # set on gm below
    if len(folded) == 1:
        env[folded[0]] = attrs
    else:
        for i, node in enumerate(folded):
            env[node] = main.call_function(operator.getitem, (attrs, i))
    for node in folded:          # the value that replaces a node keeps its meta
        env[node].meta = dict(node.meta)
    for node in gm.graph.nodes:
        if node.op == OpKind.placeholder or node in env:
            continue
        if node in is_constant and not (node.op == OpKind.get_attr and
                                        any(u not in is_constant for u in node.users)):
            continue
        env[node] = main.node_copy(node, lambda n: env[n])
    main.eliminate_dead_code()
    setattr(gm, attrs_name, ParameterList() if len(folded) > 1 else Parameter())
    return FoldedGraphModule(gm, main, const_graph, attrs_name, device_for_folded_attrs)


__all__ = ["FoldedGraphModule", "split_const_subgraphs", "get_unique_attr_name_in_module"]
