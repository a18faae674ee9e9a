"""torchvision.models.detection.anchor_utils.AnchorGenerator: per feature level, a set of
base anchors (every size x aspect ratio, centred on 0 and rounded) shifted to every cell of
the level's grid. Anchors depend only on shapes, so they are computed on the host."""
from __future__ import annotations

import numpy as np

import ember
from ember import nn

__all__ = ["AnchorGenerator"]


def _base_anchors(scales, aspect_ratios) -> np.ndarray:
    """[len(ratios) * len(scales), 4] float32 anchors (x1, y1, x2, y2) centred on 0: for each
    aspect ratio r = h / w, for each size s, a box of area s^2."""
    scales = np.asarray(scales, np.float32)
    ratios = np.asarray(aspect_ratios, np.float32)
    h_ratios = np.sqrt(ratios)
    w_ratios = np.float32(1) / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2)).astype(np.float32)


class AnchorGenerator(nn.Module):
    """sizes and aspect_ratios: one tuple per feature map (a single tuple of sizes means one
    size per map). forward(image_list, feature_maps) -> a [sum H*W*A, 4] tensor per image."""

    def __init__(self, sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)):
        super().__init__()
        if not isinstance(sizes[0], (list, tuple)):
            sizes = tuple((s,) for s in sizes)
        if not isinstance(aspect_ratios[0], (list, tuple)):
            aspect_ratios = (aspect_ratios,) * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise ValueError("sizes and aspect_ratios should have the same number of elements")
        self.sizes = sizes
        self.aspect_ratios = aspect_ratios
        self.cell_anchors = [_base_anchors(s, a) for s, a in zip(sizes, aspect_ratios)]

    def num_anchors_per_location(self):
        return [len(s) * len(a) for s, a in zip(self.sizes, self.aspect_ratios)]

    def grid_anchors(self, grid_sizes, strides) -> list:
        """Per level, [H * W * A, 4]: the base anchors at every cell's top-left corner
        (cell (i, j) sits at (j * stride_w, i * stride_h)), cell-major."""
        if len(grid_sizes) != len(self.cell_anchors):
            raise ValueError(
                "Anchors should be Tuple[Tuple[int]] because each feature map could "
                "potentially have different sizes and aspect ratios. There needs to be a "
                f"match between the number of feature maps passed ({len(grid_sizes)}) and the "
                f"number of sizes and aspect ratios specified ({len(self.cell_anchors)}).")
        out = []
        for (gh, gw), (sh, sw), base in zip(grid_sizes, strides, self.cell_anchors):
            ys, xs = np.meshgrid(np.arange(gh) * sh, np.arange(gw) * sw, indexing="ij")
            xs, ys = xs.reshape(-1), ys.reshape(-1)
            shifts = np.stack([xs, ys, xs, ys], axis=1).astype(np.float32)
            out.append((shifts[:, None, :] + base[None, :, :]).reshape(-1, 4))
        return out

    def forward(self, image_list, feature_maps) -> list:
        image_h, image_w = (int(d) for d in image_list.tensors.shape[-2:])
        grid_sizes = [tuple(int(d) for d in f.shape[-2:]) for f in feature_maps]
        strides = [(image_h // gh, image_w // gw) for gh, gw in grid_sizes]
        anchors = np.concatenate(self.grid_anchors(grid_sizes, strides), axis=0)
        like = feature_maps[0]
        return [ember.from_numpy(anchors.copy()).to(device=like.device, dtype=like.dtype)
                for _ in range(len(image_list.image_sizes))]
