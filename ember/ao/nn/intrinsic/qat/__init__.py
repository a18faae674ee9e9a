"""QAT fused modules with simulated BatchNorm folding (torch.ao.nn.intrinsic.qat).

`ConvBn2d` / `ConvBnReLU2d` train a conv2d followed by BatchNorm2d as the int8 model
will run it: one conv whose weight has the BN scale folded in before it is
fake-quantized. Each forward:

    scale = bn.weight / sqrt(bn.running_var + bn.eps)              # per output channel
    y = conv2d(x, weight_fake_quant(weight * scale[:, None, None, None]))  # no bias
    y = y / scale[None, :, None, None] + bias[None, :, None, None]     # undo the scale
    out = bn(y)                                    # batch statistics while training

so the conv sees the quantization error of the folded weight, while BN still
normalizes with batch statistics and keeps its running estimates up to date.
`freeze_bn_stats()` stops that (BN switches to its running statistics, which makes the
forward equal to the folded conv's), `update_bn_stats()` resumes it; both are also
functions to use with `model.apply(...)`. convert_fx folds BN into the conv for good
(`to_float`). The modules share the float modules' Parameters and BN, so an optimizer
built before prepare_qat_fx keeps training the same tensors.
"""
from __future__ import annotations

from .....frontend import nn
from .....frontend.nn import functional as F
from ... import qat as _nnqat
from .. import ConvBn2d as _FloatConvBn2d, ConvBnReLU2d as _FloatConvBnReLU2d
from .. import ConvReLU2d as _FloatConvReLU2d, LinearReLU as _FloatLinearReLU
from .. import LinearBn1d as _FloatLinearBn1d
from .. import ConvBn1d as _FloatConvBn1d, ConvBnReLU1d as _FloatConvBnReLU1d
from .. import ConvReLU1d as _FloatConvReLU1d
from .. import ConvBn3d as _FloatConvBn3d, ConvBnReLU3d as _FloatConvBnReLU3d
from .. import ConvReLU3d as _FloatConvReLU3d


class _FoldedBn:
    """What the QAT weighted-module + BatchNorm pairs share: built from the float fused
    module (sharing its Parameters and BN), BN statistics frozen or updated, the BN scale
    folded into the weight before its fake quantize."""

    _FLOAT_MODULE: type = nn.Module

    @classmethod
    def from_float(cls, mod, weight_fake_quant=None):
        """The QAT module for a fused float module (ConvBn2d, LinearBn1d ...); its weight
        fake quantize is `weight_fake_quant`, else `mod.qconfig.weight()` (torch's way)."""
        if type(mod) is not cls._FLOAT_MODULE:
            raise TypeError(f"{cls.__name__}.from_float only works for "
                            f"{cls._FLOAT_MODULE.__name__}, got {type(mod).__name__}")
        inner, bn = mod[0], mod[1]
        if weight_fake_quant is None:
            qconfig = getattr(mod, "qconfig", None)
            if qconfig is None:
                raise ValueError(f"{cls.__name__}.from_float: the input module needs a "
                                 f"qconfig (or pass weight_fake_quant)")
            weight_fake_quant = qconfig.weight()
        if bn.weight is None or bn.running_var is None:
            raise ValueError(f"{cls.__name__}.from_float: {type(bn).__name__} must have "
                             f"affine=True and track_running_stats=True to be folded into "
                             f"the {type(inner).__name__}")
        qat = cls.__new__(cls)
        nn.Module.__init__(qat)
        qat.__dict__.update({k: v for k, v in inner.__dict__.items()
                             if k not in ("_parameters", "_buffers", "_modules")})
        qat.weight, qat.bias = inner.weight, inner.bias
        qat.bn = bn
        qat.weight_fake_quant = weight_fake_quant
        qat.freeze_bn = not bn.training
        qat.training = inner.training or bn.training
        return qat

    def train(self, mode: bool = True):
        """Like Module.train, except that a frozen BN stays in eval mode."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        if not self.freeze_bn:
            for module in self.children():
                module.train(mode)
        return self

    def freeze_bn_stats(self):
        self.freeze_bn = True
        self.bn.training = False
        return self

    def update_bn_stats(self):
        self.freeze_bn = False
        self.bn.training = True
        return self

    def _folded_scale(self):
        running_std = (self.bn.running_var + self.bn.eps).sqrt()
        return self.bn.weight / running_std


class _ConvBn(_FoldedBn):
    """The conv + BN pairs (1-d and 2-d): the conv, its BatchNorm and float forms are
    class attributes."""

    _FLOAT_CONV: type = nn.Module          # the plain float conv (nn.Conv2d ...)
    _BATCH_NORM: type = nn.Module
    _FLOAT_CONV_RELU: type = nn.Module     # the float fused conv+relu to_float gives

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=None, padding_mode="zeros", eps=1e-05,
                 momentum=0.1, freeze_bn=False, qconfig=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bool(bias), padding_mode)
        if qconfig is None:
            raise ValueError(f"{type(self).__name__}: qconfig must be provided for a QAT "
                             f"module")
        self.qconfig = qconfig
        self.bn = self._BATCH_NORM(out_channels, eps, momentum, True, True)
        self.weight_fake_quant = qconfig.weight()
        self.freeze_bn = freeze_bn if self.training else True

    def _conv_bn(self, x):
        scale = self._folded_scale()
        spatial = (1,) * (self.weight.ndim - 2)
        weight = self.weight_fake_quant(self.weight * scale.reshape((-1, 1) + spatial))
        x, padding = self._padded(x)
        conv = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[self.weight.ndim]
        y = conv(x, weight, None, self.stride, padding, self.dilation, self.groups)
        y = y / scale.reshape((1, -1) + spatial)
        if self.bias is not None:
            y = y + self.bias.reshape((1, -1) + spatial)
        return self.bn(y)

    def forward(self, x):
        self._check_input(x)
        return self._conv_bn(x)

    def _float_conv(self):
        cls = self._FLOAT_CONV
        conv = cls.__new__(cls)
        nn.Module.__init__(conv)
        conv.__dict__.update({k: v for k, v in self.__dict__.items()
                              if k not in ("_parameters", "_buffers", "_modules", "bn",
                                           "freeze_bn", "qconfig")})
        conv.weight, conv.bias = self.weight, self.bias
        conv.training = False
        return conv

    def folded(self):
        """The eval-mode float conv with BN folded in (running stats), without any relu."""
        from ....quantization.quantize_fx import _fold_bn
        return _fold_bn(self._float_conv(), self.bn)

    def to_float(self):
        return self.folded()


class _WithReLU:
    def forward(self, x):
        self._check_input(x)
        return F.relu(self._conv_bn(x))

    def to_float(self):
        return self._FLOAT_CONV_RELU(self.folded(), nn.ReLU())


class ConvBn2d(_ConvBn, nn.Conv2d):
    _FLOAT_MODULE = _FloatConvBn2d
    _FLOAT_CONV, _BATCH_NORM = nn.Conv2d, nn.BatchNorm2d


class ConvBnReLU2d(_WithReLU, ConvBn2d):
    _FLOAT_MODULE = _FloatConvBnReLU2d
    _FLOAT_CONV_RELU = _FloatConvReLU2d


class ConvBn1d(_ConvBn, nn.Conv1d):
    _FLOAT_MODULE = _FloatConvBn1d
    _FLOAT_CONV, _BATCH_NORM = nn.Conv1d, nn.BatchNorm1d


class ConvBnReLU1d(_WithReLU, ConvBn1d):
    _FLOAT_MODULE = _FloatConvBnReLU1d
    _FLOAT_CONV_RELU = _FloatConvReLU1d


class ConvBn3d(_ConvBn, nn.Conv3d):
    _FLOAT_MODULE = _FloatConvBn3d
    _FLOAT_CONV, _BATCH_NORM = nn.Conv3d, nn.BatchNorm3d


class ConvBnReLU3d(_WithReLU, ConvBn3d):
    _FLOAT_MODULE = _FloatConvBnReLU3d
    _FLOAT_CONV_RELU = _FloatConvReLU3d


class LinearBn1d(_FoldedBn, nn.Linear):
    """Linear followed by BatchNorm1d, trained with BN folded into the fake-quantized
    weight as ConvBn2d does (the scale per output feature); convert folds BN for good."""

    _FLOAT_MODULE = _FloatLinearBn1d

    def __init__(self, in_features, out_features, bias=True, eps=1e-05, momentum=0.1,
                 freeze_bn=False, qconfig=None):
        super().__init__(in_features, out_features, bias)
        if qconfig is None:
            raise ValueError(f"{type(self).__name__}: qconfig must be provided for a QAT "
                             f"module")
        self.qconfig = qconfig
        self.bn = nn.BatchNorm1d(out_features, eps, momentum, True, True)
        self.weight_fake_quant = qconfig.weight()
        self.freeze_bn = freeze_bn if self.training else True

    def forward(self, x):
        scale = self._folded_scale()
        weight = self.weight_fake_quant(self.weight * scale.reshape(-1, 1))
        y = F.linear(x, weight) / scale
        if self.bias is not None:
            y = y + self.bias
        return self.bn(y)

    def to_float(self):
        return self.folded()

    def folded(self):
        """The eval-mode float Linear with BN folded in (running stats)."""
        from ....quantization.quantize_fx import _fold_bn
        linear = nn.Linear.__new__(nn.Linear)
        nn.Module.__init__(linear)
        linear.__dict__.update({k: v for k, v in self.__dict__.items()
                                if k not in ("_parameters", "_buffers", "_modules", "bn",
                                             "freeze_bn", "qconfig")})
        linear.weight, linear.bias = self.weight, self.bias
        linear.training = False
        return _fold_bn(linear, self.bn)


def freeze_bn_stats(mod):
    """For model.apply: BN in QAT conv-bn / linear-bn modules uses and keeps its running
    stats."""
    if isinstance(mod, _FoldedBn):
        mod.freeze_bn_stats()


def update_bn_stats(mod):
    """For model.apply: BN in QAT conv-bn / linear-bn modules normalizes with batch
    statistics again and updates its running stats."""
    if isinstance(mod, _FoldedBn):
        mod.update_bn_stats()


__all__ = ["ConvBn1d", "ConvBnReLU1d", "ConvBn2d", "ConvBnReLU2d", "ConvBn3d", "ConvBnReLU3d",
           "LinearBn1d", "freeze_bn_stats", "update_bn_stats"]


class _QATWithReLU:
    """A QAT Linear/Conv2d followed by relu, from a fused float module (LinearReLU /
    ConvReLU2d): the weight fake-quantized on each forward, relu on the output."""

    @classmethod
    def from_float(cls, mod, weight_fake_quant=None):
        if type(mod) is not cls._FLOAT_MODULE:
            raise TypeError(f"{cls.__name__}.from_float only works for "
                            f"{cls._FLOAT_MODULE.__name__}, got {type(mod).__name__}")
        inner = mod[0]
        if getattr(mod, "qconfig", None) is not None:
            inner.qconfig = mod.qconfig
        return super().from_float(inner, weight_fake_quant)

    def forward(self, x):
        return F.relu(super().forward(x))

    def to_float(self):
        return self._FLOAT_MODULE(super().to_float(), nn.ReLU())


class LinearReLU(_QATWithReLU, _nnqat.Linear):
    _FLOAT_MODULE = _FloatLinearReLU


class ConvReLU2d(_QATWithReLU, _nnqat.Conv2d):
    _FLOAT_MODULE = _FloatConvReLU2d


__all__ += ["LinearReLU", "ConvReLU2d"]
