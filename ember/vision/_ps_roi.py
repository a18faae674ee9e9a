"""torchvision.ops.ps_roi_align / ps_roi_pool: position-sensitive RoI pooling (R-FCN).

Output channel c of bin (i, j) reads input channel (c * out_h + i) * out_w + j. Both ops
are separable along the two axes (bilinear samples for ps_roi_align, box averages for
ps_roi_pool), so per image the pooled map of every channel is Wy @ X @ Wx^T (two batched
matmuls, weights built on the host) and the position-sensitive channel is then picked per
bin. Differentiable in the feature map; the box geometry carries no gradient.
"""
from __future__ import annotations

import math

import numpy as np

import ember
from ember import nn


def _checked(input, name, out_h, out_w):
    if input.ndim != 4:
        raise ValueError(f"{name}: input should be a 4-D Tensor [N, C, H, W], got "
                         f"{input.ndim}-D")
    channels = int(input.shape[1])
    if channels % (out_h * out_w) != 0:
        raise ValueError(f"{name}: input channels ({channels}) must be a multiple of "
                         f"output_size height * width ({out_h} * {out_w})")
    return channels // (out_h * out_w)


def _ps_align_weights(rois, out_h, out_w, scale, sampling_ratio, height, width):
    """ps_roi_align's sampling: roi_align's with aligned=True (box corners shifted by half
    a pixel, no minimum size)."""
    from .ops import _roi_align_weights
    return _roi_align_weights(rois, out_h, out_w, scale, sampling_ratio, True, height, width)


def _box_bins(start, length, bins, size):
    """[bins, size] averaging weights of ps_roi_pool's bins along one axis. As in
    torchvision's CPU kernel, bin ends are clipped to size - 1, so the last row or column
    of the map is never pooled."""
    weights = np.zeros((bins, size))
    step = length / bins
    for b in range(bins):
        lo = min(max(int(math.floor(b * step)) + start, 0), size - 1)
        hi = min(max(int(math.ceil((b + 1) * step)) + start, 0), size - 1)
        if hi > lo:
            weights[b, lo:hi] = 1.0 / (hi - lo)
    return weights


def _ps_pool_weights(rois, out_h, out_w, scale, height, width):
    from .ops import _c_round
    wy = np.zeros((len(rois), out_h, height))
    wx = np.zeros((len(rois), out_w, width))
    for k, (_, x1, y1, x2, y2) in enumerate(rois):
        sx, sy, ex, ey = (_c_round(v * scale) for v in (x1, y1, x2, y2))
        wy[k] = _box_bins(sy, max(ey - sy, 1), out_h, height)
        wx[k] = _box_bins(sx, max(ex - sx, 1), out_w, width)
    return wy, wx


def _pool_separable(input, rois, wy, wx, out_h, out_w, channels_out):
    """Per image: all channels pooled by Wy @ X @ Wx^T, then each bin's own channel."""
    from .ops import _np_dtype, _per_image
    np_dtype = _np_dtype(input)
    bins = out_h * out_w

    def compute(image, rows):
        ay = ember.from_numpy(wy[rows].astype(np_dtype)).to(input.dtype)
        ax = ember.from_numpy(wx[rows].astype(np_dtype)).to(input.dtype)
        pooled = ember.matmul(ember.matmul(ay.unsqueeze(1), image.unsqueeze(0)),
                              ax.transpose(1, 2).unsqueeze(1))           # [k, C, oh, ow]
        pooled = pooled.reshape([len(rows), channels_out, bins, bins])
        return ember.diagonal(pooled, dim1=-2, dim2=-1).reshape(
            [len(rows), channels_out, out_h, out_w])
    out = _per_image(input, rois, (out_h, out_w), compute)
    if len(rois) == 0:
        return out[:, :channels_out]
    return out


def ps_roi_align(input, boxes, output_size, spatial_scale: float = 1.0,
                 sampling_ratio: int = -1):
    """Position-sensitive RoIAlign. input [N, C, H, W] with C a multiple of
    out_h * out_w; boxes Tensor[K, 5] or a list of Tensor[L, 4]. Returns
    [K, C / (out_h * out_w), out_h, out_w]."""
    from .ops import _pair, _rois
    out_h, out_w = _pair(output_size)
    channels_out = _checked(input, "ps_roi_align", out_h, out_w)
    rois = _rois(boxes, "ps_roi_align")
    height, width = int(input.shape[2]), int(input.shape[3])
    wy, wx = _ps_align_weights(rois, out_h, out_w, float(spatial_scale), int(sampling_ratio),
                               height, width)
    return _pool_separable(input, rois, wy, wx, out_h, out_w, channels_out)


def ps_roi_pool(input, boxes, output_size, spatial_scale: float = 1.0):
    """Position-sensitive RoIPool: the mean of each bin of the rounded box."""
    from .ops import _pair, _rois
    out_h, out_w = _pair(output_size)
    channels_out = _checked(input, "ps_roi_pool", out_h, out_w)
    rois = _rois(boxes, "ps_roi_pool")
    height, width = int(input.shape[2]), int(input.shape[3])
    wy, wx = _ps_pool_weights(rois, out_h, out_w, float(spatial_scale), height, width)
    return _pool_separable(input, rois, wy, wx, out_h, out_w, channels_out)


class PSRoIAlign(nn.Module):
    def __init__(self, output_size, spatial_scale: float, sampling_ratio: int):
        super().__init__()
        self.output_size, self.spatial_scale = output_size, spatial_scale
        self.sampling_ratio = sampling_ratio

    def forward(self, input, rois):
        return ps_roi_align(input, rois, self.output_size, self.spatial_scale,
                            self.sampling_ratio)

    def extra_repr(self):
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}")


class PSRoIPool(nn.Module):
    def __init__(self, output_size, spatial_scale: float):
        super().__init__()
        self.output_size, self.spatial_scale = output_size, spatial_scale

    def forward(self, input, rois):
        return ps_roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self):
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
