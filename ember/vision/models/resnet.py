"""torchvision's ResNets, ResNeXts and wide ResNets: same modules, key names, init and
constructor arguments (zero_init_residual, groups, width_per_group,
replace_stride_with_dilation, norm_layer). The blocks and the ResNet class are
ember.models' (frontend/models/vision.py): one definition for both."""
from __future__ import annotations

from ember.frontend.models.vision import BasicBlock, Bottleneck, ResNet, conv1x1, conv3x3  # noqa: F401

from ._weights import load_weights

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50",
           "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
           "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"]


_ARCHS = {"resnet18": (BasicBlock, [2, 2, 2, 2], {}), "resnet34": (BasicBlock, [3, 4, 6, 3], {}),
          "resnet50": (Bottleneck, [3, 4, 6, 3], {}),
          "resnet101": (Bottleneck, [3, 4, 23, 3], {}),
          "resnet152": (Bottleneck, [3, 8, 36, 3], {}),
          "resnext50_32x4d": (Bottleneck, [3, 4, 6, 3], {"groups": 32, "width_per_group": 4}),
          "resnext101_32x8d": (Bottleneck, [3, 4, 23, 3], {"groups": 32, "width_per_group": 8}),
          "resnext101_64x4d": (Bottleneck, [3, 4, 23, 3], {"groups": 64, "width_per_group": 4}),
          "wide_resnet50_2": (Bottleneck, [3, 4, 6, 3], {"width_per_group": 128}),
          "wide_resnet101_2": (Bottleneck, [3, 4, 23, 3], {"width_per_group": 128})}


def _resnet(name, weights, kwargs):
    kwargs.pop("progress", None)
    block, layers, fixed = _ARCHS[name]
    for key, value in fixed.items():
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"{name}: the parameter '{key}' expected value {value} but got "
                             f"{kwargs[key]} instead.")
        kwargs[key] = value
    return load_weights(ResNet(block, layers, **kwargs), weights, name)


def _builder(name):
    def build(*, weights=None, progress: bool = True, **kwargs) -> ResNet:
        return _resnet(name, weights, kwargs)
    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"torchvision's {name} (weights: a state_dict or a .safetensors path)."
    return build


resnet18, resnet34, resnet50, resnet101, resnet152 = (
    _builder(n) for n in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"))
resnext50_32x4d, resnext101_32x8d, resnext101_64x4d = (
    _builder(n) for n in ("resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d"))
wide_resnet50_2, wide_resnet101_2 = (_builder(n) for n in ("wide_resnet50_2", "wide_resnet101_2"))
