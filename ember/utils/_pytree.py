"""ember.utils._pytree: torch.utils._pytree's core functions (tree_flatten, tree_unflatten,
tree_map, tree_leaves, tree_structure) over ember.func's pytree (lists, tuples,
namedtuples, dicts; everything else is a leaf)."""
from __future__ import annotations

from ..frontend.func.pytree import TreeSpec, flatten as tree_flatten  # noqa: F401
from ..frontend.func.pytree import unflatten as _unflatten

__all__ = ["TreeSpec", "tree_flatten", "tree_unflatten", "tree_map", "tree_leaves",
           "tree_structure"]


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
