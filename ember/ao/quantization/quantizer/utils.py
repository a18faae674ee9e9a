"""Helpers a user's quantizer annotates with (torch's pt2e quantizer utilities)."""
from __future__ import annotations

from .quantizer import Q_ANNOTATION_KEY, QuantizationAnnotation


def _annotation(node) -> QuantizationAnnotation:
    ann = node.meta.get(Q_ANNOTATION_KEY)
    if ann is None:
        ann = node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation()
    if ann.input_qspec_map is None:
        ann.input_qspec_map = {}
    return ann


def annotate_input_qspec_map(node, input_node, qspec) -> None:
    """Quantize the value `node` reads from `input_node` as `qspec` (other inputs and
    the output keep what they have)."""
    _annotation(node).input_qspec_map[input_node] = qspec


def annotate_output_qspec(node, qspec) -> None:
    _annotation(node).output_qspec = qspec


def is_valid_annotation(annotation) -> bool:
    """An annotation that quantizes something: an input or the output."""
    return annotation is not None and (bool(annotation.input_qspec_map) or
                                       annotation.output_qspec is not None)


__all__ = ["annotate_input_qspec_map", "annotate_output_qspec", "is_valid_annotation"]
