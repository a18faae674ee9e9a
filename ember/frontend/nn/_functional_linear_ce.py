"""nn.functional.linear_cross_entropy: cross_entropy of a linear projection, PyTorch's
reference path (`cross_entropy(linear(input, linear_weight) + linear_bias, target)`).

A K-dimensional weight (C, d_1, ..., d_K, in_features) gives logits (N, C, d_1, ..., d_K)
for batched input. `options` (PyTorch's chunking strategy, a memory saving that leaves
the result unchanged) is accepted and ignored: ember computes the whole projection.
"""
from __future__ import annotations

import math

from ...ir.errors import DTypeError, ShapeError
from ...ir.registry import OPS


def linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0,
                         options=None):
    from .functional import cross_entropy
    if ignore_index is not None and target.dtype.is_floating_point:
        raise DTypeError("linear_cross_entropy: ignore_index cannot be specified when target "
                         "contains probabilities")
    logits = _logits(input, linear_weight, linear_bias)
    return cross_entropy(logits, target, weight=weight, reduction=reduction,
                         ignore_index=-100 if ignore_index is None else ignore_index,
                         label_smoothing=label_smoothing)


def _logits(input, linear_weight, linear_bias):
    reshape = OPS["reshape"]
    if linear_weight.ndim < 2:
        raise ShapeError(f"linear_cross_entropy: linear_weight must have at least 2 dims, "
                         f"got {linear_weight.ndim}")
    if input.shape[-1] != linear_weight.shape[-1]:
        raise ShapeError(f"linear_cross_entropy: expected equal input and linear_weight last "
                         f"dimensions (in_features), got {input.shape[-1]} and "
                         f"{linear_weight.shape[-1]}, respectively")
    out_shape = list(linear_weight.shape[:-1])          # (C, d_1, ..., d_K)
    if len(out_shape) > 1 and input.ndim != 2:
        raise ShapeError("linear_cross_entropy: a multi-dimensional linear_weight needs "
                         "batched input (N, in_features)")
    flat_w = reshape(linear_weight, [math.prod(out_shape), linear_weight.shape[-1]])
    logits = OPS["matmul"](input, OPS["t"](flat_w))
    logits = reshape(logits, list(input.shape[:-1]) + out_shape)
    if linear_bias is not None:
        logits = OPS["add"](logits, linear_bias)
    return logits
