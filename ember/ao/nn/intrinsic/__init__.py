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


__all__ = ["LinearReLU", "ConvReLU2d"]
