"""torch._higher_order_ops.associative_scan: an inclusive scan with a user combine.

`associative_scan(combine_fn, xs, dim)` gives, along `dim`, y[0] = x[0] and
y[i] = combine_fn(y[i-1], x[i]) for a pytree `xs` of tensors of one size along `dim`.
ember computes it in log2(n) steps of whole-tensor ops (each step combines every
element with the one `offset` before it, offset doubling), so `combine_fn` must be
associative and work on slices, as PyTorch requires; autograd and ember.compile see
ordinary ops. reverse=True scans from the end (flip, scan, flip back).
"""
from __future__ import annotations

from typing import Callable

from ..utils._pytree import tree_flatten, tree_unflatten


def _checked_leaves(xs, dim: int):
    leaves, spec = tree_flatten(xs)
    if not leaves or not all(hasattr(leaf, "narrow") for leaf in leaves):
        raise ValueError("associative_scan: xs must be a tensor or a pytree of tensors")
    dim = dim % leaves[0].dim()
    sizes = {leaf.shape[dim] for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(f"associative_scan: every input must have the same size along "
                         f"dim {dim}, got {sorted(sizes)}")
    return leaves, spec, dim, sizes.pop()


def associative_scan(combine_fn: Callable, xs, dim: int, reverse: bool = False,
                     combine_mode: str = "pointwise"):
    if combine_mode not in ("pointwise", "generic"):
        raise ValueError(f"associative_scan: combine_mode must be 'pointwise' or "
                         f"'generic', got {combine_mode!r}")
    import ember
    leaves, spec, dim, length = _checked_leaves(xs, dim)
    if reverse:
        leaves = [leaf.flip(dim) for leaf in leaves]
    offset = 1
    while offset < length:
        earlier = [leaf.narrow(dim, 0, length - offset) for leaf in leaves]
        later = [leaf.narrow(dim, offset, length - offset) for leaf in leaves]
        combined, _ = tree_flatten(combine_fn(tree_unflatten(earlier, spec),
                                              tree_unflatten(later, spec)))
        leaves = [ember.cat([leaf.narrow(dim, 0, offset), part], dim)
                  for leaf, part in zip(leaves, combined)]
        offset *= 2
    if reverse:
        leaves = [leaf.flip(dim) for leaf in leaves]
    return tree_unflatten(leaves, spec)


__all__ = ["associative_scan"]
