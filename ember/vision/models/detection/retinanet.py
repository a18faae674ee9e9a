"""torchvision.models.detection.RetinaNet and retinanet_resnet50_fpn.

A ResNet-50 + FPN (P3-P7) backbone, a classification head (sigmoid logits per anchor and
class) and a box-regression head shared across levels, anchors from AnchorGenerator, and
torchvision's post-processing per level (score threshold, top-k candidates, box decoding,
clipping), then class-wise NMS and the detections-per-image cap. Module names follow
torchvision's, so its state_dict loads as it is. The post-processing is data-dependent and
runs on the detached values. Training mode returns torchvision's two losses (sigmoid focal
loss for classification, L1 on box codes), matching anchors to boxes on the host.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

import ember
from ember import nn
from ember.nn import init
import ember.nn.functional as F

from ... import ops as box_ops
from ..._misc import LastLevelP6P7
from ..resnet import Bottleneck, ResNet
from ._utils import BoxCoder
from .anchor_utils import AnchorGenerator
from .backbone_utils import freeze_batch_norms, resnet_fpn_extractor
from .transform import GeneralizedRCNNTransform

__all__ = ["RetinaNet", "RetinaNetHead", "RetinaNetClassificationHead",
           "RetinaNetRegressionHead", "Matcher", "retinanet_resnet50_fpn"]

BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS = -1, -2


def _on(array: np.ndarray, like):
    """A host array (indices, constants) as a tensor on `like`'s device."""
    return ember.from_numpy(np.ascontiguousarray(array)).to(like.device)


def _iou_matrix(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """[N, M] IoU in the boxes' own precision (float32 boxes give float32 IoU, so the
    threshold comparisons fall as torchvision's do)."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


class Matcher:
    """Assigns each prediction (column of an [N ground truth, M predictions] quality
    matrix) its best ground truth when the quality is >= high_threshold,
    BELOW_LOW_THRESHOLD (-1) below low_threshold, BETWEEN_THRESHOLDS (-2) in between.
    allow_low_quality_matches also keeps, for every ground truth, the predictions that
    reach its best quality (so no ground truth goes unmatched)."""

    BELOW_LOW_THRESHOLD = BELOW_LOW_THRESHOLD
    BETWEEN_THRESHOLDS = BETWEEN_THRESHOLDS

    def __init__(self, high_threshold: float, low_threshold: float,
                 allow_low_quality_matches: bool = False):
        if low_threshold > high_threshold:
            raise ValueError("low_threshold should be <= high_threshold")
        self.high_threshold, self.low_threshold = high_threshold, low_threshold
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, match_quality_matrix) -> np.ndarray:
        quality = np.asarray(match_quality_matrix)
        if quality.shape[0] == 0:
            raise ValueError("No ground-truth boxes available for one of the images during "
                             "training")
        best_gt = quality.argmax(0)
        best_quality = quality.max(0)
        matches = best_gt.astype(np.int64)
        matches[best_quality < self.low_threshold] = BELOW_LOW_THRESHOLD
        between = (best_quality >= self.low_threshold) & (best_quality < self.high_threshold)
        matches[between] = BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            best_per_gt = quality.max(1, keepdims=True)
            preds = np.nonzero(quality == best_per_gt)[1]
            matches[preds] = best_gt[preds]
        return matches


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

    def compute_loss(self, targets, head_outputs, matched_idxs):
        """Sigmoid focal loss over the anchors that are not between the thresholds (one-hot
        targets for foreground anchors, zeros for background), per image normalised by its
        foreground count, averaged over images."""
        losses = []
        for index, (target, matched) in enumerate(zip(targets, matched_idxs)):
            logits = head_outputs["cls_logits"][index]
            foreground = matched >= 0
            one_hot = np.zeros(tuple(logits.shape), dtype=logits.dtype.np_dtype)
            labels = target["labels"].detach().cpu().numpy()
            one_hot[np.nonzero(foreground)[0], labels[matched[foreground]]] = 1.0
            valid = np.nonzero(matched != BETWEEN_THRESHOLDS)[0]
            loss = box_ops.sigmoid_focal_loss(logits[_on(valid, logits)],
                                              _on(one_hot[valid], logits), reduction="sum")
            losses.append(loss / max(1, int(foreground.sum())))
        return sum(losses[1:], losses[0]) / len(targets)


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

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs):
        """L1 between the predicted codes of foreground anchors and the codes that take
        each anchor to its matched box, per image normalised by its foreground count."""
        if self._loss_type != "l1":
            raise ValueError(f"RetinaNetRegressionHead: box loss '{self._loss_type}' is not "
                             f"supported in ember (l1 only)")
        losses = []
        for index, (target, anchors_per_image, matched) in enumerate(
                zip(targets, anchors, matched_idxs)):
            foreground = np.nonzero(matched >= 0)[0]
            codes_all = head_outputs["bbox_regression"][index]
            fg = _on(foreground, codes_all)
            gt_boxes = target["boxes"][_on(matched[foreground], target["boxes"])]
            codes = codes_all[fg]
            wanted = self.box_coder.encode_single(gt_boxes, anchors_per_image[fg])
            loss = F.l1_loss(codes, wanted, reduction="sum")
            losses.append(loss / max(1, len(foreground)))
        return sum(losses[1:], losses[0]) / max(1, len(targets))


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

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs):
        return {"classification": self.classification_head.compute_loss(
                    targets, head_outputs, matched_idxs),
                "bbox_regression": self.regression_head.compute_loss(
                    targets, head_outputs, anchors, matched_idxs)}


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
        self.proposal_matcher = proposal_matcher or Matcher(
            fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)

    @staticmethod
    def _check_targets(targets):
        if targets is None:
            raise ValueError("targets should not be none when in training mode")
        for index, target in enumerate(targets):
            boxes = target["boxes"]
            if boxes.ndim != 2 or int(boxes.shape[-1]) != 4:
                raise ValueError(f"Expected target boxes to be a tensor of shape [N, 4], got "
                                 f"{list(boxes.shape)}.")
            arr = boxes.detach().cpu().numpy()
            bad = np.nonzero((arr[:, 2:] <= arr[:, :2]).any(1))[0]
            if len(bad):
                raise ValueError(f"All bounding boxes should have positive height and width. "
                                 f"Found invalid box {arr[bad[0]].tolist()} for target at "
                                 f"index {index}.")

    def compute_loss(self, targets, head_outputs, anchors):
        """Match anchors to ground-truth boxes by IoU, then the heads' losses."""
        matched_idxs = []
        for anchors_per_image, target in zip(anchors, targets):
            if int(target["boxes"].shape[0]) == 0:
                matched_idxs.append(np.full(int(anchors_per_image.shape[0]), -1, np.int64))
                continue
            quality = _iou_matrix(target["boxes"].detach().cpu().numpy(),
                                  anchors_per_image.detach().cpu().numpy())
            matched_idxs.append(self.proposal_matcher(quality))
        return self.head.compute_loss(targets, head_outputs, anchors, matched_idxs)

    def forward(self, images, targets=None):
        """Eval mode: detections per image. Training mode: {"classification",
        "bbox_regression"} losses for targets (one dict per image: boxes [N, 4] in the
        input image's pixels, labels [N] int64)."""
        if self.training:
            self._check_targets(targets)
        original_sizes = []
        for img in images:
            if img.ndim != 3:
                raise ValueError(f"Expecting a list of 3d tensors [C, H, W], got "
                                 f"{list(img.shape)}")
            original_sizes.append((int(img.shape[-2]), int(img.shape[-1])))
        image_list, targets = self.transform(images, targets)
        features = self.backbone(image_list.tensors)
        if isinstance(features, ember.Tensor):
            features = OrderedDict([("0", features)])
        features = list(features.values())
        head_outputs = self.head(features)
        anchors = self.anchor_generator(image_list, features)
        if self.training:
            return self.compute_loss(targets, head_outputs, anchors)
        # split per pyramid level, as torchvision hands them to postprocess_detections
        per_level = [int(f.shape[-2]) * int(f.shape[-1]) for f in features]
        anchors_per_cell = int(head_outputs["cls_logits"].shape[1]) // sum(per_level)
        sizes = [n * anchors_per_cell for n in per_level]
        split_outputs = {k: list(v.split(sizes, 1)) for k, v in head_outputs.items()}
        split_anchors = [list(a.split(sizes)) for a in anchors]
        detections = self.postprocess_detections(split_outputs, split_anchors,
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

    def postprocess_detections(self, head_outputs, anchors, image_shapes):
        """head_outputs: {"cls_logits", "bbox_regression"} -> per-level lists of [N,
        anchors_l, K] / [N, anchors_l, 4]; anchors: per image, per-level [anchors_l, 4].
        Per image and level: threshold, top-k, decode, clip; then class-wise NMS and the
        detections_per_img cap."""
        logits_levels = [t.detach() for t in head_outputs["cls_logits"]]
        regression_levels = [t.detach() for t in head_outputs["bbox_regression"]]
        num_classes = int(logits_levels[0].shape[-1])
        results = []
        for index, image_shape in enumerate(image_shapes):
            boxes, scores, labels = [], [], []
            for logits, regression, level_anchors in zip(logits_levels, regression_levels,
                                                         anchors[index]):
                flat_idx, level_scores = self._level_candidates(logits[index].cpu().numpy())
                anchor_idx = _on(flat_idx // num_classes, regression)
                decoded = self.box_coder.decode_single(regression[index][anchor_idx],
                                                       level_anchors[anchor_idx])
                boxes.append(box_ops.clip_boxes_to_image(decoded, image_shape))
                scores.append(level_scores)
                labels.append(flat_idx % num_classes)
            image_boxes = ember.cat(boxes, dim=0)
            image_scores = _on(np.concatenate(scores), image_boxes)
            image_labels = _on(np.concatenate(labels).astype(np.int64), image_boxes)
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
