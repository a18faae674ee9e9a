"""torch.fx.experimental.optimization's graph-level inference rewrites: `fuse` folds each
eval-mode BatchNorm into the convolution (or Linear) that feeds it, `remove_dropout`
drops Dropout modules. Both work on a traced copy and return a GraphModule."""
from __future__ import annotations

import copy

from ...ir.graph import Node, OpKind
from ..nn import modules as nn_modules
from ..nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval
from .graph_module import GraphModule
from .tracer import symbolic_trace

_CONV_BN_PATTERNS = [
    (nn_modules.Conv1d, nn_modules.BatchNorm1d),
    (nn_modules.Conv2d, nn_modules.BatchNorm2d),
    (nn_modules.Conv3d, nn_modules.BatchNorm3d),
    (nn_modules.Linear, nn_modules.BatchNorm1d),
]


def _parent_name(target: str) -> tuple[str, str]:
    *parent, name = target.rsplit(".", 1)
    return (parent[0] if parent else ""), name


def matches_module_pattern(pattern, node: Node, modules: dict) -> bool:
    """Whether `node` and its first argument call modules of the types in `pattern`
    (outermost last), and the inner module's result has no other user."""
    if len(node.args) == 0:
        return False
    nodes = (node.args[0], node)
    for expected_type, current in zip(pattern, nodes):
        if not isinstance(current, Node) or current.op != OpKind.call_module:
            return False
        if not isinstance(current.target, str) or current.target not in modules:
            return False
        if type(modules[current.target]) is not expected_type:
            return False
    return len(node.args[0].users) == 1


def replace_node_module(node: Node, modules: dict, new_module) -> None:
    """Put `new_module` where the module `node` calls lives, in `modules` and its parent."""
    parent_name, name = _parent_name(node.target)
    modules[node.target] = new_module
    setattr(modules[parent_name], name, new_module)


def _fused(first, bn):
    if isinstance(first, nn_modules.Linear):
        return fuse_linear_bn_eval(first, bn)
    return fuse_conv_bn_eval(first, bn)


def fuse(model, inplace: bool = False, no_trace: bool = False) -> GraphModule:
    """Fold every eval-mode BatchNorm that directly follows a Conv1d/2d/3d (or a Linear,
    into a BatchNorm1d) and is its only user into that layer's weights."""
    if not inplace:
        model = copy.deepcopy(model)
    gm = model if no_trace and isinstance(model, GraphModule) else symbolic_trace(model)
    modules = dict(gm.named_modules())
    graph = copy.deepcopy(gm.graph)
    for pattern in _CONV_BN_PATTERNS:
        for node in list(graph.nodes):
            if not matches_module_pattern(pattern, node, modules):
                continue
            first, bn = modules[node.args[0].target], modules[node.target]
            if not bn.track_running_stats:
                continue
            replace_node_module(node.args[0], modules, _fused(first, bn))
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    return GraphModule(gm, graph)


def remove_dropout(model) -> GraphModule:
    """A traced copy of `model` with every Dropout module call removed."""
    gm = symbolic_trace(model)
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op == OpKind.call_module and isinstance(
                modules.get(node.target), nn_modules.Dropout):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    gm.recompile()
    return gm


def extract_subgraph(orig_module, nodes: list, inputs: list, outputs: list) -> GraphModule:
    """A GraphModule of `nodes` (copied in order) over `orig_module`'s attributes:
    each of `inputs` becomes a placeholder of its name, and the graph returns the list
    of `outputs`' copies."""
    from ...ir.graph import Graph
    graph = Graph()
    copies = {node: graph.placeholder(node.name) for node in inputs}
    for node in nodes:
        copies[node] = graph.node_copy(node, lambda arg: copies[arg])
    graph.output([copies[node] for node in outputs])
    graph.lint()
    return GraphModule(orig_module, graph)


def optimize_for_inference(model, pass_config: dict | None = None, tracer=None) -> GraphModule:
    """torch's inference rewrites that apply to ember: BatchNorm folded into the
    preceding conv/linear (`conv_bn_fuse`) and Dropout removed (`remove_dropout`), on a
    traced copy. torch's MKL-DNN layout pass (`mkldnn_layout_optimize`) has no ember
    counterpart: ember's compiler picks layouts itself (`ember.compile`)."""
    config = {"conv_bn_fuse": True, "remove_dropout": True, **(pass_config or {})}
    model = copy.deepcopy(model)
    gm = symbolic_trace(model) if tracer is None else GraphModule(model, tracer().trace(model))
    if config["conv_bn_fuse"]:
        gm = fuse(gm, inplace=True, no_trace=True)
    if config["remove_dropout"]:
        gm = remove_dropout(gm)
    return gm


class UnionFind:
    """Disjoint sets over 0..n-1 (torch's helper): `make_set(v)`, `find(v)` (with path
    compression), `join(a, b)` (the smaller set under the larger)."""
    def __init__(self, n: int):
        self.parent: list = [None] * n
        self.size: list = [0] * n

    def make_set(self, v: int) -> None:
        self.parent[v] = v
        self.size[v] = 1

    def find(self, v: int) -> int:
        root = v
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[v] != root:
            self.parent[v], v = root, self.parent[v]
        return root

    def join(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]
