"""Statically quantized LSTM (torch.ao.nn.quantized.LSTM): the quantizable LSTM after
convert, its cells' Linear and FloatFunctional pieces swapped for quantized Linear and
QFunctional; the input, hidden states and outputs are quantized tensors. Built only from an
observed (calibrated) quantizable LSTM: float -> observed -> quantized."""
from __future__ import annotations

from ..quantizable.modules.rnn import LSTM as _QuantizableLSTM


class LSTM(_QuantizableLSTM):
    _FLOAT_MODULE = _QuantizableLSTM

    def _get_name(self) -> str:
        return "QuantizedLSTM"

    @classmethod
    def from_float(cls, *args, **kwargs):
        raise NotImplementedError("It looks like you are trying to convert a non-observed "
                                  "LSTM module. Please, see the examples on quantizable "
                                  "LSTMs.")

    @classmethod
    def from_observed(cls, other):
        if not isinstance(other, cls._FLOAT_MODULE):
            raise TypeError(f"quantized LSTM.from_observed expects an observed quantizable "
                            f"LSTM, got {type(other).__name__}")
        from ...quantization.quantize import convert
        converted = convert(other, inplace=False, remove_qconfig=True)
        converted.__class__ = cls
        return converted
