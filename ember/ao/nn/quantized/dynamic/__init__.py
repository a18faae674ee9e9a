"""Dynamically quantized modules (torch.ao.nn.quantized.dynamic): int8 weights, float
activations quantized per call from each batch's range."""
from __future__ import annotations

import numpy as np

from .....frontend.nn import Module
from .....frontend.tensor import Tensor
from .....frontend.nn import functional as F
from .....frontend.quantized import run_checked
from .....ir import dtypes
from .....ir.ops.quantized import quantized_linear_dynamic
from .._state import QParamsState


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
    return run_checked(quantized_linear_dynamic, (x, weight, bias, relu))


class Linear(QParamsState, Module):
    """A Linear whose weight is a quantized qint8 tensor; input and output are float.

    Its state_dict is torch.ao's: `scale` 1.0 and `zero_point` 0 (unused), then
    `_packed_params.dtype` (qint8 or float16) and `_packed_params._packed_params`, the
    (weight, bias) tuple (a float16 weight listed as float32 values, as torch.ao's)."""

    _STATE_TENSORS = ("_packed_params.dtype", "_packed_params._packed_params")
    _HIDDEN_BUFFERS = ("_packed_weight", "bias")
    _QPARAMS_FIRST = True

    def _state_tensors(self) -> dict:
        w = self._packed_weight
        shown = w.to(dtypes.float32) if w.dtype is dtypes.float16 else w
        return {"_packed_params.dtype": w.dtype,
                "_packed_params._packed_params": (shown, self.bias)}

    def _load_state_tensors(self, values: dict) -> None:
        dtype = values.get("_packed_params.dtype", self._packed_weight.dtype)
        name = str(dtype).split(".")[-1]
        if name not in ("qint8", "float16"):
            raise RuntimeError(f"quantized dynamic Linear.load_state_dict: "
                               f"_packed_params.dtype must be qint8 or float16, got {dtype}")
        packed = values.get("_packed_params._packed_params")
        if packed is None:
            return
        weight, bias = (v if v is None or isinstance(v, Tensor) else    # a loaded array
                        Tensor._from_array(np.asarray(v, np.float32)) for v in packed)
        if name == "float16":
            weight = weight.detach().to(dtypes.float16)
        self.register_buffer("_packed_weight", weight)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def _get_name(self) -> str:
        return "DynamicQuantized" + type(self).__name__      # torch.ao's printed name

    def __init__(self, in_features, out_features, weight, bias):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("_packed_weight", weight)
        self.register_buffer("bias", bias)
        self.scale, self.zero_point = 1.0, 0      # torch.ao's placeholders, saved as state

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
