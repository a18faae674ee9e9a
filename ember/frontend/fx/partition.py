"""Capability-based partitioning and fusion, as torch.fx.passes builds backends with.

A backend says which nodes it supports (an `OperatorSupportBase`); the
`CapabilityBasedPartitioner` groups supported nodes into partitions that can run as
one call without creating a dependency cycle, and `fuse_by_partitions` replaces each
partition by a `call_module` of a GraphModule holding its nodes. The rules follow
torch.fx's so a backend written against torch.fx partitions the same way:

- nodes are visited from the last to the first; a supported node opens a partition,
  then every partition is tried for a merge into the first one (the smaller merges
  into the larger), refused when a path leaves the merged set and comes back;
- nodes within a partition keep graph order; `getitem`s of a tuple-producing node
  follow it into (or out of) its partition;
- without `allows_single_node_partition`, a partition needs two compute nodes
  (`call_function`s other than getitem and the given `non_compute_ops`; a target
  in `allowed_single_node_partition_ops` counts twice);
- fused modules are `<prefix><index>`, take the values the partition reads from
  outside (in first-use order, placeholders named after them) and return those used
  outside (one value bare, several as a tuple read back with getitem); the graph is
  then stably re-sorted.
"""
from __future__ import annotations

import abc
import copy
import heapq
import operator
from typing import Callable, Iterable, Mapping

from ...ir.graph import Graph, Node, OpKind

#: node kinds that call something (torch.fx.passes.tools_common's set)
CALLABLE_NODE_OPS = {"call_module", "call_method", "call_function"}


# --- names of targets --------------------------------------------------------------------
def qualified_name(target) -> str:
    """A call_function target's dotted name as torch.fx spells it: `_operator.add`,
    `builtins.getattr`, ember's functions and ops under their public path
    (`ember.relu`, `ember.nn.functional.relu`), others by module and name."""
    from .codegen import public_name
    public = public_name(target)
    if public is not None:
        return public
    name = getattr(target, "__name__", None) or repr(target)
    module = getattr(target, "__module__", None) or ""
    return f"{module}.{name}" if module else name


def _class_name(cls: type) -> str:
    """`ember.nn.modules.linear.Linear` for ember's layers (their public module path)."""
    module = cls.__module__ or ""
    if module.startswith("ember.frontend.nn."):
        module = "ember." + module[len("ember.frontend."):]
    return f"{module}.{cls.__name__}" if module else cls.__name__


def get_node_target(submodules: Mapping, node: Node) -> str:
    """What a callable node calls, as a string a support table can key on: the method
    name, the function's qualified name, or the called module's class path."""
    if node.op not in CALLABLE_NODE_OPS:
        raise AssertionError("Expect op types of " + ", ".join(sorted(CALLABLE_NODE_OPS))
                             + f", but found {node.op}")
    if node.op == OpKind.call_module:
        module = submodules[node.target]
        return _class_name(getattr(module, "_base_class_origin", type(module)))
    if node.op == OpKind.call_function:
        return qualified_name(node.target)
    return node.target


def is_node_output_tensor(node: Node) -> bool:
    """Whether ShapeProp recorded a tensor result for `node` (`meta["type"]`)."""
    from ..tensor import Tensor
    kind = node.meta.get("type")
    return isinstance(kind, type) and issubclass(kind, Tensor)


# --- operator support --------------------------------------------------------------------
class OperatorSupportBase(abc.ABC):
    """What a backend can run: `is_node_supported(submodules, node)`."""

    @abc.abstractmethod
    def is_node_supported(self, submodules: Mapping, node: Node) -> bool:
        raise NotImplementedError


def _arg_dtype(arg: Node):
    meta = arg.meta.get("tensor_meta")
    return meta.dtype if meta is not None and hasattr(meta, "dtype") else arg.meta.get("type")


class OperatorSupport(OperatorSupportBase):
    """A table from `get_node_target` names to None (any input dtypes) or
    `(per-arg dtype lists, {kwarg: dtype list})`; an arg entry of None is not checked.
    Non-call nodes are supported; a target missing from the table is not. Dtypes are
    read from ShapeProp's `meta["tensor_meta"]`."""

    def __init__(self, support_dict: Mapping | None = None) -> None:
        self._support_dict = support_dict or {}

    def is_node_supported(self, submodules: Mapping, node: Node) -> bool:
        if node.op not in CALLABLE_NODE_OPS:
            return True
        target = get_node_target(submodules, node)
        if target not in self._support_dict:
            return False
        allowed = self._support_dict[target]
        if allowed is None:
            return True
        arg_dtypes, kwarg_dtypes = allowed
        for arg, dtypes in zip(node.args, arg_dtypes):
            if dtypes is not None and isinstance(arg, Node) and _arg_dtype(arg) not in dtypes:
                return False
        for key, dtypes in kwarg_dtypes.items():
            arg = node.kwargs.get(key)
            if isinstance(arg, Node) and _arg_dtype(arg) not in dtypes:
                return False
        return True


class _FunctionSupport(OperatorSupportBase):
    def __init__(self, fn: Callable) -> None:
        self._fn = fn

    def is_node_supported(self, submodules: Mapping, node: Node) -> bool:
        return self._fn(submodules, node)


def create_op_support(is_node_supported: Callable) -> OperatorSupportBase:
    """An OperatorSupportBase answering with `is_node_supported(submodules, node)`."""
    return _FunctionSupport(is_node_supported)


def chain(*op_support: OperatorSupportBase) -> OperatorSupportBase:
    """Supported when every one of `op_support` supports the node."""
    return create_op_support(lambda subs, node: all(s.is_node_supported(subs, node)
                                                    for s in op_support))


def any_chain(*op_support: OperatorSupportBase) -> OperatorSupportBase:
    """Supported when any one of `op_support` supports the node."""
    return create_op_support(lambda subs, node: any(s.is_node_supported(subs, node)
                                                    for s in op_support))


class OpSupports:
    """Ready-made refusals to combine with `chain`."""

    @classmethod
    def decline_if_input_dtype(cls, dtype) -> OperatorSupportBase:
        return create_op_support(lambda subs, node: all(
            _arg_dtype(arg) != dtype for arg in node.all_input_nodes))

    @classmethod
    def decline_if_node_in_names(cls, disallow_set: set) -> OperatorSupportBase:
        return create_op_support(lambda subs, node: node.name not in disallow_set)


# --- ordering ----------------------------------------------------------------------------
def _kahn(nodes: list, inputs_of: Callable) -> list:
    """Topological order of `nodes` that keeps their given order wherever dependencies
    allow: among ready nodes, the earliest goes first."""
    position = {n: i for i, n in enumerate(nodes)}
    waiting = {n: len([i for i in inputs_of(n) if i in position]) for n in nodes}
    ready = [(position[n], n) for n in nodes if waiting[n] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for user in node.users:
            if user in waiting:
                waiting[user] -= 1
                if waiting[user] == 0:
                    heapq.heappush(ready, (position[user], user))
    return order


def topo_sort(nodes: list) -> list:
    """`nodes` (part of a graph) in dependency order, stable."""
    order = _kahn(list(nodes), lambda n: n.all_input_nodes)
    if len(order) != len(nodes):
        raise AssertionError("topological sorted nodes doesn't have same length as input nodes")
    return order


def stable_topological_sort(gm):
    """Re-order `gm.graph` so every value is defined before use, moving as few nodes as
    it must (torch.fx.passes.tools_common's). Returns `gm`."""
    graph = gm.graph
    nodes = list(graph.nodes)
    order = _kahn(nodes, lambda n: n.all_input_nodes)
    if len(order) != len(nodes):
        stuck = [n for n in nodes if n not in set(order)]
        raise AssertionError(f"Input graph has cycles, unable to add {stuck}")
    graph._nodes[:] = order
    return gm


legalize_graph = stable_topological_sort


def validate_partition(partition: Iterable[Node]) -> bool:
    """False when a path from the partition leaves it and comes back (fusing it
    would make a cycle)."""
    members = set(partition)
    frontier = [u for n in members for u in n.users if u not in members]
    seen = set()
    while frontier:
        node = frontier.pop()
        if node in members:
            return False
        if node in seen:
            continue
        seen.add(node)
        frontier.extend(node.users)
    return True


# --- fusion ------------------------------------------------------------------------------
def _lift_as_module(gm, subgraph: Graph, class_name: str):
    """A GraphModule of `subgraph` owning what its get_attr/call_module nodes name."""
    from ..nn.modules.module import Module
    from .graph_module import GraphModule, _copy_attr
    holder = Module()
    for node in subgraph.nodes:
        if node.op in (OpKind.get_attr, OpKind.call_module):
            _copy_attr(gm, holder, node.target)
    return GraphModule(holder, subgraph, class_name)


def fuse_as_graphmodule(gm, nodes: list, module_name: str,
                        partition_lookup_table: Mapping | None = None, *,
                        always_return_tuple: bool = False):
    """Copy `nodes` (topologically sorted) into a new GraphModule named `module_name`.
    Returns `(fused_gm, original_inputs, original_outputs)`."""
    if not validate_partition(nodes):
        raise AssertionError("Invalid partition, found dependency cycles")
    members = partition_lookup_table if partition_lookup_table is not None else \
        dict.fromkeys(nodes)
    subgraph = Graph()
    placeholders: dict[Node, Node] = {}
    copies: dict[Node, Node] = {}

    def remap(value: Node) -> Node:
        if value in members:
            return copies[value]
        if value not in placeholders:
            ph = subgraph.placeholder(value.name, type_expr=value.type)
            ph.meta = copy.copy(value.meta)
            placeholders[value] = ph
        return placeholders[value]

    for node in nodes:
        copies[node] = subgraph.node_copy(node, remap)
    outputs = {n: copies[n] for n in nodes if any(u not in members for u in n.users)}
    values = tuple(outputs.values())
    subgraph.output(values if always_return_tuple or len(values) != 1 else values[0])
    subgraph.lint()
    fused = _lift_as_module(gm, subgraph, module_name)
    return fused, tuple(placeholders), tuple(outputs)


def insert_subgm(gm, sub_gm, orig_inputs: tuple, orig_outputs: tuple,
                 insertion_point: Node | None = None):
    """Call `sub_gm` (installed under its class name) after `insertion_point` (default:
    the last of `orig_outputs`) and point the users of `orig_outputs` at its results."""
    name = type(sub_gm).__name__
    gm.add_submodule(name, sub_gm)
    if insertion_point is None:
        later = [n for n in gm.graph.nodes if n in orig_outputs]
        if not later:
            raise AssertionError("Cannot determine insertion point: no insertion_point "
                                 "provided and orig_outputs is empty")
        insertion_point = later[-1]
    with gm.graph.inserting_after(insertion_point):
        call = gm.graph.call_module(name, tuple(orig_inputs))
    if not orig_outputs:
        return gm
    returned = sub_gm.graph.output_node.args[0]
    if len(orig_outputs) == 1 and not isinstance(returned, tuple):
        orig_outputs[0].replace_all_uses_with(call, propagate_meta=True)
        return gm
    with gm.graph.inserting_after(call):
        items = [gm.graph.call_function(operator.getitem, (call, i))
                 for i in range(len(orig_outputs))]
    for original, item in zip(orig_outputs, items):
        original.replace_all_uses_with(item, propagate_meta=True)
    call.meta["val"] = tuple(o.meta.get("val") for o in orig_outputs)
    return gm


def erase_nodes(gm, nodes: list) -> None:
    for node in reversed(nodes):
        gm.graph.erase_node(node)


def fuse_by_partitions(gm, partitions: list, prefix: str = "fused_",
                       always_return_tuple: bool = False):
    """Replace each partition (nodes of `gm`) by a call of submodule `<prefix><i>`."""
    for index, partition in enumerate(partitions):
        ordered = topo_sort(list(partition))
        fused, inputs, outputs = fuse_as_graphmodule(
            gm, ordered, f"{prefix}{index}", dict.fromkeys(partition),
            always_return_tuple=always_return_tuple)
        insert_subgm(gm, fused, inputs, outputs, ordered[-1])
        erase_nodes(gm, ordered)
    stable_topological_sort(gm)
    gm.graph.lint()
    gm.recompile()
    return gm


# --- the partitioner ---------------------------------------------------------------------
class Partition:
    """A set of nodes, in order (`nodes` maps each node to its visiting order)."""

    def __init__(self, id: int | None = None, nodes: Iterable[Node] | None = None,
                 node_orders: Iterable[int] | None = None) -> None:
        self.id = id
        nodes = list(nodes or ())
        orders = list(node_orders) if node_orders is not None else [None] * len(nodes)
        if len(orders) != len(nodes):
            raise AssertionError("nodes and node_orders must have the same length")
        self.nodes: dict[Node, int | None] = dict(zip(nodes, orders))

    def __repr__(self) -> str:
        return str(self.nodes)

    def add_node(self, node: Node, node_order: int | None = None) -> None:
        self.nodes.update({node: node_order})

    def remove_node(self, node: Node) -> None:
        if node not in self.nodes:
            raise AssertionError(f"Node {node} not found in partition")
        del self.nodes[node]

    def size(self) -> int:
        return len(self.nodes)


_DEFAULT_NON_COMPUTE = {"torch.ops.aten.view", "_operator.getitem"}


class CapabilityBasedPartitioner:
    def __init__(self, graph_module, operator_support: OperatorSupportBase,
                 allows_single_node_partition: bool = False,
                 non_compute_ops: Iterable[str] | None = None,
                 allowed_single_node_partition_ops: Iterable[str] | None = None,
                 skip_horizontal_fusion: bool = False) -> None:
        self.graph_module = graph_module
        self.operator_support = operator_support
        self.allows_single_node_partition = allows_single_node_partition
        self.non_compute_ops = list(non_compute_ops or [])
        self.allowed_single_node_partition_ops = list(allowed_single_node_partition_ops or [])
        self.skip_horizontal_fusion = skip_horizontal_fusion

    def _is_node_supported(self, node: Node) -> bool:
        return self.operator_support.is_node_supported(
            dict(self.graph_module.named_modules()), node)

    def propose_partitions(self) -> list[Partition]:
        state = _Proposal()
        for order, node in enumerate(reversed(list(self.graph_module.graph.nodes))):
            candidates: dict[int, None] = {}
            created = False
            if node not in state.assignment and self._is_node_supported(node):
                pid = state.open(node, order)
                candidates[pid] = None
                created = True
            if self.skip_horizontal_fusion:
                if created:
                    candidates.update((state.assignment[u], None) for u in node.users
                                      if u in state.assignment)
            else:
                candidates.update((pid, None) for pid in sorted(state.first_seen,
                                                                key=state.first_seen.get))
            ids = list(candidates)
            keep = ids[0] if ids else None
            for other in ids[1:]:
                keep = state.merge(keep, other)
        for partition in state.partitions.values():    # graph order
            partition.nodes = dict(sorted(partition.nodes.items(), key=lambda kv: -kv[1]))
        self._follow_getitems(state)
        if not self.allows_single_node_partition:
            self._drop_single_compute(state)
        return [p for p in state.partitions.values() if p.size() > 0]

    def _follow_getitems(self, state: "_Proposal") -> None:
        """getitems of a tuple-producing node go where the node is."""
        while True:
            moves = {}
            for node in self.graph_module.graph.nodes:
                if not all(u.op == OpKind.call_function and u.target is operator.getitem
                           for u in node.users):
                    continue
                home = state.assignment.get(node)
                for user in node.users:
                    if state.assignment.get(user) != home:
                        moves[user] = home
            if not moves:
                return
            for node, pid in moves.items():
                state.place(node, pid)

    def _drop_single_compute(self, state: "_Proposal") -> None:
        skip = _DEFAULT_NON_COMPUTE | set(self.non_compute_ops)
        doubled = set(self.allowed_single_node_partition_ops)
        for pid, partition in list(state.partitions.items()):
            count = 0
            for node in partition.nodes:
                if node.op == OpKind.call_function:
                    name = qualified_name(node.target)
                    count += (name not in skip) + (name in doubled)
            if count <= 1:
                del state.partitions[pid]

    def fuse_partitions(self, partitions: list[Partition], prefix: str = "fused_"):
        return fuse_by_partitions(self.graph_module, [p.nodes for p in partitions],
                                  prefix=prefix)

    def remove_bookend_non_compute_ops(self, partitions: list[Partition]) -> None:
        """Drop from each partition the `non_compute_ops` nodes that only lead in from
        outside or only lead out of it (views at a partition's edges)."""
        skip = set(self.non_compute_ops)

        def non_compute(node: Node) -> bool:
            return node.op == OpKind.call_function and qualified_name(node.target) in skip

        def transparent(node, members, removed, neighbours, memo) -> bool:
            if node.op == OpKind.placeholder or node not in members or node in removed:
                return True
            if node not in memo:
                memo[node] = non_compute(node) and all(
                    transparent(n, members, removed, neighbours, memo)
                    for n in neighbours(node))
            return memo[node]

        inputs_memo, outputs_memo = {}, {}
        for partition in partitions:
            members, removed = set(partition.nodes), set()
            for node in partition.nodes:
                if non_compute(node) and (
                        transparent(node, members, removed, lambda n: n.all_input_nodes,
                                    inputs_memo)
                        or transparent(node, members, removed, lambda n: list(n.users),
                                       outputs_memo)):
                    removed.add(node)
            for node in removed:
                partition.nodes.pop(node, None)

    def partition_and_fuse(self, prefix: str = "fused_"):
        return self.fuse_partitions(self.propose_partitions(), prefix=prefix)


class _Proposal:
    """The partitioner's working state: partitions by id, each node's partition, and
    the order in which partitions were opened."""

    def __init__(self) -> None:
        self.partitions: dict[int, Partition] = {}
        self.assignment: dict[Node, int] = {}
        self.first_seen: dict[int, int] = {}
        self._next = 0

    def open(self, node: Node, order: int) -> int:
        pid = self._next
        self._next += 1
        self.first_seen[pid] = pid
        self.partitions[pid] = Partition(pid, [node], [order])
        self.assignment[node] = pid
        return pid

    def place(self, node: Node, pid: int | None) -> None:
        if node in self.assignment:
            self.partitions[self.assignment[node]].remove_node(node)
        if pid is None:
            self.assignment.pop(node, None)
        else:
            self.assignment[node] = pid
            self.partitions[pid].add_node(node)

    def merge(self, self_id: int, other_id: int) -> int:
        """Merge the two partitions unless that makes a cycle; the id kept is the
        larger partition's (self_id on a tie)."""
        a, b = self.partitions[self_id].nodes, self.partitions[other_id].nodes
        if not validate_partition(list(a) + list(b)):
            return self_id
        keep, gone = (other_id, self_id) if len(a) < len(b) else (self_id, other_id)
        moved = self.partitions.pop(gone).nodes
        self.partitions[keep].nodes.update(moved)
        for node in moved:
            self.assignment[node] = keep
        self.first_seen[keep] = min(self.first_seen[keep], self.first_seen.pop(gone))
        return keep
