"""Batch-dim bookkeeping shared by the vmap batching rules (vmap_rules*.py).

`front(b)` moves a batched value's batch dim to 0; `materialize(b, n)` also expands an
unbatched one; logical dims are the per-example dims, so a rule wraps a user's `dim`
against the logical rank and adds 1.
"""
from __future__ import annotations

from ember.ir.errors import ShapeError
from ember.ir.registry import OpDef

from .vmap import BatchContext, Batched


# --- moving the batch dim --------------------------------------------------------------
def front(b: Batched):
    """The physical value with its batch dim first (b must be batched)."""
    return b.value if b.bdim == 0 else b.value.movedim(b.bdim, 0)


def materialize(b: Batched, batch_size: int):
    """Batch dim first; an unbatched value is expanded (a view, no copy)."""
    if b.is_batched:
        return front(b)
    return b.value.unsqueeze(0).expand([batch_size] + list(b.value.shape))


def pad_rank(value, logical_ndim: int, target: int):
    """Insert size-1 dims right after the batch dim until the logical rank is `target`."""
    missing = target - logical_ndim
    if missing <= 0:
        return value
    shape = list(value.shape)
    return value.reshape([shape[0]] + [1] * missing + shape[1:])


def wrap_dim(dim: int, ndim: int) -> int:
    """PyTorch's dim wrapping; a 0-d tensor accepts dim 0 and -1."""
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise ShapeError(f"Dimension out of range (expected to be in range of "
                         f"[{-bound}, {bound - 1}], but got {dim})")
    return dim % bound


def shift(dim, ndim: int):
    """A logical dim (or list of dims) as physical dims with the batch dim first."""
    if isinstance(dim, (list, tuple)):
        return [wrap_dim(d, ndim) + 1 for d in dim]
    return wrap_dim(dim, ndim) + 1


def arg_index(op: OpDef, name: str) -> int:
    return next(i for i, a in enumerate(op.schema.args) if a.name == name)


def first_tensor(op: OpDef, bound) -> Batched:
    value = bound[op.schema.tensor_arg_indices[0]]
    return value[0] if isinstance(value, (list, tuple)) else value


def with_front_tensors(op: OpDef, bound, ctx: BatchContext, expand: bool):
    """`bound` with batched tensors moved to the front (and unbatched ones expanded)."""
    out = list(bound)
    for i in op.schema.tensor_arg_indices:
        out[i] = _front_value(out[i], ctx, expand)
    return out


def _front_value(value, ctx, expand: bool):
    if isinstance(value, (list, tuple)):
        return type(value)(_front_value(v, ctx, expand) for v in value)
    if not isinstance(value, Batched):
        return value
    if expand:
        return materialize(value, ctx.batch_size)
    return front(value) if value.is_batched else value.value
