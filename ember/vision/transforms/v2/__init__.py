"""torchvision.transforms.v2 for ember: transforms that take any structure of inputs
(an image, or e.g. `(image, {"boxes": BoundingBoxes, "masks": Mask, "labels": ...})`),
draw their random parameters once per call, and apply the op to every input that it
concerns, each by its type (ember.vision.tv_tensors). As in torchvision, a plain tensor is
treated as the image only when the sample holds no tv_tensors.Image/Video, and only the
first one; non-tensor leaves pass through.

Random draws come from ember's generators (`generator=`, else the global one), not torch's.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

import ember
from ember import nn
from ember.ir import dtypes

from ... import tv_tensors
from .. import functional as F1
from .. import transforms as T1
from ..autoaugment import AugMix as _AugMix, AutoAugment as _AutoAugment
from ..autoaugment import AutoAugmentPolicy  # noqa: F401  (torchvision's v2 name)
from ..autoaugment import RandAugment as _RandAugment
from ..autoaugment import TrivialAugmentWide as _TrivialAugmentWide
from ..functional import InterpolationMode
from . import functional  # noqa: F401
from . import functional as F

__all__ = ["Transform", "Compose", "RandomApply", "RandomChoice", "RandomOrder", "Identity",
           "Lambda", "RandomHorizontalFlip", "RandomVerticalFlip", "Resize", "CenterCrop",
           "RandomCrop", "RandomResizedCrop", "Pad", "RandomRotation", "RandomAffine",
           "RandomPerspective", "RandomZoomOut", "ScaleJitter", "RandomShortestSize",
           "RandomIoUCrop", "ToDtype", "ConvertImageDtype", "Normalize", "ColorJitter",
           "Grayscale", "RandomGrayscale", "GaussianBlur", "ConvertBoundingBoxFormat",
           "ClampBoundingBoxes", "SanitizeBoundingBoxes", "ToImage", "ToPureTensor",
           "RandomPosterize", "RandomSolarize", "RandomAdjustSharpness", "RandomAutocontrast",
           "RandomEqualize", "RandomInvert", "AutoAugment", "AutoAugmentPolicy", "RandAugment",
           "TrivialAugmentWide", "AugMix", "InterpolationMode", "MixUp", "CutMix"]


# --- input structures --------------------------------------------------------------------
def _flatten(tree):
    if isinstance(tree, (list, tuple)):
        leaves, specs = [], []
        for item in tree:
            sub, spec = _flatten(item)
            leaves += sub
            specs.append(spec)
        return leaves, (type(tree), specs)
    if isinstance(tree, dict):
        leaves, specs = [], []
        for key, item in tree.items():
            sub, spec = _flatten(item)
            leaves += sub
            specs.append((key, spec))
        return leaves, (dict, specs)
    return [tree], None


def _unflatten(leaves, spec):
    it = iter(leaves)

    def build(s):
        if s is None:
            return next(it)
        kind, items = s
        if kind is dict:
            return {k: build(sub) for k, sub in items}
        return kind(build(sub) for sub in items)
    return build(spec)


def _is_pure(x):
    return isinstance(x, ember.Tensor) and not isinstance(x, tv_tensors.TVTensor)


def _is_pil(x):
    return hasattr(x, "getbands")


def _needs_transform(flat):
    """torchvision's heuristic: the first plain tensor is the image unless the sample has
    an Image, Video or PIL image."""
    has_image = any(isinstance(x, (tv_tensors.Image, tv_tensors.Video)) or _is_pil(x)
                    for x in flat)
    first_pure, needs = True, []
    for x in flat:
        if _is_pure(x):
            needs.append(first_pure and not has_image)
            first_pure = False
        else:
            needs.append(isinstance(x, tv_tensors.TVTensor))
    return needs


def query_size(flat):
    """(height, width) the sample's images, masks and boxes agree on."""
    sizes = {tuple(F.get_size(x)) for x in flat
             if isinstance(x, ember.Tensor) and not isinstance(x, tv_tensors.TVTensor)
             or isinstance(x, (tv_tensors.Image, tv_tensors.Video, tv_tensors.Mask,
                               tv_tensors.BoundingBoxes))}
    if not sizes:
        raise TypeError("No image, video, mask or bounding box was found in the sample")
    if len(sizes) > 1:
        raise ValueError(f"Found multiple HxW dimensions in the sample: {sorted(sizes)}")
    return sizes.pop()


def _fill_for(fill, inpt):
    """fill is a number, a sequence, or a dict keyed by tv_tensor type (or 'others')."""
    if isinstance(fill, dict):
        for cls, value in fill.items():
            if isinstance(cls, type) and isinstance(inpt, cls):
                return value
        return fill.get("others")
    if isinstance(inpt, tv_tensors.Mask):
        return fill if isinstance(fill, numbers.Number) or fill is None else None
    return fill


class Transform(nn.Module):
    """Base: forward(*inputs) flattens the structure, draws make_params once, and calls
    transform(leaf, params) on each leaf that needs it."""

    def __init__(self, *, generator=None):
        super().__init__()
        self.generator = generator

    def make_params(self, flat_inputs) -> dict:
        return {}

    def transform(self, inpt, params):
        raise NotImplementedError

    def _rand(self) -> float:
        return float(ember.rand(1, generator=self.generator).item())

    def forward(self, *inputs):
        tree = inputs if len(inputs) > 1 else inputs[0]
        flat, spec = _flatten(tree)
        needs = _needs_transform(flat)
        params = self.make_params([x for x, n in zip(flat, needs) if n])
        out = [self.transform(x, params) if n else x for x, n in zip(flat, needs)]
        return _unflatten(out, spec)


class _RandomP(Transform):
    """Applied to the whole sample with probability p."""

    def __init__(self, p: float = 0.5, *, generator=None):
        super().__init__(generator=generator)
        if not 0.0 <= p <= 1.0:
            raise ValueError("`p` should be a floating point value in the interval [0.0, 1.0].")
        self.p = p

    def forward(self, *inputs):
        if self.p < 1.0 and self._rand() >= self.p:
            return inputs if len(inputs) > 1 else inputs[0]
        return super().forward(*inputs)


# --- containers -------------------------------------------------------------------------------
class Compose(Transform):
    def __init__(self, transforms):
        super().__init__()
        if not isinstance(transforms, (list, tuple)):
            raise TypeError("Argument transforms should be a sequence of callables")
        self.transforms = list(transforms)

    def forward(self, *inputs):
        needs_unpack = len(inputs) > 1
        for t in self.transforms:
            out = t(*inputs)
            inputs = out if needs_unpack else (out,)
        return out if self.transforms else (inputs if needs_unpack else inputs[0])


class RandomApply(Transform):
    def __init__(self, transforms, p: float = 0.5, *, generator=None):
        super().__init__(generator=generator)
        self.transforms, self.p = list(transforms), p

    def forward(self, *inputs):
        sample = inputs if len(inputs) > 1 else inputs[0]
        if self._rand() >= self.p:
            return sample
        for t in self.transforms:
            sample = t(sample)
        return sample


class RandomChoice(Transform):
    def __init__(self, transforms, p=None, *, generator=None):
        super().__init__(generator=generator)
        self.transforms = list(transforms)
        if p is None:
            p = [1] * len(self.transforms)
        if len(p) != len(self.transforms):
            raise ValueError(f"Length of p doesn't match the number of transforms: {len(p)} != "
                             f"{len(self.transforms)}")
        self.p = [v / sum(p) for v in p]

    def forward(self, *inputs):
        draw, cum = self._rand(), 0.0
        for t, prob in zip(self.transforms, self.p):
            cum += prob
            if draw < cum:
                return t(*inputs)
        return self.transforms[-1](*inputs)


class RandomOrder(Transform):
    def __init__(self, transforms, *, generator=None):
        super().__init__(generator=generator)
        self.transforms = list(transforms)

    def forward(self, *inputs):
        sample = inputs if len(inputs) > 1 else inputs[0]
        for i in ember.randperm(len(self.transforms), generator=self.generator).tolist():
            sample = self.transforms[int(i)](sample)
        return sample


class Identity(Transform):
    def transform(self, inpt, params):
        return inpt


class Lambda(Transform):
    def __init__(self, lambd, *types):
        super().__init__()
        self.lambd, self.types = lambd, types or (object,)

    def transform(self, inpt, params):
        return self.lambd(inpt) if isinstance(inpt, self.types) else inpt


# --- geometry -----------------------------------------------------------------------------------
class RandomHorizontalFlip(_RandomP):
    def transform(self, inpt, params):
        return F.horizontal_flip(inpt)


class RandomVerticalFlip(_RandomP):
    def transform(self, inpt, params):
        return F.vertical_flip(inpt)


class Resize(Transform):
    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None,
                 antialias=True):
        super().__init__()
        self.size = [size] if isinstance(size, int) else list(size) if size is not None else None
        self.interpolation, self.max_size, self.antialias = interpolation, max_size, antialias

    def transform(self, inpt, params):
        return F.resize(inpt, self.size, self.interpolation, self.max_size, self.antialias)


class CenterCrop(Transform):
    def __init__(self, size):
        super().__init__()
        self.size = T1._size_pair(size)

    def transform(self, inpt, params):
        return F.center_crop(inpt, self.size)


class Pad(Transform):
    def __init__(self, padding, fill=0, padding_mode="constant"):
        super().__init__()
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError("`padding_mode` must be one of 'constant', 'edge', 'reflect' or "
                             "'symmetric'.")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def transform(self, inpt, params):
        return F.pad(inpt, self.padding, _fill_for(self.fill, inpt), self.padding_mode)


class RandomCrop(Transform):
    def __init__(self, size, padding=None, pad_if_needed=False, fill=0,
                 padding_mode="constant", *, generator=None):
        super().__init__(generator=generator)
        self.size = T1._size_pair(size)
        self.padding, self.pad_if_needed = padding, pad_if_needed
        self.fill, self.padding_mode = fill, padding_mode

    def make_params(self, flat_inputs):
        h, w = query_size(flat_inputs)
        left = top = right = bottom = 0
        if self.padding is not None:
            left, top, right, bottom = F._ltrb(self.padding)
        h, w = h + top + bottom, w + left + right
        th, tw = self.size
        if self.pad_if_needed and h < th:
            extra = th - h
            top, bottom, h = top + extra, bottom + extra, h + 2 * extra
        if self.pad_if_needed and w < tw:
            extra = tw - w
            left, right, w = left + extra, right + extra, w + 2 * extra
        if h < th or w < tw:
            raise ValueError(f"Required crop size {(th, tw)} is larger than input image size "
                             f"{(h, w)}")
        i = T1._randint(0, h - th + 1, self.generator)
        j = T1._randint(0, w - tw + 1, self.generator)
        pad = [left, top, right, bottom]
        return {"padding": pad if any(pad) else None, "top": i, "left": j, "height": th,
                "width": tw}

    def transform(self, inpt, params):
        if params["padding"] is not None:
            inpt = F.pad(inpt, params["padding"], _fill_for(self.fill, inpt), self.padding_mode)
        return F.crop(inpt, params["top"], params["left"], params["height"], params["width"])


class RandomResizedCrop(Transform):
    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=InterpolationMode.BILINEAR, antialias=True, *, generator=None):
        super().__init__(generator=generator)
        self.size = T1._size_pair(size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation, self.antialias = interpolation, antialias

    def make_params(self, flat_inputs):
        h, w = query_size(flat_inputs)
        probe = ember.zeros(1, h, w)
        i, j, ch, cw = T1.RandomResizedCrop.get_params(probe, self.scale, self.ratio,
                                                       self.generator)
        return {"top": i, "left": j, "height": ch, "width": cw}

    def transform(self, inpt, params):
        return F.resized_crop(inpt, params["top"], params["left"], params["height"],
                              params["width"], self.size, self.interpolation, self.antialias)


class RandomRotation(Transform):
    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand=False,
                 center=None, fill=0, *, generator=None):
        super().__init__(generator=generator)
        self.degrees = T1._degrees_range(degrees)
        self.interpolation, self.expand, self.center, self.fill = interpolation, expand, \
            center, fill

    def make_params(self, flat_inputs):
        return {"angle": T1._uniform(self.degrees[0], self.degrees[1], self.generator)}

    def transform(self, inpt, params):
        return F.rotate(inpt, params["angle"], self.interpolation, self.expand, self.center,
                        _fill_for(self.fill, inpt))


class RandomAffine(Transform):
    def __init__(self, degrees, translate=None, scale=None, shear=None,
                 interpolation=InterpolationMode.NEAREST, fill=0, center=None, *,
                 generator=None):
        super().__init__(generator=generator)
        self._v1 = T1.RandomAffine(degrees, translate, scale, shear, interpolation, 0, center)
        self.interpolation, self.fill, self.center = interpolation, fill, center

    def make_params(self, flat_inputs):
        h, w = query_size(flat_inputs)
        v1 = self._v1
        angle, translate, scale, shear = T1.RandomAffine.get_params(
            v1.degrees, v1.translate, v1.scale, v1.shear, [w, h], self.generator)
        return {"angle": angle, "translate": translate, "scale": scale, "shear": shear}

    def transform(self, inpt, params):
        return F.affine(inpt, params["angle"], params["translate"], params["scale"],
                        list(params["shear"]), self.interpolation, _fill_for(self.fill, inpt),
                        self.center)


class RandomZoomOut(_RandomP):
    """With probability p, place the sample on a canvas side_range times larger (filled
    with `fill`) at a random offset (detection augmentation of SSD)."""

    def __init__(self, fill=0, side_range=(1.0, 4.0), p=0.5, *, generator=None):
        super().__init__(p, generator=generator)
        if len(side_range) != 2 or side_range[0] < 1.0 or side_range[0] > side_range[1]:
            raise ValueError(f"Invalid side range provided {side_range}.")
        self.fill, self.side_range = fill, tuple(side_range)

    def make_params(self, flat_inputs):
        h, w = query_size(flat_inputs)
        lo, hi = (np.float32(v) for v in self.side_range)
        r = lo + np.float32(self._rand()) * (hi - lo)        # float32, as torchvision's
        canvas_w, canvas_h = int(np.float32(w) * r), int(np.float32(h) * r)
        rx, ry = (np.float32(v) for v in ember.rand(2, generator=self.generator).tolist())
        left = int(np.float32(canvas_w - w) * rx)
        top = int(np.float32(canvas_h - h) * ry)
        return {"padding": [left, top, canvas_w - (left + w), canvas_h - (top + h)]}

    def transform(self, inpt, params):
        return F.pad(inpt, params["padding"], _fill_for(self.fill, inpt))


class ScaleJitter(Transform):
    """Resize so the sample fits target_size (w, h), times a scale drawn in scale_range
    (Large Scale Jitter, Ghiasi et al. 2021)."""

    def __init__(self, target_size, scale_range=(0.1, 2.0),
                 interpolation=InterpolationMode.BILINEAR, antialias=True, *, generator=None):
        super().__init__(generator=generator)
        self.target_size, self.scale_range = target_size, tuple(scale_range)
        self.interpolation, self.antialias = interpolation, antialias

    def make_params(self, flat_inputs):
        h, w = query_size(flat_inputs)
        lo, hi = (np.float32(v) for v in self.scale_range)
        scale = lo + np.float32(self._rand()) * (hi - lo)
        r = np.float32(min(self.target_size[1] / h, self.target_size[0] / w)) * scale
        return {"size": (int(np.float32(h) * r), int(np.float32(w) * r))}

    def transform(self, inpt, params):
        return F.resize(inpt, params["size"], self.interpolation, antialias=self.antialias)


class RandomShortestSize(Transform):
    """Resize the shorter side to one of min_size (drawn), the longer at most max_size."""

    def __init__(self, min_size, max_size=None, interpolation=InterpolationMode.BILINEAR,
                 antialias=True, *, generator=None):
        super().__init__(generator=generator)
        self.min_size = [min_size] if isinstance(min_size, int) else list(min_size)
        self.max_size, self.interpolation, self.antialias = max_size, interpolation, antialias

    def make_params(self, flat_inputs):
        h, w = query_size(flat_inputs)
        target = self.min_size[T1._randint(0, len(self.min_size), self.generator)]
        r = target / min(h, w)
        if self.max_size is not None:
            r = min(r, self.max_size / max(h, w))
        return {"size": (int(h * r), int(w * r))}

    def transform(self, inpt, params):
        return F.resize(inpt, params["size"], self.interpolation, antialias=self.antialias)


class RandomIoUCrop(Transform):
    """SSD's crop: draw a minimum IoU from sampler_options (a value >= 1 leaves the sample
    as it is), then up to `trials` crops of random scale and aspect until one holds a box
    centre and overlaps some such box by at least that IoU; boxes whose centres fall
    outside are zeroed (SanitizeBoundingBoxes removes them)."""

    def __init__(self, min_scale=0.3, max_scale=1.0, min_aspect_ratio=0.5,
                 max_aspect_ratio=2.0, sampler_options=None, trials=40, *, generator=None):
        super().__init__(generator=generator)
        self.min_scale, self.max_scale = min_scale, max_scale
        self.min_aspect_ratio, self.max_aspect_ratio = min_aspect_ratio, max_aspect_ratio
        self.options = [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 2.0] if sampler_options is None \
            else list(sampler_options)
        self.trials = trials

    def forward(self, *inputs):
        flat, _ = _flatten(inputs if len(inputs) > 1 else inputs[0])
        needs = _needs_transform(flat)
        has_image = any(n and not isinstance(x, (tv_tensors.BoundingBoxes, tv_tensors.Mask))
                        for x, n in zip(flat, needs))
        if not has_image or not any(isinstance(x, tv_tensors.BoundingBoxes) for x in flat):
            raise TypeError(f"{type(self).__name__}() requires input sample to contain tensor "
                            f"or PIL images and bounding boxes. Sample can also contain masks.")
        return super().forward(*inputs)

    def _floats(self):
        return [np.float32(v) for v in ember.rand(2, generator=self.generator).tolist()]

    def make_params(self, flat_inputs):
        from ...ops import box_iou
        h, w = query_size(flat_inputs)
        boxes = [x for x in flat_inputs if isinstance(x, tv_tensors.BoundingBoxes)][0]
        xyxy = F._convert_boxes(F._plain(boxes), boxes.format, F.BoundingBoxFormat.XYXY)
        cx, cy = 0.5 * (xyxy[:, 0] + xyxy[:, 2]), 0.5 * (xyxy[:, 1] + xyxy[:, 3])
        lo, span = np.float32(self.min_scale), np.float32(self.max_scale - self.min_scale)
        while True:
            min_iou = self.options[T1._randint(0, len(self.options), self.generator)]
            if min_iou >= 1.0:
                return {}
            for _ in range(self.trials):
                rw, rh = (lo + span * v for v in self._floats())
                new_w, new_h = int(w * rw), int(h * rh)
                if new_h == 0 or not (self.min_aspect_ratio <= new_w / new_h
                                      <= self.max_aspect_ratio):
                    continue
                rx, ry = self._floats()
                left, top = int((w - new_w) * rx), int((h - new_h) * ry)
                right, bottom = left + new_w, top + new_h
                if left == right or top == bottom:
                    continue
                inside = (cx > left) & (cx < right) & (cy > top) & (cy < bottom)
                if not bool(inside.any()):
                    continue
                crop = ember.tensor([[left, top, right, bottom]], dtype=xyxy.dtype)
                if float(box_iou(xyxy[inside], crop).max()) < min_iou:
                    continue
                return {"top": top, "left": left, "height": new_h, "width": new_w,
                        "inside": inside}

    def transform(self, inpt, params):
        if not params:
            return inpt
        out = F.crop(inpt, params["top"], params["left"], params["height"], params["width"])
        if isinstance(out, tv_tensors.BoundingBoxes):
            keep = params["inside"].unsqueeze(-1)
            out = tv_tensors.wrap(ember.where(keep, F._plain(out), ember.zeros_like(
                F._plain(out))), like=out)
        return out


class RandomPerspective(_RandomP):
    def __init__(self, distortion_scale=0.5, p=0.5, interpolation=InterpolationMode.BILINEAR,
                 fill=0, *, generator=None):
        super().__init__(p, generator=generator)
        self.distortion_scale, self.interpolation, self.fill = distortion_scale, \
            interpolation, fill

    def make_params(self, flat_inputs):
        h, w = query_size(flat_inputs)
        start, end = T1.RandomPerspective.get_params(w, h, self.distortion_scale,
                                                     self.generator)
        return {"start": start, "end": end}

    def transform(self, inpt, params):
        return F.perspective(inpt, params["start"], params["end"], self.interpolation,
                             _fill_for(self.fill, inpt))


# --- dtype and colour (images and videos; boxes and masks pass) ----------------------------------
class _ImageTransform(Transform):
    """Transforms that concern images and videos only."""

    def forward(self, *inputs):
        tree = inputs if len(inputs) > 1 else inputs[0]
        flat, spec = _flatten(tree)
        needs = [n and not isinstance(x, (tv_tensors.BoundingBoxes, tv_tensors.Mask))
                 for x, n in zip(flat, _needs_transform(flat))]
        params = self.make_params([x for x, n in zip(flat, needs) if n])
        return _unflatten([self.transform(x, params) if n else x
                           for x, n in zip(flat, needs)], spec)


class ToDtype(Transform):
    """dtype: one dtype (images and videos only) or a dict {type: dtype, "others": ...};
    scale rescales images and videos as ConvertImageDtype does."""

    def __init__(self, dtype, scale: bool = False):
        super().__init__()
        self.dtype, self.scale = dtype, scale

    def transform(self, inpt, params):
        if isinstance(self.dtype, dict):
            match = [d for cls, d in self.dtype.items() if isinstance(cls, type) and
                     (type(inpt) is cls or (cls is ember.Tensor and _is_pure(inpt)))]
            if match:
                dtype = match[0]
            elif "others" in self.dtype:
                dtype = self.dtype["others"]
            else:
                raise ValueError(f"No dtype was specified for type {type(inpt)}. Use "
                                 f"'others' as a catch-all key.")
        elif _is_pure(inpt) or isinstance(inpt, (tv_tensors.Image, tv_tensors.Video)):
            dtype = self.dtype
        else:
            return inpt
        if dtype is None:
            return inpt
        scale = self.scale and (_is_pure(inpt) or
                                isinstance(inpt, (tv_tensors.Image, tv_tensors.Video)))
        return F.to_dtype(inpt, dtype, scale)


class ConvertImageDtype(_ImageTransform):
    def __init__(self, dtype=dtypes.float32):
        super().__init__()
        self.dtype = dtype

    def transform(self, inpt, params):
        return F.to_dtype(inpt, self.dtype, scale=True)


class Normalize(_ImageTransform):
    def __init__(self, mean, std, inplace=False):
        super().__init__()
        self.mean, self.std, self.inplace = list(mean), list(std), inplace

    def transform(self, inpt, params):
        return F.normalize(inpt, self.mean, self.std, self.inplace)


class ColorJitter(_ImageTransform):
    def __init__(self, brightness=None, contrast=None, saturation=None, hue=None, *,
                 generator=None):
        super().__init__(generator=generator)
        self._v1 = T1.ColorJitter(brightness or 0, contrast or 0, saturation or 0, hue or 0)

    def make_params(self, flat_inputs):
        v1 = self._v1
        order, b, c, s, h = T1.ColorJitter.get_params(v1.brightness, v1.contrast,
                                                      v1.saturation, v1.hue, self.generator)
        return {"order": order, "factors": (b, c, s, h)}

    def transform(self, inpt, params):
        ops = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
        for k in params["order"]:
            if params["factors"][k] is not None:
                inpt = ops[k](inpt, params["factors"][k])
        return inpt


class Grayscale(_ImageTransform):
    def __init__(self, num_output_channels=1):
        super().__init__()
        self.num_output_channels = num_output_channels

    def transform(self, inpt, params):
        return F.rgb_to_grayscale(inpt, self.num_output_channels)


class RandomGrayscale(_ImageTransform):
    def __init__(self, p=0.1, *, generator=None):
        super().__init__(generator=generator)
        self.p = p

    def make_params(self, flat_inputs):
        return {"apply": self._rand() < self.p}

    def transform(self, inpt, params):
        if not params["apply"]:
            return inpt
        return F.rgb_to_grayscale(inpt, F1.get_image_num_channels(inpt))


class GaussianBlur(_ImageTransform):
    def __init__(self, kernel_size, sigma=(0.1, 2.0), *, generator=None):
        super().__init__(generator=generator)
        self._v1 = T1.GaussianBlur(kernel_size, sigma)

    def make_params(self, flat_inputs):
        lo, hi = self._v1.sigma
        return {"sigma": T1.GaussianBlur.get_params(lo, hi, self.generator)}

    def transform(self, inpt, params):
        sigma = params["sigma"]
        return F.gaussian_blur(inpt, self._v1.kernel_size, [sigma, sigma])


def _image_random(name, fn, *arg_names):
    """A v2 Random<Op>(args..., p=0.5) applying fn to images with probability p."""
    def __init__(self, *args, p=0.5, generator=None):
        _ImageTransform.__init__(self, generator=generator)
        self.args, self.p = args, p

    def make_params(self, flat_inputs):
        return {"apply": self._rand() < self.p}

    def transform(self, inpt, params):
        return fn(inpt, *self.args) if params["apply"] else inpt
    return type(name, (_ImageTransform,), {"__init__": __init__, "make_params": make_params,
                                            "transform": transform,
                                            "__doc__": f"v2 {name}: {fn.__name__} with "
                                                       f"probability p."})


RandomPosterize = _image_random("RandomPosterize", F.posterize)
RandomSolarize = _image_random("RandomSolarize", F.solarize)
RandomAdjustSharpness = _image_random("RandomAdjustSharpness", F.adjust_sharpness)
RandomAutocontrast = _image_random("RandomAutocontrast", F.autocontrast)
RandomEqualize = _image_random("RandomEqualize", F.equalize)
RandomInvert = _image_random("RandomInvert", F.invert)


# --- boxes and conversions ---------------------------------------------------------------------
class ConvertBoundingBoxFormat(Transform):
    def __init__(self, format):
        super().__init__()
        self.format = F._fmt(format)

    def transform(self, inpt, params):
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return F.convert_bounding_box_format(inpt, new_format=self.format)
        return inpt


class ClampBoundingBoxes(Transform):
    def __init__(self, clamping_mode="auto"):
        super().__init__()
        self.clamping_mode = clamping_mode

    def transform(self, inpt, params):
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            return F.clamp_bounding_boxes(inpt, clamping_mode=self.clamping_mode)
        return inpt


def _find_labels(tree):
    """torchvision's default labels_getter: the "labels" entry of the first dict (the
    sample's, or the one in second place of an (image, target) pair)."""
    dicts = [tree] if isinstance(tree, dict) else \
        [x for x in tree if isinstance(x, dict)] if isinstance(tree, (list, tuple)) else []
    for d in dicts:
        for key in d:
            if isinstance(key, str) and key.lower() == "labels":
                return d[key]
    raise ValueError("SanitizeBoundingBoxes: could not find a 'labels' key in the input; "
                     "pass labels_getter=None to sanitize boxes alone, or a callable")


class SanitizeBoundingBoxes(Transform):
    """Drop degenerate boxes (sides < min_size, area < min_area, outside the canvas), and
    the matching labels and masks."""

    def __init__(self, min_size=1.0, min_area=1.0, labels_getter="default"):
        super().__init__()
        if min_size < 1:
            raise ValueError(f"min_size must be >= 1, got {min_size}.")
        if min_area < 1:
            raise ValueError(f"min_area must be >= 1, got {min_area}.")
        self.min_size, self.min_area, self.labels_getter = min_size, min_area, labels_getter

    def forward(self, *inputs):
        tree = inputs if len(inputs) > 1 else inputs[0]
        if self.labels_getter is None:
            labels = None
        elif self.labels_getter == "default":
            labels = _find_labels(tree)
        else:
            labels = self.labels_getter(tree)
        flat, spec = _flatten(tree)
        boxes = [x for x in flat if isinstance(x, tv_tensors.BoundingBoxes)]
        if len(boxes) != 1:
            raise ValueError(f"SanitizeBoundingBoxes: the sample must hold exactly one "
                             f"BoundingBoxes, found {len(boxes)}")
        _, valid = F.sanitize_bounding_boxes(boxes[0], min_size=self.min_size,
                                             min_area=self.min_area)
        label_list = [] if labels is None else \
            list(labels) if isinstance(labels, (list, tuple)) else [labels]
        out = []
        for x in flat:
            is_label = any(x is lab for lab in label_list)
            if is_label or isinstance(x, (tv_tensors.BoundingBoxes, tv_tensors.Mask)):
                kept = F._plain(x)[valid]
                out.append(F._rewrap(kept, x))
            else:
                out.append(x)
        return _unflatten(out, spec)


class ToImage(Transform):
    def forward(self, *inputs):
        tree = inputs if len(inputs) > 1 else inputs[0]
        flat, spec = _flatten(tree)
        has_image = any(isinstance(x, (tv_tensors.Image, tv_tensors.Video)) for x in flat)
        out, first = [], True
        for x in flat:
            if (_is_pure(x) or _is_pil(x) or hasattr(x, "__array_interface__")) and first \
                    and not has_image:
                out.append(F.to_image(x))
                first = False
            else:
                out.append(x)
        return _unflatten(out, spec)


class ToPureTensor(Transform):
    def transform(self, inpt, params):
        return F._plain(inpt)


# --- policies (images; geometry on boxes is refused rather than silently skipped) -------------
def _image_policy(cls):
    class Policy(_ImageTransform):
        __doc__ = f"v2 {cls.__name__}: v1's policy on the sample's images."

        def __init__(self, *args, generator=None, **kwargs):
            super().__init__(generator=generator)
            self._policy = cls(*args, generator=generator, **kwargs)

        def forward(self, *inputs):
            tree = inputs if len(inputs) > 1 else inputs[0]
            flat, _ = _flatten(tree)
            if any(isinstance(x, (tv_tensors.BoundingBoxes, tv_tensors.Mask)) for x in flat):
                raise TypeError(f"{cls.__name__}: ember's policies transform images only; "
                                f"bounding boxes and masks in the sample are not built")
            return super().forward(*inputs)

        def make_params(self, flat_inputs):
            h, w = query_size(flat_inputs)
            return {"ops": self._policy._draw(h, w)}

        def transform(self, inpt, params):
            if isinstance(self._policy, _AugMix):
                plain = F._plain(inpt)
                n = int(plain.shape[0]) if plain.ndim == 4 else 1
                m, combined = self._policy._weights(n)
                return F._rewrap(self._policy.mix(plain, m, combined, params["ops"]), inpt)
            return F._rewrap(self._policy._run(F._plain(inpt), params["ops"]), inpt)
    Policy.__name__ = Policy.__qualname__ = cls.__name__
    return Policy


AutoAugment = _image_policy(_AutoAugment)
RandAugment = _image_policy(_RandAugment)
TrivialAugmentWide = _image_policy(_TrivialAugmentWide)
AugMix = _image_policy(_AugMix)


# --- batch mixing ------------------------------------------------------------------------------
def _mix_labels_of(tree):
    """torchvision's default for MixUp/CutMix: the second element of an (images, labels)
    pair, or the "labels" (else the first "label"-named) entry of a dict."""
    if isinstance(tree, tuple):
        tree = tree[1]
    if _is_pure(tree):
        return tree
    if not isinstance(tree, dict):
        raise ValueError("Could not infer where the labels are in the sample: pass "
                         "(images, labels) or a dict with a 'labels' key, or labels_getter=")
    keys = [k for k in tree if isinstance(k, str) and k.lower() == "labels"] or \
        [k for k in tree if isinstance(k, str) and "label" in k.lower()]
    if not keys:
        raise ValueError("Could not infer where the labels are in the sample: no 'labels' key")
    return tree[keys[0]]


class _MixBase(Transform):
    """MixUp / CutMix over a batch: images [N, C, H, W] mixed with the batch rolled by one,
    labels (class indices with num_classes, or [N, K] scores) mixed by the same weight.
    lam ~ Beta(alpha, alpha) from ember's global generator (ember.distributions.Beta)."""

    def __init__(self, *, alpha: float = 1.0, num_classes=None, labels_getter="default"):
        super().__init__()
        self.alpha, self.num_classes = float(alpha), num_classes
        self.labels_getter = _mix_labels_of if labels_getter == "default" else labels_getter

    def _lam(self) -> float:
        from ember.distributions import Beta
        a = ember.tensor([self.alpha])
        return float(Beta(a, a).sample(()).item())

    def forward(self, *inputs):
        tree = inputs if len(inputs) > 1 else inputs[0]
        flat, spec = _flatten(tree)
        if any(isinstance(x, (tv_tensors.BoundingBoxes, tv_tensors.Mask)) or _is_pil(x)
               for x in flat):
            raise ValueError(f"{type(self).__name__}() does not support PIL images, bounding "
                             f"boxes and masks.")
        labels = self.labels_getter(tree)
        if not isinstance(labels, ember.Tensor):
            raise ValueError(f"The labels must be a tensor, but got {type(labels)} instead.")
        if labels.ndim not in (1, 2):
            raise ValueError(f"labels should be index based with shape (batch_size,) or "
                             f"probability based with shape (batch_size, num_classes), but got "
                             f"a tensor of shape {tuple(labels.shape)} instead.")
        needs = _needs_transform(flat)
        params = {"labels": labels, "batch_size": int(labels.shape[0]),
                  **self.make_params([x for x, n in zip(flat, needs) if n])}
        out = [self.transform(x, params) if (n or x is labels) else x
               for x, n in zip(flat, needs)]
        return _unflatten(out, spec)

    def _mix_label(self, label, lam):
        if label.ndim == 1:
            if self.num_classes is None:
                raise ValueError("num_classes must be passed when labels are class indices")
            label = ember.nn.functional.one_hot(label, num_classes=self.num_classes)
        if not label.dtype.is_floating_point:
            label = label.to(dtypes.float32)
        return label.roll(1, 0) * (1.0 - lam) + label * lam

    def _check_batch(self, inpt, batch_size):
        dims = 5 if isinstance(inpt, tv_tensors.Video) else 4
        if inpt.ndim != dims:
            raise ValueError(f"Expected a batched input with {dims} dims, but got "
                             f"{inpt.ndim} dimensions instead.")
        if int(inpt.shape[0]) != batch_size:
            raise ValueError(f"The batch size of the image or video does not match the batch "
                             f"size of the labels: {int(inpt.shape[0])} != {batch_size}.")


class MixUp(_MixBase):
    def make_params(self, flat_inputs):
        return {"lam": self._lam()}

    def transform(self, inpt, params):
        lam = params["lam"]
        if inpt is params["labels"]:
            return self._mix_label(inpt, lam)
        self._check_batch(inpt, params["batch_size"])
        plain = F._plain(inpt)
        return F._rewrap(plain.roll(1, 0) * (1.0 - lam) + plain * lam, inpt)


class CutMix(_MixBase):
    def make_params(self, flat_inputs):
        lam = self._lam()
        h, w = query_size(flat_inputs)
        rx, ry = T1._randint(0, w, None), T1._randint(0, h, None)
        r = 0.5 * math.sqrt(1.0 - lam)
        rw, rh = int(r * w), int(r * h)
        x1, y1 = max(rx - rw, 0), max(ry - rh, 0)
        x2, y2 = min(rx + rw, w), min(ry + rh, h)
        return {"box": (x1, y1, x2, y2),
                "lam_adjusted": float(1.0 - (x2 - x1) * (y2 - y1) / (w * h))}

    def transform(self, inpt, params):
        if inpt is params["labels"]:
            return self._mix_label(inpt, params["lam_adjusted"])
        self._check_batch(inpt, params["batch_size"])
        x1, y1, x2, y2 = params["box"]
        plain = F._plain(inpt)
        h, w = int(plain.shape[-2]), int(plain.shape[-1])
        inside = ember.nn.functional.pad(ember.ones(y2 - y1, x2 - x1, device=plain.device),
                                         [x1, w - x2, y1, h - y2]) > 0.5
        return F._rewrap(ember.where(inside, plain.roll(1, 0), plain), inpt)
