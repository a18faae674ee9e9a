"""XNNPACKQuantizer (torch.ao.quantization.quantizer.xnnpack_quantizer's names, now
executorch.backends.xnnpack.quantizer): the quantizer most pt2e tutorials use.

`get_symmetric_quantization_config` follows torch's: activations signed int8 per-tensor
affine over act_qmin..act_qmax (-128..127; HistogramObserver for PTQ, moving-average
fake quantize for QAT), weights int8 symmetric over weight_qmin..weight_qmax
(-127..127), per tensor (MinMaxObserver) or per channel (PerChannelMinMaxObserver),
eps 2**-12 for both, bias float.

ember's int8 kernels take uint8 activations, so a signed activation range is realized
as the same range shifted by 128 on uint8: an affine observer over qmin+128..qmax+128
picks the same scale and a zero point 128 higher, so every quantized activation is the
same value (q + 128 for q) and dequantizes to the same float (tests/quant/
test_xnnpack_quantizer.py checks the observers against torch.ao's int8 ones).
Dynamic configs (`is_dynamic=True`) are refused with advice, as for the x86 quantizer.
"""
from __future__ import annotations

import functools

from ....ir import dtypes
from ....ir.quantized import per_channel_symmetric, per_tensor_affine, per_tensor_symmetric
from ..fake_quantize import FusedMovingAvgObsFakeQuantize
from ..observer import (HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver,
                        MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver)
from . import QuantizationConfig
from .x86_inductor_quantizer import X86InductorQuantizer

_EPS = 2 ** -12
_UINT8_SHIFT = 128          # signed int8 value q is stored as uint8 q + 128


def _activation(is_qat: bool, act_qmin: int, act_qmax: int):
    if not -128 <= act_qmin < act_qmax <= 127:
        raise ValueError(f"get_symmetric_quantization_config: act_qmin..act_qmax must lie in "
                         f"-128..127, got {act_qmin}..{act_qmax}")
    if act_qmin != -128:       # the shifted uint8 range must still start at 0
        raise NotImplementedError(f"get_symmetric_quantization_config: act_qmin={act_qmin} "
                                  f"is not supported (ember's int8 kernels take uint8 "
                                  f"activations, so the signed range must start at -128)")
    args = dict(dtype=dtypes.quint8, qscheme=per_tensor_affine, eps=_EPS,
                quant_min=act_qmin + _UINT8_SHIFT, quant_max=act_qmax + _UINT8_SHIFT)
    if is_qat:
        return FusedMovingAvgObsFakeQuantize.with_args(observer=MovingAverageMinMaxObserver,
                                                       **args)
    return HistogramObserver.with_args(**args)


def _weight(is_per_channel: bool, is_qat: bool, weight_qmin: int, weight_qmax: int):
    qscheme = per_channel_symmetric if is_per_channel else per_tensor_symmetric
    args = dict(dtype=dtypes.qint8, qscheme=qscheme, quant_min=weight_qmin,
                quant_max=weight_qmax, eps=_EPS)
    if is_per_channel:
        args["ch_axis"] = 0
    if is_qat:
        observer = MovingAveragePerChannelMinMaxObserver if is_per_channel else \
            MovingAverageMinMaxObserver
        return FusedMovingAvgObsFakeQuantize.with_args(observer=observer, **args)
    return (PerChannelMinMaxObserver if is_per_channel else MinMaxObserver).with_args(**args)


@functools.lru_cache
def get_symmetric_quantization_config(is_per_channel: bool = False, is_qat: bool = False,
                                      is_dynamic: bool = False, act_qmin: int = -128,
                                      act_qmax: int = 127, weight_qmin: int = -127,
                                      weight_qmax: int = 127) -> QuantizationConfig:
    if is_dynamic:
        raise NotImplementedError("get_symmetric_quantization_config: is_dynamic=True is not "
                                  "supported by ember's pt2e path; use "
                                  "ember.ao.quantization.quantize_dynamic")
    act = _activation(is_qat, act_qmin, act_qmax)
    return QuantizationConfig(act, act, _weight(is_per_channel, is_qat, weight_qmin,
                                                weight_qmax), None, is_qat)


class XNNPACKQuantizer(X86InductorQuantizer):
    """Global, per-module-type (nn.Linear / nn.Conv2d) and per-module-name configs, under
    XNNPACKQuantizer's method names; the rest is the x86 quantizer's mapping."""

    def set_module_type(self, module_type, quantization_config) -> "XNNPACKQuantizer":
        return self.set_module_type_qconfig(module_type, quantization_config)

    def set_module_name(self, module_name: str, quantization_config) -> "XNNPACKQuantizer":
        if quantization_config is None:      # as torch: None cannot cancel a config yet
            raise AssertionError(" quantization_config == None is not supported yet")
        return self.set_module_name_qconfig(module_name, quantization_config)

    def set_operator_type(self, operator_type, quantization_config) -> "XNNPACKQuantizer":
        return self.set_function_type_qconfig(operator_type, quantization_config)

    @classmethod
    def get_supported_quantization_configs(cls) -> list:
        return [get_symmetric_quantization_config(is_per_channel=pc, is_qat=qat)
                for pc in (False, True) for qat in (False, True)]


__all__ = ["XNNPACKQuantizer", "get_symmetric_quantization_config"]
