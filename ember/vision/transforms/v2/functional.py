"""torchvision.transforms.v2.functional for ember: one function per op that dispatches on
what it is given: tv_tensors.BoundingBoxes (box arithmetic, canvas size carried along),
tv_tensors.Mask (the image op with nearest sampling and a scalar fill), tv_tensors.Image /
Video or a plain tensor (v1's image ops). Outputs keep the input's tv_tensor type."""
from __future__ import annotations

import numpy as np

import ember
from ember.ir import dtypes

from ... import tv_tensors
from .. import functional as F1
from ..functional import InterpolationMode

BoundingBoxFormat = tv_tensors.BoundingBoxFormat


def _is_boxes(x):
    return isinstance(x, tv_tensors.BoundingBoxes)


def _is_mask(x):
    return isinstance(x, tv_tensors.Mask)


def _plain(x):
    return x.as_subclass(ember.Tensor) if isinstance(x, tv_tensors.TVTensor) else x


def _rewrap(out, like, **meta):
    return tv_tensors.wrap(out, like=like, **meta) if isinstance(like, tv_tensors.TVTensor) \
        else out


def _fmt(format):
    return BoundingBoxFormat[format.upper()] if isinstance(format, str) else format


# --- box formats and clamping -------------------------------------------------------------
def _convert_boxes(boxes, old, new):
    from ...ops import box_convert
    if old == new:
        return boxes
    names = {BoundingBoxFormat.XYXY: "xyxy", BoundingBoxFormat.XYWH: "xywh",
             BoundingBoxFormat.CXCYWH: "cxcywh"}
    if boxes.dtype.is_floating_point:
        return box_convert(boxes, names[old], names[new])
    return _convert_int_boxes(boxes, old, new)


def _convert_int_boxes(boxes, old, new):
    """Integer boxes keep integer arithmetic, as torchvision's (halving floors)."""
    a, b, c, d = boxes.unbind(-1)
    if old == BoundingBoxFormat.XYWH:
        a, b, c, d = a, b, a + c, b + d
    elif old == BoundingBoxFormat.CXCYWH:
        x1 = a - ember.div(c, 2, rounding_mode="floor")
        y1 = b - ember.div(d, 2, rounding_mode="floor")
        a, b, c, d = x1, y1, x1 + c, y1 + d
    if new == BoundingBoxFormat.XYWH:
        a, b, c, d = a, b, c - a, d - b
    elif new == BoundingBoxFormat.CXCYWH:
        w, h = c - a, d - b
        a, b, c, d = a + ember.div(w, 2, rounding_mode="floor"), \
            b + ember.div(h, 2, rounding_mode="floor"), w, h
    return ember.stack([a, b, c, d], dim=-1)


def convert_bounding_box_format(inpt, old_format=None, new_format=None, inplace=False):
    if new_format is None:
        raise TypeError("convert_bounding_box_format() missing 1 required argument: "
                        "'new_format'")
    new_format = _fmt(new_format)
    if _is_boxes(inpt):
        if old_format is not None:
            raise ValueError("For bounding box tv_tensor inputs, `old_format` must not be "
                             "passed.")
        out = _convert_boxes(_plain(inpt), inpt.format, new_format)
        return tv_tensors.wrap(out, like=inpt, format=new_format)
    if old_format is None:
        raise ValueError("For pure tensor inputs, `old_format` has to be passed.")
    return _convert_boxes(inpt, _fmt(old_format), new_format)


def _clamp(boxes, format, canvas_size, clamping_mode="soft"):
    if clamping_mode is None:
        return boxes.clone()
    dtype = boxes.dtype
    xyxy = _convert_boxes(boxes.to(dtypes.float32) if not dtype.is_floating_point else boxes,
                          format, BoundingBoxFormat.XYXY)
    h, w = canvas_size
    x1, y1, x2, y2 = xyxy.unbind(-1)
    xyxy = ember.stack([x1.clamp(0, w), y1.clamp(0, h), x2.clamp(0, w), y2.clamp(0, h)], dim=-1)
    return _convert_boxes(xyxy, BoundingBoxFormat.XYXY, format).to(dtype)


def clamp_bounding_boxes(inpt, format=None, canvas_size=None, clamping_mode="auto"):
    if clamping_mode is not None and clamping_mode not in ("soft", "hard", "auto"):
        raise ValueError(f"clamping_mode must be soft, hard, auto or None, got {clamping_mode}")
    if _is_boxes(inpt):
        if format is not None or canvas_size is not None:
            raise ValueError("For bounding box tv_tensor inputs, `format` and `canvas_size` "
                             "must not be passed.")
        mode = inpt.clamping_mode if clamping_mode == "auto" else clamping_mode
        return tv_tensors.wrap(_clamp(_plain(inpt), inpt.format, inpt.canvas_size, mode),
                               like=inpt)
    if format is None or canvas_size is None or clamping_mode == "auto":
        raise ValueError("For pure tensor inputs, `format`, `canvas_size` and `clamping_mode` "
                         "have to be passed.")
    return _clamp(inpt, _fmt(format), canvas_size, clamping_mode)


def _box_op(inpt, fn, *args):
    """Run a box kernel fn(boxes, format, canvas_size, *args) -> (boxes, canvas_size) and
    rewrap with the new canvas, clamped per the boxes' clamping mode."""
    out, canvas = fn(_plain(inpt), inpt.format, inpt.canvas_size, *args)
    out = _clamp(out, inpt.format, canvas, inpt.clamping_mode) if canvas is not None else out
    return tv_tensors.wrap(out, like=inpt, canvas_size=canvas or inpt.canvas_size)


# --- geometry ----------------------------------------------------------------------------------
def _flip_boxes(boxes, format, canvas_size, axis):
    size = float(canvas_size[1 - axis])
    cols = list(boxes.unbind(-1))
    lo, hi = (0, 2) if axis == 0 else (1, 3)
    if format == BoundingBoxFormat.XYXY:
        cols[lo], cols[hi] = size - cols[hi], size - cols[lo]
    elif format == BoundingBoxFormat.XYWH:
        cols[lo] = size - (cols[lo] + cols[hi])
    else:
        cols[lo] = size - cols[lo]
    return ember.stack(cols, dim=-1).to(boxes.dtype), None


def horizontal_flip(inpt):
    if _is_boxes(inpt):
        out, _ = _flip_boxes(_plain(inpt), inpt.format, inpt.canvas_size, 0)
        return tv_tensors.wrap(out, like=inpt)
    return _rewrap(F1.hflip(_plain(inpt)), inpt)


def vertical_flip(inpt):
    if _is_boxes(inpt):
        out, _ = _flip_boxes(_plain(inpt), inpt.format, inpt.canvas_size, 1)
        return tv_tensors.wrap(out, like=inpt)
    return _rewrap(F1.vflip(_plain(inpt)), inpt)


hflip, vflip = horizontal_flip, vertical_flip


def _resize_boxes(boxes, format, canvas_size, size, max_size):
    h, w = canvas_size
    nh, nw = F1._resized_size(h, w, size, max_size)
    if (nh, nw) == (h, w):
        return boxes, None
    ratios = ember.tensor([nw / w, nh / h, nw / w, nh / h], device=boxes.device)
    return (boxes * ratios).to(boxes.dtype), (nh, nw)


def resize(inpt, size, interpolation=InterpolationMode.BILINEAR, max_size=None, antialias=True):
    if _is_boxes(inpt):
        out, canvas = _resize_boxes(_plain(inpt), inpt.format, inpt.canvas_size, size, max_size)
        return tv_tensors.wrap(out, like=inpt, canvas_size=canvas or inpt.canvas_size)
    if _is_mask(inpt):
        mode = F1._mode(interpolation)
        mode = mode if mode in ("nearest", "nearest-exact") else "nearest"
        return _mask_op(inpt, lambda m: F1.resize(m, size, InterpolationMode(mode), max_size))
    return _rewrap(F1.resize(_plain(inpt), size, interpolation, max_size, antialias), inpt)


def _mask_op(mask, fn):
    """Masks may be [H, W]: lift to one channel for the image op."""
    plain = _plain(mask)
    if plain.ndim < 3:
        return _rewrap(fn(plain.unsqueeze(0)).squeeze(0), mask)
    return _rewrap(fn(plain), mask)


def _crop_boxes(boxes, format, canvas_size, top, left, height, width):
    sub = [left, top, left, top] if format == BoundingBoxFormat.XYXY else [left, top, 0, 0]
    return boxes - ember.tensor(sub, dtype=boxes.dtype, device=boxes.device), (height, width)


def crop(inpt, top: int, left: int, height: int, width: int):
    if _is_boxes(inpt):
        return _box_op(inpt, _crop_boxes, top, left, height, width)
    return _rewrap(F1.crop(_plain(inpt), top, left, height, width), inpt)


def _center_anchor(canvas_size, output_size):
    ch, cw = F1._pair(output_size, "size")
    h, w = canvas_size
    return int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0)), ch, cw


def center_crop(inpt, output_size):
    if _is_boxes(inpt):
        top, left, ch, cw = _center_anchor(inpt.canvas_size, output_size)
        return _box_op(inpt, _crop_boxes, top, left, ch, cw)
    return _rewrap(F1.center_crop(_plain(inpt), output_size), inpt)


def resized_crop(inpt, top, left, height, width, size,
                 interpolation=InterpolationMode.BILINEAR, antialias=True):
    if _is_boxes(inpt):
        return resize(crop(inpt, top, left, height, width), size)
    if _is_mask(inpt):
        return resize(crop(inpt, top, left, height, width), size, InterpolationMode.NEAREST)
    return _rewrap(F1.resized_crop(_plain(inpt), top, left, height, width, size, interpolation,
                                   antialias), inpt)


def _ltrb(padding):
    if isinstance(padding, int):
        return [padding] * 4
    padding = list(padding)
    if len(padding) == 1:
        return padding * 4
    if len(padding) == 2:
        return [padding[0], padding[1], padding[0], padding[1]]
    if len(padding) == 4:
        return padding
    raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple or list. Found "
                     f"{len(padding)}")


def _pad_boxes(boxes, format, canvas_size, padding):
    left, top, right, bottom = _ltrb(padding)
    add = [left, top, left, top] if format == BoundingBoxFormat.XYXY else [left, top, 0, 0]
    out = boxes + ember.tensor(add, dtype=boxes.dtype, device=boxes.device)
    return out, (canvas_size[0] + top + bottom, canvas_size[1] + left + right)


def pad(inpt, padding, fill=None, padding_mode="constant"):
    if _is_boxes(inpt):
        if padding_mode != "constant":
            raise ValueError(f"Padding mode '{padding_mode}' is not supported with bounding "
                             f"boxes")
        return _box_op(inpt, _pad_boxes, padding)
    if _is_mask(inpt):
        if isinstance(fill, (list, tuple)):
            raise ValueError("Non-scalar fill value is not supported")
        return _mask_op(inpt, lambda m: F1.pad(m, padding, fill or 0, padding_mode))
    return _rewrap(F1.pad(_plain(inpt), padding, 0 if fill is None else fill, padding_mode),
                   inpt)


def _forward_affine(center, angle, translate, scale, shear):
    """The forward (input -> output) map of affine's parameters, as 6 numbers."""
    inv = F1._inverse_affine_matrix(center, angle, translate, scale, shear)
    m = np.array([inv[:3], inv[3:], [0, 0, 1]])
    return np.linalg.inv(m)[:2].reshape(6).tolist()


def _affine_boxes(boxes, format, canvas_size, angle, translate, scale, shear, center, expand):
    """Corners through the forward map, then their enclosing box (and, with expand, the
    shift to the enlarged canvas)."""
    if boxes.numel() == 0:
        return boxes, canvas_size
    dtype = boxes.dtype
    work = boxes if dtype.is_floating_point else boxes.to(dtypes.float32)
    xyxy = _convert_boxes(work, format, BoundingBoxFormat.XYXY).reshape([-1, 4])
    h, w = canvas_size
    cx, cy = (w * 0.5, h * 0.5) if center is None else center
    shear = _shear_pair(shear)
    inv = F1._inverse_affine_matrix([cx, cy], -float(angle), [float(t) for t in translate],
                                    float(scale), shear)
    fwd = np.linalg.inv(np.array([inv[:3], inv[3:], [0, 0, 1]]))[:2]
    mat = ember.tensor(fwd.T.astype(np.float64), dtype=xyxy.dtype, device=xyxy.device)
    x1, y1, x2, y2 = xyxy.unbind(-1)
    corners = ember.stack([ember.stack([x1, y1], -1), ember.stack([x2, y1], -1),
                           ember.stack([x2, y2], -1), ember.stack([x1, y2], -1)], dim=1)
    pts = ember.cat([corners, ember.ones_like(corners[..., :1])], dim=-1)
    moved = ember.matmul(pts, mat)                                   # [N, 4, 2]
    out = ember.cat([moved.amin(dim=1), moved.amax(dim=1)], dim=-1)
    if expand:
        frame = np.array([[0, 0, 1], [0, h, 1], [w, h, 1], [w, 0, 1]], dtype=np.float64) @ fwd.T
        shift = frame.min(axis=0)
        out = out - ember.tensor([shift[0], shift[1], shift[0], shift[1]], dtype=out.dtype,
                                 device=out.device)
        canvas_size = F1._expanded_size(inv, w, h)
    out = _convert_boxes(out, BoundingBoxFormat.XYXY, format).reshape(list(boxes.shape))
    return out.to(dtype), canvas_size


def _shear_pair(shear):
    if isinstance(shear, (int, float)):
        return [float(shear), 0.0]
    shear = [float(s) for s in shear]
    return shear * 2 if len(shear) == 1 else shear


def affine(inpt, angle, translate, scale, shear, interpolation=InterpolationMode.NEAREST,
           fill=None, center=None):
    if _is_boxes(inpt):
        return _box_op(inpt, lambda b, f, c: _affine_boxes(b, f, c, -float(angle), translate,
                                                             scale, shear, center, False))
    if _is_mask(inpt):
        return _mask_op(inpt, lambda m: F1.affine(m, angle, translate, scale, shear,
                                                  InterpolationMode.NEAREST, fill, center))
    return _rewrap(F1.affine(_plain(inpt), angle, translate, scale, shear, interpolation, fill,
                             center), inpt)


def rotate(inpt, angle, interpolation=InterpolationMode.NEAREST, expand=False, center=None,
           fill=None):
    if _is_boxes(inpt):
        return _box_op(inpt, lambda b, f, c: _affine_boxes(b, f, c, float(angle), [0, 0], 1.0,
                                                             [0.0, 0.0], center, expand))
    if _is_mask(inpt):
        return _mask_op(inpt, lambda m: F1.rotate(m, angle, InterpolationMode.NEAREST, expand,
                                                  center, fill))
    return _rewrap(F1.rotate(_plain(inpt), angle, interpolation, expand, center, fill), inpt)


def perspective(inpt, startpoints, endpoints, interpolation=InterpolationMode.BILINEAR,
                fill=None):
    if _is_boxes(inpt):
        return _box_op(inpt, lambda b, f, c: (_perspective_boxes(b, f, startpoints,
                                                                  endpoints), c))
    if _is_mask(inpt):
        return _mask_op(inpt, lambda m: F1.perspective(m, startpoints, endpoints,
                                                       InterpolationMode.NEAREST, fill))
    return _rewrap(F1.perspective(_plain(inpt), startpoints, endpoints, interpolation, fill),
                   inpt)


def _perspective_boxes(boxes, format, startpoints, endpoints):
    """Corners through the forward homography (the inverse of the output -> input one the
    image warp samples with), then their enclosing box."""
    if boxes.numel() == 0:
        return boxes
    a, b, c, d, e, f, g, h = F1._get_perspective_coeffs(startpoints, endpoints)
    if a * e - b * d == 0:
        raise RuntimeError(f"Provided perspective_coeffs {[a, b, c, d, e, f, g, h]} can not be "
                           f"inverted to transform bounding boxes.")
    forward = np.linalg.inv(np.array([[a, b, c], [d, e, f], [g, h, 1.0]]))
    dtype = boxes.dtype
    work = boxes if dtype.is_floating_point else boxes.to(dtypes.float32)
    xyxy = _convert_boxes(work, format, BoundingBoxFormat.XYXY).reshape([-1, 4])
    x1, y1, x2, y2 = xyxy.unbind(-1)
    corners = ember.stack([ember.stack([x1, y1], -1), ember.stack([x2, y1], -1),
                           ember.stack([x2, y2], -1), ember.stack([x1, y2], -1)], dim=1)
    pts = ember.cat([corners, ember.ones_like(corners[..., :1])], dim=-1)
    mat = ember.tensor(forward.T, dtype=xyxy.dtype, device=xyxy.device)
    moved = ember.matmul(pts, mat)
    moved = moved[..., :2] / moved[..., 2:]
    out = ember.cat([moved.amin(dim=1), moved.amax(dim=1)], dim=-1)
    out = _convert_boxes(out, BoundingBoxFormat.XYXY, format).reshape(list(boxes.shape))
    return out.to(dtype)


# --- dtype, colour and the rest (images; masks and boxes pass where torchvision passes) ---------
def to_dtype(inpt, dtype=dtypes.float32, scale: bool = False):
    plain = _plain(inpt)
    if _is_boxes(inpt) or _is_mask(inpt) or not scale or plain.dtype == dtype:
        return _rewrap(plain.to(dtype), inpt)
    if not plain.dtype.is_floating_point and dtype.is_floating_point:
        # torchvision's v2 multiplies by 1 / max (v1 divides): keep its rounding
        return _rewrap(plain.to(dtype) * (1.0 / F1._max_value(plain.dtype)), inpt)
    return _rewrap(F1.convert_image_dtype(plain, dtype), inpt)


def to_image(inpt):
    """PIL image, numpy HxWxC array or CxHxW tensor -> tv_tensors.Image."""
    if isinstance(inpt, np.ndarray):
        arr = inpt[:, :, None] if inpt.ndim == 2 else inpt
        return tv_tensors.Image(ember.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))))
    if isinstance(inpt, ember.Tensor):
        return tv_tensors.Image(_plain(inpt))
    return tv_tensors.Image(F1.pil_to_tensor(inpt))


def _image_only(fn):
    def op(inpt, *args, **kwargs):
        if _is_boxes(inpt) or _is_mask(inpt):   # no kernel for them: passed through, as
            return inpt                          # torchvision's dispatcher does
        return _rewrap(fn(_plain(inpt), *args, **kwargs), inpt)
    op.__name__ = fn.__name__
    op.__doc__ = f"v1's {fn.__name__} on images and videos, the tv_tensor type kept."
    return op


def elastic_transform(inpt, displacement, interpolation=InterpolationMode.BILINEAR, fill=None):
    if _is_boxes(inpt):
        raise TypeError("elastic_transform: bounding boxes are not built in ember's v2 "
                        "(images and masks are)")
    if _is_mask(inpt):
        return _mask_op(inpt, lambda m: F1.elastic_transform(m, displacement,
                                                             InterpolationMode.NEAREST, fill))
    return _rewrap(F1.elastic_transform(_plain(inpt), displacement, interpolation, fill), inpt)


elastic = elastic_transform

for _name in ("normalize", "adjust_brightness", "adjust_contrast", "adjust_saturation",
              "adjust_hue", "adjust_gamma", "adjust_sharpness", "posterize", "solarize",
              "equalize", "invert", "rgb_to_grayscale", "gaussian_blur",
              "erase", "five_crop", "ten_crop",
              "convert_image_dtype", "to_pil_image", "pil_to_tensor"):
    globals()[_name] = _image_only(getattr(F1, _name))
to_grayscale = globals()["rgb_to_grayscale"]


def autocontrast(inpt):
    """v2's arithmetic (divide by (max - min) / bound; v1 multiplies by bound / (max -
    min)), so uint8 results truncate as torchvision's v2 does."""
    plain = _plain(inpt)
    F1._check_channels(plain, "autocontrast")
    bound = F1._max_value(plain.dtype)
    work = plain if plain.dtype.is_floating_point else plain.to(dtypes.float32)
    lo = work.amin(dim=(-2, -1), keepdim=True)
    hi = work.amax(dim=(-2, -1), keepdim=True)
    flat = hi == lo
    inv_scale = ember.where(flat, ember.ones_like(hi), (hi - lo) * (1.0 / bound))
    lo = ember.where(flat, ember.zeros_like(lo), lo)
    out = ((work - lo) / inv_scale).clamp(0, bound).to(plain.dtype)
    return _rewrap(out, inpt)


def grayscale_to_rgb(inpt):
    plain = _plain(inpt)
    if int(plain.shape[-3]) == 3:
        return inpt
    return _rewrap(plain.expand(list(plain.shape[:-3]) + [3] + list(plain.shape[-2:])), inpt)


def get_dimensions(inpt):
    """[channels, height, width] of an image, video or mask."""
    return F1.get_dimensions(_plain(inpt))


def get_size(inpt):
    """[height, width] (canvas size for boxes)."""
    if _is_boxes(inpt):
        return list(inpt.canvas_size)
    return [int(inpt.shape[-2]), int(inpt.shape[-1])]


def sanitize_bounding_boxes(bounding_boxes, format=None, canvas_size=None, min_size=1.0,
                            min_area=1.0):
    """(boxes kept, the boolean mask of kept boxes): drop degenerate boxes and those
    outside the canvas."""
    if _is_boxes(bounding_boxes):
        if format is not None or canvas_size is not None:
            raise ValueError("format and canvas_size must be None when bounding_boxes is a "
                             "tv_tensors.BoundingBoxes instance.")
        format, canvas_size = bounding_boxes.format, bounding_boxes.canvas_size
    elif format is None or canvas_size is None:
        raise ValueError("format and canvas_size cannot be None if bounding_boxes is a pure "
                         "tensor.")
    valid = _sanitize_mask(_plain(bounding_boxes), _fmt(format), canvas_size, min_size,
                           min_area)
    kept = _plain(bounding_boxes)[valid]
    return _rewrap(kept, bounding_boxes), valid


def _sanitize_mask(boxes, format, canvas_size, min_size, min_area):
    xyxy = _convert_boxes(boxes, format, BoundingBoxFormat.XYXY)
    ws, hs = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    h, w = canvas_size
    valid = (ws >= min_size) & (hs >= min_size) & (xyxy >= 0).all(dim=-1) & \
        (ws * hs >= min_area)
    valid = valid & (xyxy[:, 0] <= w) & (xyxy[:, 2] <= w)
    return valid & (xyxy[:, 1] <= h) & (xyxy[:, 3] <= h)
