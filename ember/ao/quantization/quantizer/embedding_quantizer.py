"""EmbeddingQuantizer (torch's pt2e quantizer of that name): weight-only quantization of
embedding lookups. Each row of the table is quantized to uint8 with its own float scale
and zero point (per_channel_affine_float_qparams, PerChannelMinMaxObserver with eps 2**-12,
as torch's embedding operator config); the lookup's indices and result stay as they are.
prepare_pt2e lifts an exported `embedding` with a constant table back to nn.Embedding, so
this is the FX path's Embedding quantization."""
from __future__ import annotations

from ....frontend import nn
from ....ir import dtypes
from ....ir.quantized import per_channel_affine_float_qparams
from ..observer import PerChannelMinMaxObserver, PlaceholderObserver
from ..qconfig import QConfig
from ..qconfig_mapping import QConfigMapping
from . import Quantizer

_EMBEDDING_WEIGHT = PerChannelMinMaxObserver.with_args(
    dtype=dtypes.quint8, qscheme=per_channel_affine_float_qparams, ch_axis=0, eps=2 ** -12)
_EMBEDDING_QCONFIG = QConfig(activation=PlaceholderObserver.with_args(dtype=dtypes.float32),
                             weight=_EMBEDDING_WEIGHT)


class EmbeddingQuantizer(Quantizer):
    is_qat = False

    def qconfig_mapping(self) -> QConfigMapping:
        return QConfigMapping().set_object_type(nn.Embedding, _EMBEDDING_QCONFIG)


__all__ = ["EmbeddingQuantizer"]
