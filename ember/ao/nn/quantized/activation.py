"""Statically quantized MultiheadAttention (torch.ao.nn.quantized.MultiheadAttention):
the quantizable MHA after convert: quantized linear_Q/K/V and out_proj, Quantize /
DeQuantize around the float attention; bias_k / bias_v become quint8 tensors (qparams
chosen from bias_k's range, as torch.ao does) and the packed in_proj_weight / in_proj_bias
are dropped. `dequantize()` gives back a float nn.MultiheadAttention."""
from __future__ import annotations

from ..quantizable.modules.activation import MultiheadAttention as _QuantizableMHA


class MultiheadAttention(_QuantizableMHA):
    _FLOAT_MODULE = _QuantizableMHA

    def _get_name(self) -> str:
        return "QuantizedMultiheadAttention"

    @classmethod
    def from_float(cls, other):
        raise NotImplementedError("It looks like you are trying to convert a non-observed "
                                  "MHA module. Please, see the examples on quantizable MHAs.")

    @classmethod
    def from_observed(cls, other):
        from ...quantization.quantize import convert
        converted = convert(other, mapping=None, inplace=False, remove_qconfig=True,
                            convert_custom_config_dict=None)
        converted.__class__ = cls
        if converted.bias_k is not None:
            # torch.ao chooses bias_k's qparams from its range, and bias_v's from the
            # range of the already quantized bias_k (not bias_v's own)
            bias_k = converted._parameters.pop("bias_k").detach()
            bias_v = converted._parameters.pop("bias_v").detach()
            converted.bias_k = _quint8(bias_k, *_qparams_of(bias_k))
            converted.bias_v = _quint8(bias_v, *_qparams_of(converted.bias_k.dequantize()))
        del converted.in_proj_weight
        del converted.in_proj_bias
        return converted


def _qparams_of(t):
    import ember
    q = ember.quantize_per_tensor_dynamic(t, ember.quint8, False)
    return q.q_scale(), q.q_zero_point()


def _quint8(t, scale, zero_point):
    import ember
    return ember.quantize_per_tensor(t, scale, zero_point, ember.quint8)
