"""Dynamically quantized fused modules (torch.ao.nn.intrinsic.quantized.dynamic)."""
from __future__ import annotations

from .... import intrinsic as nni
from ....quantized import dynamic as nnqd


class LinearReLU(nnqd.Linear):
    """relu(linear) with a dynamically quantized (or float16) weight; the relu is fused
    into the int8 kernel's epilogue."""

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        if not isinstance(mod, nni.LinearReLU):
            raise TypeError(f"quantized dynamic LinearReLU.from_float expects "
                            f"LinearReLU, got {type(mod).__name__}")
        inner = mod[0]
        inner.qconfig = getattr(mod, "qconfig", None) or getattr(inner, "qconfig", None)
        linear = nnqd.Linear.from_float(inner)
        return cls(linear.in_features, linear.out_features, linear._packed_weight, linear.bias)

    def forward(self, x):
        return nnqd.dynamic_linear(x, self._packed_weight, self.bias, relu=True)


__all__ = ["LinearReLU"]
