"""Dynamically quantized modules (torch.ao.nn.quantized.dynamic): int8 weights, float
activations quantized per call from each batch's range."""
from __future__ import annotations

from .....frontend.nn import Module
from .....frontend.nn import functional as F
from .....ir import dtypes
from .....ir.ops.quantized import quantized_linear_dynamic


def dynamic_weight(weight, observer):
    """A weight for dynamic quantization: qint8 through its observer, or float16 values
    (float16_dynamic_qconfig: torch.ao keeps such weights in half precision and computes
    in float32)."""
    from .....ao.quantization.quantize_fx import _quantize_weight
    if observer.dtype is dtypes.float16:
        return weight.detach().to(dtypes.float16)
    return _quantize_weight(weight, observer)


def dynamic_linear(x, weight, bias, relu: bool = False):
    """The dynamic linear of a qint8 weight (input quantized per call), or a float32
    linear with the float16 weight's values."""
    if weight.dtype is dtypes.float16:
        y = F.linear(x, weight.to(dtypes.float32), bias)
        return F.relu(y) if relu else y
    return quantized_linear_dynamic(x, weight, bias, relu)


class Linear(Module):
    """A Linear whose weight is a quantized qint8 tensor; input and output are float."""

    def _get_name(self) -> str:
        return "DynamicQuantized" + type(self).__name__      # torch.ao's printed name

    def __init__(self, in_features, out_features, weight, bias):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("_packed_weight", weight)
        self.register_buffer("bias", bias)

    def weight(self):
        return self._packed_weight

    @classmethod
    def from_float(cls, mod, use_precomputed_fake_quant=False):
        """Weights observed by `mod.qconfig.weight()` (per tensor or per channel qint8),
        or kept as float16 (float16_dynamic_qconfig)."""
        from .....ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver
        qconfig = getattr(mod, "qconfig", None)
        if qconfig is None:
            raise RuntimeError("quantized dynamic Linear.from_float: the module has no qconfig")
        observer = qconfig.weight()
        if observer.dtype is not dtypes.float16 and (
                not isinstance(observer, (MinMaxObserver, PerChannelMinMaxObserver)) or
                observer.dtype is not dtypes.qint8):
            raise RuntimeError(f"quantized dynamic Linear: weight observer "
                               f"{type(observer).__name__} (dtype {observer.dtype}) is not "
                               f"supported; use a qint8 MinMaxObserver or "
                               f"PerChannelMinMaxObserver (default_dynamic_qconfig), or "
                               f"float16_dynamic_qconfig")
        weight = dynamic_weight(mod.weight, observer)
        bias = mod.bias.detach().clone() if mod.bias is not None else None
        return cls(mod.in_features, mod.out_features, weight, bias)

    def forward(self, x):
        return dynamic_linear(x, self._packed_weight, self.bias)

    def extra_repr(self) -> str:
        w = self._packed_weight
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"dtype={w.dtype}" + (f", qscheme={w.qscheme()}" if w.is_quantized else ""))


from .rnn import GRU, LSTM, GRUCell, LSTMCell, RNNCell  # noqa: E402

__all__ = ["Linear", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]
