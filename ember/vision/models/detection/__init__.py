"""ember.vision.models.detection: torchvision's RetinaNet (ResNet-50-FPN) and its parts
(AnchorGenerator, BoxCoder, GeneralizedRCNNTransform, the heads)."""
from ._utils import BoxCoder  # noqa: F401
from .anchor_utils import AnchorGenerator  # noqa: F401
from .backbone_utils import BackboneWithFPN, IntermediateLayerGetter  # noqa: F401
from .retinanet import (RetinaNet, RetinaNetClassificationHead, RetinaNetHead,  # noqa: F401
                        RetinaNetRegressionHead, retinanet_resnet50_fpn)
from .transform import GeneralizedRCNNTransform, ImageList  # noqa: F401
