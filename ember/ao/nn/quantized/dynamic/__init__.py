"""Dynamically quantized modules (torch.ao.nn.quantized.dynamic): int8 weights, float
activations quantized per call from each batch's range."""
from __future__ import annotations

from .....frontend.nn import Module
from .....ir.ops.quantized import quantized_linear_dynamic


class Linear(Module):
    """A Linear whose weight is a quantized qint8 tensor; input and output are float."""

    def __init__(self, in_features, out_features, weight, bias):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("_packed_weight", weight)
        self.register_buffer("bias", bias)

    def weight(self):
        return self._packed_weight

    def forward(self, x):
        return quantized_linear_dynamic(x, self._packed_weight, self.bias)

    def extra_repr(self) -> str:
        w = self._packed_weight
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"dtype={w.dtype}, qscheme={w.qscheme()}")


__all__ = ["Linear"]
