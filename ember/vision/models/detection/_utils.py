"""torchvision.models.detection._utils.BoxCoder: boxes <-> regression targets
(dx, dy, dw, dh) relative to reference boxes (anchors), written with ember ops so that
encoding and decoding are differentiable."""
from __future__ import annotations

import math

import ember

__all__ = ["BoxCoder"]


class BoxCoder:
    """Encodes a box relative to a reference as ((cx - rcx) / rw * wx, (cy - rcy) / rh * wy,
    log(w / rw) * ww, log(h / rh) * wh); decoding inverts it, with dw and dh clamped to
    bbox_xform_clip so exp() cannot overflow."""

    def __init__(self, weights, bbox_xform_clip: float = math.log(1000.0 / 16)):
        self.weights = tuple(float(w) for w in weights)
        self.bbox_xform_clip = bbox_xform_clip

    @staticmethod
    def _centers_sizes(boxes):
        x1, y1, x2, y2 = boxes.unbind(-1)
        widths, heights = x2 - x1, y2 - y1
        return x1 + 0.5 * widths, y1 + 0.5 * heights, widths, heights

    def encode_single(self, reference_boxes, proposals):
        """Regression targets [N, 4] that take proposals [N, 4] to reference_boxes [N, 4]."""
        wx, wy, ww, wh = self.weights
        ex_cx, ex_cy, ex_w, ex_h = self._centers_sizes(proposals)
        gt_cx, gt_cy, gt_w, gt_h = self._centers_sizes(reference_boxes)
        return ember.stack([wx * (gt_cx - ex_cx) / ex_w, wy * (gt_cy - ex_cy) / ex_h,
                            ww * ember.log(gt_w / ex_w), wh * ember.log(gt_h / ex_h)], dim=1)

    def encode(self, reference_boxes, proposals):
        """Per-image lists in, per-image list of [N_i, 4] targets out."""
        sizes = [int(b.shape[0]) for b in reference_boxes]
        targets = self.encode_single(ember.cat(list(reference_boxes), dim=0),
                                     ember.cat(list(proposals), dim=0))
        return list(targets.split(sizes, 0))

    def decode_single(self, rel_codes, boxes):
        """Boxes [N, 4k] from codes [N, 4k] applied to reference boxes [N, 4]."""
        boxes = boxes.to(rel_codes.dtype)
        cx, cy, widths, heights = (t.unsqueeze(1) for t in self._centers_sizes(boxes))
        codes = rel_codes.reshape(int(rel_codes.shape[0]), -1, 4)
        wx, wy, ww, wh = self.weights
        dx, dy = codes[..., 0] / wx, codes[..., 1] / wy
        dw = (codes[..., 2] / ww).clamp(max=self.bbox_xform_clip)
        dh = (codes[..., 3] / wh).clamp(max=self.bbox_xform_clip)
        pred_cx, pred_cy = dx * widths + cx, dy * heights + cy
        half_w, half_h = 0.5 * (ember.exp(dw) * widths), 0.5 * (ember.exp(dh) * heights)
        out = ember.stack([pred_cx - half_w, pred_cy - half_h, pred_cx + half_w,
                           pred_cy + half_h], dim=2)
        return out.reshape(int(rel_codes.shape[0]), -1)

    def decode(self, rel_codes, boxes):
        """torchvision's batched form: boxes is a list of [N_i, 4]; out [sum N_i, k, 4]."""
        reference = ember.cat(list(boxes), dim=0)
        total = int(reference.shape[0])
        return self.decode_single(rel_codes.reshape(total, -1), reference).reshape(total, -1, 4)
