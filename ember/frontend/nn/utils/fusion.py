"""Folding an eval-mode BatchNorm into the preceding convolution, as torch.nn.utils.fusion:
w' = w * gamma / sqrt(var + eps) (per output channel), b' = (b - mean) * gamma /
sqrt(var + eps) + beta."""
from __future__ import annotations

import copy

from ...autograd import no_grad
from ..parameter import Parameter


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b,
                         transpose: bool = False):
    import ember
    with no_grad():
        if conv_b is None:
            conv_b = ember.zeros_like(bn_rm)
        if bn_w is None:
            bn_w = ember.ones_like(bn_rm)
        if bn_b is None:
            bn_b = ember.zeros_like(bn_rm)
        scale = bn_w * ember.rsqrt(bn_rv + bn_eps)
        # the output-channel axis of the weight: 0 for conv, 1 for transposed conv
        shape = [1] * conv_w.ndim
        shape[1 if transpose else 0] = -1
        fused_w = (conv_w * scale.reshape(shape)).to(conv_w.dtype)
        fused_b = ((conv_b - bn_rm) * scale + bn_b).to(conv_w.dtype)
    return (Parameter(fused_w, conv_w.requires_grad), Parameter(fused_b, conv_b.requires_grad))


def fuse_conv_bn_eval(conv, bn, transpose: bool = False):
    """A copy of `conv` with `bn` folded in; both must be in eval mode."""
    if conv.training or bn.training:
        raise AssertionError("Fusion only for eval!")
    fused = copy.deepcopy(conv)
    if bn.running_mean is None or bn.running_var is None:
        raise AssertionError("fuse_conv_bn_eval: BatchNorm must track running stats")
    fused.weight, fused.bias = fuse_conv_bn_weights(
        fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight,
        bn.bias, transpose)
    return fused


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """A Linear followed by an eval BatchNorm1d over its features, as one Linear."""
    return fuse_conv_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b)


def fuse_linear_bn_eval(linear, bn):
    """A copy of `linear` with `bn` folded in; both must be in eval mode."""
    if linear.training or bn.training:
        raise AssertionError("Fusion only for eval!")
    if linear.out_features != bn.num_features:
        raise AssertionError("To fuse, linear.out_features must equal bn.num_features or "
                             "bn.num_features must equal 1")
    fused = copy.deepcopy(linear)
    fused.weight, fused.bias = fuse_linear_bn_weights(
        fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    return fused
