"""F.multi_head_attention_forward: PyTorch's reference path for nn.MultiheadAttention.

Layout is sequence-first, (L, N, E) or unbatched (L, E), as in PyTorch; heads are
folded into the batch: (N*H, L, head_dim). Masks: a bool mask marks positions NOT
allowed to attend (True -> -inf); a float mask is added to the scores.
"""
from __future__ import annotations

import math

import numpy as np

from ...ir.errors import ShapeError
from ...ir.registry import OPS
from ..tensor import Tensor


def _float_mask(mask: Tensor, dtype) -> Tensor:
    if mask.dtype.name != "bool":
        return mask.to(dtype)
    neg_inf = OPS["full_like"](mask, float("-inf"), dtype=dtype)
    return OPS["where"](mask, neg_inf, OPS["full_like"](mask, 0.0, dtype=dtype))


def _thirds(packed: Tensor, e: int) -> tuple:
    """q, k, v rows of a packed (3E, ...) projection, as views (the `narrow` op)."""
    narrow = OPS["narrow"]
    return tuple(narrow(packed, 0, i * e, e) for i in range(3))


def _in_projection(query, key, value, embed_dim, in_proj_weight, in_proj_bias,
                   use_separate_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight):
    from .functional import linear
    e = embed_dim
    if use_separate_proj_weight:
        weights = (q_proj_weight, k_proj_weight, v_proj_weight)
    else:
        weights = _thirds(in_proj_weight, e)
    biases = (None, None, None) if in_proj_bias is None else _thirds(in_proj_bias, e)
    return tuple(linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))


def _combined_mask(attn_mask, key_padding_mask, is_causal, bsz, num_heads, tgt_len, src_len,
                   dtype):
    """One additive float mask of shape (N*H, L, S), (1, L, S), or None."""
    if attn_mask is None and is_causal:
        causal = np.triu(np.ones((tgt_len, src_len), dtype=bool), 1)
        attn_mask = Tensor._from_array(causal)
    if attn_mask is not None:
        attn_mask = _float_mask(attn_mask, dtype)
        if attn_mask.ndim == 2:
            if list(attn_mask.shape) != [tgt_len, src_len]:
                raise ShapeError(f"The shape of the 2D attn_mask is {list(attn_mask.shape)}, "
                                 f"but should be {[tgt_len, src_len]}.")
            attn_mask = attn_mask.unsqueeze(0)
        elif list(attn_mask.shape) != [bsz * num_heads, tgt_len, src_len]:
            raise ShapeError(f"The shape of the 3D attn_mask is {list(attn_mask.shape)}, but "
                             f"should be {[bsz * num_heads, tgt_len, src_len]}.")
    if key_padding_mask is not None:
        if list(key_padding_mask.shape) != [bsz, src_len]:
            raise ShapeError(f"expected key_padding_mask of shape {[bsz, src_len]}, got "
                             f"{list(key_padding_mask.shape)}")
        kpm = _float_mask(key_padding_mask, dtype).reshape([bsz, 1, 1, src_len])
        kpm = kpm.expand([bsz, num_heads, 1, src_len]).reshape([bsz * num_heads, 1, src_len])
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    return attn_mask


def _pad_key_dim(mask, dtype):
    """One more key position, which every query may attend (0 added to its score)."""
    if mask is None:
        return None
    from .functional import pad
    return pad(_float_mask(mask, dtype), [0, 1])


def _append_bias_kv(k, v, bias_k, bias_v, static_k, static_v, bsz, attn_mask,
                    key_padding_mask, dtype):
    """PyTorch's add_bias_kv: a learned key/value row appended to every sequence."""
    if bias_k is None or bias_v is None:
        raise ShapeError("multi_head_attention_forward: bias_k and bias_v must be given "
                         "together")
    if static_k is not None or static_v is not None:
        raise ShapeError("bias cannot be added to static key/value.")
    cat = OPS["cat"]
    k = cat([k, bias_k.expand([1, bsz, bias_k.shape[-1]])], 0)
    v = cat([v, bias_v.expand([1, bsz, bias_v.shape[-1]])], 0)
    return k, v, _pad_key_dim(attn_mask, dtype), _pad_key_dim(key_padding_mask, dtype)


def _heads(x, static, n_heads_total, head_dim, name):
    """(S, N, E) -> (N*H, S, head_dim), or the caller's static_k/static_v as given."""
    if static is None:
        return x.reshape([x.shape[0], n_heads_total, head_dim]).transpose(0, 1)
    if list(static.shape[::2]) != [n_heads_total, head_dim]:
        raise ShapeError(f"expecting static_{name[0]} of shape [{n_heads_total}, S, {head_dim}]"
                         f", but got {list(static.shape)}")
    return static


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads,
                                 in_proj_weight, in_proj_bias, bias_k, bias_v, add_zero_attn,
                                 dropout_p, out_proj_weight, out_proj_bias, training=True,
                                 key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None,
                                 k_proj_weight=None, v_proj_weight=None, static_k=None,
                                 static_v=None, average_attn_weights=True, is_causal=False):
    from .functional import dropout, linear, softmax
    unbatched = query.ndim == 2
    if unbatched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    if embed_dim != embed_dim_to_check:
        raise ShapeError(f"was expecting embedding dimension of {embed_dim_to_check}, but got "
                         f"{embed_dim}")
    head_dim = embed_dim // num_heads
    q, k, v = _in_projection(query, key, value, embed_dim, in_proj_weight, in_proj_bias,
                             use_separate_proj_weight, q_proj_weight, k_proj_weight,
                             v_proj_weight)
    if is_causal and attn_mask is None:
        attn_mask = Tensor._from_array(np.triu(np.ones((tgt_len, src_len), dtype=bool), 1))
    if bias_k is not None or bias_v is not None:
        k, v, attn_mask, key_padding_mask = _append_bias_kv(
            k, v, bias_k, bias_v, static_k, static_v, bsz, attn_mask, key_padding_mask, q.dtype)
    q = q.reshape([tgt_len, bsz * num_heads, head_dim]).transpose(0, 1)
    k = _heads(k, static_k, bsz * num_heads, head_dim, "key")
    v = _heads(v, static_v, bsz * num_heads, head_dim, "value")
    if add_zero_attn:
        zeros = OPS["full"]([bsz * num_heads, 1, head_dim], 0.0, dtype=q.dtype)
        k, v = OPS["cat"]([k, zeros], 1), OPS["cat"]([v, zeros], 1)
        attn_mask = _pad_key_dim(attn_mask, q.dtype)
        key_padding_mask = _pad_key_dim(key_padding_mask, q.dtype)
    src_len = k.shape[1]
    mask = _combined_mask(attn_mask, key_padding_mask, False, bsz, num_heads, tgt_len, src_len,
                          q.dtype)
    matmul = OPS["matmul"]
    scores = matmul(q * (1.0 / math.sqrt(head_dim)), k.transpose(-2, -1))
    if mask is not None:
        scores = scores + mask
    weights = softmax(scores, -1)
    if dropout_p > 0.0 and training:
        weights = dropout(weights, dropout_p)
    out = matmul(weights, v).transpose(0, 1).contiguous().reshape([tgt_len * bsz, embed_dim])
    out = linear(out, out_proj_weight, out_proj_bias).reshape([tgt_len, bsz, embed_dim])
    if unbatched:
        out = out.squeeze([1])
    if not need_weights:
        return out, None
    weights = weights.reshape([bsz, num_heads, tgt_len, src_len])
    if average_attn_weights:
        weights = weights.mean([1])
    if unbatched:
        weights = weights.squeeze([0])
    return out, weights
