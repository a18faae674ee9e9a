"""Fused modules (torch.ao.nn.intrinsic): what fuse_fx turns conv/linear + relu into.

They compute exactly what their parts compute in sequence; quantization treats each
as one pattern (one observer after the relu, one int8 op with a fused relu).
"""
from __future__ import annotations

from ....frontend.nn import Sequential


class _FusedModule(Sequential):
    pass


class LinearReLU(_FusedModule):
    def __init__(self, linear, relu):
        super().__init__(linear, relu)


class ConvReLU2d(_FusedModule):
    def __init__(self, conv, relu):
        super().__init__(conv, relu)


class ConvReLU1d(_FusedModule):
    def __init__(self, conv, relu):
        super().__init__(conv, relu)


class ConvReLU3d(_FusedModule):
    def __init__(self, conv, relu):
        super().__init__(conv, relu)


class BNReLU2d(_FusedModule):
    def __init__(self, batch_norm, relu):
        super().__init__(batch_norm, relu)


class BNReLU3d(_FusedModule):
    def __init__(self, batch_norm, relu):
        super().__init__(batch_norm, relu)


class ConvBn2d(_FusedModule):
    """conv2d + BatchNorm2d in training mode, kept apart until QAT (prepare_qat_fx swaps
    it for ember.ao.nn.intrinsic.qat.ConvBn2d, which folds BN into the weight)."""

    def __init__(self, conv, bn):
        super().__init__(conv, bn)


class ConvBn1d(_FusedModule):
    """conv1d + BatchNorm1d for QAT (fuse_modules_qat); prepare_qat swaps it for
    ember.ao.nn.intrinsic.qat.ConvBn1d."""

    def __init__(self, conv, bn):
        super().__init__(conv, bn)


class ConvBnReLU1d(_FusedModule):
    def __init__(self, conv, bn, relu):
        super().__init__(conv, bn, relu)


class LinearBn1d(_FusedModule):
    """Linear + BatchNorm1d in training mode, kept apart until QAT (prepare_qat_fx swaps
    it for ember.ao.nn.intrinsic.qat.LinearBn1d, which folds BN into the weight)."""

    def __init__(self, linear, bn):
        super().__init__(linear, bn)


class ConvBnReLU2d(_FusedModule):
    def __init__(self, conv, bn, relu):
        super().__init__(conv, bn, relu)


class ConvBn3d(_FusedModule):
    """conv3d + BatchNorm3d in training mode, for QAT (prepare_qat_fx swaps it for
    ember.ao.nn.intrinsic.qat.ConvBn3d)."""

    def __init__(self, conv, bn):
        super().__init__(conv, bn)


class ConvBnReLU3d(_FusedModule):
    def __init__(self, conv, bn, relu):
        super().__init__(conv, bn, relu)


__all__ = ["LinearReLU", "ConvReLU1d", "ConvReLU2d", "ConvReLU3d", "BNReLU2d", "BNReLU3d",
           "ConvBn1d", "ConvBnReLU1d", "ConvBn2d", "ConvBnReLU2d", "ConvBn3d", "ConvBnReLU3d",
           "LinearBn1d"]
