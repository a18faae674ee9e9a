"""QuantStub / DeQuantStub (torch.ao.quantization.stubs): the markers that eager-mode
quantization's `convert` swaps for quantize / dequantize layers. Until then (and in
every float model that declares them, e.g. torchvision's quantizable architectures)
they pass their input through unchanged."""
from __future__ import annotations

from ...frontend.nn import Module


class _Stub(Module):
    """A marker module: identity in the float model, with an optional qconfig."""

    def __init__(self, qconfig=None):
        super().__init__()
        if qconfig:
            self.qconfig = qconfig

    def forward(self, x):
        return x


class QuantStub(_Stub):
    """Where a float tensor would be quantized; identity in the float model."""


class DeQuantStub(_Stub):
    """Where a quantized tensor would return to float; identity in the float model."""


class QuantWrapper(Module):
    """Wraps a float module between a QuantStub and a DeQuantStub (quant -> module ->
    dequant), with the module's qconfig, so that eager-mode quantization quantizes its
    input and returns float."""

    def __init__(self, module):
        super().__init__()
        qconfig = getattr(module, "qconfig", None)
        self.add_module("quant", QuantStub(qconfig))
        self.add_module("dequant", DeQuantStub(qconfig))
        self.add_module("module", module)
        self.train(module.training)

    def forward(self, x):
        return self.dequant(self.module(self.quant(x)))
