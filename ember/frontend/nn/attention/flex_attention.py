"""torch.nn.attention.flex_attention: attention with a user score function and mask.

`flex_attention(q, k, v, score_mod, block_mask)` computes softmax(score_mod(q k^T *
scale)) v where `block_mask` allows it. PyTorch compiles the two functions into one
kernel that skips the blocks the mask rules out; ember evaluates them on the whole
(Q_LEN, KV_LEN) grid with broadcast index tensors, which gives the same numbers with
no block skipping. Mask and score functions are called with index tensors shaped to
broadcast against each other — (B,1,1,1), (1,H,1,1), (1,1,Q,1), (1,1,1,KV) — so they
must be written with tensor operations, as PyTorch (which vmaps them) also requires.
A query that no key may attend to gives zeros, as PyTorch's does.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

_DEFAULT_SPARSE_BLOCK_SIZE = 128


class AuxRequest(NamedTuple):
    """Which extra outputs flex_attention(..., return_aux=AuxRequest(...)) computes."""
    lse: bool = False
    max_scores: bool = False


class AuxOutput(NamedTuple):
    """flex_attention's extra outputs (None where not requested)."""
    lse: Any = None
    max_scores: Any = None


def noop_mask(batch, head, token_q, token_kv):
    """The mask that allows every (query, key) pair."""
    return token_q.new_ones((), dtype=_ember().bool)


def _ember():
    import ember           # the public API: this module builds on its ops
    return ember


def _grid(B: int, H: int, Q_LEN: int, KV_LEN: int, device):
    ember = _ember()
    shapes = ((B, 1, 1, 1), (1, H, 1, 1), (1, 1, Q_LEN, 1), (1, 1, 1, KV_LEN))
    return [ember.arange(size[axis], device=device).reshape(size)
            for axis, size in enumerate(shapes)]


def _dense_mask(mask_mod: Callable, B: int, H: int, Q_LEN: int, KV_LEN: int, device):
    """mask_mod over every (b, h, q, kv), as a (B, H, Q_LEN, KV_LEN) bool tensor."""
    mask = mask_mod(*_grid(B, H, Q_LEN, KV_LEN, device))
    return _ember().as_tensor(mask, device=device).to(_ember().bool).expand(
        B, H, Q_LEN, KV_LEN)


class BlockMask:
    """Which (query, key) pairs may attend, made by `create_block_mask`. PyTorch keeps it
    as per-block index lists; ember keeps the mask function and its full boolean grid
    (`mask`), from which `to_dense()` gives PyTorch's block-level view."""

    def __init__(self, mask_mod: Callable, mask, BLOCK_SIZE: tuple[int, int],
                 seq_lengths: tuple[int, int]):
        self.mask_mod = mask_mod
        self.mask = mask
        self.BLOCK_SIZE = BLOCK_SIZE
        self.seq_lengths = seq_lengths

    @property
    def shape(self) -> tuple[int, int, int, int]:
        B, H = self.mask.shape[:2]
        return (B, H, *self.seq_lengths)

    @property
    def device(self):
        return self.mask.device

    def to_dense(self):
        """(B, H, Q blocks, KV blocks) int32: 1 where a block has any allowed pair."""
        ember = _ember()
        (q_block, kv_block), (q_len, kv_len) = self.BLOCK_SIZE, self.seq_lengths
        q_blocks, kv_blocks = -(-q_len // q_block), -(-kv_len // kv_block)
        padded = ember.nn.functional.pad(
            self.mask.to(ember.int32), (0, kv_blocks * kv_block - kv_len,
                                        0, q_blocks * q_block - q_len))
        B, H = self.mask.shape[:2]
        blocks = padded.reshape(B, H, q_blocks, q_block, kv_blocks, kv_block)
        return blocks.amax(dim=(3, 5)).to(ember.int32)

    def to(self, device) -> "BlockMask":
        return BlockMask(self.mask_mod, self.mask.to(device), self.BLOCK_SIZE,
                         self.seq_lengths)

    def __repr__(self) -> str:
        return f"BlockMask(shape={self.shape}, BLOCK_SIZE={self.BLOCK_SIZE})"


def create_block_mask(mask_mod: Callable, B: int | None, H: int | None, Q_LEN: int,
                      KV_LEN: int, device="cuda", BLOCK_SIZE=_DEFAULT_SPARSE_BLOCK_SIZE,
                      _compile: bool = False) -> BlockMask:
    """A BlockMask from mask_mod(b, h, q_idx, kv_idx) -> bool (B/H None: broadcast)."""
    B, H = B or 1, H or 1
    sizes = BLOCK_SIZE if isinstance(BLOCK_SIZE, tuple) else (BLOCK_SIZE, BLOCK_SIZE)
    mask = _dense_mask(mask_mod, B, H, Q_LEN, KV_LEN, device)
    return BlockMask(mask_mod, mask, sizes, (Q_LEN, KV_LEN))


def create_mask(mod_fn: Callable, B: int | None, H: int | None, Q_LEN: int, KV_LEN: int,
                device="cuda"):
    """mod_fn's full (B, H, Q_LEN, KV_LEN) boolean mask."""
    return _dense_mask(mod_fn, B or 1, H or 1, Q_LEN, KV_LEN, device)


def _expand_heads(query, key, value, enable_gqa: bool):
    heads, kv_heads = query.shape[-3], key.shape[-3]
    if heads == kv_heads:
        return key, value
    if not enable_gqa or heads % kv_heads:
        raise ValueError(f"flex_attention: query has {heads} heads and key/value {kv_heads}"
                         f"; different head counts need enable_gqa=True and a multiple")
    group = heads // kv_heads
    return (key.repeat_interleave(group, dim=-3), value.repeat_interleave(group, dim=-3))


def flex_attention(query, key, value, score_mod: Callable | None = None,
                   block_mask: BlockMask | None = None, scale: float | None = None,
                   enable_gqa: bool = False, return_lse: bool = False,
                   kernel_options: dict | None = None, *, return_aux=None):
    """softmax(score_mod(query @ key^T * scale)) @ value over the pairs block_mask allows.
    Shapes (B, H, L, E) for query and (B, H_kv, S, E) / (B, H_kv, S, Ev) for key and
    value. return_lse=True also returns the log-sum-exp of each query's scores;
    return_aux=AuxRequest(...) returns (output, AuxOutput(lse, max_scores)) instead."""
    ember = _ember()
    key, value = _expand_heads(query, key, value, enable_gqa)
    B, H, L, E = query.shape
    S = key.shape[-2]
    scale = 1.0 / math.sqrt(E) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    if score_mod is not None:
        scores = score_mod(scores, *_grid(B, H, L, S, query.device))
    if block_mask is not None:
        allowed = _dense_mask(block_mask.mask_mod, B, H, L, S, query.device)
        scores = scores.masked_fill(~allowed, float("-inf"))
    lse = ember.logsumexp(scores.float(), dim=-1)
    finite = ember.isfinite(lse).unsqueeze(-1)
    weights = ember.where(finite, ember.exp(scores.float() - lse.unsqueeze(-1)), 0.0)
    out = weights.to(value.dtype) @ value
    if return_aux is not None:
        max_scores = scores.float().amax(dim=-1) if return_aux.max_scores else None
        return out, AuxOutput(lse if return_aux.lse else None, max_scores)
    if return_lse:
        return out, lse
    return out


__all__ = ["AuxOutput", "AuxRequest", "BlockMask", "create_block_mask", "create_mask",
           "flex_attention", "noop_mask"]
