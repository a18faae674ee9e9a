"""EmbeddingQuantizer (torch's pt2e quantizer of that name): weight-only quantization of
embedding lookups. Each row of the table is quantized to uint8 with its own float scale
and zero point (per_channel_affine_float_qparams, PerChannelMinMaxObserver with eps 2**-12,
as torch's embedding operator config); the lookup's indices and result stay as they are.
It annotates, as torch's does: each `embedding` whose table is a constant gets the
table's spec, and convert_pt2e gives the q/dq form (the table stored quantized,
dequantized before the lookup)."""
from __future__ import annotations

from ....ir import dtypes
from ....ir.quantized import per_channel_affine_float_qparams
from ..observer import PerChannelMinMaxObserver
from . import Quantizer
from .quantizer import Q_ANNOTATION_KEY, QuantizationAnnotation, QuantizationSpec
from .x86_annotate import op_name

_EMBEDDING_WEIGHT = PerChannelMinMaxObserver.with_args(
    dtype=dtypes.quint8, qscheme=per_channel_affine_float_qparams, ch_axis=0, eps=2 ** -12)
_TABLE_SPEC = QuantizationSpec(dtype=dtypes.quint8, observer_or_fake_quant_ctr=_EMBEDDING_WEIGHT,
                               qscheme=per_channel_affine_float_qparams, ch_axis=0)


class EmbeddingQuantizer(Quantizer):
    is_qat = False

    def annotate(self, model):
        for node in model.graph.nodes:
            if op_name(node) != "embedding" or Q_ANNOTATION_KEY in node.meta or \
                    getattr(node.args[0], "op", None) != "get_attr":
                continue
            node.meta[Q_ANNOTATION_KEY] = QuantizationAnnotation(
                input_qspec_map={node.args[0]: _TABLE_SPEC}, _annotated=True)
        return model


__all__ = ["EmbeddingQuantizer"]
