"""torchvision.ops.MultiScaleRoIAlign: RoIAlign over a feature pyramid, each box pooled
from the level its size maps to (FPN paper, eq. 1)."""
from __future__ import annotations

import math

import numpy as np

import ember
from ember import nn


def _level_scale(feature_hw, image_hw) -> float:
    """The power of two nearest to feature size / image size (the height decides)."""
    approx = float(feature_hw[0]) / float(image_hw[0])
    return 2.0 ** float(np.round(np.log2(np.float32(approx))))


class LevelMapper:
    """Level of each box: floor(k0 + log2(sqrt(area) / s0) + eps), clamped to the pyramid,
    returned relative to its first level (computed in float32 as torchvision does)."""

    def __init__(self, k_min: int, k_max: int, canonical_scale: int = 224,
                 canonical_level: int = 4, eps: float = 1e-6):
        self.k_min, self.k_max = k_min, k_max
        self.s0, self.lvl0, self.eps = canonical_scale, canonical_level, eps

    def __call__(self, boxlists) -> np.ndarray:
        boxes = np.concatenate([b.detach().cpu().numpy() for b in boxlists]).astype(np.float32)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        s = np.sqrt(area)
        levels = np.floor(np.float32(self.lvl0) + np.log2(s / np.float32(self.s0))
                          + np.float32(self.eps))
        return (np.clip(levels, self.k_min, self.k_max) - self.k_min).astype(np.int64)


class MultiScaleRoIAlign(nn.Module):
    """forward(x: dict of [N, C, H, W] maps, boxes: list of [L, 4] per image,
    image_shapes: list of (h, w)) -> [K, C, out_h, out_w] in box order."""

    def __init__(self, featmap_names, output_size, sampling_ratio: int, *,
                 canonical_scale: int = 224, canonical_level: int = 4):
        super().__init__()
        if isinstance(output_size, int):
            output_size = (output_size, output_size)
        self.featmap_names = list(featmap_names)
        self.sampling_ratio = sampling_ratio
        self.output_size = tuple(output_size)
        self.canonical_scale, self.canonical_level = canonical_scale, canonical_level
        self.scales = None
        self.map_levels = None

    def _setup(self, features, image_shapes):
        if not image_shapes:
            raise ValueError("MultiScaleRoIAlign: images list should not be empty")
        image_hw = (max(s[0] for s in image_shapes), max(s[1] for s in image_shapes))
        scales = [_level_scale(f.shape[-2:], image_hw) for f in features]
        lvl_min = -math.log2(scales[0])
        lvl_max = -math.log2(scales[-1])
        self.scales = scales
        self.map_levels = LevelMapper(int(lvl_min), int(lvl_max), self.canonical_scale,
                                      self.canonical_level)

    def forward(self, x, boxes, image_shapes):
        from .ops import roi_align
        features = [v for k, v in x.items() if k in self.featmap_names]
        self._setup(features, image_shapes)
        if len(features) == 1:
            return roi_align(features[0], boxes, self.output_size, self.scales[0],
                             self.sampling_ratio)
        levels = self.map_levels(boxes)
        rois = ember.cat([ember.cat([ember.full([int(b.shape[0]), 1], float(i),
                                                dtype=b.dtype, device=b.device), b], dim=1)
                          for i, b in enumerate(boxes)], dim=0)
        parts, order = [], []
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            rows = np.nonzero(levels == level)[0]
            if len(rows) == 0:
                continue
            picked = rois.index_select(0, ember.from_numpy(rows).to(rois.device))
            parts.append(roi_align(feature, picked, self.output_size, scale,
                                   self.sampling_ratio))
            order.append(rows)
        if not parts:
            return ember.zeros(0, int(features[0].shape[1]), *self.output_size,
                               dtype=features[0].dtype, device=features[0].device)
        out = ember.cat(parts, dim=0)
        inverse = np.argsort(np.concatenate(order)).astype(np.int64)
        return out.index_select(0, ember.from_numpy(inverse).to(out.device))

    def extra_repr(self):
        return (f"featmap_names={self.featmap_names}, output_size={self.output_size}, "
                f"sampling_ratio={self.sampling_ratio}")
