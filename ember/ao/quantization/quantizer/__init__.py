"""Quantizers for export-based quantization (torch.ao.quantization.quantizer's names).

A Quantizer says how each part of an exported model is quantized, in one of two ways:
torch's, `annotate(model)` marking the exported graph's nodes with QuantizationAnnotations
(a user's quantizer; X86InductorQuantizer's post-training recipe; EmbeddingQuantizer;
XNNPACKQuantizer's dynamic linears), or ember's `qconfig_mapping()`, a front for the FX
path's QConfigMapping (QAT and ember's int8 lowering: the FX path's patterns, BN folding
and quantized modules). `QuantizationConfig` holds the observer (or fake quantize)
constructors for activations and weights; `input_spec()` / `weight_spec()` give the
QuantizationSpecs an annotating quantizer writes for them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..qconfig import QConfig


@dataclass(frozen=True)
class QuantizationConfig:
    """Observer / fake-quantize constructors (`Observer.with_args(...)`) for a pattern's
    activations (inputs and output) and its weight; bias stays float (as in torch's x86
    configs). `is_qat` picks fake quantizes for training."""
    input_activation: Any
    output_activation: Any
    weight: Any
    bias: Any = None
    is_qat: bool = False

    def to_qconfig(self) -> QConfig:
        if self.input_activation is not self.output_activation:
            raise NotImplementedError(
                "QuantizationConfig: different input and output activation specs are not "
                "supported (ember's patterns observe every quantized value once)")
        return QConfig(activation=self.output_activation, weight=self.weight)

    def input_spec(self):
        return _spec_of(self.input_activation)

    def output_spec(self):
        return _spec_of(self.output_activation)

    def weight_spec(self):
        return _spec_of(self.weight)


def _spec_of(constructor):
    """The QuantizationSpec an annotating quantizer writes for an observer (or fake
    quantize) constructor: its dtype, range, qscheme, channel axis and dynamism, read
    off one instance."""
    if constructor is None:
        return None
    probe = constructor()
    qscheme = getattr(probe, "qscheme", None)
    per_channel = "channel" in str(qscheme)
    return QuantizationSpec(dtype=probe.dtype, observer_or_fake_quant_ctr=constructor,
                            quant_min=getattr(probe, "quant_min", None),
                            quant_max=getattr(probe, "quant_max", None), qscheme=qscheme,
                            ch_axis=getattr(probe, "ch_axis", 0) if per_channel else None,
                            is_dynamic=bool(getattr(probe, "is_dynamic", False)))


class Quantizer:
    """Base class. A quantizer either maps the model's parts to QuantizationConfigs
    (`qconfig_mapping()`, ember's built-in quantizers: the FX path's patterns and int8
    lowering) or, as torch's custom quantizers do, overrides `annotate(model)` to mark the
    exported graph's nodes with QuantizationAnnotations (q/dq reference form)."""

    def qconfig_mapping(self):
        raise NotImplementedError(f"{type(self).__name__} must implement annotate(model) "
                                  f"or qconfig_mapping()")

    def annotate(self, model):
        return model

    def transform_for_annotation(self, model):
        return model

    @property
    def uses_annotations(self) -> bool:
        return type(self).annotate is not Quantizer.annotate

    def validate(self, model) -> None:
        pass


from .quantizer import (Q_ANNOTATION_KEY, DerivedQuantizationSpec,  # noqa: E402
                        FixedQParamsQuantizationSpec, QuantizationAnnotation,
                        QuantizationSpec, QuantizationSpecBase, SharedQuantizationSpec)
from .composable_quantizer import ComposableQuantizer  # noqa: E402  (needs Quantizer)
from .utils import (annotate_input_qspec_map, annotate_output_qspec,  # noqa: E402
                    is_valid_annotation)

__all__ = ["ComposableQuantizer", "QuantizationConfig", "Quantizer", "Q_ANNOTATION_KEY",
           "DerivedQuantizationSpec", "FixedQParamsQuantizationSpec", "QuantizationAnnotation",
           "QuantizationSpec", "QuantizationSpecBase", "SharedQuantizationSpec",
           "annotate_input_qspec_map", "annotate_output_qspec", "is_valid_annotation"]
