"""torch's pt2e annotation API: a Quantizer's `annotate(model)` marks graph nodes with
`node.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map={arg:
spec}, output_qspec=spec)`; prepare_pt2e then observes each annotated input edge and
output (ember/ao/quantization/pt2e_annotated.py) and convert_pt2e turns every observer into
quantize -> dequantize with its qparams.

Specs: `QuantizationSpec` (a fresh observer from `observer_or_fake_quant_ctr` with the
spec's dtype / range / qscheme), `SharedQuantizationSpec(edge_or_node)` (the observer of
that node's output, or of that `(producer, consumer)` edge), `DerivedQuantizationSpec`
(qparams computed at convert by `derive_qparams_fn` from the observers of
`derived_from`, e.g. a bias scale = input scale * weight scale) and
`FixedQParamsQuantizationSpec` (given scale / zero point, e.g. sigmoid's 1/256, 0)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

Q_ANNOTATION_KEY = "quantization_annotation"


class QuantizationSpecBase:
    """What a quantized value's observer (and so its qparams) is."""


@dataclass(eq=True, frozen=True)
class QuantizationSpec(QuantizationSpecBase):
    dtype: Any
    observer_or_fake_quant_ctr: Any
    quant_min: int | None = None
    quant_max: int | None = None
    qscheme: Any = None
    ch_axis: int | None = None
    is_dynamic: bool = False

    def __post_init__(self):
        if self.quant_min is not None and self.quant_max is not None and \
                self.quant_min > self.quant_max:
            raise ValueError(f"quant_min {self.quant_min} must be <= quant_max "
                             f"{self.quant_max}.")
        if self.ch_axis is not None and self.ch_axis < 0:
            raise ValueError("Ch_axis is < 0.")


@dataclass(eq=True, frozen=True)
class FixedQParamsQuantizationSpec(QuantizationSpecBase):
    dtype: Any
    scale: float
    zero_point: int
    quant_min: int | None = None
    quant_max: int | None = None
    qscheme: Any = None
    is_dynamic: bool = False


@dataclass(eq=True, frozen=True)
class SharedQuantizationSpec(QuantizationSpecBase):
    """Same observer as `edge_or_node`: a Node (its output) or a (producer, consumer)
    edge."""
    edge_or_node: Any


@dataclass(eq=True, frozen=True)
class DerivedQuantizationSpec(QuantizationSpecBase):
    derived_from: list
    derive_qparams_fn: Callable
    dtype: Any
    quant_min: int | None = None
    quant_max: int | None = None
    qscheme: Any = None
    ch_axis: int | None = None
    is_dynamic: bool = False

    def __hash__(self):
        return id(self)


@dataclass
class QuantizationAnnotation:
    input_qspec_map: dict = field(default_factory=dict)
    output_qspec: QuantizationSpecBase | None = None
    allow_implicit_sharing: bool = True
    _annotated: bool = False


__all__ = ["Q_ANNOTATION_KEY", "QuantizationSpecBase", "QuantizationSpec",
           "FixedQParamsQuantizationSpec", "SharedQuantizationSpec", "DerivedQuantizationSpec",
           "QuantizationAnnotation"]
