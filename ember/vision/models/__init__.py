"""ember.vision.models: torchvision's classification models with its state_dict keys.

`weights=` takes a state_dict (torchvision's own, or numpy/ember values) or a
.safetensors path; ember does not download pretrained weights.
"""
from .mobilenetv2 import MobileNetV2, mobilenet_v2  # noqa: F401
from .mobilenetv3 import MobileNetV3, mobilenet_v3_large, mobilenet_v3_small  # noqa: F401
from .resnet import (ResNet, resnet18, resnet34, resnet50, resnet101,  # noqa: F401
                     resnet152, resnext50_32x4d, resnext101_32x8d, resnext101_64x4d,
                     wide_resnet50_2, wide_resnet101_2)
from . import detection  # noqa: F401,E402
