"""Quantization-aware training modules (torch.ao.nn.qat): Linear and Conv2d / Conv3d that
fake-quantize their weight with `weight_fake_quant` on every forward. They share the
float module's Parameters, so an optimizer built before or after prepare_qat_fx trains
the same tensors."""
from __future__ import annotations

from ....frontend import nn
from ....frontend.nn import functional as F


def _weight_fake_quant(cls, mod, weight_fake_quant):
    """The given fake quantize, else one from the module's qconfig (torch's from_float)."""
    if weight_fake_quant is not None:
        return weight_fake_quant
    qconfig = getattr(mod, "qconfig", None)
    if qconfig is None:
        raise ValueError(f"{cls.__name__}.from_float: the input float module must have a "
                         f"qconfig (set module.qconfig, or use prepare_qat)")
    return qconfig.weight()


class Linear(nn.Linear):
    @classmethod
    def from_float(cls, mod, weight_fake_quant=None):
        weight_fake_quant = _weight_fake_quant(cls, mod, weight_fake_quant)
        qat = cls.__new__(cls)
        nn.Module.__init__(qat)
        qat.in_features, qat.out_features = mod.in_features, mod.out_features
        qat.weight, qat.bias = mod.weight, mod.bias
        qat.weight_fake_quant = weight_fake_quant
        if getattr(mod, "qconfig", None) is not None:
            qat.qconfig = mod.qconfig
        return qat

    def forward(self, x):
        return F.linear(x, self.weight_fake_quant(self.weight), self.bias)

    def to_float(self):
        mod = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        mod.weight, mod.bias = self.weight, self.bias
        return mod


class _QATConv:
    """A conv whose forward fake-quantizes its weight; `_FLOAT` is the float conv class."""

    _FLOAT: type = nn.Module

    @classmethod
    def from_float(cls, mod, weight_fake_quant=None):
        weight_fake_quant = _weight_fake_quant(cls, mod, weight_fake_quant)
        qat = cls.__new__(cls)
        nn.Module.__init__(qat)
        qat.__dict__.update({k: v for k, v in mod.__dict__.items()
                             if k not in ("_parameters", "_buffers", "_modules")})
        qat.weight, qat.bias = mod.weight, mod.bias
        qat.weight_fake_quant = weight_fake_quant
        if getattr(mod, "qconfig", None) is not None:
            qat.qconfig = mod.qconfig
        return qat

    def to_float(self):
        mod = self._FLOAT.__new__(self._FLOAT)
        nn.Module.__init__(mod)
        mod.__dict__.update({k: v for k, v in self.__dict__.items()
                             if k not in ("_parameters", "_buffers", "_modules")})
        mod.weight, mod.bias = self.weight, self.bias
        return mod


class Conv2d(_QATConv, nn.Conv2d):
    _FLOAT = nn.Conv2d

    def forward(self, x):
        return F.conv2d(x, self.weight_fake_quant(self.weight), self.bias, self.stride,
                        self.padding, self.dilation, self.groups)


class Conv3d(_QATConv, nn.Conv3d):
    _FLOAT = nn.Conv3d

    def forward(self, x):
        return F.conv3d(x, self.weight_fake_quant(self.weight), self.bias, self.stride,
                        self.padding, self.dilation, self.groups)


def _float_qparams_fake_quant(cls, mod, weight_fake_quant):
    """torch.ao's rule: an embedding's weight fake quantize is per row with float zero
    points (default_embedding_qat_qconfig)."""
    from ....ir.quantized import per_channel_affine_float_qparams
    fake_quant = _weight_fake_quant(cls, mod, weight_fake_quant)
    if getattr(fake_quant, "qscheme", None) is not per_channel_affine_float_qparams:
        raise AssertionError(f"{cls.__name__}.from_float: embedding weights require a qscheme "
                             f"of per_channel_affine_float_qparams (use "
                             f"default_embedding_qat_qconfig), got "
                             f"{getattr(fake_quant, 'qscheme', None)}")
    return fake_quant


def _like_embedding(cls, mod, weight_fake_quant):
    qat = cls.__new__(cls)
    nn.Module.__init__(qat)
    qat.__dict__.update({k: v for k, v in mod.__dict__.items()
                         if k not in ("_parameters", "_buffers", "_modules")})
    qat.weight = mod.weight
    qat.weight_fake_quant = _float_qparams_fake_quant(cls, mod, weight_fake_quant)
    if getattr(mod, "qconfig", None) is not None:
        qat.qconfig = mod.qconfig
    return qat


def _embedding_to_float(self, float_cls):
    mod = float_cls.__new__(float_cls)
    nn.Module.__init__(mod)
    mod.__dict__.update({k: v for k, v in self.__dict__.items()
                         if k not in ("_parameters", "_buffers", "_modules")})
    mod.weight = self.weight
    return mod


class Embedding(nn.Embedding):
    """An Embedding whose weight is fake-quantized per row (float zero points) on every
    forward (torch.ao.nn.qat.Embedding)."""

    @classmethod
    def from_float(cls, mod, weight_fake_quant=None):
        return _like_embedding(cls, mod, weight_fake_quant)

    def forward(self, input):
        return F.embedding(input, self.weight_fake_quant(self.weight), self.padding_idx,
                           self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse)

    def to_float(self):
        return _embedding_to_float(self, nn.Embedding)


class EmbeddingBag(nn.EmbeddingBag):
    """An EmbeddingBag whose weight is fake-quantized per row on every forward."""

    @classmethod
    def from_float(cls, mod, weight_fake_quant=None):
        return _like_embedding(cls, mod, weight_fake_quant)

    def forward(self, input, offsets=None, per_sample_weights=None):
        return F.embedding_bag(input, self.weight_fake_quant(self.weight), offsets,
                               self.max_norm, self.norm_type, self.scale_grad_by_freq,
                               self.mode, self.sparse, per_sample_weights,
                               self.include_last_offset, self.padding_idx)

    def to_float(self):
        return _embedding_to_float(self, nn.EmbeddingBag)


__all__ = ["Linear", "Conv2d", "Conv3d", "Embedding", "EmbeddingBag"]
