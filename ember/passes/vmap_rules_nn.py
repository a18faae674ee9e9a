"""vmap batching rules for nn ops: conv/pooling (the batch folds into N), losses,
normalization, attention, embedding, dropout, indexing, and the per-example loop."""
from __future__ import annotations

from typing import Callable

from ember.ir.ops import OPS_NS as ops
from ember.ir.registry import OPS

from .vmap import batch_call, Batched, BatchingRuleError, call, unwrap, wrap_result
from .vmap_batchdim import arg_index, first_tensor, front, materialize, pad_rank
from .vmap_rules_shape import _map_tensors, pointwise_rule, unary_rule


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
    or by the number of rows, spatial positions included (class probabilities: every
    element but the class dim's)."""
    target = bound[arg_index(op, "target")]
    if bound[arg_index(op, "weight")] is not None:
        raise BatchingRuleError(f"vmap: {op.name} with weight= and reduction='mean' has no "
                                f"batching rule; use reduction='none'{ctx.where()}")
    t = materialize(target, ctx.batch_size)
    if t.dtype.is_floating_point:
        shape = first_tensor(op, bound).logical_shape
        count = 1
        for k, size in enumerate(shape):
            count *= size if k != 1 else 1
        return total / (count if len(shape) >= 2 else 1)
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
