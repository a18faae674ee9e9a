"""X86InductorQuantizer (torch.ao.quantization.quantizer.x86_inductor_quantizer's names):
the default quantizer for prepare_pt2e on CPU.

Default config (`get_default_x86_inductor_quantization_config`), as torch documents it:
activations uint8 per-tensor affine over the full 0..255 range, eps 2**-12 (HistogramObserver for
PTQ, moving-average min/max fake quantize for QAT; `reduce_range=True` halves it), weights
int8 per-channel symmetric -128..127 with eps 2**-12 (PerChannelMinMaxObserver, or its
moving-average fake quantize for QAT), bias float. `is_dynamic=True`: activations
quantized per call (PlaceholderObserver, qparams from each input's range, eps 2**-12).

Post-training configs annotate the exported graph by torch's recipe (x86_annotate.py: the
same values quantized, shared and left float as torchao's quantizer, node for node) and
convert to torch's q/dq form. QAT configs, and `X86InductorQuantizer(int8_lowering=True)`
(ember's), take the FX path's patterns and int8 lowering instead.

Precedence, most specific first: set_module_name_qconfig (a name covers its submodules)
> set_module_type_qconfig / set_function_type_qconfig (a module type means every op of
its kind: nn.Linear and F.linear alike, as torch maps both to aten.linear) > set_global.
A None config leaves that part in float. A config whose QAT or dynamic mode differs from
those already set is skipped with torch's warning.
"""
from __future__ import annotations

import warnings

from ....frontend import nn
from ....frontend.nn import functional as F
from ....ir import dtypes
from ....ir.quantized import per_channel_symmetric, per_tensor_affine
from ..fake_quantize import FusedMovingAvgObsFakeQuantize
from ..observer import (HistogramObserver, MovingAverageMinMaxObserver,
                        MovingAveragePerChannelMinMaxObserver, PerChannelMinMaxObserver,
                        PlaceholderObserver)
from ..qconfig_mapping import QConfigMapping
from . import QuantizationConfig, Quantizer
from . import x86_annotate as recipe

_WEIGHT_EPS = 2 ** -12


def get_default_x86_inductor_quantization_config(is_qat: bool = False,
                                                 is_dynamic: bool = False,
                                                 reduce_range: bool = False
                                                 ) -> QuantizationConfig:
    act_range = dict(dtype=dtypes.quint8, qscheme=per_tensor_affine, quant_min=0,
                     quant_max=127 if reduce_range else 255, eps=_WEIGHT_EPS)
    weight_range = dict(dtype=dtypes.qint8, qscheme=per_channel_symmetric, quant_min=-128,
                        quant_max=127, ch_axis=0, eps=_WEIGHT_EPS)
    if is_dynamic and is_qat:
        raise NotImplementedError("get_default_x86_inductor_quantization_config: "
                                  "is_dynamic=True with is_qat=True is not supported by "
                                  "ember's pt2e path; use is_qat=True alone (static QAT)")
    if is_qat:
        act = FusedMovingAvgObsFakeQuantize.with_args(observer=MovingAverageMinMaxObserver,
                                                      **act_range)
        weight = FusedMovingAvgObsFakeQuantize.with_args(
            observer=MovingAveragePerChannelMinMaxObserver, **weight_range)
    elif is_dynamic:      # qparams chosen from each call's input (torch's choose_qparams)
        act = PlaceholderObserver.with_args(is_dynamic=True, **act_range)
        weight = PerChannelMinMaxObserver.with_args(**weight_range)
    else:
        act = HistogramObserver.with_args(**act_range)
        weight = PerChannelMinMaxObserver.with_args(**weight_range)
    return QuantizationConfig(act, act, weight, None, is_qat)


# functional forms and the module types prepare_pt2e lifts them to
_LIFTED = {F.linear: nn.Linear, F.conv2d: nn.Conv2d}


class X86InductorQuantizer(Quantizer):
    def __init__(self, *, int8_lowering: bool = False):
        """int8_lowering (ember's, beyond torch): post-training configs take the FX
        path's patterns and int8 lowering (quantized modules that run ember's int8
        kernels in eager mode) instead of torch's annotation recipe and q/dq form; that
        route also requantizes a conv before a residual add, a conv / linear that is a
        model output and a flatten that is one (docs/quantization.md)."""
        super().__init__()
        self.int8_lowering = int8_lowering
        self.global_config: QuantizationConfig | None = None
        self.module_type_config: dict = {}
        self.module_name_config: dict = {}
        self.function_type_config: dict = {}

    def set_global(self, quantization_config) -> "X86InductorQuantizer":
        if self._mixes(quantization_config):
            warnings.warn("Skip the global quantization config.")
            return self
        self.global_config = quantization_config
        return self

    @property
    def uses_annotations(self) -> bool:
        """Post-training (static or dynamic): torch's annotation recipe on the exported
        graph, converted to the q/dq form. QAT: the FX path's patterns (conv + bn
        train with simulated folding) and its int8 lowering."""
        return not self.is_qat and not self.int8_lowering

    def annotate(self, model):
        for name, config in self.module_name_config.items():
            recipe.annotate_with_config(model, config, recipe.module_name_filter(name))
        by_op: dict = {}
        for kind, config in list(self.module_type_config.items()) + \
                list(self.function_type_config.items()):
            by_op[recipe.operator_of(kind)] = config
        for op, config in by_op.items():
            recipe.annotate_with_config(model, config, recipe.operator_type_filter(op))
        if self.global_config is not None:
            recipe.annotate_with_config(model, self.global_config, recipe.global_filter)
        recipe.annotate_outputs(model)
        return model

    def set_module_type_qconfig(self, module_type, quantization_config
                                ) -> "X86InductorQuantizer":
        """Every op of that module type's kind (nn.Conv2d: each conv2d, functional
        ones included, as torch maps a module type to its operator)."""
        if recipe.operator_of(module_type) is None:
            warnings.warn(f"Module: Unable to customize quantization config for "
                          f"{getattr(module_type, '__name__', module_type)} by "
                          f"{type(self).__name__}.")
            return self
        if self._mixes(quantization_config):
            return self
        self.module_type_config[module_type] = quantization_config
        return self

    def set_module_name_qconfig(self, module_name: str, quantization_config
                                ) -> "X86InductorQuantizer":
        if self._mixes(quantization_config):
            return self
        self.module_name_config[module_name] = quantization_config
        return self

    def set_function_type_qconfig(self, function_type, quantization_config
                                  ) -> "X86InductorQuantizer":
        if recipe.operator_of(function_type) is None:
            warnings.warn(f"function: Unable to customize quantization config for "
                          f"{getattr(function_type, '__name__', function_type)} by "
                          f"{type(self).__name__}.")
            return self
        if self._mixes(quantization_config):
            return self
        self.function_type_config[function_type] = quantization_config
        return self

    def _mixes(self, config) -> bool:
        """torch's rule: a config whose QAT or dynamic mode differs from those already
        set is skipped with a warning."""
        if config is None:
            return False
        for other in self._configs():
            if other is None:
                continue
            if other.is_qat != config.is_qat:
                warnings.warn("Mixed QAT and Non-QAT quantization config is not supported.")
                return True
            if _is_dynamic(other) != _is_dynamic(config):
                warnings.warn("Mixed dynamic and static quantization config is not "
                              "supported.")
                return True
        return False

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

        for kind in list(self.module_type_config) + list(self.function_type_config):
            if _LIFTED.get(kind, kind) not in (nn.Linear, nn.Conv2d):
                raise NotImplementedError(
                    f"{type(self).__name__}: a QAT config for "
                    f"{getattr(kind, '__name__', kind)} is not supported; ember's QAT "
                    f"graphs keep module types only for nn.Linear and nn.Conv2d (use "
                    f"set_module_name_qconfig for a block)")
        mapping = QConfigMapping().set_global(qconfig(self.global_config))
        for fn, config in self.function_type_config.items():
            mapping.set_object_type(_LIFTED.get(fn, fn), qconfig(config))
        for module_type, config in self.module_type_config.items():
            mapping.set_object_type(module_type, qconfig(config))
        for name, config in self.module_name_config.items():
            mapping.set_module_name(name, qconfig(config))
        return mapping


def _is_dynamic(config) -> bool:
    spec = config.input_spec() if config.input_activation is not None else None
    return spec is not None and spec.is_dynamic


__all__ = ["X86InductorQuantizer", "get_default_x86_inductor_quantization_config"]
