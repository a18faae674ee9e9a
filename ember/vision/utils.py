"""torchvision.utils for ember tensors: make_grid, save_image, draw_bounding_boxes,
draw_segmentation_masks, draw_keypoints, flow_to_image.

Drawing of boxes, labels and keypoints goes through Pillow's ImageDraw (as torchvision's
does), so the pixels are Pillow's; grids, masks and flow colouring are ember ops.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

import ember
from ember.ir import dtypes

__all__ = ["make_grid", "save_image", "draw_bounding_boxes", "draw_segmentation_masks",
           "draw_keypoints", "flow_to_image"]


def _as_batch(tensor):
    if isinstance(tensor, (list, tuple)):
        for t in tensor:
            if not isinstance(t, ember.Tensor):
                raise TypeError(f"tensor or list of tensors expected, got a list containing "
                                f"{type(t)}")
        tensor = ember.stack(list(tensor), dim=0)
    elif not isinstance(tensor, ember.Tensor):
        raise TypeError(f"tensor or list of tensors expected, got {type(tensor)}")
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim == 3:
        if int(tensor.shape[0]) == 1:
            tensor = ember.cat([tensor] * 3, dim=0)
        tensor = tensor.unsqueeze(0)
    if tensor.ndim == 4 and int(tensor.shape[1]) == 1:
        tensor = ember.cat([tensor] * 3, dim=1)
    return tensor


def _normalize(t, value_range):
    lo, hi = value_range if value_range is not None else (float(t.min()), float(t.max()))
    return (t.clamp(min=lo, max=hi) - lo) / max(hi - lo, 1e-5)


def make_grid(tensor, nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range=None, scale_each: bool = False, pad_value: float = 0.0):
    """Tile a batch [B, C, H, W] (or a list of images) into one image, nrow per row."""
    tensor = _as_batch(tensor)
    if normalize:
        if value_range is not None and not isinstance(value_range, tuple):
            raise TypeError("value_range has to be a tuple (min, max) if specified. min and "
                            "max are numbers")
        if scale_each:
            tensor = ember.stack([_normalize(t, value_range) for t in tensor], dim=0)
        else:
            tensor = _normalize(tensor, value_range)
    if int(tensor.shape[0]) == 1:
        return tensor.squeeze(0)
    nmaps = int(tensor.shape[0])
    xmaps = min(nrow, nmaps)
    ymaps = int(math.ceil(nmaps / xmaps))
    channels, h, w = (int(s) for s in tensor.shape[1:])
    rows = []
    for y in range(ymaps):
        cells = [tensor[k] if k < nmaps else ember.full([channels, h, w], pad_value,
                                                          dtype=tensor.dtype,
                                                          device=tensor.device)
                 for k in range(y * xmaps, (y + 1) * xmaps)]
        padded = [ember.nn.functional.pad(c, [padding, 0, padding, 0], value=pad_value)
                  for c in cells]
        rows.append(ember.cat(padded, dim=2))
    grid = ember.cat(rows, dim=1)
    return ember.nn.functional.pad(grid, [0, padding, 0, padding], value=pad_value)


def save_image(tensor, fp, format=None, **kwargs):
    """make_grid, scale [0, 1] to [0, 255] (rounded), write with Pillow."""
    from PIL import Image
    grid = make_grid(tensor, **kwargs)
    arr = (grid * 255 + 0.5).clamp(0, 255).permute([1, 2, 0]).to(dtypes.uint8)
    Image.fromarray(arr.detach().cpu().numpy()).save(fp, format=format)


def _generate_color_palette(num_objects: int):
    palette = np.array([2 ** 25 - 1, 2 ** 15 - 1, 2 ** 21 - 1], dtype=np.int64)
    return [tuple(int(v) for v in (i * palette) % 255) for i in range(num_objects)]


def _parse_colors(colors, *, num_objects: int, floating: bool = False):
    from PIL import ImageColor
    if colors is None:
        colors = _generate_color_palette(num_objects)
    elif isinstance(colors, list):
        if len(colors) < num_objects:
            raise ValueError(f"Number of colors must be equal or larger than the number of "
                             f"objects, but got {len(colors)} < {num_objects}.")
    elif not isinstance(colors, (tuple, str)):
        raise ValueError(f"colors must be a tuple or a string, or a list thereof, but got "
                         f"{colors}.")
    elif isinstance(colors, tuple) and len(colors) != 3:
        raise ValueError(f"If passed as tuple, colors should be an RGB triplet, but got "
                         f"{colors}.")
    else:
        colors = [colors] * num_objects
    colors = [ImageColor.getrgb(c) if isinstance(c, str) else tuple(c) for c in colors]
    if floating:
        colors = [tuple(v / 255 for v in c) for c in colors]
    return colors


def _to_uint8_pil(image):
    from PIL import Image
    from .transforms.functional import convert_image_dtype
    if int(image.shape[0]) == 1:
        image = ember.cat([image] * 3, dim=0)
    if image.dtype.is_floating_point:
        image = convert_image_dtype(image, dtypes.uint8)
    return Image.fromarray(np.ascontiguousarray(image.detach().cpu().numpy().transpose(1, 2, 0)))


def _from_pil(pic, dtype):
    from .transforms.functional import convert_image_dtype
    out = ember.from_numpy(np.ascontiguousarray(np.asarray(pic).transpose(2, 0, 1)))
    return convert_image_dtype(out, dtype) if dtype.is_floating_point else out


def _check_image(image, name, channels=(1, 3)):
    if not isinstance(image, ember.Tensor):
        raise TypeError(f"Tensor expected, got {type(image)}")
    if not (image.dtype == dtypes.uint8 or image.dtype.is_floating_point):
        raise ValueError(f"The image dtype must be uint8 or float, got {image.dtype}")
    if image.ndim != 3:
        raise ValueError("Pass individual images, not batches")
    if int(image.shape[0]) not in channels:
        raise ValueError(f"{name}: only grayscale and RGB images are supported")


def draw_bounding_boxes(image, boxes, labels=None, colors=None, fill: bool = False,
                        width: int = 1, font=None, font_size=None, label_colors=None,
                        label_background_colors=None, fill_labels: bool = False):
    """Draw (x1, y1, x2, y2) boxes (and labels) on a uint8 or float CxHxW image."""
    from PIL import ImageDraw, ImageFont
    _check_image(image, "draw_bounding_boxes")
    if int(boxes.shape[-1]) != 4:
        raise ValueError(f"draw_bounding_boxes: ember draws (xmin, ymin, xmax, ymax) boxes "
                         f"only, got boxes of shape {list(boxes.shape)} (rotated boxes are "
                         f"not built)")
    arr = boxes.detach().cpu().numpy()
    if ((arr[:, 0] > arr[:, 2]) | (arr[:, 1] > arr[:, 3])).any():
        raise ValueError("Boxes need to be in (xmin, ymin, xmax, ymax) format. Use "
                         "torchvision.ops.box_convert to convert them")
    n = int(arr.shape[0])
    if n == 0:
        warnings.warn("boxes doesn't contain any box. No box was drawn")
        return image
    if labels is None:
        labels = [None] * n
    elif len(labels) != n:
        raise ValueError(f"Number of boxes ({n}) and labels ({len(labels)}) mismatch. Please "
                         f"specify labels for each box.")
    colors = _parse_colors(colors, num_objects=n)
    if label_colors or fill_labels:
        label_colors = _parse_colors(label_colors if label_colors else "black", num_objects=n)
    else:
        label_colors = list(colors)
    if fill_labels and label_background_colors:
        label_background_colors = _parse_colors(label_background_colors, num_objects=n)
    else:
        label_background_colors = list(colors)
    if font is None:
        if font_size is not None:
            warnings.warn("Argument 'font_size' will be ignored since 'font' is not set.")
        txt_font = ImageFont.load_default()
    else:
        txt_font = ImageFont.truetype(font=font, size=font_size or 10)
    pic = _to_uint8_pil(image)
    draw = ImageDraw.Draw(pic, "RGBA") if fill else ImageDraw.Draw(pic)
    for box, color, label, lcolor, bgcolor in zip(arr.astype(np.int64).tolist(), colors, labels,
                                                  label_colors, label_background_colors):
        draw.rectangle(box, width=width, outline=color,
                       fill=tuple(color) + (100,) if fill else None)
        if label is not None:
            margin = width + 1
            at = (box[0] + margin, box[1] + margin)
            if fill_labels:
                left, top, right, bottom = draw.textbbox(at, label, font=txt_font)
                draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=bgcolor)
            draw.text(at, label, fill=lcolor, font=txt_font)
    return _from_pil(pic, image.dtype)


def draw_segmentation_masks(image, masks, alpha: float = 0.8, colors=None):
    """Blend each boolean mask's colour into an RGB image; pixels under several masks go
    to black before blending, as in torchvision."""
    if not isinstance(image, ember.Tensor):
        raise TypeError(f"The image must be a tensor, got {type(image)}")
    if not (image.dtype == dtypes.uint8 or image.dtype.is_floating_point):
        raise ValueError(f"The image dtype must be uint8 or float, got {image.dtype}")
    if image.ndim != 3:
        raise ValueError("Pass individual images, not batches")
    if int(image.shape[0]) != 3:
        raise ValueError("Pass an RGB image. Other Image formats are not supported")
    if masks.ndim == 2:
        masks = masks.unsqueeze(0)
    if masks.ndim != 3:
        raise ValueError("masks must be of shape (H, W) or (batch_size, H, W)")
    if masks.dtype != dtypes.bool_:
        raise ValueError(f"The masks must be of dtype bool. Got {masks.dtype}")
    if tuple(masks.shape[-2:]) != tuple(image.shape[-2:]):
        raise ValueError("The image and the masks must have the same height and width")
    n = int(masks.shape[0])
    if n == 0:
        warnings.warn("masks doesn't contain any mask. No mask was drawn")
        return image
    colors = _parse_colors(colors, num_objects=n, floating=image.dtype.is_floating_point)
    drawn = image
    for k in range(n):
        color = ember.tensor(colors[k], dtype=image.dtype, device=image.device).reshape(
            [3, 1, 1])
        drawn = ember.where(masks[k].unsqueeze(0), color, drawn)
    overlap = masks.to(dtypes.int64).sum(dim=0) > 1
    drawn = ember.where(overlap.unsqueeze(0), ember.zeros_like(drawn), drawn)
    out = image * (1 - alpha) + drawn * alpha
    return out.to(image.dtype)


def draw_keypoints(image, keypoints, connectivity=None, colors=None, radius: int = 2,
                   width: int = 3, visibility=None):
    """Draw [num_instances, K, 2] keypoints as filled circles (in `colors`) and optional
    connecting lines on a uint8 or float RGB image."""
    from PIL import ImageDraw
    _check_image(image, "draw_keypoints", channels=(3,))
    if keypoints.ndim != 3:
        raise ValueError("keypoints must be of shape (num_instances, K, 2)")
    points = keypoints.detach().cpu().numpy()
    if visibility is None:
        visible = np.ones(points.shape[:2], bool)
    else:
        visible = visibility.detach().cpu().numpy().astype(bool)
        if visible.ndim == 1:
            visible = visible[None]
        if visible.shape != points.shape[:2]:
            raise ValueError(f"keypoints and visibility must have the same dimensionality for "
                             f"num_instances and K. Got keypoints.shape={list(points.shape)} "
                             f"and visibility.shape={list(visible.shape)}")
    pic = _to_uint8_pil(image)
    draw = ImageDraw.Draw(pic)
    for kpts, vis in zip(points.astype(np.int64).tolist(), visible):
        for (x, y), v in zip(kpts, vis):
            if v:
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colors,
                             outline=None, width=0)
        for a, b in connectivity or []:
            if vis[a] and vis[b]:
                # torchvision draws the connections in Pillow's default ink, not `colors`
                draw.line([tuple(kpts[a]), tuple(kpts[b])], width=width)
    return _from_pil(pic, image.dtype)


def _make_colorwheel() -> np.ndarray:
    """The Middlebury flow colour wheel (55 hues: RY YG GC CB BM MR)."""
    spans = [(15, 0, 1, True), (6, 1, 0, False), (4, 1, 2, True), (11, 2, 1, False),
             (13, 2, 0, True), (6, 0, 2, False)]
    wheel, col = np.zeros((55, 3), np.float32), 0
    for n, full, ramp, rising in spans:
        steps = np.floor(255 * np.arange(n, dtype=np.float32) / np.float32(n))
        wheel[col:col + n, full] = 255
        wheel[col:col + n, ramp] = steps if rising else 255 - steps
        col += n
    return wheel


def flow_to_image(flow):
    """Optical flow [2, H, W] or [N, 2, H, W] (float32) -> uint8 RGB by the colour wheel."""
    if flow.dtype != dtypes.float32:
        raise ValueError(f"Flow should be of dtype torch.float, got {flow.dtype}.")
    shape = list(flow.shape)
    if flow.ndim == 3:
        flow = flow.unsqueeze(0)
    if flow.ndim != 4 or int(flow.shape[1]) != 2:
        raise ValueError(f"Input flow should have shape (2, H, W) or (N, 2, H, W), got "
                         f"{tuple(shape)}.")
    max_norm = (flow ** 2).sum(dim=1).sqrt().max()
    flow = flow / (max_norm + float(np.finfo(np.float32).eps))
    wheel = ember.from_numpy(_make_colorwheel()).to(flow.device)
    ncols = int(wheel.shape[0])
    norm = (flow ** 2).sum(dim=1).sqrt()
    angle = ember.atan2(-flow[:, 1], -flow[:, 0]) / math.pi
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = ember.floor(fk).to(dtypes.int64)
    k1 = ember.where(k0 + 1 == ncols, ember.zeros_like(k0), k0 + 1)
    f = fk - k0.to(fk.dtype)
    channels = []
    for c in range(3):
        col0 = wheel[:, c][k0] / 255.0
        col1 = wheel[:, c][k1] / 255.0
        col = 1 - norm * (1 - ((1 - f) * col0 + f * col1))
        channels.append(ember.floor(255 * col).to(dtypes.uint8))
    img = ember.stack(channels, dim=1)
    return img[0] if len(shape) == 3 else img
