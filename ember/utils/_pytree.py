"""ember.utils._pytree: torch.utils._pytree's core functions (tree_flatten, tree_unflatten,
tree_map, tree_leaves, tree_structure) over ember.func's pytree (lists, tuples,
namedtuples, dicts; everything else is a leaf)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..frontend.func.pytree import CUSTOM_NODES as SUPPORTED_NODES  # noqa: F401
from ..frontend.func.pytree import TreeSpec, flatten as tree_flatten  # noqa: F401
from ..frontend.func.pytree import register_node
from ..frontend.func.pytree import unflatten as _unflatten

__all__ = ["TreeSpec", "tree_flatten", "tree_unflatten", "tree_map", "tree_map_only",
           "tree_leaves", "tree_structure", "register_pytree_node"]

Context = Any


@dataclass(frozen=True)
class MappingKey:
    """The key path entry of a dict child (torch's name)."""
    key: Any

    def __str__(self) -> str:
        return f"[{self.key!r}]"


def register_pytree_node(cls: type, flatten_fn: Callable, unflatten_fn: Callable, *,
                         serialized_type_name: str | None = None,
                         to_dumpable_context: Callable | None = None,
                         from_dumpable_context: Callable | None = None,
                         flatten_with_keys_fn: Callable | None = None) -> None:
    """Makes instances of `cls` (exactly that type) containers: flatten_fn(node) ->
    (children, context), unflatten_fn(children, context) -> node. The serialization and
    key-path arguments are accepted for torch's signature; ember's treespecs are not
    serialized and have no key paths, so they are not used."""
    register_node(cls, flatten_fn, unflatten_fn)


def _dict_flatten(d: dict) -> tuple[list, Context]:
    return list(d.values()), list(d.keys())


def _dict_unflatten(values, context: Context) -> dict:
    return dict(zip(context, values))


def _dict_flatten_with_keys(d: dict) -> tuple[list, Context]:
    values, context = _dict_flatten(d)
    return [(MappingKey(key), value) for key, value in zip(context, values)], context


def tree_unflatten(leaves, treespec: TreeSpec):
    """torch's argument order: (leaves, treespec)."""
    return _unflatten(treespec, list(leaves))


def tree_leaves(tree) -> list:
    return tree_flatten(tree)[0]


def tree_structure(tree) -> TreeSpec:
    return tree_flatten(tree)[1]


def tree_map(func, tree, *rests):
    """func applied to each leaf (with the matching leaves of `rests`, same structure)."""
    leaves, spec = tree_flatten(tree)
    others = [tree_flatten(rest)[0] for rest in rests]
    return tree_unflatten([func(*values) for values in zip(leaves, *others)], spec)


def tree_map_only(type_or_types, func, tree):
    """func applied to the leaves that are instances of `type_or_types`; the others are
    kept as they are."""
    return tree_map(lambda leaf: func(leaf) if isinstance(leaf, type_or_types) else leaf,
                    tree)
