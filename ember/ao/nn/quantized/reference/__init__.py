"""Reference quantized modules (torch.ao.nn.quantized.reference): float modules whose
weight is quantized and dequantized with given qparams on every call (the form
convert_to_reference_fx describes, and what a BackendPatternConfig's
`set_reference_quantized_module` names).

`weight_qparams` is torch.ao's dict: qscheme, dtype, scale, zero_point (and axis for
per-channel schemes); None means per-tensor quint8 with scale 1.0 and zero point 0.
"""
from __future__ import annotations

from .....frontend import nn
from .....frontend.factories import tensor
from .....frontend.nn import functional as F
from .....ir import dtypes
from .....ir.quantized import (per_channel_affine, per_channel_affine_float_qparams,
                                per_channel_symmetric, per_tensor_affine)

_PER_CHANNEL = (per_channel_affine, per_channel_symmetric, per_channel_affine_float_qparams)


class _ReferenceWeighted:
    """Keeps the weight's qparams and gives the quantize -> dequantize weight."""

    _IS_REFERENCE = True      # eager convert(is_reference=True) passes weight qparams

    def _init_weight_qparams(self, weight_qparams) -> None:
        qparams = dict(weight_qparams or {"qscheme": per_tensor_affine,
                                          "dtype": dtypes.quint8, "scale": 1.0,
                                          "zero_point": 0})
        self.weight_qscheme = qparams["qscheme"]
        self.weight_dtype = qparams["dtype"]
        self.weight_axis_int = int(qparams.get("axis", 0))
        # buffers, as torch.ao's reference modules, so the qparams are in state_dict
        self.register_buffer("weight_scale", tensor(qparams["scale"], dtype=dtypes.float32))
        # float zero points stay float (embeddings' per_channel_affine_float_qparams)
        zero_dtype = dtypes.float32 if self.weight_qscheme is per_channel_affine_float_qparams \
            else dtypes.int64
        self.register_buffer("weight_zero_point",
                             tensor(qparams["zero_point"], dtype=zero_dtype))
        self.register_buffer("weight_axis", tensor(self.weight_axis_int, dtype=dtypes.int32))

    def _get_name(self) -> str:
        return f"Quantized{type(self).__name__}(Reference)"

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        # the scheme and dtype are saved as they are (not tensors), as torch.ao saves them
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "weight_qscheme"] = self.weight_qscheme
        destination[prefix + "weight_dtype"] = self.weight_dtype

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        for name in ("weight_qscheme", "weight_dtype"):
            if prefix + name in state_dict:
                setattr(self, name, state_dict.pop(prefix + name))
            elif strict:
                missing_keys.append(prefix + name)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)

    def get_weight(self):
        from .....ir.ops.quantize import quantize_per_channel, quantize_per_tensor
        w = self.weight.detach()
        if self.weight_qscheme in _PER_CHANNEL:
            q = quantize_per_channel(w, self.weight_scale.to(dtypes.float64),
                                     self.weight_zero_point, self.weight_axis_int,
                                     self.weight_dtype)
        else:
            q = quantize_per_tensor(w, float(self.weight_scale), int(self.weight_zero_point),
                                    self.weight_dtype)
        return q.dequantize()

    def get_quantized_weight(self):
        return self.get_weight()

    @classmethod
    def from_float(cls, float_module, weight_qparams):
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        for key, value in vars(float_module).items():
            if not key.startswith("_"):
                setattr(new, key, value)
        new.weight = float_module.weight
        new.bias = float_module.bias
        new._init_weight_qparams(weight_qparams)
        return new


class Linear(_ReferenceWeighted, nn.Linear):
    def __init__(self, in_features, out_features, bias_=True, device=None, dtype=None,
                 weight_qparams=None):
        super().__init__(in_features, out_features, bias_)
        self._init_weight_qparams(weight_qparams)

    def forward(self, x):
        return F.linear(x, self.get_weight(), self.bias)


class Conv2d(_ReferenceWeighted, nn.Conv2d):
    def __init__(self, *args, weight_qparams=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_qparams(weight_qparams)

    def forward(self, x):
        return F.conv2d(x, self.get_weight(), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class Conv1d(_ReferenceWeighted, nn.Conv1d):
    def __init__(self, *args, weight_qparams=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_qparams(weight_qparams)

    def forward(self, x):
        return F.conv1d(x, self.get_weight(), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class Conv3d(_ReferenceWeighted, nn.Conv3d):
    def __init__(self, *args, weight_qparams=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_qparams(weight_qparams)

    def forward(self, x):
        return F.conv3d(x, self.get_weight(), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class _ConvTransposeNd(_ReferenceWeighted):
    """Transposed convolutions read the q/dq weight the same way (its per-channel axis,
    where one is given, is the weight's dim 1: output channels)."""

    def __init__(self, *args, weight_qparams=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_weight_qparams(weight_qparams)

    def forward(self, input, output_size=None):
        fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[self._dims]
        return fn(input, self.get_weight(), self.bias, self.stride, self.padding,
                  self._output_padding(input, output_size), self.groups, self.dilation)


class ConvTranspose1d(_ConvTransposeNd, nn.ConvTranspose1d):
    pass


class ConvTranspose2d(_ConvTransposeNd, nn.ConvTranspose2d):
    pass


class ConvTranspose3d(_ConvTransposeNd, nn.ConvTranspose3d):
    pass


class Embedding(_ReferenceWeighted, nn.Embedding):
    """An Embedding that looks rows up in the quantize -> dequantize weight (torch.ao's
    reference Embedding: what convert_to_reference_fx makes under a weight-only qconfig)."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 device=None, dtype=None, weight_qparams=None):
        super().__init__(num_embeddings, embedding_dim, padding_idx, max_norm, norm_type,
                         scale_grad_by_freq, sparse, _weight)
        self._init_weight_qparams(weight_qparams)

    def forward(self, input):
        return F.embedding(input, self.get_weight(), self.padding_idx, self.max_norm,
                           self.norm_type, self.scale_grad_by_freq, self.sparse)

    @classmethod
    def from_float(cls, mod, weight_qparams):
        return cls(mod.num_embeddings, mod.embedding_dim, mod.padding_idx, mod.max_norm,
                   mod.norm_type, mod.scale_grad_by_freq, mod.sparse, mod.weight,
                   weight_qparams=weight_qparams)


class EmbeddingBag(_ReferenceWeighted, nn.EmbeddingBag):
    """torch.ao's reference EmbeddingBag: bags of rows of the quantize -> dequantize
    weight."""

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, mode="mean", sparse=False, _weight=None,
                 include_last_offset=False, padding_idx=None, device=None, dtype=None,
                 weight_qparams=None):
        super().__init__(num_embeddings, embedding_dim, max_norm, norm_type,
                         scale_grad_by_freq, mode, sparse, _weight, include_last_offset,
                         padding_idx)
        self._init_weight_qparams(weight_qparams)

    def _get_name(self) -> str:
        return "QuantizedEmbedding(Reference)"      # torch.ao's name for both

    def forward(self, input, offsets=None, per_sample_weights=None):
        return F.embedding_bag(input, self.get_weight(), offsets, self.max_norm,
                               self.norm_type, self.scale_grad_by_freq, self.mode,
                               self.sparse, per_sample_weights, self.include_last_offset,
                               self.padding_idx)

    @classmethod
    def from_float(cls, mod, weight_qparams, use_precomputed_fake_quant=False):
        return cls(mod.num_embeddings, mod.embedding_dim, mod.max_norm, mod.norm_type,
                   mod.scale_grad_by_freq, mod.mode, mod.sparse, mod.weight,
                   mod.include_last_offset, mod.padding_idx, weight_qparams=weight_qparams)


__all__ = ["Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
           "ConvTranspose3d", "Embedding", "EmbeddingBag"]
