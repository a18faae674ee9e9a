"""torchvision.ops for ember: boxes, NMS, RoI pooling, focal loss.

Boxes are (x1, y1, x2, y2) float tensors unless a format says otherwise. The box
arithmetic and the RoI ops are written with ember ops, so they are differentiable with
respect to their float inputs (boxes for box_iou/box_convert; the feature map for
roi_align/roi_pool, whose sampling positions, like torchvision's, carry no gradient).
NMS is data-dependent and runs on the detached values.
"""
from __future__ import annotations

import math

import numpy as np

import ember
from ember import nn
from ember.ir import dtypes
import ember.nn.functional as F

from ._deform import DeformConv2d, deform_conv2d  # noqa: F401
from ._fpn import ExtraFPNBlock, FeaturePyramidNetwork, LastLevelMaxPool  # noqa: F401
from ._layers import (MLP, Conv2dNormActivation, Conv3dNormActivation,  # noqa: F401
                      DropBlock2d, DropBlock3d, Permute, SqueezeExcitation, StochasticDepth,
                      drop_block2d, drop_block3d, stochastic_depth)
from ._misc import FrozenBatchNorm2d, LastLevelP6P7  # noqa: F401
from ._poolers import MultiScaleRoIAlign  # noqa: F401
from ._ps_roi import PSRoIAlign, PSRoIPool, ps_roi_align, ps_roi_pool  # noqa: F401

__all__ = ["box_area", "box_iou", "generalized_box_iou", "box_convert", "clip_boxes_to_image",
           "remove_small_boxes", "nms", "batched_nms", "roi_align", "roi_pool", "RoIAlign",
           "RoIPool", "sigmoid_focal_loss", "FeaturePyramidNetwork", "LastLevelMaxPool",
           "ExtraFPNBlock", "FrozenBatchNorm2d", "LastLevelP6P7", "distance_box_iou",
           "complete_box_iou", "masks_to_boxes", "generalized_box_iou_loss",
           "distance_box_iou_loss", "complete_box_iou_loss", "ps_roi_align", "PSRoIAlign",
           "ps_roi_pool", "PSRoIPool", "deform_conv2d", "DeformConv2d", "MultiScaleRoIAlign",
           "stochastic_depth", "StochasticDepth", "Conv2dNormActivation",
           "Conv3dNormActivation", "SqueezeExcitation", "MLP", "Permute", "drop_block2d",
           "DropBlock2d", "drop_block3d", "DropBlock3d"]


# --- boxes ------------------------------------------------------------------------------
_BOX_FMTS = ("xyxy", "xywh", "cxcywh")


def _check_boxes(boxes, name):
    if boxes.ndim < 1 or int(boxes.shape[-1]) != 4:
        raise ValueError(f"{name}: boxes should be a Tensor of shape [..., N, 4], got "
                         f"{list(boxes.shape)}")


def _upcast(t):
    """torchvision's rule: half floats to float32, small integers to int32, so products of
    coordinates do not overflow."""
    if t.dtype.is_floating_point:
        return t if t.dtype in (dtypes.float32, dtypes.float64) else t.to(dtypes.float32)
    return t if t.dtype in (dtypes.int32, dtypes.int64) else t.to(dtypes.int32)


def _upcast_non_float(t):
    return t if t.dtype in (dtypes.float32, dtypes.float64) else t.to(dtypes.float32)


def box_area(boxes, fmt: str = "xyxy"):
    """Areas of [..., N, 4] boxes given in `fmt` ('xyxy', 'xywh' or 'cxcywh')."""
    if fmt not in _BOX_FMTS:
        raise ValueError(f"Unsupported Bounding Box area for given format {fmt}")
    _check_boxes(boxes, "box_area")
    boxes = _upcast(boxes)
    if fmt == "xyxy":
        return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return boxes[..., 2] * boxes[..., 3]


def _corners(boxes, fmt):
    """(top-left, bottom-right) [..., N, 1, 2] views for pairwise broadcasting."""
    if fmt == "xyxy":
        return boxes[..., :2], boxes[..., 2:]
    if fmt == "xywh":
        return boxes[..., :2], boxes[..., :2] + boxes[..., 2:]
    return boxes[..., :2] - boxes[..., 2:] / 2, boxes[..., :2] + boxes[..., 2:] / 2


def _inter_union(boxes1, boxes2, fmt="xyxy"):
    """Pairwise [..., N, M] intersection and union areas."""
    area1, area2 = box_area(boxes1, fmt), box_area(boxes2, fmt)
    lt1, rb1 = _corners(boxes1, fmt)
    lt2, rb2 = _corners(boxes2, fmt)
    lt = ember.maximum(lt1.unsqueeze(-2), lt2.unsqueeze(-3))
    rb = ember.minimum(rb1.unsqueeze(-2), rb2.unsqueeze(-3))
    wh = _upcast(rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, area1.unsqueeze(-1) + area2.unsqueeze(-2) - inter


def box_iou(boxes1, boxes2, fmt: str = "xyxy"):
    """[..., N, M] intersection over union of two sets of boxes."""
    if fmt not in _BOX_FMTS:
        raise ValueError(f"Unsupported Box IoU Calculation for given fmt {fmt}.")
    _check_boxes(boxes1, "box_iou")
    _check_boxes(boxes2, "box_iou")
    inter, union = _inter_union(boxes1, boxes2, fmt)
    return inter / union


def _hull_wh(boxes1, boxes2):
    """Width and height [..., N, M, 2] of the smallest box enclosing each pair."""
    lt = ember.minimum(boxes1[..., :2].unsqueeze(-2), boxes2[..., :2].unsqueeze(-3))
    rb = ember.maximum(boxes1[..., 2:].unsqueeze(-2), boxes2[..., 2:].unsqueeze(-3))
    return _upcast(rb - lt).clamp(min=0)


def generalized_box_iou(boxes1, boxes2):
    """IoU minus the fraction of the enclosing box that the union leaves empty."""
    _check_boxes(boxes1, "generalized_box_iou")
    _check_boxes(boxes2, "generalized_box_iou")
    inter, union = _inter_union(boxes1, boxes2)
    iou = inter / union
    wh = _hull_wh(boxes1, boxes2)
    hull = wh[..., 0] * wh[..., 1]
    return iou - (hull - union) / hull


def _diou_iou(boxes1, boxes2, eps):
    """(distance IoU, IoU): IoU less the squared centre distance over the squared diagonal
    of the enclosing box."""
    iou = box_iou(boxes1, boxes2)
    wh = _hull_wh(boxes1, boxes2)
    diagonal = wh[..., 0] ** 2 + wh[..., 1] ** 2 + eps
    cx1 = (boxes1[..., 0] + boxes1[..., 2]) / 2
    cy1 = (boxes1[..., 1] + boxes1[..., 3]) / 2
    cx2 = (boxes2[..., 0] + boxes2[..., 2]) / 2
    cy2 = (boxes2[..., 1] + boxes2[..., 3]) / 2
    dist = _upcast(cx1.unsqueeze(-1) - cx2.unsqueeze(-2)) ** 2 + \
        _upcast(cy1.unsqueeze(-1) - cy2.unsqueeze(-2)) ** 2
    return iou - dist / diagonal, iou


def distance_box_iou(boxes1, boxes2, eps: float = 1e-7):
    """[..., N, M] distance IoU (Zheng et al. 2020)."""
    _check_boxes(boxes1, "distance_box_iou")
    _check_boxes(boxes2, "distance_box_iou")
    return _diou_iou(_upcast(boxes1), _upcast(boxes2), eps)[0]


def _aspect_term(w1, h1, w2, h2):
    return (4 / math.pi ** 2) * (ember.atan(w1 / h1) - ember.atan(w2 / h2)) ** 2


def complete_box_iou(boxes1, boxes2, eps: float = 1e-7):
    """[..., N, M] complete IoU: distance IoU less alpha * v, v the aspect-ratio mismatch
    (alpha is a constant for autograd, as in the paper and torchvision)."""
    _check_boxes(boxes1, "complete_box_iou")
    _check_boxes(boxes2, "complete_box_iou")
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    diou, iou = _diou_iou(boxes1, boxes2, eps)
    w1 = (boxes1[..., 2] - boxes1[..., 0]).unsqueeze(-1)
    h1 = (boxes1[..., 3] - boxes1[..., 1]).unsqueeze(-1)
    w2 = (boxes2[..., 2] - boxes2[..., 0]).unsqueeze(-2)
    h2 = (boxes2[..., 3] - boxes2[..., 1]).unsqueeze(-2)
    v = _aspect_term(w1, h1, w2, h2)
    with ember.no_grad():
        alpha = v / (1 - iou + v + eps)
    return diou - alpha * v


def _to_xyxy(boxes, fmt):
    a, b, c, d = boxes.unbind(-1)
    if fmt == "xywh":
        return ember.stack([a, b, a + c, b + d], dim=-1)
    if fmt == "cxcywh":
        return ember.stack([a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d], dim=-1)
    return boxes


def _from_xyxy(boxes, fmt):
    x1, y1, x2, y2 = boxes.unbind(-1)
    if fmt == "xywh":
        return ember.stack([x1, y1, x2 - x1, y2 - y1], dim=-1)
    if fmt == "cxcywh":
        return ember.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)
    return boxes


def box_convert(boxes, in_fmt: str, out_fmt: str):
    """Convert [..., 4] boxes between 'xyxy', 'xywh' and 'cxcywh'."""
    if in_fmt not in _BOX_FMTS or out_fmt not in _BOX_FMTS:
        raise ValueError(f"Unsupported Bounding Box Conversions for given in_fmt {in_fmt} and "
                         f"out_fmt {out_fmt} (ember supports {list(_BOX_FMTS)}; the rotated "
                         f"formats are not built)")
    if in_fmt == out_fmt:
        return boxes.clone()
    return _from_xyxy(_to_xyxy(boxes, in_fmt), out_fmt)


def clip_boxes_to_image(boxes, size):
    """Clamp x to [0, width] and y to [0, height]; size is (height, width)."""
    height, width = size
    x1, y1, x2, y2 = boxes.unbind(-1)
    return ember.stack([x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width),
                        y2.clamp(0, height)], dim=-1)


def remove_small_boxes(boxes, min_size: float):
    """Indices of the boxes whose sides are both at least min_size."""
    arr = boxes.detach().cpu().numpy()
    keep = ((arr[..., 2] - arr[..., 0]) >= min_size) & ((arr[..., 3] - arr[..., 1]) >= min_size)
    return ember.from_numpy(np.nonzero(keep)[0].astype(np.int64)).to(boxes.device)


def masks_to_boxes(masks):
    """[N, H, W] masks -> [N, 4] float boxes (x1, y1, x2, y2) around the non-zero pixels;
    an empty mask gives zeros, as in torchvision."""
    if masks.numel() == 0:
        return ember.zeros(0, 4, device=masks.device)
    if masks.ndim != 3:
        raise ValueError(f"masks_to_boxes: masks should be a Tensor[N, H, W], got "
                         f"{list(masks.shape)}")
    arr = masks.detach().cpu().numpy() != 0
    out = np.zeros((arr.shape[0], 4), np.float32)
    for i, m in enumerate(arr):
        ys, xs = np.nonzero(m)
        if len(xs):
            out[i] = [xs.min(), ys.min(), xs.max(), ys.max()]
    return ember.from_numpy(out).to(masks.device)


# --- box regression losses (elementwise over matching boxes) ---------------------------
def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"Invalid Value for arg 'reduction': '{reduction} \n Supported "
                     f"reduction modes: 'none', 'mean', 'sum'")


def _pair_inter_union(boxes1, boxes2):
    x1, y1, x2, y2 = boxes1.unbind(-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(-1)
    w = ember.minimum(x2, x2g) - ember.maximum(x1, x1g)
    h = ember.minimum(y2, y2g) - ember.maximum(y1, y1g)
    inter = ember.where((w > 0) & (h > 0), w * h, ember.zeros_like(w))
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    return inter, union


def _pair_hull(boxes1, boxes2):
    x1, y1, x2, y2 = boxes1.unbind(-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(-1)
    return (ember.maximum(x2, x2g) - ember.minimum(x1, x1g),
            ember.maximum(y2, y2g) - ember.minimum(y1, y1g))


def generalized_box_iou_loss(boxes1, boxes2, reduction: str = "none", eps: float = 1e-7):
    """1 - GIoU of matching boxes (boxes1[i] with boxes2[i])."""
    boxes1, boxes2 = _upcast_non_float(boxes1), _upcast_non_float(boxes2)
    inter, union = _pair_inter_union(boxes1, boxes2)
    iou = inter / (union + eps)
    hw, hh = _pair_hull(boxes1, boxes2)
    hull = hw * hh
    return _reduce(1 - (iou - (hull - union) / (hull + eps)), reduction)


def _pair_diou_loss(boxes1, boxes2, eps):
    inter, union = _pair_inter_union(boxes1, boxes2)
    iou = inter / (union + eps)
    hw, hh = _pair_hull(boxes1, boxes2)
    diagonal = hw ** 2 + hh ** 2 + eps
    x1, y1, x2, y2 = boxes1.unbind(-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(-1)
    dist = ((x1 + x2) / 2 - (x1g + x2g) / 2) ** 2 + ((y1 + y2) / 2 - (y1g + y2g) / 2) ** 2
    return 1 - iou + dist / diagonal, iou


def distance_box_iou_loss(boxes1, boxes2, reduction: str = "none", eps: float = 1e-7):
    """1 - DIoU of matching boxes."""
    boxes1, boxes2 = _upcast_non_float(boxes1), _upcast_non_float(boxes2)
    return _reduce(_pair_diou_loss(boxes1, boxes2, eps)[0], reduction)


def complete_box_iou_loss(boxes1, boxes2, reduction: str = "none", eps: float = 1e-7):
    """1 - CIoU of matching boxes (the DIoU part uses eps=1e-7, as torchvision's does)."""
    boxes1, boxes2 = _upcast_non_float(boxes1), _upcast_non_float(boxes2)
    diou_loss, iou = _pair_diou_loss(boxes1, boxes2, 1e-7)
    x1, y1, x2, y2 = boxes1.unbind(-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(-1)
    v = _aspect_term(x2g - x1g, y2g - y1g, x2 - x1, y2 - y1)
    with ember.no_grad():
        alpha = v / (1 - iou + v + eps)
    return _reduce(diou_loss + alpha * v, reduction)


# --- non-maximum suppression ------------------------------------------------------------
def _nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: visit boxes by decreasing score, drop those overlapping a kept box."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, i].astype(np.float64) for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[iou > iou_threshold]] = True
    return np.asarray(keep, dtype=np.int64)


def nms(boxes, scores, iou_threshold: float):
    """Indices (int64, by decreasing score) of the boxes kept by greedy NMS."""
    _check_boxes(boxes, "nms")
    if boxes.ndim != 2:
        raise ValueError(f"nms: boxes should be a Tensor of shape [N, 4], got "
                         f"{list(boxes.shape)}")
    if scores.ndim != 1 or int(scores.shape[0]) != int(boxes.shape[0]):
        raise ValueError(f"nms: scores should be a 1-D Tensor with one score per box, got "
                         f"{list(scores.shape)} for {int(boxes.shape[0])} boxes")
    keep = _nms_numpy(boxes.detach().cpu().numpy(), scores.detach().cpu().numpy(),
                      float(iou_threshold))
    return ember.from_numpy(keep).to(boxes.device)


def batched_nms(boxes, scores, idxs, iou_threshold: float):
    """NMS within each category (idxs); boxes of different categories never suppress."""
    _check_boxes(boxes, "batched_nms")
    b, s = boxes.detach().cpu().numpy(), scores.detach().cpu().numpy()
    cats = idxs.detach().cpu().numpy()
    kept = [np.nonzero(cats == c)[0][_nms_numpy(b[cats == c], s[cats == c], iou_threshold)]
            for c in np.unique(cats)]
    keep = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    keep = keep[np.argsort(-s[keep], kind="stable")]
    return ember.from_numpy(keep.astype(np.int64)).to(boxes.device)


# --- RoI pooling ------------------------------------------------------------------------
def _rois(boxes, name) -> np.ndarray:
    """RoIs as a [K, 5] (batch index, x1, y1, x2, y2) numpy array."""
    if isinstance(boxes, (list, tuple)):
        parts = []
        for i, b in enumerate(boxes):
            if b.ndim != 2 or int(b.shape[1]) != 4:
                raise ValueError(f"{name}: each box Tensor in the list should have shape "
                                 f"[L, 4], got {list(b.shape)}")
            arr = b.detach().numpy().astype(np.float64)
            parts.append(np.concatenate([np.full((len(arr), 1), i), arr], axis=1))
        return np.concatenate(parts) if parts else np.zeros((0, 5))
    if boxes.ndim != 2 or int(boxes.shape[1]) != 5:
        raise ValueError(f"{name}: boxes should be a Tensor[K, 5] or a list of Tensor[L, 4], "
                         f"got {list(boxes.shape)}")
    return boxes.detach().numpy().astype(np.float64)


def _pair(size):
    return (int(size), int(size)) if isinstance(size, (int, float)) else tuple(size)


def _axis_weights(start, length, bins, grid, size):
    """[bins, size] averaging weights of RoIAlign's bilinear samples along one axis.

    Samples sit at start + (bin + (g + 0.5) / grid) * length / bins; each one splits its
    weight between the two neighbouring pixels, and those more than a pixel outside the
    map contribute zero (torchvision's rule). Because bilinear sampling is separable, the
    2-D output is Wy @ X @ Wx^T.
    """
    weights = np.zeros((bins, size))
    step = length / bins
    for b in range(bins):
        for g in range(grid):
            pos = start + b * step + (g + 0.5) * step / grid
            if pos < -1.0 or pos > size:
                continue
            pos = max(pos, 0.0)
            low = int(pos)
            if low >= size - 1:
                low = high = size - 1
                pos = float(low)
            else:
                high = low + 1
            frac = pos - low
            weights[b, low] += (1.0 - frac) / grid
            weights[b, high] += frac / grid
    return weights


def _np_dtype(input):
    """The numpy dtype the host-built weights take (bfloat16 has none: float32)."""
    return np.float32 if input.dtype == dtypes.bfloat16 else np.dtype(input.dtype.np_dtype)


def _roi_align_weights(rois, out_h, out_w, scale, sampling_ratio, aligned, height, width):
    offset = 0.5 if aligned else 0.0
    wy = np.zeros((len(rois), out_h, height))
    wx = np.zeros((len(rois), out_w, width))
    for k, (_, x1, y1, x2, y2) in enumerate(rois):
        x0, y0 = x1 * scale - offset, y1 * scale - offset
        roi_w, roi_h = x2 * scale - offset - x0, y2 * scale - offset - y0
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / out_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / out_w)
        if grid_h > 0:
            wy[k] = _axis_weights(y0, roi_h, out_h, grid_h, height)
        if grid_w > 0:
            wx[k] = _axis_weights(x0, roi_w, out_w, grid_w, width)
    return wy, wx


def _per_image(input, rois, out_hw, compute):
    """Run compute(image [C, H, W], rows) per batch image; reassemble in RoI order."""
    if len(rois) == 0:
        return ember.zeros(0, int(input.shape[1]), *out_hw, dtype=input.dtype)
    batch = rois[:, 0].astype(np.int64)
    outs, order = [], []
    for b in np.unique(batch):
        rows = np.nonzero(batch == b)[0]
        outs.append(compute(input[int(b)], rows))
        order.append(rows)
    out = ember.cat(outs, dim=0) if len(outs) > 1 else outs[0]
    order = np.concatenate(order)
    if (order == np.arange(len(order))).all():
        return out
    inverse = np.argsort(order)
    return out.index_select(0, ember.from_numpy(inverse.astype(np.int64)))


def roi_align(input, boxes, output_size, spatial_scale: float = 1.0, sampling_ratio: int = -1,
              aligned: bool = False):
    """RoIAlign (Mask R-CNN): average of bilinear samples in each output bin.

    input: [N, C, H, W]; boxes: Tensor[K, 5] (batch index, x1, y1, x2, y2) or a list of
    Tensor[L, 4] per image. Returns [K, C, out_h, out_w].
    """
    if input.ndim != 4:
        raise ValueError(f"roi_align: input should be a 4-D Tensor [N, C, H, W], got "
                         f"{input.ndim}-D")
    out_h, out_w = _pair(output_size)
    rois = _rois(boxes, "roi_align")
    height, width = int(input.shape[2]), int(input.shape[3])
    wy, wx = _roi_align_weights(rois, out_h, out_w, float(spatial_scale), int(sampling_ratio),
                                bool(aligned), height, width)
    np_dtype = _np_dtype(input)

    def compute(image, rows):
        ay = ember.from_numpy(wy[rows].astype(np_dtype)).to(input.dtype)   # [k, oh, H]
        ax = ember.from_numpy(wx[rows].astype(np_dtype)).to(input.dtype)   # [k, ow, W]
        rows_out = ember.matmul(ay.unsqueeze(1), image.unsqueeze(0))      # [k, C, oh, W]
        return ember.matmul(rows_out, ax.transpose(1, 2).unsqueeze(1))      # [k, C, oh, ow]
    return _per_image(input, rois, (out_h, out_w), compute)


def _c_round(v: float) -> int:
    """Round half away from zero (C's round), as RoIPool quantizes box corners."""
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))


def _pool_bins(start, length, bins, size):
    """(lo, hi) pixel ranges of RoIPool's bins along one axis, clipped to the map."""
    step = length / bins
    out = []
    for b in range(bins):
        lo = min(max(int(math.floor(b * step)) + start, 0), size)
        hi = min(max(int(math.ceil((b + 1) * step)) + start, 0), size)
        out.append((lo, hi))
    return out


def roi_pool(input, boxes, output_size, spatial_scale: float = 1.0):
    """RoIPool (Fast R-CNN): max over each bin of the quantized box; empty bins give 0."""
    if input.ndim != 4:
        raise ValueError(f"roi_pool: input should be a 4-D Tensor [N, C, H, W], got "
                         f"{input.ndim}-D")
    out_h, out_w = _pair(output_size)
    rois = _rois(boxes, "roi_pool")
    height, width = int(input.shape[2]), int(input.shape[3])
    scale = float(spatial_scale)

    def one_roi(image, roi):
        x1, y1, x2, y2 = (_c_round(v * scale) for v in roi[1:])
        ys = _pool_bins(y1, max(y2 - y1 + 1, 1), out_h, height)
        xs = _pool_bins(x1, max(x2 - x1 + 1, 1), out_w, width)
        cells = []
        for (h0, h1) in ys:
            for (w0, w1) in xs:
                if h1 <= h0 or w1 <= w0:
                    cells.append(ember.zeros(int(image.shape[0]), dtype=image.dtype))
                else:
                    cells.append(image[:, h0:h1, w0:w1].amax(dim=(-2, -1)))
        return ember.stack(cells, dim=-1).reshape([-1, out_h, out_w])

    def compute(image, rows):
        return ember.stack([one_roi(image, rois[r]) for r in rows], dim=0)
    return _per_image(input, rois, (out_h, out_w), compute)


class RoIAlign(nn.Module):
    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int,
                 aligned: bool = False):
        super().__init__()
        self.output_size, self.spatial_scale = output_size, spatial_scale
        self.sampling_ratio, self.aligned = sampling_ratio, aligned

    def forward(self, input, rois):
        return roi_align(input, rois, self.output_size, self.spatial_scale,
                         self.sampling_ratio, self.aligned)


class RoIPool(nn.Module):
    def __init__(self, output_size, spatial_scale: float):
        super().__init__()
        self.output_size, self.spatial_scale = output_size, spatial_scale

    def forward(self, input, rois):
        return roi_pool(input, rois, self.output_size, self.spatial_scale)


# --- losses -----------------------------------------------------------------------------
def sigmoid_focal_loss(inputs, targets, alpha: float = 0.25, gamma: float = 2,
                       reduction: str = "none"):
    """RetinaNet's focal loss: BCE-with-logits scaled by (1 - p_t)^gamma and alpha_t."""
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"Invalid Value for arg 'reduction': '{reduction} \n Supported "
                         f"reduction modes: 'none', 'mean', 'sum'")
    p = ember.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


# --- torchvision.ops's submodule names ----------------------------------------------------
# Public code imports from torchvision.ops's submodules (`from torchvision.ops.boxes import
# box_area`, `from torchvision.ops import boxes as box_ops`, `torchvision.ops.misc.
# FrozenBatchNorm2d`); here every one of them is this module.
_SUBMODULES = ("boxes", "misc", "feature_pyramid_network", "focal_loss", "roi_align",
               "roi_pool", "poolers", "ps_roi_align", "ps_roi_pool", "deform_conv",
               "stochastic_depth", "giou_loss", "diou_loss", "ciou_loss", "drop_block")


def _install_submodule_names() -> None:
    import sys
    this = sys.modules[__name__]
    for name in _SUBMODULES:
        globals().setdefault(name, this)
        sys.modules.setdefault(f"{__name__}.{name}", this)


_install_submodule_names()
