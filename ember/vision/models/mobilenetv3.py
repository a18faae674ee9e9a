"""torchvision's MobileNetV3 large and small (Howard et al. 2019): inverted residuals with
squeeze-and-excitation and hard-swish, torchvision's module tree and state_dict keys."""
from __future__ import annotations

from functools import partial

import ember
from ember import nn
from ember.nn import init

from ._weights import load_weights
from .mobilenetv2 import _make_divisible

__all__ = ["MobileNetV3", "mobilenet_v3_large", "mobilenet_v3_small"]


class _ConvNormAct(nn.Sequential):
    """conv (no bias) -> norm -> optional activation; keys 0, 1, 2 as torchvision's."""

    def __init__(self, cin, cout, kernel_size=3, stride=1, groups=1, norm_layer=None,
                 activation_layer=None, dilation=1):
        padding = (kernel_size - 1) // 2 * dilation
        layers = [nn.Conv2d(cin, cout, kernel_size, stride, padding, dilation=dilation,
                            groups=groups, bias=False), norm_layer(cout)]
        if activation_layer is not None:
            layers.append(activation_layer(inplace=True))
        super().__init__(*layers)
        self.out_channels = cout


class SqueezeExcitation(nn.Module):
    """Channel gates: global average -> fc1 (ReLU) -> fc2 (Hardsigmoid) -> scale."""

    def __init__(self, input_channels: int, squeeze_channels: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x):
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class _BlockConfig:
    def __init__(self, cin, kernel, expanded, cout, use_se, activation, stride, dilation,
                 width_mult):
        adjust = lambda c: _make_divisible(c * width_mult, 8)    # noqa: E731
        self.input_channels, self.kernel, self.expanded_channels = adjust(cin), kernel, \
            adjust(expanded)
        self.out_channels, self.use_se = adjust(cout), use_se
        self.use_hs, self.stride, self.dilation = activation == "HS", stride, dilation


class InvertedResidual(nn.Module):
    def __init__(self, cnf: _BlockConfig, norm_layer):
        super().__init__()
        if not 1 <= cnf.stride <= 2:
            raise ValueError("illegal stride value")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        act = nn.Hardswish if cnf.use_hs else nn.ReLU
        layers = []
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(_ConvNormAct(cnf.input_channels, cnf.expanded_channels, 1,
                                       norm_layer=norm_layer, activation_layer=act))
        stride = 1 if cnf.dilation > 1 else cnf.stride
        layers.append(_ConvNormAct(cnf.expanded_channels, cnf.expanded_channels, cnf.kernel,
                                   stride, cnf.expanded_channels, norm_layer, act,
                                   cnf.dilation))
        if cnf.use_se:
            layers.append(SqueezeExcitation(cnf.expanded_channels,
                                            _make_divisible(cnf.expanded_channels // 4, 8)))
        layers.append(_ConvNormAct(cnf.expanded_channels, cnf.out_channels, 1,
                                   norm_layer=norm_layer, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = cnf.out_channels
        self._is_cn = cnf.stride > 1

    def forward(self, x):
        out = self.block(x)
        return out + x if self.use_res_connect else out


# input, kernel, expanded, output, squeeze-excite, activation, stride, dilation
_LARGE = [(16, 3, 16, 16, False, "RE", 1, 1), (16, 3, 64, 24, False, "RE", 2, 1),
          (24, 3, 72, 24, False, "RE", 1, 1), (24, 5, 72, 40, True, "RE", 2, 1),
          (40, 5, 120, 40, True, "RE", 1, 1), (40, 5, 120, 40, True, "RE", 1, 1),
          (40, 3, 240, 80, False, "HS", 2, 1), (80, 3, 200, 80, False, "HS", 1, 1),
          (80, 3, 184, 80, False, "HS", 1, 1), (80, 3, 184, 80, False, "HS", 1, 1),
          (80, 3, 480, 112, True, "HS", 1, 1), (112, 3, 672, 112, True, "HS", 1, 1),
          (112, 5, 672, 160, True, "HS", 2, 1), (160, 5, 960, 160, True, "HS", 1, 1),
          (160, 5, 960, 160, True, "HS", 1, 1)]
_SMALL = [(16, 3, 16, 16, True, "RE", 2, 1), (16, 3, 72, 24, False, "RE", 2, 1),
          (24, 3, 88, 24, False, "RE", 1, 1), (24, 5, 96, 40, True, "HS", 2, 1),
          (40, 5, 240, 40, True, "HS", 1, 1), (40, 5, 240, 40, True, "HS", 1, 1),
          (40, 5, 120, 48, True, "HS", 1, 1), (48, 5, 144, 48, True, "HS", 1, 1),
          (48, 5, 288, 96, True, "HS", 2, 1), (96, 5, 576, 96, True, "HS", 1, 1),
          (96, 5, 576, 96, True, "HS", 1, 1)]


class MobileNetV3(nn.Module):
    def __init__(self, inverted_residual_setting, last_channel: int, num_classes: int = 1000,
                 block=None, norm_layer=None, dropout: float = 0.2):
        super().__init__()
        if not inverted_residual_setting:
            raise ValueError("The inverted_residual_setting should not be empty")
        block = block or InvertedResidual
        norm_layer = norm_layer or partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        first = inverted_residual_setting[0].input_channels
        layers = [_ConvNormAct(3, first, 3, 2, norm_layer=norm_layer,
                               activation_layer=nn.Hardswish)]
        layers += [block(cnf, norm_layer) for cnf in inverted_residual_setting]
        last_in = inverted_residual_setting[-1].out_channels
        layers.append(_ConvNormAct(last_in, 6 * last_in, 1, norm_layer=norm_layer,
                                   activation_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(6 * last_in, last_channel), nn.Hardswish(),
                                        nn.Dropout(p=dropout), nn.Linear(last_channel,
                                                                         num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                init.ones_(m.weight)
                init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                init.normal_(m.weight, 0, 0.01)
                init.zeros_(m.bias)

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(ember.flatten(x, 1))


def _build(table, last_channel, name, kwargs):
    width_mult = kwargs.pop("width_mult", 1.0)
    for option in ("reduced_tail", "dilated"):
        if kwargs.pop(option, False):
            raise NotImplementedError(f"{name}: {option}=True (the detection backbones' "
                                      f"variant) is not supported by ember.vision yet")
    settings = [_BlockConfig(*row, width_mult) for row in table]
    return MobileNetV3(settings, _make_divisible(last_channel * width_mult, 8), **kwargs)


def mobilenet_v3_large(*, weights=None, progress: bool = True, **kwargs) -> MobileNetV3:
    model = _build(_LARGE, 1280, "mobilenet_v3_large", kwargs)
    return load_weights(model, weights, "mobilenet_v3_large")


def mobilenet_v3_small(*, weights=None, progress: bool = True, **kwargs) -> MobileNetV3:
    model = _build(_SMALL, 1024, "mobilenet_v3_small", kwargs)
    return load_weights(model, weights, "mobilenet_v3_small")
