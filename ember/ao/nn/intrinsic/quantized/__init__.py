"""Quantized fused modules (torch.ao.nn.intrinsic.quantized): the int8 Linear / conv with
the relu fused into the requantization (the output clamped at its zero point)."""
from __future__ import annotations

from ... import intrinsic as nni
from ...quantized import modules as nnq


class LinearReLU(nnq.Linear):
    _RELU = True
    _FUSED = (nni.LinearReLU,)


class ConvReLU2d(nnq.Conv2d):
    _RELU = True
    _FUSED = (nni.ConvReLU2d, nni.ConvBnReLU2d)


class ConvReLU3d(nnq.Conv3d):
    _RELU = True
    _FUSED = (nni.ConvReLU3d,)


class ConvReLU1d(nnq.Conv1d):
    _RELU = True
    _FUSED = (nni.ConvReLU1d,)


class BNReLU2d(nnq.BatchNorm2d):
    """Eval-mode BatchNorm then relu on a quantized tensor (fuse_modules' BNReLU2d)."""

    def _get_name(self) -> str:
        return "QuantizedBNReLU2d"          # torch.ao's printed name

    def _float_op(self, x):
        return super()._float_op(x).relu()

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        return cls._with_statistics(mod[0], mod)


class BNReLU3d(BNReLU2d):
    def _get_name(self) -> str:
        return "QuantizedBNReLU3d"


__all__ = ["LinearReLU", "ConvReLU1d", "ConvReLU2d", "ConvReLU3d", "BNReLU2d", "BNReLU3d"]
