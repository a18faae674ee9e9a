"""split_module: cut a GraphModule into submodules by a partition callback
(torch.fx.passes.split_module semantics).

`split_callback(node)` names a partition for every computing node (not for
placeholders, get_attr or the output). Each partition becomes a GraphModule
`submod_<partition>`; a value defined in one partition and used in another
becomes an output of the first and an input of the second; the returned
GraphModule calls the submodules in dependency order. Parameters and buffers
(get_attr of a tensor) stay in the base module and are passed to the partitions
that use them as inputs, as torch does; called submodules (and get_attr of a
module) move into the partitions that use them, under their dotted path with dots
turned into underscores; `qualname_map` (when given) receives new qualified name ->
original one. The callback is called once per node, in graph order, so a stateful
callback (a round-robin counter) sees each node once.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Callable

from ...ir.errors import EmberError
from ...ir.graph import Graph, Node, OpKind, map_arg
from .graph_module import GraphModule
from .interpreter import fetch_attr


@dataclass
class Partition:
    name: str
    nodes: list = field(default_factory=list)
    inputs: dict = field(default_factory=dict)        # Node -> None (ordered set)
    outputs: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)         # get_attr Nodes used here
    dependencies: dict = field(default_factory=dict)  # partition names used by this one

    @property
    def submod_name(self) -> str:
        return f"submod_{self.name}"


def split_module(gm: GraphModule, root_m, split_callback: Callable[[Node], object],
                 qualname_map: dict | None = None,
                 keep_original_order: bool = False,
                 keep_original_node_name: bool = False) -> GraphModule:
    partitions = _assign_partitions(gm, split_callback)
    order = _partition_order(partitions, keep_original_order)
    base = Graph()
    env: dict[Node, Node] = {}
    base_attrs: dict = {}
    def read_attr(node: Node) -> None:
        base_attrs[node.target] = fetch_attr(gm, node.target)
        env[node] = base.get_attr(node.target)
        env[node].meta = dict(node.meta)
    for node in gm.graph.nodes:
        if node.op == OpKind.placeholder:
            env[node] = base.node_copy(node)
        elif node.op == OpKind.get_attr and not _is_module_attr(gm, node) and node.users \
                and not keep_original_order:
            read_attr(node)
    for part in order:
        if keep_original_order:      # torch's: each attribute read just before the first
            for inp in part.inputs:  # partition call that takes it
                if inp.op == OpKind.get_attr and inp not in env:
                    read_attr(inp)
        submodule = _build_submodule(part, root_m, qualname_map, keep_original_node_name)
        base_attrs[part.submod_name] = submodule
        _call_submodule(base, part, env)
    out = gm.graph.output_node
    result = map_arg(out.args[0], lambda n: _base_value(n, env, base, root_m, base_attrs))
    base.output(result)
    return GraphModule(base_attrs, base)


def _is_module_attr(gm: GraphModule, node: Node) -> bool:
    from ..nn.modules.module import Module
    return isinstance(fetch_attr(gm, node.target), Module)


def _assign_partitions(gm: GraphModule, split_callback) -> dict[str, Partition]:
    graph = gm.graph
    partitions: dict[str, Partition] = {}
    where: dict[Node, Partition] = {}
    for node in graph.nodes:
        if node.op in (OpKind.placeholder, OpKind.get_attr, OpKind.output):
            continue
        name = str(split_callback(node))
        part = partitions.setdefault(name, Partition(name))
        part.nodes.append(node)
        where[node] = part
        for inp in node.all_input_nodes:
            _record_use(gm, inp, part, where)
    for inp in graph.output_node.all_input_nodes if graph.output_node else ():
        if inp in where:
            where[inp].outputs[inp] = None
    return partitions


def _record_use(gm: GraphModule, value: Node, user: Partition, where: dict) -> None:
    if value.op == OpKind.get_attr and _is_module_attr(gm, value):
        user.attrs[value] = None           # the partition owns the module it reads
        return
    owner = where.get(value)
    if owner is user:
        return
    user.inputs[value] = None
    if owner is not None:
        owner.outputs[value] = None
        user.dependencies[owner.name] = None


def _partition_order(partitions: dict[str, Partition], keep_original_order: bool):
    """Dependency order; ties (and keep_original_order) follow first appearance."""
    if keep_original_order:
        order, done = list(partitions.values()), set()
        for part in order:
            late = [d for d in part.dependencies if d not in done]
            if late:
                raise EmberError(f"split_module(keep_original_order=True): partition "
                                 f"{part.name!r} appears before partitions it uses: {late}")
            done.add(part.name)
        return order
    order, done = [], set()
    pending = list(partitions.values())
    while pending:
        ready = next((p for p in pending if all(d in done for d in p.dependencies)), None)
        if ready is None:
            names = [p.name for p in pending]
            raise EmberError(f"split_module: the partitions {names} depend on each other "
                             "in a cycle; the callback must give a partition order")
        pending.remove(ready)
        done.add(ready.name)
        order.append(ready)
    return order


def _flat(qualname: str) -> str:
    return qualname.replace(".", "_")


def _build_submodule(part: Partition, root_m, qualname_map: dict | None,
                     keep_names: bool) -> GraphModule:
    graph = Graph()
    env: dict[Node, Node] = {}
    owned: dict = {}
    for value in part.inputs:
        env[value] = graph.placeholder(value.name)
        env[value].meta = dict(value.meta)
    for attr_node in part.attrs:
        env[attr_node] = _owned_attr(graph, attr_node, root_m, owned, part, qualname_map)
    for node in part.nodes:
        target = node.target
        if node.op == OpKind.call_module:
            target = _own(node.target, root_m, owned, part, qualname_map)
        # named after the target in the new graph, as torch names them (unless kept)
        new = graph.create_node(node.op, target, map_arg(node.args, lambda n: env[n]),
                                map_arg(node.kwargs, lambda n: env[n]),
                                name=node.name if keep_names else None, type_expr=node.type)
        new.meta = dict(node.meta)
        env[node] = new
    results = [env[v] for v in part.outputs]
    graph.output(results[0] if len(results) == 1 else tuple(results))
    return GraphModule(owned, graph, class_name=part.submod_name)


def _owned_attr(graph: Graph, attr_node: Node, root_m, owned: dict, part: Partition,
                qualname_map: dict | None) -> Node:
    new = graph.get_attr(_own(attr_node.target, root_m, owned, part, qualname_map))
    new.meta = dict(attr_node.meta)
    return new


def _own(qualname: str, root_m, owned: dict, part: Partition, qualname_map) -> str:
    flat = _flat(qualname)
    owned[flat] = fetch_attr(root_m, qualname)
    if qualname_map is not None:
        qualname_map[f"{part.submod_name}.{flat}"] = qualname
    return flat


def _call_submodule(base: Graph, part: Partition, env: dict) -> None:
    args = tuple(env[v] for v in part.inputs)
    call = base.call_module(part.submod_name, args)
    outputs = list(part.outputs)
    if len(outputs) == 1:
        env[outputs[0]] = call
        call.meta = dict(outputs[0].meta)
        return
    for i, value in enumerate(outputs):
        item = base.call_function(operator.getitem, (call, i))
        item.meta = dict(value.meta)
        env[value] = item


def _base_value(node: Node, env: dict, base: Graph, root_m, base_attrs: dict) -> Node:
    """The base graph's value for an output operand (a get_attr stays in the base)."""
    if node not in env and node.op == OpKind.get_attr:
        base_attrs[_flat(node.target)] = fetch_attr(root_m, node.target)
        env[node] = base.get_attr(_flat(node.target))
    return env[node]
