"""Batching rules for vmap: one entry per op or op family (see passes/vmap.py).

A rule is `rule(op, bound, ctx) -> Batched | tuple | list`: `bound` holds the op's
arguments in schema order with `Batched` values where tensors go; the rule records the
batched computation (op calls on physical values) and says where the batch dim of each
result is. `rule_for(op)` picks the entry: RULES by name, then by tag (pointwise,
reduction), then `loop_rule` for ops in LOOPED, and an error for everything else.

Conventions: `front(b)` moves a batched value's batch dim to 0; `materialize(b, n)`
also expands an unbatched one; logical dims are the per-example dims, so a rule
wraps a user's `dim` against the logical rank and adds 1.
"""
from __future__ import annotations

import string
from typing import Callable

from ember.ir.ops import OPS_NS as ops
from ember.ir.registry import OPS, OpDef, Tag
from ember.ir.errors import ShapeError

from .vmap import (Batched, BatchContext, BatchingRuleError, batch_call, call, tensor_args,
                   unwrap, wrap_result)


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
        out = with_front_tensors(op, bound, ctx, expand)
        for i, arg in enumerate(op.schema.args):
            if arg.name in DIM_ARGS and out[i] is not None and not arg.holds_tensors:
                out[i] = shift(out[i], rank)
        return wrap_result(call(op, out), 0)
    return rule


def reduction_rule(op, bound, ctx):
    """Reductions: shift dims; dim=None (or [] meaning all) reduces the flattened example."""
    b = first_tensor(op, bound)
    names = [a.name for a in op.schema.args]
    dim_index = names.index("dim") if "dim" in names else None
    dim = bound[dim_index] if dim_index is not None else None
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
    if isinstance(result, (list, tuple)):
        return type(result)(fn(r) for r in result)
    return fn(result)


# max()/min() of a whole tensor: the same values as amax/amin over every dim
WHOLE_TENSOR_REDUCTIONS = {"max": OPS["amax"], "min": OPS["amin"]}


def median_rule(op, bound, ctx):
    flat = front(bound[0]).reshape([ctx.batch_size, -1])
    return Batched(ops.median_dim(flat, 1)[0], 0)


def squeeze_rule(op, bound, ctx):
    b, dim = bound
    if dim is None:
        dim = [d for d, s in enumerate(b.logical_shape) if s == 1]
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


def matrix_batch_rule(op, bound, ctx):
    """torch.linalg ops act on (*, m, n) with any leading batch dims: every operand
    batched (unbatched ones expanded) puts vmap's batch among them."""
    names = [a.name for a in op.schema.args]
    if "dim" in names:
        return _linalg_dims(op, bound, ctx, names.index("dim"))
    return wrap_result(call(op, with_front_tensors(op, bound, ctx, expand=True)), 0)


def _linalg_dims(op, bound, ctx, dim_index: int):
    """Norms and the like: dim=None means every example dim, which the op then treats
    as a vector or matrix by count, as it would unbatched."""
    b = first_tensor(op, bound)
    if b.logical_ndim == 0:
        return reduction_rule(op, bound, ctx)
    out = list(bound)
    if out[dim_index] is None:
        out[dim_index] = list(range(b.logical_ndim))
    return _dims_expand(op, out, ctx)


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


# --- linear algebra ----------------------------------------------------------------------
def matmul_rule(op, bound, ctx):
    """matmul/mm/bmm/mv/dot: vectors become matrices, ranks are padded after the batch dim
    so broadcasting keeps it first, and the added dims are squeezed at the end."""
    return batched_matmul(bound[0], bound[1], ctx)


def batched_matmul(a: Batched, b: Batched, ctx: BatchContext) -> Batched:
    if not (a.is_batched or b.is_batched):
        return Batched(ops.matmul(a.value, b.value), None)
    a_vec, b_vec = a.logical_ndim == 1, b.logical_ndim == 1
    av = _as_matrix(a, -2)
    bv = _as_matrix(b, -1)
    a_rank, b_rank = max(a.logical_ndim, 2), max(b.logical_ndim, 2)
    rank = max(a_rank, b_rank)
    # an unbatched operand broadcasts from the right; padding the batched one to the
    # common rank keeps the batch dim leading
    if a.is_batched:
        av = pad_rank(av, a_rank, rank)
    if b.is_batched:
        bv = pad_rank(bv, b_rank, rank)
    out = ops.matmul(av, bv)
    if b_vec:
        out = out.squeeze(-1)
    if a_vec:
        out = out.squeeze(-1 if b_vec else -2)
    return Batched(out, 0)


def _as_matrix(b: Batched, axis: int):
    value = front(b) if b.is_batched else b.value
    return value.unsqueeze(axis) if b.logical_ndim == 1 else value


def multi_dot_rule(op, bound, ctx):
    """linalg_multi_dot: a chain of batched matmuls (vector ends act as in matmul)."""
    tensors = list(bound[0])
    product = tensors[0]
    for t in tensors[1:]:
        product = batched_matmul(product, t, ctx)
    return product


def outer_rule(op, bound, ctx):
    """outer(a, b) = a[:, None] * b[None, :], through the pointwise rule."""
    a, b = bound
    return pointwise_rule(OPS["mul"], [logical_unsqueeze(a, 1), logical_unsqueeze(b, 0)], ctx)


def logical_unsqueeze(b: Batched, dim: int) -> Batched:
    if not b.is_batched:
        return Batched(b.value.unsqueeze(dim), None)
    return Batched(front(b).unsqueeze(dim + 1), 0)


def addmm_rule(op, bound, ctx):
    """addmm/baddbmm: beta * self + alpha * (m1 @ m2), each part through its rule."""
    self_, m1, m2, beta, alpha = bound
    product = batched_matmul(m1, m2, ctx)
    product = _scaled(product, alpha, ctx)
    if beta == 0:       # PyTorch ignores self (even nan) when beta is 0
        return product
    return pointwise_rule(OPS["add"], [_scaled(self_, beta, ctx), product, 1], ctx)


def _scaled(b: Batched, factor, ctx):
    if factor == 1:
        return b
    return pointwise_rule(OPS["mul"], [b, factor], ctx) if b.is_batched else \
        Batched(b.value * factor, None)


def linear_rule(op, bound, ctx):
    x, weight, bias = bound
    if not weight.is_batched:
        out = Batched(ops.linear(materialize(x, ctx.batch_size), weight.value), 0)
    else:
        w_t = Batched(front(weight).transpose(-1, -2), 0)
        out = batched_matmul(x, w_t, ctx)
    if bias is None:
        return out
    return pointwise_rule(OPS["add"], [out, bias, 1], ctx)


def einsum_rule(op, bound, ctx):
    """A fresh subscript letter for the batch dim of every batched operand and the output."""
    equation, operands = bound
    equation = equation.replace(" ", "")
    lhs, _, rhs = equation.partition("->")
    specs = lhs.split(",")
    if "->" not in equation:
        rhs = _implicit_output(specs)
    letter = next(c for c in string.ascii_letters if c not in equation)
    specs = [letter + s if t.is_batched else s for s, t in zip(specs, operands)]
    values = [front(t) if t.is_batched else t.value for t in operands]
    return Batched(ops.einsum(f"{','.join(specs)}->{letter}{rhs}", values), 0)


def _implicit_output(specs) -> str:
    letters = [c for s in specs for c in s if c.isalpha()]
    once = sorted(c for c in set(letters) if letters.count(c) == 1)
    return ("..." if any("..." in s for s in specs) else "") + "".join(once)


def tensordot_rule(op, bound, ctx):
    a, b, dims_a, dims_b = bound
    if a.is_batched and b.is_batched:
        return loop_rule(op, bound, ctx)
    if a.is_batched:
        out = ops.tensordot(front(a), b.value, shift(list(dims_a), a.logical_ndim),
                            list(dims_b))
        return Batched(out, 0)
    out = ops.tensordot(a.value, front(b), list(dims_a), shift(list(dims_b), b.logical_ndim))
    return Batched(out, a.logical_ndim - len(dims_a))


# --- ops with a leading N dim: fold the batch into it ----------------------------------
def fold_rule(full_rank: Callable, shared: tuple = ()) -> Callable:
    """Ops that treat their first dim as a batch of independent rows (conv, pooling,
    group_norm, nll_loss with reduction='none'): merge vmap's batch into that dim.

    `full_rank(bound)`: the logical rank at which the first input has its own N dim
    (below it, the physical batch dim simply plays N). Args named in `shared` must be
    unbatched (weights); otherwise the op falls back to the loop.
    """
    def rule(op, bound, ctx):
        names = [a.name for a in op.schema.args]
        if any(isinstance(bound[names.index(n)], Batched) and bound[names.index(n)].is_batched
               for n in shared):
            return loop_rule(op, bound, ctx)
        has_n = first_tensor(op, bound).logical_ndim >= full_rank(op, bound)
        out = list(bound)
        for i in op.schema.tensor_arg_indices:
            if names[i] in shared or not isinstance(out[i], Batched):
                out[i] = unwrap(out[i])
                continue
            value = materialize(out[i], ctx.batch_size)
            out[i] = value.flatten(0, 1) if has_n and value.ndim > 1 else value
        result = call(op, out)
        if has_n:
            n = first_tensor(op, bound).logical_shape[0]
            result = _map_tensors(result, lambda r: r.unflatten(0, [ctx.batch_size, n]))
        return wrap_result(result, 0)
    return rule


def conv_backward_input_rule(op, bound, ctx):
    """The input gradient of a conv with a shared weight: the batch joins N, as forward."""
    grad_out, weight, input_size = bound[0], bound[1], list(bound[2])
    if weight.is_batched or bound[6]:       # transposed: keep the loop
        return loop_rule(op, bound, ctx)
    value = front(grad_out)
    has_n = grad_out.logical_ndim == len(input_size)
    out = list(bound)
    if has_n:
        out[0], out[2] = value.flatten(0, 1), [ctx.batch_size * input_size[0]] + input_size[1:]
    else:
        out[0], out[2] = value, [ctx.batch_size] + input_size
    out[1] = weight.value
    result = call(op, out)
    return Batched(result.unflatten(0, [ctx.batch_size, input_size[0]]) if has_n else result, 0)


def conv_backward_weight_rule(op, bound, ctx):
    """Per-example weight gradients: the batch becomes conv groups. With grad_output
    (B, N, O, *s) and input (B, N, C, *s) laid out as (N, B*O, *s) and (N, B*C, *s), a
    conv with B*groups groups gives each example its own (O, C/groups, *k) block."""
    grad_out, inp, weight_size = bound[0], bound[1], list(bound[2])
    if bound[6]:       # transposed: keep the loop
        return loop_rule(op, bound, ctx)
    n = ctx.batch_size
    has_n = inp.logical_ndim == len(weight_size)
    go, x = materialize(grad_out, n), materialize(inp, n)
    if not has_n:       # an unbatched conv: each example is an N of 1
        go, x = go.unsqueeze(1), x.unsqueeze(1)
    go = go.movedim(0, 1).flatten(1, 2)
    x = x.movedim(0, 1).flatten(1, 2)
    out = list(bound)
    out[0], out[1] = go, x
    out[2] = [n * weight_size[0]] + weight_size[1:]
    out[8] = bound[8] * n
    return Batched(call(op, out).unflatten(0, [n, weight_size[0]]), 0)


def _rank_from_weight(op, bound):
    return unwrap(bound[1]).ndim


def _const_rank(rank: int):
    return lambda op, bound: rank


# --- losses ------------------------------------------------------------------------------
def loss_rule(per_element: Callable) -> Callable:
    """A loss with `reduction`: batch its 'none' form, then reduce each example."""
    def rule(op, bound, ctx):
        r_index = arg_index(op, "reduction")
        reduction = bound[r_index]
        none_args = list(bound)
        none_args[r_index] = "none"
        losses = per_element(op, none_args, ctx)
        if reduction == "none":
            return losses
        return Batched(_reduce_loss(op, bound, ctx, front(losses), losses.logical_ndim,
                                    reduction), 0)
    return rule


def _reduce_loss(op, bound, ctx, losses, ndim: int, reduction: str):
    dims = list(range(1, ndim + 1))
    total = losses.sum(dims) if dims else losses
    if reduction == "sum":
        return total
    if reduction == "batchmean":     # kl_div: divide by the example's first dim
        first = first_tensor(op, bound).logical_shape
        return total / (first[0] if first else 1)
    if op.name in ("nll_loss", "cross_entropy"):
        return _class_loss_mean(op, bound, ctx, total)
    return losses.mean(dims) if dims else losses


def _class_loss_mean(op, bound, ctx, total):
    """PyTorch divides by the number of targets not equal to ignore_index (class indices)
    or by the number of rows (class probabilities)."""
    target = bound[arg_index(op, "target")]
    if bound[arg_index(op, "weight")] is not None:
        raise BatchingRuleError(f"vmap: {op.name} with weight= and reduction='mean' has no "
                                f"batching rule; use reduction='none'{ctx.where()}")
    t = materialize(target, ctx.batch_size)
    if t.dtype.is_floating_point:
        rows = first_tensor(op, bound).logical_shape
        count = rows[0] if len(rows) >= 2 else 1
        return total / count
    kept = (t != bound[arg_index(op, "ignore_index")]).reshape([ctx.batch_size, -1])
    return total / ops.convert_element_type(kept.sum([1]), total.dtype)


def _class_loss_rank(op, bound):
    return 2


# --- misc --------------------------------------------------------------------------------
def index_rule(op, bound, ctx):
    """Advanced indexing with unbatched indices: a full slice over the batch dim first."""
    self_, indices = bound[0], bound[1]
    if any(isinstance(i, Batched) and i.is_batched for i in indices) or \
            op.name == "index_put":
        return loop_rule(op, bound, ctx)
    idx = [None] + [unwrap(i) for i in indices]
    result = ops.index(front(self_), idx)
    positions = [k for k, i in enumerate(indices) if i is not None]
    adjacent = positions == list(range(positions[0], positions[-1] + 1)) if positions else True
    if adjacent:
        return Batched(result, 0)
    index_rank = len(result.shape) - 1 - (self_.logical_ndim - len(positions))
    return Batched(result, index_rank)


def embedding_rule(op, bound, ctx):
    weight, indices = bound[0], bound[1]
    if weight.is_batched:
        return loop_rule(op, bound, ctx)
    out = list(bound)
    out[0], out[1] = weight.value, front(indices)
    return Batched(call(op, out), 0)


def layer_norm_rule(op, bound, ctx):
    x, shape, weight, bias, eps = bound
    if any(isinstance(p, Batched) and p.is_batched for p in (weight, bias)):
        y = Batched(ops.layer_norm(materialize(x, ctx.batch_size), shape, None, None, eps), 0)
        if weight is not None:
            y = pointwise_rule(OPS["mul"], [y, weight], ctx)
        if bias is not None:
            y = pointwise_rule(OPS["add"], [y, bias, 1], ctx)
        return y
    return Batched(ops.layer_norm(front(x), shape, unwrap(weight), unwrap(bias), eps), 0)


def batch_norm_rule(op, bound, ctx):
    """Eval mode normalizes with fixed statistics: fold the batch into N. Training mode
    computes per-example statistics: loop (PyTorch's vmap refuses it outright)."""
    training = bound[arg_index(op, "training")]
    if training and bound[1] is not None:
        raise BatchingRuleError(f"vmap: batch_norm in training mode would update running "
                                f"statistics shared by the whole batch{ctx.where()}")
    if training:
        return loop_rule(op, bound, ctx)
    return fold_rule(_const_rank(2), shared=("running_mean", "running_var", "weight",
                                             "bias"))(op, bound, ctx)


def attention_rule(op, bound, ctx):
    """scaled_dot_product_attention: q, k, v batched together; the mask padded to q's rank."""
    q, k, v, mask = bound[:4]
    rank = q.logical_ndim
    out = list(bound)
    for i in range(3):
        out[i] = materialize(bound[i], ctx.batch_size)
    if isinstance(mask, Batched) and mask.is_batched:
        out[3] = pad_rank(front(mask), mask.logical_ndim, rank)
    elif isinstance(mask, Batched):
        out[3] = mask.value
    return Batched(call(op, out), 0)


def dropout_rule(op, bound, ctx):
    """'different': one draw per element of the batched tensor; 'same': draw a mask of
    the example's shape once and apply it to every example."""
    if ctx.randomness == "different" or not _dropout_active(bound):
        return unary_rule(op, bound, ctx)
    x = bound[0]
    ones = ops.ones_like(front(x).select(0, 0))
    mask_args = [Batched(ones, None)] + list(bound[1:])
    mask = batch_call(op, mask_args, ctx)
    if op.name == "dropout":
        return pointwise_rule(OPS["mul"], [x, mask], ctx)
    scaled, keep = mask
    return pointwise_rule(OPS["mul"], [x, scaled], ctx), keep


def _dropout_active(bound) -> bool:
    p, train = bound[1], bound[2]
    return bool(train) and p > 0


def loop_rule(op, bound, ctx):
    """Fallback: run the op once per example and stack the results (emits batch_size
    copies of the op: correct but slow)."""
    results = []
    for i in range(ctx.batch_size):
        results.append(call(op, _select_example(bound, i)))
    first = results[0]
    if isinstance(first, (list, tuple)):
        stacked = [ops.stack([r[k] for r in results], 0) for k in range(len(first))]
        return wrap_result(type(first)(stacked) if isinstance(first, list) else
                           tuple(stacked), 0)
    return Batched(ops.stack(results, 0), 0)


def _select_example(value, i: int):
    if isinstance(value, Batched):
        return value.value.select(value.bdim, i) if value.is_batched else value.value
    if isinstance(value, (list, tuple)):
        return type(value)(_select_example(v, i) for v in value)
    return value


def no_rule(reason: str) -> Callable:
    def rule(op, bound, ctx):
        raise BatchingRuleError(f"vmap: no batching rule for {op.name}: {reason}"
                                f"{ctx.where()}")
    rule.reason = reason
    return rule


# --- the table ---------------------------------------------------------------------------
_dims = dim_rule()
_dims_expand = dim_rule(expand=True)
_pointwise_loss = loss_rule(expanded_pointwise_rule)
_class_loss = loss_rule(fold_rule(_class_loss_rank, shared=("weight",)))

RULES: dict[str, Callable] = {
    # shapes and views
    "view": reshape_rule, "reshape": reshape_rule, "view_as": reshape_rule,
    "reshape_as": reshape_rule, "expand": expand_rule, "expand_as": expand_rule,
    "permute": permute_rule, "t": t_rule, "repeat": repeat_rule, "tile": repeat_rule,
    "squeeze": squeeze_rule, "roll": roll_rule, "flatten": flatten_rule,
    "unsqueeze": dim_rule(result_extra_dims=1), "stack": dim_rule(True, 1),
    "cat": _dims_expand, "hstack": hstack_rule, "vstack": vstack_rule,
    "gather": _dims_expand, "scatter": _dims_expand, "scatter_add": _dims_expand,
    "slice_scatter": _dims_expand, "select_scatter": _dims_expand,
    "diagonal_scatter": _dims_expand,
    "real": unary_rule, "imag": unary_rule, "clone": unary_rule, "contiguous": unary_rule,
    "pad": lambda op, bound, ctx: Batched(call(op, with_front_tensors(op, bound, ctx,
                                                                       False)), 0),
    "tril": lambda op, bound, ctx: Batched(call(op, with_front_tensors(op, bound, ctx,
                                                                        False)), 0),
    "masked_fill": masked_fill_rule, "copy": self_shaped_rule,
    "index": index_rule, "index_put": index_rule,
    # zeros_like & co.: the physical shape already has the batch dim where it is
    "zeros_like": unary_rule, "ones_like": unary_rule, "full_like": unary_rule,
    # reductions that are not plain dim-reductions
    "max": reduction_rule, "min": reduction_rule, "median": median_rule,
    # linear algebra
    "matmul": matmul_rule, "mm": matmul_rule, "bmm": matmul_rule, "mv": matmul_rule,
    "dot": matmul_rule, "outer": outer_rule, "addmm": addmm_rule, "baddbmm": addmm_rule,
    "linear": linear_rule, "einsum": einsum_rule, "tensordot": tensordot_rule,
    "linalg_multi_dot": multi_dot_rule,
    # conv and pooling: the batch joins N
    "conv1d": fold_rule(_const_rank(3), ("weight", "bias")),
    "conv2d": fold_rule(_const_rank(4), ("weight", "bias")),
    "conv_transpose1d": fold_rule(_const_rank(3), ("weight", "bias")),
    "conv_transpose2d": fold_rule(_const_rank(4), ("weight", "bias")),
    "convolution": fold_rule(_rank_from_weight, ("weight", "bias")),
    "convolution_backward_input": conv_backward_input_rule,
    "convolution_backward_weight": conv_backward_weight_rule,
    "max_pool2d": fold_rule(_const_rank(4)), "max_pool2d_with_indices": fold_rule(_const_rank(4)),
    "avg_pool2d": fold_rule(_const_rank(4)), "adaptive_avg_pool2d": fold_rule(_const_rank(4)),
    "max_pool2d_with_indices_backward": fold_rule(_const_rank(4)),
    "avg_pool2d_backward": fold_rule(_const_rank(4)),
    "adaptive_avg_pool2d_backward": fold_rule(_const_rank(4)),
    # normalization, attention, embedding
    "layer_norm": layer_norm_rule, "batch_norm": batch_norm_rule,
    "group_norm": fold_rule(_const_rank(2), ("weight", "bias")),
    "scaled_dot_product_attention": attention_rule,
    "embedding": embedding_rule, "one_hot": unary_rule,
    # losses
    "mse_loss": _pointwise_loss, "l1_loss": _pointwise_loss, "smooth_l1_loss": _pointwise_loss,
    "huber_loss": _pointwise_loss, "binary_cross_entropy": _pointwise_loss,
    "binary_cross_entropy_with_logits": _pointwise_loss, "kl_div": _pointwise_loss,
    "nll_loss": _class_loss, "cross_entropy": _class_loss,
    # randomness
    "dropout": dropout_rule, "native_dropout": dropout_rule,
    # no meaning per example
    "as_strided": no_rule("it addresses physical strides, which vmap changes"),
    "as_strided_scatter": no_rule("it addresses physical strides, which vmap changes"),
    "_batch_norm_running_stat": no_rule("it updates statistics shared by the whole batch"),
}
RULES["triu"] = RULES["tril"]

for _name in ("softmax", "log_softmax", "cumsum", "cumprod", "cummax", "cummin",
              "logcumsumexp", "sort", "argsort", "topk", "select", "slice", "narrow",
              "unfold", "unbind", "split", "chunk", "flip", "transpose", "swapaxes",
              "swapdims", "movedim", "diagonal", "unflatten", "kthvalue"):
    RULES[_name] = _dims

# Ops batched by `loop_rule` (one op per example, stacked): no faster rule written yet.
LOOPED = {
    "max_pool_gather": "internal pooling helper; indices address the flat example",
    "unfold_backward": "input_sizes would need the batch prepended",
    "pad_backward": "input_sizes would need the batch prepended",
    "linalg_lstsq": "its residuals output is empty or not depending on the batch rank",
    "linalg_tensorinv": "it splits the example's dims at `ind`; no leading batch dims",
    "linalg_tensorsolve": "it splits the example's dims by B's rank; no leading batch dims",
}



def _shared_index_rule(op, bound, ctx):
    """index_select/index_add: one index for the whole batch shifts dims; a different
    index per example loops."""
    index = bound[arg_index(op, "index")]
    if index.is_batched:
        return loop_rule(op, bound, ctx)
    out = list(bound)
    out[arg_index(op, "index")] = index.value
    return _dims_expand(op, out, ctx) if op.name == "index_add" else _dims(op, out, ctx)


RULES["index_select"] = RULES["index_add"] = _shared_index_rule


def rule_for(op: OpDef) -> Callable:
    """The batching rule of `op` (see the module docstring for the lookup order)."""
    if op.name in RULES:
        return RULES[op.name]
    if op.name in LOOPED:
        return loop_rule
    if Tag.INPLACE in op.tags:
        if Tag.POINTWISE in op.tags:
            return self_shaped_rule
        return no_rule("in-place op; vmap only batches in-place pointwise ops")
    if Tag.POINTWISE in op.tags:
        return unary_rule if _single_tensor(op) else pointwise_rule
    if Tag.REDUCTION in op.tags:
        return reduction_rule
    if Tag.FFT in op.tags:
        return fft_rule
    if op.name.startswith("linalg_"):
        return matrix_batch_rule
    return no_rule("none is registered (add one to ember/passes/vmap_rules.py)")


def _single_tensor(op: OpDef) -> bool:
    return len(op.schema.tensor_arg_indices) == 1
