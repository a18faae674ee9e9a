"""torch._higher_order_ops.map: `map(f, xs, *args)` is `stack([f(x, *args) for x in
xs])` where `xs` is a tensor or a pytree of tensors sliced together along dim 0 and
the result is a tensor or a pytree of them, each stacked along a new dim 0.

It runs as `vmap(f)` over the slices (one batched op per op of f, so a traced program
does not depend on the size of that dimension: ember.export can keep it dynamic, as
torch.export keeps its map); a body vmap cannot batch (a data-dependent branch, an op
without a batching rule) runs slice by slice and is stacked, which a trace unrolls over
the example's first dimension.
"""
from __future__ import annotations

from ..ir.errors import ShapeError


def map(f, xs, *args):  # noqa: A001 - torch's name
    from ..ir.registry import OPS
    from .func.pytree import flatten, unflatten
    leaves, spec = flatten(xs)
    if not leaves or any(not hasattr(x, "shape") or x.ndim == 0 for x in leaves):
        raise ShapeError("map(): xs must be a tensor or a pytree of tensors of at least "
                         "one dimension")
    n = leaves[0].shape[0]
    if any(x.shape[0] != n for x in leaves):
        raise ShapeError("map(): every tensor of xs must have the same first dimension, "
                         f"got {[x.shape[0] for x in leaves]}")
    if n == 0:
        raise ShapeError("map(): xs has size 0 along its first dimension")
    from .func.vmap import vmap
    try:
        return vmap(f, in_dims=(0,) + (None,) * len(args))(xs, *args)
    except Exception:  # noqa: BLE001 - not batchable: the slice-by-slice definition
        pass
    results = [f(unflatten(spec, [x[i] for x in leaves]), *args) for i in range(n)]
    per_result = [flatten(r)[0] for r in results]
    out_spec = flatten(results[0])[1]
    return unflatten(out_spec, [OPS["stack"]([r[j] for r in per_result], 0)
                                for j in range(len(per_result[0]))])
