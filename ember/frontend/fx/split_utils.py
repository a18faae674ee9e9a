"""split_by_tags: one submodule per tag, in the order of `tags`
(torch.fx.passes.split_utils).

Every computing node carries `node.tag` (one of `tags`); the nodes of a tag become
the submodule named after it, which keeps the node names and calls the original
submodules under their names (`red.linear1`); values crossing tags become inputs and
outputs, as split_module makes them.
"""
from __future__ import annotations

from ...ir.graph import OpKind
from .graph_module import GraphModule
from .split_module import split_module


def split_by_tags(gm: GraphModule, tags: list[str], return_fqn_mapping: bool = False,
                  return_tuple: bool = False, GraphModuleCls=GraphModule):
    """`gm` cut into one submodule per tag; with `return_fqn_mapping`, also the map
    from each moved submodule's original name to its new one (`"linear1":
    "red.linear1"`)."""
    def partition(node) -> int:
        tag = getattr(node, "tag", None)
        if tag not in tags:
            raise ValueError(f"split_by_tags: node {node.name} has tag {tag!r}, not one of "
                             f"{tags}")
        return tags.index(tag)
    qualnames: dict = {}
    split = split_module(gm, gm, partition, qualname_map=qualnames,
                         keep_original_order=True, keep_original_node_name=True)
    renamed = {f"submod_{i}": tag for i, tag in enumerate(tags)}
    children = {}
    for node in split.graph.nodes:
        if node.op == OpKind.call_module and node.target in renamed:
            children[renamed[node.target]] = getattr(split, node.target)
            node.target = renamed[node.target]
    base = GraphModuleCls(children, split.graph)
    mapping = {}
    for new, old in qualnames.items():
        submod, _, rest = new.partition(".")
        mapping[old] = f"{renamed.get(submod, submod)}.{rest}"
    if return_tuple or return_fqn_mapping:
        return base, mapping
    return base


__all__ = ["split_by_tags"]
