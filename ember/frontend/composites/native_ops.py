"""aten's "native" forms of normalization, dropout and padding, written as registry-op
calls: native_layer_norm, native_batch_norm, native_group_norm (each returns the output
and the statistics its backward would save), native_dropout_backward, constant_pad_nd,
and _addmm_activation (addmm with a relu or gelu epilogue).

PyTorch exposes these as `torch.native_*` (code exported from graphs and decompositions
calls them). Composed from mean/var/rsqrt and pointwise ops, they differentiate, trace
and compile like their parts.
"""
from __future__ import annotations

import math

from ...ir.autocast import autocast_as
from ...ir.composite import composite
from ...ir.errors import ShapeError
from ...ir.ops import OPS_NS as ops
from ...ir.registry import OPS
from ..autograd import grad_mode


def _affine(out, weight, bias, shape):
    if weight is not None:
        out = ops.mul(out, ops.reshape(weight, shape))
    if bias is not None:
        out = ops.add(out, ops.reshape(bias, shape))
    return out


def _mean_rstd(x, dims, eps):
    var, mean = ops.var_mean(x, dims, correction=0, keepdim=True)
    return mean, ops.rsqrt(ops.add(var, eps))


@composite()
def native_layer_norm(input, normalized_shape, weight, bias, eps):
    normalized_shape = list(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or list(input.shape[input.ndim - k:]) != normalized_shape:
        raise ShapeError(f"Given normalized_shape={normalized_shape}, expected input with "
                         f"shape [*, {', '.join(map(str, normalized_shape))}], but got input "
                         f"of size{list(input.shape)}")
    dims = list(range(input.ndim - k, input.ndim))
    mean, rstd = _mean_rstd(input, dims, eps)
    out = ops.mul(ops.sub(input, mean), rstd)
    lead = [1] * (input.ndim - k)
    # as in PyTorch, the saved statistics are outputs without gradient
    return _affine(out, weight, bias, lead + normalized_shape), mean.detach(), rstd.detach()


@composite()
def native_batch_norm(input, weight, bias, running_mean, running_var, training, momentum,
                      eps):
    if input.ndim < 2:
        raise ShapeError(f"native_batch_norm: expected at least 2 dims, got {input.ndim}")
    channels = input.shape[1]
    dims = [0] + list(range(2, input.ndim))
    shape = [1, channels] + [1] * (input.ndim - 2)
    if training:
        mean, rstd = _mean_rstd(input, dims, eps)
        save_mean, save_rstd = ops.reshape(mean, [channels]), ops.reshape(rstd, [channels])
        _update_running(input, dims, save_mean, running_mean, running_var, momentum)
    else:
        if running_mean is None or running_var is None:
            raise ShapeError("native_batch_norm: running_mean and running_var must be "
                             "defined in evaluation mode")
        mean = ops.reshape(running_mean, shape)
        rstd = ops.reshape(ops.rsqrt(ops.add(running_var, eps)), shape)
        save_mean = ops.full([0], 0, dtype=input.dtype)
        save_rstd = ops.full([0], 0, dtype=input.dtype)
    out = ops.mul(ops.sub(input, mean), rstd)
    return _affine(out, weight, bias, shape), save_mean.detach(), save_rstd.detach()


def _update_running(input, dims, mean, running_mean, running_var, momentum):
    """running = (1 - momentum) * running + momentum * batch stat (the variance unbiased),
    in place and outside autograd, as PyTorch's kernel does."""
    n = math.prod(input.shape[d] for d in dims)
    with grad_mode.no_grad():
        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(ops.mul(mean.detach(), momentum))
        if running_var is not None:
            unbiased = ops.var(input.detach(), dims, correction=1 if n > 1 else 0)
            running_var.mul_(1 - momentum).add_(ops.mul(unbiased, momentum))


@composite()
def native_group_norm(input, weight, bias, N, C, HxW, group, eps):
    if C % group:
        raise ShapeError(f"Expected number of channels in input to be divisible by "
                         f"num_groups, but got input of shape {list(input.shape)} and "
                         f"num_groups={group}")
    grouped = ops.reshape(input, [N, group, C // group * HxW])   # (-1: ambiguous at N=0)
    mean, rstd = _mean_rstd(grouped, [2], eps)
    out = ops.reshape(ops.mul(ops.sub(grouped, mean), rstd), list(input.shape))
    shape = [1, C] + [1] * (input.ndim - 2)
    return (_affine(out, weight, bias, shape), ops.reshape(mean, [N, group]),
            ops.reshape(rstd, [N, group]))


@composite()
def native_dropout_backward(grad_output, mask, scale):
    return ops.mul(ops.mul(grad_output, mask), scale)


@composite()
def constant_pad_nd(input, pad, value=0):
    return ops.pad(input, list(pad), "constant", value)


@composite(method=True)
@autocast_as("_addmm_activation")
def _addmm_activation(input, mat1, mat2, *, beta=1, alpha=1, use_gelu=False):
    """torch._addmm_activation: addmm followed by relu, or by exact gelu with use_gelu
    (the fused epilogue torch lowers Linear + activation to); autocasts as one op."""
    out = ops.addmm(input, mat1, mat2, beta=beta, alpha=alpha)
    return OPS["gelu"](out) if use_gelu else ops.relu(out)


@composite()
@autocast_as("_native_multi_head_attention")
def _native_multi_head_attention(query, key, value, embed_dim, num_head, qkv_weight,
                                 qkv_bias, proj_weight, proj_bias, mask=None,
                                 need_weights=True, average_attn_weights=True,
                                 mask_type=None):
    """torch._native_multi_head_attention, the fast path of nn.MultiheadAttention:
    batch-first (batch, length, embed) inputs, packed in-projection, no dropout. mask is a
    key padding mask (batch, source) with mask_type 1, else an attention mask ((target,
    source), or one broadcasting to (batch, heads, target, source)). Returns the output
    and the attention weights (None without need_weights)."""
    from ..nn import functional as F
    if not tuple(query.shape) == tuple(key.shape) == tuple(value.shape):
        raise RuntimeError("_native_multi_head_attention: expected `query`/`key`/`value` "
                           f"shapes to match, got {list(query.shape)}, {list(key.shape)} "
                           f"and {list(value.shape)}")
    if mask is not None and mask_type is None:
        raise RuntimeError("_native_multi_head_attention: Mask Type should be defined")
    attn_mask = key_padding_mask = None
    if mask is not None:
        if mask_type == 1:
            key_padding_mask = mask
        elif mask.ndim <= 2:
            attn_mask = mask
        else:                       # per batch and head: the (batch*heads, L, S) form
            batch, target, source = query.shape[0], query.shape[1], key.shape[1]
            attn_mask = ops.reshape(ops.expand(mask, [batch, num_head, target, source]),
                                    [batch * num_head, target, source])
    out, weights = F.multi_head_attention_forward(
        ops.transpose(query, 0, 1), ops.transpose(key, 0, 1), ops.transpose(value, 0, 1),
        embed_dim, num_head, qkv_weight, qkv_bias, None, None, False, 0.0, proj_weight,
        proj_bias, training=False, key_padding_mask=key_padding_mask,
        need_weights=need_weights, attn_mask=attn_mask,
        average_attn_weights=average_attn_weights)
    return ops.transpose(out, 0, 1), weights
