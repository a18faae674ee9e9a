"""A small pytree: nested tuples, lists, dicts and namedtuples of leaves.

torch.func's in_dims/out_dims/argnums work on pytrees: `flatten` gives the leaves in
order and a spec to rebuild the structure; `broadcast_prefix` spreads a prefix tree
(in_dims=0, or (0, None), or {'x': 0}) over the leaves of a full tree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class TreeSpec:
    kind: str                   # 'leaf', 'tuple', 'list', 'dict', 'namedtuple', 'custom'
    children: tuple = ()
    context: Any = None         # dict keys, the namedtuple type, or (type, its context)

    @property
    def num_leaves(self) -> int:
        return 1 if self.kind == "leaf" else sum(c.num_leaves for c in self.children)


LEAF = TreeSpec("leaf")


@dataclass(frozen=True)
class NodeDef:
    """How a registered container type comes apart: flatten(node) -> (children,
    context) and unflatten(children, context) -> node."""
    type: type
    flatten_fn: Callable
    unflatten_fn: Callable


#: container types registered by users (torch.utils._pytree.register_pytree_node), by
#: exact type as torch matches them; they take precedence over the built-in kinds
CUSTOM_NODES: dict[type, NodeDef] = {}


def register_node(cls: type, flatten_fn: Callable, unflatten_fn: Callable) -> None:
    if cls in CUSTOM_NODES:
        raise ValueError(f"{cls} is already registered as a pytree node.")
    CUSTOM_NODES[cls] = NodeDef(cls, flatten_fn, unflatten_fn)


def _node_kind(tree) -> str:
    if type(tree) in CUSTOM_NODES:
        return "custom"
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return "namedtuple"
    if isinstance(tree, tuple):
        return "tuple"
    if isinstance(tree, list):
        return "list"
    if isinstance(tree, dict):
        return "dict"
    return "leaf"


def _children(tree, kind: str):
    if kind == "custom":
        children, context = CUSTOM_NODES[type(tree)].flatten_fn(tree)
        return list(children), (type(tree), context)
    if kind == "dict":
        keys = list(tree)
        return [tree[k] for k in keys], tuple(keys)
    return list(tree), (type(tree) if kind == "namedtuple" else None)


def flatten(tree) -> tuple[list, TreeSpec]:
    kind = _node_kind(tree)
    if kind == "leaf":
        return [tree], LEAF
    children, context = _children(tree, kind)
    leaves, specs = [], []
    for child in children:
        child_leaves, spec = flatten(child)
        leaves += child_leaves
        specs.append(spec)
    return leaves, TreeSpec(kind, tuple(specs), context)


def unflatten(spec: TreeSpec, leaves) -> Any:
    leaves = iter(leaves)
    return _build(spec, leaves)


def _build(spec: TreeSpec, leaves):
    if spec.kind == "leaf":
        return next(leaves)
    items = [_build(child, leaves) for child in spec.children]
    if spec.kind == "custom":
        node_type, context = spec.context
        return CUSTOM_NODES[node_type].unflatten_fn(items, context)
    if spec.kind == "dict":
        return dict(zip(spec.context, items))
    if spec.kind == "namedtuple":
        return spec.context(*items)
    return items if spec.kind == "list" else tuple(items)


def broadcast_prefix(prefix, tree, what: str = "in_dims") -> list:
    """One value per leaf of `tree`: a prefix leaf applies to its whole subtree."""
    kind = _node_kind(prefix)
    if kind == "leaf":
        return [prefix] * flatten(tree)[1].num_leaves
    tree_kind = _node_kind(tree)
    if tree_kind == "namedtuple" and kind == "tuple":
        tree_kind = "tuple"
    if kind != tree_kind or len(prefix) != len(tree):
        size = len(tree) if tree_kind != "leaf" else 1
        raise ValueError(f"{what} {prefix!r} does not match the structure of its "
                         f"argument(s): expected a {tree_kind} of {size} entries like "
                         f"{_describe(tree)}")
    if kind == "dict":
        if set(prefix) != set(tree):
            raise ValueError(f"{what} keys {sorted(prefix)} do not match {sorted(tree)}")
        return [v for k in tree for v in broadcast_prefix(prefix[k], tree[k], what)]
    return [v for p, t in zip(prefix, tree) for v in broadcast_prefix(p, t, what)]


def _describe(tree) -> str:
    kind = _node_kind(tree)
    if kind == "leaf":
        return type(tree).__name__
    if kind == "dict":
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in tree.items()) + "}"
    inner = ", ".join(_describe(v) for v in tree)
    return f"[{inner}]" if kind == "list" else f"({inner})"
