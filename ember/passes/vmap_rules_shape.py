"""vmap batching rules for pointwise ops, dim-taking ops and size/view ops."""
from __future__ import annotations

from typing import Callable

from ember.ir.ops import OPS_NS as ops
from ember.ir.registry import OPS, Tag

from .vmap import Batched, BatchingRuleError, call, tensor_args, wrap_result
from .vmap_batchdim import first_tensor, front, materialize, pad_rank, shift, with_front_tensors


# --- pointwise ---------------------------------------------------------------------------
def pointwise_rule(op, bound, ctx):
    """Broadcasting ops: batch first, batched operands padded to the common logical rank;
    unbatched operands stay as they are (right-aligned broadcasting does the rest)."""
    tensors = tensor_args(op, bound)
    rank = max(b.logical_ndim for b in tensors)
    out = list(bound)
    for i in op.schema.tensor_arg_indices:
        b = out[i]
        if isinstance(b, Batched):
            out[i] = pad_rank(front(b), b.logical_ndim, rank) if b.is_batched else b.value
    return wrap_result(call(op, out), 0)


def unary_rule(op, bound, ctx):
    """Ops that act element by element on one tensor: keep the batch dim where it is."""
    b = first_tensor(op, bound)
    out = list(bound)
    out[op.schema.tensor_arg_indices[0]] = b.value
    return wrap_result(call(op, out), b.bdim)


def masked_fill_rule(op, bound, ctx):
    """A batched fill value is not 0-d any more: masked_fill becomes a where."""
    self_, mask, value = bound
    if not (isinstance(value, Batched) and value.is_batched):
        return self_shaped_rule(op, bound, ctx)
    filled = Batched(ops.convert_element_type(value.value, self_.value.dtype), value.bdim)
    self_ = Batched(materialize(self_, ctx.batch_size), 0)
    return pointwise_rule(OPS["where"], [mask, filled, self_], ctx)


def expanded_pointwise_rule(op, bound, ctx):
    """Pointwise ops that insist on equal shapes (losses): every operand batched."""
    out = list(bound)
    for i in op.schema.tensor_arg_indices:
        if isinstance(out[i], Batched):
            out[i] = Batched(materialize(out[i], ctx.batch_size), 0)
    return pointwise_rule(op, out, ctx)


def self_shaped_rule(op, bound, ctx):
    """Ops whose result has `self`'s shape (masked_fill, copy, in-place pointwise): the
    batched result needs a batched self."""
    self_index = op.schema.tensor_arg_indices[0]
    self_ = bound[self_index]
    if Tag.INPLACE in op.tags and not self_.is_batched:
        raise BatchingRuleError(
            f"vmap: {op.name} writes batched values into a tensor that is the same for "
            f"every example; use the out-of-place {op.name.rstrip('_')}{ctx.where()}")
    out = list(bound)
    out[self_index] = Batched(materialize(self_, ctx.batch_size), 0)
    return pointwise_rule(op, out, ctx)


# --- dims --------------------------------------------------------------------------------
DIM_ARGS = ("dim", "dims", "dim0", "dim1", "dim2", "start_dim", "end_dim", "source",
            "destination", "dimension")


def dim_rule(expand: bool = False, result_extra_dims: int = 0) -> Callable:
    """Ops taking dims: batch first, every dim argument shifted by one.

    `expand`: all tensor args must be batched (gather, cat, scatter).
    `result_extra_dims`: dims wrap against rank + this (unsqueeze, stack: 1).
    """
    def rule(op, bound, ctx):
        rank = first_tensor(op, bound).logical_ndim + result_extra_dims
        if rank == 0 and len(op.schema.tensor_arg_indices) == 1:
            return _scalar_example_dims(op, bound, ctx)
        if rank == 0:               # gather/scatter of scalars: rare, one op per example
            from .vmap_rules_nn import loop_rule
            return loop_rule(op, bound, ctx)
        out = with_front_tensors(op, bound, ctx, expand)
        for i, arg in enumerate(op.schema.args):
            if arg.name in DIM_ARGS and out[i] is not None and not arg.holds_tensors:
                out[i] = shift(out[i], rank)
        return wrap_result(call(op, out), 0)
    return rule


def _scalar_example_dims(op, bound, ctx):
    """A 0-d example (cumsum(x, 0), sort, softmax of a scalar): its dim 0 / -1 is read as
    a size-1 dim, so the op runs on (batch, 1) at dim 1 and each result, 0-d per example
    like the op's on a scalar, is reshaped back to (batch,)."""
    out = with_front_tensors(op, bound, ctx, False)
    i = op.schema.tensor_arg_indices[0]
    out[i] = out[i].unsqueeze(1)
    for k, arg in enumerate(op.schema.args):
        if arg.name in DIM_ARGS and out[k] is not None and not arg.holds_tensors:
            out[k] = shift(out[k], 1)
    result = call(op, out)
    return wrap_result(_map_tensors(result, lambda r: r.reshape([ctx.batch_size])), 0)


_dims = dim_rule()
_dims_expand = dim_rule(expand=True)


def reduction_rule(op, bound, ctx):
    """Reductions: shift dims; dim=None (or [] meaning all) reduces the flattened example."""
    b = first_tensor(op, bound)
    names = [a.name for a in op.schema.args]
    dim_index = names.index("dim") if "dim" in names else None
    dim = bound[dim_index] if dim_index is not None else None
    if isinstance(dim, bool) and "unbiased" in names:
        # var(x, True) / std(x, False): PyTorch's (self, unbiased) overload, no dim
        bound = list(bound)
        bound[names.index("unbiased")], bound[dim_index], dim = dim, None, None
    if op.name == "norm" and bound[names.index("p")] == "nuc" and dim is None:
        # the nuclear norm is a matrix norm: over the example's two dims, not flattened
        bound = list(bound)
        bound[dim_index] = dim = list(range(b.logical_ndim))
    if dim_index is not None and dim not in (None, []) and b.logical_ndim > 0:
        return dim_rule()(op, bound, ctx)
    return _reduce_flattened(op, bound, ctx, b, dim_index)


def _reduce_flattened(op, bound, ctx, b: Batched, dim_index):
    """Reduce every logical dim: flatten the example to one dim and reduce that."""
    names = [a.name for a in op.schema.args]
    keep_index = names.index("keepdim") if "keepdim" in names else None
    keepdim = bool(bound[keep_index]) if keep_index is not None else False
    flat = front(b).reshape([ctx.batch_size, -1])
    out = list(bound)
    out[op.schema.tensor_arg_indices[0]] = flat
    if keep_index is not None:
        out[keep_index] = False
    if dim_index is not None:
        out[dim_index] = 1 if op.schema.args[dim_index].type in ("int", "int?") else [1]
        result = call(op, out)
    else:
        result = WHOLE_TENSOR_REDUCTIONS[op.name](flat, [1])
    if keepdim:
        shape = [ctx.batch_size] + [1] * b.logical_ndim
        result = _map_tensors(result, lambda r: r.reshape(shape))
    return wrap_result(result, 0)


def _map_tensors(result, fn):
    if isinstance(result, tuple) and hasattr(result, "_fields"):     # torch.return_types
        return type(result)(*(fn(r) for r in result))
    if isinstance(result, (list, tuple)):
        return type(result)(fn(r) for r in result)
    return fn(result)


# max()/min() of a whole tensor: the same values as amax/amin over every dim
WHOLE_TENSOR_REDUCTIONS = {"max": OPS["amax"], "min": OPS["amin"]}


def median_rule(op, bound, ctx):
    """median()/nanmedian() of a whole example: the dim form over each flattened example."""
    flat = front(bound[0]).reshape([ctx.batch_size, -1])
    dim_form = ops.nanmedian_dim if op.name == "nanmedian" else ops.median_dim
    return Batched(dim_form(flat, 1)[0], 0)


def squeeze_rule(op, bound, ctx):
    b, dim = bound
    if dim is None:
        dim = [d for d, s in enumerate(b.logical_shape) if s == 1]
    if b.logical_ndim == 0:         # squeeze(0) of a scalar (dim 0 or -1): the scalar
        return b
    dims = dim if isinstance(dim, (list, tuple)) else [dim]
    return Batched(front(b).squeeze(shift(list(dims), b.logical_ndim)), 0)


def roll_rule(op, bound, ctx):
    b, shifts, dims = bound
    if dims not in (None, [], ()):
        return dim_rule()(op, bound, ctx)
    flat = ops.roll(front(b).reshape([ctx.batch_size, -1]), shifts, [1])
    return Batched(flat.reshape([ctx.batch_size] + list(b.logical_shape)), 0)


def flatten_rule(op, bound, ctx):
    b, start, end = bound
    if b.logical_ndim == 0:
        return Batched(front(b).reshape([ctx.batch_size, 1]), 0)
    return dim_rule()(op, bound, ctx)


def fft_rule(op, bound, ctx):
    """fft family: dim=None means every example dim (or the last len(s)); name them so
    the batch dim is never transformed, then shift as usual."""
    names = [a.name for a in op.schema.args]
    out = list(bound)
    if "dim" in names and out[names.index("dim")] is None:
        rank = bound[0].logical_ndim
        sizes = out[names.index("s")] if "s" in names else None
        count = len(sizes) if sizes is not None else rank
        out[names.index("dim")] = list(range(rank - count, rank))
    return _dims(op, out, ctx)


def vstack_rule(op, bound, ctx):
    tensors = [Batched(materialize(t, ctx.batch_size), 0) for t in bound[0]]
    rows = [t.value.unsqueeze(1) if t.logical_ndim == 1 else t.value for t in tensors]
    return Batched(ops.cat(rows, 1), 0)


def hstack_rule(op, bound, ctx):
    tensors = [materialize(t, ctx.batch_size) for t in bound[0]]
    dim = 1 if bound[0][0].logical_ndim == 1 else 2
    return Batched(ops.cat(tensors, dim), 0)


# --- sizes -------------------------------------------------------------------------------
def reshape_rule(op, bound, ctx):
    b, size = bound[0], bound[1]
    if isinstance(size, Batched):           # view_as / reshape_as
        size = list(size.logical_shape)
    return Batched(front(b).reshape([ctx.batch_size] + list(size)), 0)


def expand_rule(op, bound, ctx):
    b, size = bound[0], bound[1]
    if isinstance(size, Batched):           # expand_as
        size = list(size.logical_shape)
    if not b.is_batched:
        return Batched(b.value.expand(list(size)), None)
    value = pad_rank(front(b), b.logical_ndim, len(size))
    return Batched(value.expand([ctx.batch_size] + list(size)), 0)


def permute_rule(op, bound, ctx):
    b, dims = bound
    return Batched(front(b).permute([0] + shift(list(dims), b.logical_ndim)), 0)


def t_rule(op, bound, ctx):
    b = bound[0]
    if b.logical_ndim < 2:
        return Batched(b.value, b.bdim)
    return Batched(front(b).transpose(1, 2), 0)


def repeat_rule(op, bound, ctx):
    b, repeats = bound
    repeats = list(repeats)
    if op.name == "tile" and len(repeats) < b.logical_ndim:
        repeats = [1] * (b.logical_ndim - len(repeats)) + repeats
    value = pad_rank(materialize(b, ctx.batch_size), b.logical_ndim, len(repeats))
    return Batched(value.repeat([1] + repeats), 0)
