"""X86InductorQuantizer (torch.ao.quantization.quantizer.x86_inductor_quantizer's names):
the default quantizer for prepare_pt2e on CPU.

Default config (`get_default_x86_inductor_quantization_config`), as torch documents it:
activations uint8 per-tensor affine over the full 0..255 range (HistogramObserver for
PTQ, moving-average min/max fake quantize for QAT; `reduce_range=True` halves it), weights
int8 per-channel symmetric -128..127 with eps 2**-12 (PerChannelMinMaxObserver, or its
moving-average fake quantize for QAT), bias float. Dynamic quantization
(`is_dynamic=True`) is not supported by ember's pt2e path.

Precedence, most specific first: set_module_name_qconfig (a name covers its submodules)
> set_module_type_qconfig / set_function_type_qconfig > set_global. A None config leaves
that part in float.
"""
from __future__ import annotations

from ....frontend import nn
from ....frontend.nn import functional as F
from ....ir import dtypes
from ....ir.quantized import per_channel_symmetric, per_tensor_affine
from ..fake_quantize import FusedMovingAvgObsFakeQuantize
from ..observer import (HistogramObserver, MovingAverageMinMaxObserver,
                        MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver)
from ..qconfig_mapping import QConfigMapping
from . import QuantizationConfig, Quantizer

_WEIGHT_EPS = 2 ** -12


def get_default_x86_inductor_quantization_config(is_qat: bool = False,
                                                 is_dynamic: bool = False,
                                                 reduce_range: bool = False
                                                 ) -> QuantizationConfig:
    if is_dynamic:
        raise NotImplementedError("get_default_x86_inductor_quantization_config: "
                                  "is_dynamic=True is not supported by ember's pt2e path; "
                                  "use ember.ao.quantization.quantize_dynamic")
    act_range = dict(dtype=dtypes.quint8, qscheme=per_tensor_affine, quant_min=0,
                     quant_max=127 if reduce_range else 255)
    weight_range = dict(dtype=dtypes.qint8, qscheme=per_channel_symmetric, quant_min=-128,
                        quant_max=127, ch_axis=0, eps=_WEIGHT_EPS)
    if is_qat:
        act = FusedMovingAvgObsFakeQuantize.with_args(observer=MovingAverageMinMaxObserver,
                                                      **act_range)
        weight = FusedMovingAvgObsFakeQuantize.with_args(
            observer=MovingAveragePerChannelMinMaxObserver, **weight_range)
    else:
        act = HistogramObserver.with_args(**act_range)
        weight = PerChannelMinMaxObserver.with_args(**weight_range)
    return QuantizationConfig(act, act, weight, None, is_qat)


# functional forms and the module types prepare_pt2e lifts them to
_LIFTED = {F.linear: nn.Linear, F.conv2d: nn.Conv2d}


class X86InductorQuantizer(Quantizer):
    def __init__(self):
        super().__init__()
        self.global_config: QuantizationConfig | None = None
        self.module_type_config: dict = {}
        self.module_name_config: dict = {}
        self.function_type_config: dict = {}

    def set_global(self, quantization_config) -> "X86InductorQuantizer":
        self.global_config = quantization_config
        return self

    def set_module_type_qconfig(self, module_type, quantization_config
                                ) -> "X86InductorQuantizer":
        if module_type not in (nn.Linear, nn.Conv2d):
            raise NotImplementedError(
                f"{type(self).__name__}: module type {module_type.__name__} is "
                f"not supported; ember's exported graphs keep module types only for "
                f"nn.Linear and nn.Conv2d (use set_module_name_qconfig for a block)")
        self.module_type_config[module_type] = quantization_config
        return self

    def set_module_name_qconfig(self, module_name: str, quantization_config
                                ) -> "X86InductorQuantizer":
        self.module_name_config[module_name] = quantization_config
        return self

    def set_function_type_qconfig(self, function_type, quantization_config
                                  ) -> "X86InductorQuantizer":
        self.function_type_config[function_type] = quantization_config
        return self

    def _configs(self):
        yield self.global_config
        yield from self.module_type_config.values()
        yield from self.module_name_config.values()
        yield from self.function_type_config.values()

    @property
    def is_qat(self) -> bool:
        return any(c is not None and c.is_qat for c in self._configs())

    def qconfig_mapping(self) -> QConfigMapping:
        """The FX path's mapping for these settings."""
        def qconfig(config):
            return None if config is None else config.to_qconfig()

        kinds = {c.is_qat for c in self._configs() if c is not None}
        if len(kinds) > 1:
            raise ValueError(f"{type(self).__name__}: QAT and PTQ configs are mixed; use "
                             f"one kind (is_qat) throughout")
        mapping = QConfigMapping().set_global(qconfig(self.global_config))
        for fn, config in self.function_type_config.items():
            mapping.set_object_type(_LIFTED.get(fn, fn), qconfig(config))
        for module_type, config in self.module_type_config.items():
            mapping.set_object_type(module_type, qconfig(config))
        for name, config in self.module_name_config.items():
            mapping.set_module_name(name, qconfig(config))
        return mapping


__all__ = ["X86InductorQuantizer", "get_default_x86_inductor_quantization_config"]
