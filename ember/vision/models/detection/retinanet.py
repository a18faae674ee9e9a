"""torchvision.models.detection.RetinaNet and retinanet_resnet50_fpn (eval mode).

A ResNet-50 + FPN (P3-P7) backbone, a classification head (sigmoid logits per anchor and
class) and a box-regression head shared across levels, anchors from AnchorGenerator, and
torchvision's post-processing per level (score threshold, top-k candidates, box decoding,
clipping), then class-wise NMS and the detections-per-image cap. Module names follow
torchvision's, so its state_dict loads as it is. The post-processing is data-dependent and
runs on the detached values.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

import ember
from ember import nn
from ember.nn import init

from ... import ops as box_ops
from ..._misc import LastLevelP6P7
from ..resnet import Bottleneck, ResNet
from ._utils import BoxCoder
from .anchor_utils import AnchorGenerator
from .backbone_utils import freeze_batch_norms, resnet_fpn_extractor
from .transform import GeneralizedRCNNTransform

__all__ = ["RetinaNet", "RetinaNetHead", "RetinaNetClassificationHead",
           "RetinaNetRegressionHead", "retinanet_resnet50_fpn"]


def _conv_relu_tower(channels: int, norm_layer):
    """Four (3x3 conv [-> norm] -> ReLU) blocks, keyed conv.<i>.0 as torchvision's
    Conv2dNormActivation (the conv has a bias only without a norm)."""
    blocks = []
    for _ in range(4):
        layers = [nn.Conv2d(channels, channels, 3, padding=1, bias=norm_layer is None)]
        if norm_layer is not None:
            layers.append(norm_layer(channels))
        layers.append(nn.ReLU(inplace=True))
        blocks.append(nn.Sequential(*layers))
    tower = nn.Sequential(*blocks)
    for module in tower.modules():
        if isinstance(module, nn.Conv2d):
            init.normal_(module.weight, std=0.01)
            if module.bias is not None:
                init.constant_(module.bias, 0)
    return tower


def _per_anchor(outputs, width: int):
    """Level outputs [N, A * width, H, W] -> one [N, sum H * W * A, width] tensor, ordered
    cell-major then anchor, as the anchors are."""
    flat = []
    for out in outputs:
        n, _, h, w = (int(d) for d in out.shape)
        out = out.reshape(n, -1, width, h, w).permute(0, 3, 4, 1, 2)
        flat.append(out.reshape(n, -1, width))
    return ember.cat(flat, dim=1)


class RetinaNetClassificationHead(nn.Module):
    def __init__(self, in_channels: int, num_anchors: int, num_classes: int,
                 prior_probability: float = 0.01, norm_layer=None):
        super().__init__()
        self.conv = _conv_relu_tower(in_channels, norm_layer)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors * num_classes, 3, padding=1)
        init.normal_(self.cls_logits.weight, std=0.01)
        # start every anchor at probability prior_probability of any class (focal loss paper)
        init.constant_(self.cls_logits.bias, -math.log((1 - prior_probability) /
                                                       prior_probability))
        self.num_classes = num_classes
        self.num_anchors = num_anchors

    def forward(self, x):
        return _per_anchor([self.cls_logits(self.conv(f)) for f in x], self.num_classes)


class RetinaNetRegressionHead(nn.Module):
    def __init__(self, in_channels: int, num_anchors: int, norm_layer=None):
        super().__init__()
        self.conv = _conv_relu_tower(in_channels, norm_layer)
        self.bbox_reg = nn.Conv2d(in_channels, num_anchors * 4, 3, padding=1)
        init.normal_(self.bbox_reg.weight, std=0.01)
        init.zeros_(self.bbox_reg.bias)
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self._loss_type = "l1"

    def forward(self, x):
        return _per_anchor([self.bbox_reg(self.conv(f)) for f in x], 4)


class RetinaNetHead(nn.Module):
    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, norm_layer=None):
        super().__init__()
        self.classification_head = RetinaNetClassificationHead(
            in_channels, num_anchors, num_classes, norm_layer=norm_layer)
        self.regression_head = RetinaNetRegressionHead(in_channels, num_anchors,
                                                       norm_layer=norm_layer)

    def forward(self, x):
        return {"cls_logits": self.classification_head(x),
                "bbox_regression": self.regression_head(x)}


def _default_anchorgen() -> AnchorGenerator:
    """Three sizes per octave (x, x * 2^(1/3), x * 2^(2/3)) for x = 32 ... 512 on P3-P7,
    aspect ratios 0.5, 1, 2."""
    sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3)))
                  for x in [32, 64, 128, 256, 512])
    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))


class RetinaNet(nn.Module):
    """forward(images: list of float CxHxW in [0, 1]) in eval mode -> one dict per image:
    boxes [K, 4] (x1, y1, x2, y2, in the input image's pixels), scores [K], labels [K]."""

    def __init__(self, backbone, num_classes: int, min_size: int = 800, max_size: int = 1333,
                 image_mean=None, image_std=None, anchor_generator=None, head=None,
                 proposal_matcher=None, score_thresh: float = 0.05, nms_thresh: float = 0.5,
                 detections_per_img: int = 300, fg_iou_thresh: float = 0.5,
                 bg_iou_thresh: float = 0.4, topk_candidates: int = 1000, **kwargs):
        super().__init__()
        if not hasattr(backbone, "out_channels"):
            raise ValueError("backbone should contain an attribute out_channels specifying "
                             "the number of output channels (assumed to be the same for all "
                             "the levels)")
        self.backbone = backbone
        self.anchor_generator = anchor_generator or _default_anchorgen()
        if head is None:
            head = RetinaNetHead(backbone.out_channels,
                                 self.anchor_generator.num_anchors_per_location()[0],
                                 num_classes)
        self.head = head
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.transform = GeneralizedRCNNTransform(
            min_size, max_size, image_mean or [0.485, 0.456, 0.406],
            image_std or [0.229, 0.224, 0.225], **kwargs)
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.topk_candidates = topk_candidates
        self.fg_iou_thresh, self.bg_iou_thresh = fg_iou_thresh, bg_iou_thresh

    def forward(self, images, targets=None):
        if self.training:
            raise NotImplementedError(
                "RetinaNet: training mode (losses from targets) is not implemented in "
                "ember.vision yet; call model.eval() for detections")
        original_sizes = []
        for img in images:
            if img.ndim != 3:
                raise ValueError(f"Expecting a list of 3d tensors [C, H, W], got "
                                 f"{list(img.shape)}")
            original_sizes.append((int(img.shape[-2]), int(img.shape[-1])))
        image_list, _ = self.transform(images)
        features = self.backbone(image_list.tensors)
        if isinstance(features, ember.Tensor):
            features = OrderedDict([("0", features)])
        features = list(features.values())
        head_outputs = self.head(features)
        anchors = self.anchor_generator(image_list, features)
        detections = self.postprocess_detections(head_outputs, anchors, features,
                                                 image_list.image_sizes)
        return self.transform.postprocess(detections, image_list.image_sizes, original_sizes)

    def _level_candidates(self, logits: np.ndarray):
        """Indices into the level's flattened (anchor, class) scores that pass the
        threshold, best topk_candidates first, with their scores."""
        scores = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
        scores = scores.reshape(-1)
        passing = np.nonzero(scores > self.score_thresh)[0]
        order = np.argsort(-scores[passing], kind="stable")[:self.topk_candidates]
        return passing[order], scores[passing[order]]

    def postprocess_detections(self, head_outputs, anchors, features, image_shapes):
        """Per image and level: threshold, top-k, decode, clip; then batched NMS and the
        detections_per_img cap."""
        logits_all = head_outputs["cls_logits"].detach()
        regression_all = head_outputs["bbox_regression"].detach()
        num_classes = int(logits_all.shape[-1])
        per_level = [int(f.shape[-2]) * int(f.shape[-1]) for f in features]
        anchors_per_cell = int(logits_all.shape[1]) // sum(per_level)
        bounds = np.cumsum([0] + [n * anchors_per_cell for n in per_level])
        logits_np = logits_all.numpy()
        results = []
        for index, image_shape in enumerate(image_shapes):
            boxes, scores, labels = [], [], []
            for start, stop in zip(bounds[:-1], bounds[1:]):
                flat_idx, level_scores = self._level_candidates(logits_np[index, start:stop])
                anchor_idx = ember.from_numpy(start + flat_idx // num_classes)
                decoded = self.box_coder.decode_single(regression_all[index][anchor_idx],
                                                       anchors[index][anchor_idx])
                boxes.append(box_ops.clip_boxes_to_image(decoded, image_shape))
                scores.append(level_scores)
                labels.append(flat_idx % num_classes)
            image_boxes = ember.cat(boxes, dim=0)
            image_scores = ember.from_numpy(np.concatenate(scores))
            image_labels = ember.from_numpy(np.concatenate(labels).astype(np.int64))
            keep = box_ops.batched_nms(image_boxes, image_scores, image_labels,
                                       self.nms_thresh)[:self.detections_per_img]
            results.append({"boxes": image_boxes[keep], "scores": image_scores[keep],
                            "labels": image_labels[keep]})
        return results


def retinanet_resnet50_fpn(*, weights=None, progress: bool = True, num_classes=None,
                           weights_backbone=None, trainable_backbone_layers=None,
                           **kwargs) -> RetinaNet:
    """RetinaNet with a ResNet-50-FPN backbone (torchvision's v1 recipe: P3-P5 from
    layer2-4, P6/P7 from P5). weights / weights_backbone: a state_dict (torchvision's own
    works) or a .safetensors path for the whole model / the ResNet-50; ember downloads
    nothing. As in torchvision, a model built on given weights uses FrozenBatchNorm2d in the
    backbone and trains only its last trainable_backbone_layers (default 3) stages."""
    from .._weights import load_weights
    pretrained = weights is not None or weights_backbone is not None
    if num_classes is None:
        num_classes = 91
    if trainable_backbone_layers is None:
        trainable_backbone_layers = 3 if pretrained else 5
    if not pretrained:
        trainable_backbone_layers = 5     # torchvision ignores the value without weights
    backbone = ResNet(Bottleneck, [3, 4, 6, 3])
    if pretrained:
        freeze_batch_norms(backbone)
    if weights_backbone is not None:
        load_weights(backbone, weights_backbone, "retinanet_resnet50_fpn")
    backbone = resnet_fpn_extractor(backbone, trainable_backbone_layers, [2, 3, 4],
                                    extra_blocks=LastLevelP6P7(256, 256))
    model = RetinaNet(backbone, num_classes, **kwargs)
    if weights is not None:
        load_weights(model, weights, "retinanet_resnet50_fpn")
    return model
