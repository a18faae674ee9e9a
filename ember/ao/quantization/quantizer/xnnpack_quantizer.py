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
Dynamic configs (`is_dynamic=True`, torch's dynamic linear): each linear's input is
quantized per call to signed int8 (qparams from its range, as torch's choose_qparams),
weights as above, output float; prepare_pt2e annotates the linears (module name, then
module type, then global settings) and convert_pt2e gives torch's q/dq form, so the
signed range is kept as it is there. Dynamic QAT is refused.
"""
from __future__ import annotations

import functools

from ....frontend import nn
from ....ir import dtypes
from ....ir.quantized import per_channel_symmetric, per_tensor_affine, per_tensor_symmetric
from ..fake_quantize import FusedMovingAvgObsFakeQuantize
from ..observer import (HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver,
                        MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver,
                        PlaceholderObserver)
from . import QuantizationConfig
from .quantizer import Q_ANNOTATION_KEY, QuantizationAnnotation
from . import xnnpack_annotate as recipe
from .x86_annotate import op_name
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
        if is_qat:
            raise NotImplementedError("get_symmetric_quantization_config: is_dynamic=True "
                                      "with is_qat=True is not supported by ember's pt2e "
                                      "path; use is_qat=True alone (static QAT)")
        # torch's dynamic linear: int8 activations, qparams chosen per call (q/dq form,
        # so the signed range is kept as it is); no output spec
        act = PlaceholderObserver.with_args(dtype=dtypes.qint8, qscheme=per_tensor_affine,
                                            quant_min=act_qmin, quant_max=act_qmax,
                                            eps=_EPS, is_dynamic=True)
        return QuantizationConfig(act, None, _weight(is_per_channel, False, weight_qmin,
                                                     weight_qmax), None, False)
    act = _activation(is_qat, act_qmin, act_qmax)
    return QuantizationConfig(act, act, _weight(is_per_channel, is_qat, weight_qmin,
                                                weight_qmax), None, is_qat)


class XNNPACKQuantizer(X86InductorQuantizer):
    """Global, per-module-type (nn.Linear / nn.Conv2d) and per-module-name configs, under
    XNNPACKQuantizer's method names; the rest is the x86 quantizer's mapping."""

    def set_module_type(self, module_type, quantization_config) -> "XNNPACKQuantizer":
        """Linears and convs recorded inside a module of that type."""
        if module_type not in (nn.Linear, nn.Conv2d):
            raise NotImplementedError(
                f"{type(self).__name__}: module type {module_type.__name__} is "
                f"not supported; ember's exported graphs keep module types only for "
                f"nn.Linear and nn.Conv2d (use set_module_name for a block)")
        self.module_type_config[module_type] = quantization_config
        return self

    def set_module_name(self, module_name: str, quantization_config) -> "XNNPACKQuantizer":
        if quantization_config is None:      # as torch: None cannot cancel a config yet
            raise AssertionError(" quantization_config == None is not supported yet")
        return self.set_module_name_qconfig(module_name, quantization_config)

    def set_operator_type(self, operator_type, quantization_config) -> "XNNPACKQuantizer":
        return self.set_function_type_qconfig(operator_type, quantization_config)

    @property
    def uses_annotations(self) -> bool:
        """Dynamic configs, and post-training ones with module name / type settings:
        torch's XNNPACK annotation recipe (xnnpack_annotate.py), q/dq form. A static
        global config alone, and QAT: the FX path's patterns and int8 lowering (a global
        config's observers agree with torch's XNNPACK ones value by value)."""
        if self.int8_lowering or self.global_config is None and not (
                self.module_name_config or self.module_type_config):
            return False
        dynamic = self.global_config is not None and _dynamic(self.global_config)
        return dynamic or not self.is_qat and bool(self.module_name_config or
                                                   self.module_type_config)

    def annotate(self, model):
        """Module names first, then module types (an op recorded inside a module of that
        type), then the global config for the rest; dynamic configs annotate linears
        only (torch's rule: by the global config's kind)."""
        named, typed = dict(self.module_name_config), dict(self.module_type_config)

        def rest(n):
            return not any(recipe.by_name(k)(n) for k in named) and \
                not any(recipe.by_type(k)(n) for k in typed)
        dynamic = self.global_config is not None and _dynamic(self.global_config)
        annotate = _annotate_dynamic_linears if dynamic else recipe.annotate_static
        for name, config in named.items():
            annotate(model, config, recipe.by_name(name))
        for kind, config in typed.items():
            annotate(model, config, recipe.by_type(kind))
        annotate(model, self.global_config, rest)
        recipe.propagate(model)
        return model

    @classmethod
    def get_supported_quantization_configs(cls) -> list:
        return [get_symmetric_quantization_config(is_per_channel=pc, is_qat=qat)
                for pc in (False, True) for qat in (False, True)]


def _dynamic(config) -> bool:
    spec = config.input_spec() if config.input_activation is not None else None
    return spec is not None and spec.is_dynamic


def _annotate_dynamic_linears(model, config, covers) -> None:
    if config is None:
        return
    for node in model.graph.nodes:
        if op_name(node) != "linear" or not covers(node) or \
                Q_ANNOTATION_KEY in node.meta:
            continue
        specs = {node.args[0]: config.input_spec(), node.args[1]: config.weight_spec()}
        if len(node.args) > 2 and hasattr(node.args[2], "op"):
            specs[node.args[2]] = None
        node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
            input_qspec_map=specs, output_qspec=config.output_spec(), _annotated=True)


__all__ = ["XNNPACKQuantizer", "get_symmetric_quantization_config"]
