"""torch.fx.passes.graph_manipulation on ember's graphs: the byte sizes memory planners
and partitioners read off a shape-propagated graph, and a node-target swap.

`get_size_of_all_nodes(gm, args)` runs ShapeProp on `args` (when given) and sets each
node's `size_bytes` (but the output's): `output_size`, the bytes of the node's result,
and `total_size`, those plus a call_module's parameters (counted at the result's
element size, as torch counts them). `get_size_of_node(gm, node)` computes one;
`get_tensor_meta(node)` is ShapeProp's `tensor_meta`, refused (RuntimeError) before
shape propagation ran. `replace_target_nodes_with(gm, old_op, old_target, new_op,
new_target)` rebuilds the graph with every matching node calling the new target.
"""
from __future__ import annotations

from typing import NamedTuple

from ...ir.graph import Graph
from .shape_prop import ShapeProp


class size_bytes(NamedTuple):      # noqa: N801 - torch's name
    output_size: int
    total_size: int


def get_tensor_meta(node):
    meta = node.meta.get("tensor_meta")
    if meta is None:
        raise RuntimeError(f"Node {node} has no tensor metadata associated with it! "
                           "Check that shape propagation has run.")
    return meta


def get_size_of_all_nodes(fx_module, args=None) -> None:
    if args is not None:
        ShapeProp(fx_module).propagate(*args)
    for node in fx_module.graph.nodes:
        if node.op == "output":
            break
        node.size_bytes = get_size_of_node(fx_module, node)


def get_size_of_node(fx_module, node) -> size_bytes:
    elements = 0
    if node.op == "call_module":
        module = fx_module.get_submodule(str(node.target))
        elements = sum(p.numel() for p in module.parameters())
    meta = get_tensor_meta(node)
    out_elements = 1
    for size in meta.shape:
        out_elements *= int(size)
    elements += out_elements
    per_element = _element_size(meta)
    return size_bytes(per_element * out_elements, per_element * elements)


def _element_size(meta) -> int:
    dtype = meta.dtype
    size = getattr(dtype, "itemsize", None)
    if size is None:
        import numpy as np
        size = np.dtype(dtype.np_dtype).itemsize
    return int(size)


def replace_target_nodes_with(fx_module, old_op: str, old_target, new_op: str,
                              new_target) -> None:
    new_graph = Graph()
    env: dict = {}
    for node in fx_module.graph.nodes:
        if node.op == old_op and node.target == old_target:
            args = tuple(_mapped(a, env) for a in node.args)
            kwargs = {k: _mapped(v, env) for k, v in node.kwargs.items()}
            env[node] = new_graph.create_node(new_op, new_target, args, kwargs, node.name)
        else:
            env[node] = new_graph.node_copy(node, lambda n: env[n])
    fx_module.graph = new_graph


def _mapped(value, env: dict):
    from ...ir.graph import map_arg
    return map_arg(value, lambda n: env[n])
