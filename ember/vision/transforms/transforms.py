"""torchvision.transforms (v1) classes as ember nn.Modules over (..., C, H, W) tensors.

Random transforms draw their parameters from ember's generators (the default one, or a
`generator=` given at construction), once per call as torchvision does: a batch gets one
draw. Beyond torchvision, `per_sample=True` draws one set of parameters per image of an
(N, C, H, W) batch, still in a few batched ops (masks, per-image factors, one grid).

The deterministic ones (Normalize, Resize, CenterCrop, Pad, GaussianBlur with a fixed
sigma, ConvertImageDtype, Grayscale) trace and compile; an nn.Sequential of them compiles
into one graph. (Compose is a plain callable, as torchvision's.)
"""
from __future__ import annotations

import math
import numbers

import ember
from ember import nn

from . import functional as F
from .functional import InterpolationMode


def _uniform(lo: float, hi: float, generator=None) -> float:
    return lo + (hi - lo) * float(ember.rand(1, generator=generator).item())


def _randint(lo: int, hi: int, generator=None) -> int:
    """An integer in [lo, hi)."""
    return int(ember.randint(lo, hi, (1,), generator=generator).item())


def _size_pair(size, name="size") -> list[int]:
    if isinstance(size, numbers.Number):
        return [int(size), int(size)]
    size = list(size)
    if len(size) == 1:
        return [size[0], size[0]]
    if len(size) != 2:
        raise ValueError(f"Please provide only two dimensions (h, w) for {name}.")
    return size


class Compose:
    """Apply transforms in order (a plain callable, as torchvision's; use nn.Sequential to
    get a Module)."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        body = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({body}\n)"


class Lambda:
    def __init__(self, lambd):
        if not callable(lambd):
            raise TypeError(f"Argument lambd should be callable, got {type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img):
        return self.lambd(img)


class ToTensor:
    def __call__(self, pic):
        return F.to_tensor(pic)


class PILToTensor:
    def __call__(self, pic):
        return F.pil_to_tensor(pic)


class ToPILImage:
    def __init__(self, mode=None):
        self.mode = mode

    def __call__(self, pic):
        return F.to_pil_image(pic, self.mode)


class Normalize(nn.Module):
    def __init__(self, mean, std, inplace: bool = False):
        super().__init__()
        self.mean, self.std, self.inplace = list(mean), list(std), inplace

    def forward(self, tensor):
        return F.normalize(tensor, self.mean, self.std, self.inplace)

    def extra_repr(self):
        return f"mean={self.mean}, std={self.std}"


class ConvertImageDtype(nn.Module):
    def __init__(self, dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, image):
        return F.convert_image_dtype(image, self.dtype)


class Resize(nn.Module):
    def __init__(self, size, interpolation=InterpolationMode.BILINEAR, max_size=None,
                 antialias: bool | None = True):
        super().__init__()
        if not isinstance(size, (int, list, tuple)):
            raise TypeError(f"Size should be int or sequence. Got {type(size)}")
        if isinstance(size, (list, tuple)) and len(size) not in (1, 2):
            raise ValueError("If size is a sequence, it should have 1 or 2 values")
        self.size, self.max_size, self.antialias = size, max_size, antialias
        self.interpolation = interpolation

    def forward(self, img):
        return F.resize(img, self.size, self.interpolation, self.max_size, self.antialias)


class CenterCrop(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = _size_pair(size)

    def forward(self, img):
        return F.center_crop(img, self.size)


class Pad(nn.Module):
    def __init__(self, padding, fill=0, padding_mode: str = "constant"):
        super().__init__()
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError("Padding mode should be either constant, edge, reflect or "
                             "symmetric")
        self.padding, self.fill, self.padding_mode = padding, fill, padding_mode

    def forward(self, img):
        return F.pad(img, self.padding, self.fill, self.padding_mode)


class Grayscale(nn.Module):
    def __init__(self, num_output_channels: int = 1):
        super().__init__()
        self.num_output_channels = num_output_channels

    def forward(self, img):
        return F.rgb_to_grayscale(img, self.num_output_channels)


class _Random(nn.Module):
    """Base of the random transforms: an optional ember.Generator and the per-sample flag."""

    def __init__(self, generator=None, per_sample: bool = False):
        super().__init__()
        self.generator, self.per_sample = generator, per_sample

    def _batch_size(self, img):
        """N when drawing per image, else None; per_sample needs an (N, C, H, W) batch."""
        if not self.per_sample:
            return None
        if img.ndim != 4:
            raise ValueError(f"{type(self).__name__}(per_sample=True) needs an (N, C, H, W) "
                             f"batch, got a {img.ndim}-D tensor")
        return int(img.shape[0])

    def _uniforms(self, n, lo, hi, device=None):
        """n draws in [lo, hi) as a [n] float32 tensor on `device` (drawn from the CPU
        generator, so a seed gives the same draws whichever device the images are on)."""
        draws = lo + (hi - lo) * ember.rand(n, generator=self.generator)
        return draws if device is None or str(device) == "cpu" else draws.to(device)


def _where_images(take, a, b):
    """Per image of a batch: a where take[i] else b."""
    return ember.where(take.reshape([-1, 1, 1, 1]).to(a.device), a, b)


class _RandomFlip(_Random):
    """Flips each image (or the whole input) with probability p; `_flip` says which way."""
    _flip = None

    def __init__(self, p: float = 0.5, *, per_sample: bool = False, generator=None):
        super().__init__(generator, per_sample)
        self.p = p

    def forward(self, img):
        flip = self._flip
        n = self._batch_size(img)
        if n is not None:
            return _where_images(self._uniforms(n, 0.0, 1.0) < self.p, flip(img), img)
        return flip(img) if _uniform(0.0, 1.0, self.generator) < self.p else img


class RandomHorizontalFlip(_RandomFlip):
    _flip = staticmethod(F.hflip)


class RandomVerticalFlip(_RandomFlip):
    _flip = staticmethod(F.vflip)


class RandomGrayscale(_Random):
    def __init__(self, p: float = 0.1, *, generator=None):
        super().__init__(generator)
        self.p = p

    def forward(self, img):
        channels = F.get_image_num_channels(img)
        if _uniform(0.0, 1.0, self.generator) < self.p:
            return F.rgb_to_grayscale(img, channels)
        return img


class RandomApply(_Random):
    def __init__(self, transforms, p: float = 0.5, *, generator=None):
        super().__init__(generator)
        self.transforms = list(transforms)
        self.p = p

    def forward(self, img):
        if self.p < _uniform(0.0, 1.0, self.generator):
            return img
        for t in self.transforms:
            img = t(img)
        return img


class RandomCrop(_Random):
    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill=0,
                 padding_mode: str = "constant", *, generator=None):
        super().__init__(generator)
        self.size = _size_pair(size)
        self.padding, self.pad_if_needed = padding, pad_if_needed
        self.fill, self.padding_mode = fill, padding_mode

    @staticmethod
    def get_params(img, output_size, generator=None):
        _, h, w = F.get_dimensions(img)
        th, tw = output_size
        if h < th or w < tw:
            raise ValueError(f"Required crop size {(th, tw)} is larger than input image size "
                             f"{(h, w)}")
        if w == tw and h == th:
            return 0, 0, h, w
        return _randint(0, h - th + 1, generator), _randint(0, w - tw + 1, generator), th, tw

    def forward(self, img):
        if self.padding is not None:
            img = F.pad(img, self.padding, self.fill, self.padding_mode)
        _, h, w = F.get_dimensions(img)
        if self.pad_if_needed and w < self.size[1]:
            img = F.pad(img, [self.size[1] - w, 0], self.fill, self.padding_mode)
        if self.pad_if_needed and h < self.size[0]:
            img = F.pad(img, [0, self.size[0] - h], self.fill, self.padding_mode)
        i, j, h, w = self.get_params(img, self.size, self.generator)
        return F.crop(img, i, j, h, w)


class RandomResizedCrop(_Random):
    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation=InterpolationMode.BILINEAR, antialias: bool | None = True, *,
                 per_sample: bool = False, generator=None):
        super().__init__(generator, per_sample)
        self.size = _size_pair(size)
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError("Scale and ratio should be of kind (min, max)")
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.interpolation, self.antialias = interpolation, antialias

    @staticmethod
    def get_params(img, scale, ratio, generator=None):
        """(top, left, height, width) of a crop with random area and aspect ratio."""
        _, height, width = F.get_dimensions(img)
        area = height * width
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            target_area = area * _uniform(scale[0], scale[1], generator)
            aspect = math.exp(_uniform(log_ratio[0], log_ratio[1], generator))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                i = _randint(0, height - h + 1, generator)
                j = _randint(0, width - w + 1, generator)
                return i, j, h, w
        in_ratio = float(width) / float(height)   # fallback: the central crop
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            h, w = height, int(round(height * max(ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def forward(self, img):
        n = self._batch_size(img)
        if n is not None:   # crops differ in size, so each is resized on its own
            return ember.stack([self._one(img[k]) for k in range(n)], dim=0)
        return self._one(img)

    def _one(self, img):
        i, j, h, w = self.get_params(img, self.scale, self.ratio, self.generator)
        return F.resized_crop(img, i, j, h, w, self.size, self.interpolation,
                              antialias=self.antialias)


class RandomErasing(_Random):
    """Erase a random rectangle (Zhong et al. 2017) of a tensor image with `value`
    (a number, per-channel numbers, or "random" for standard-normal noise)."""

    def __init__(self, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0,
                 inplace: bool = False, *, generator=None):
        super().__init__(generator)
        if not isinstance(value, (numbers.Number, str, tuple, list)):
            raise TypeError("Argument value should be either a number or str or a sequence")
        if isinstance(value, str) and value != "random":
            raise ValueError("If value is str, it should be 'random'")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            raise ValueError("Scale and ratio should be of kind (min, max)")
        if scale[0] < 0 or scale[1] > 1:
            raise ValueError("Scale should be between 0 and 1")
        if p < 0 or p > 1:
            raise ValueError("Random erasing probability should be between 0 and 1")
        self.p, self.scale, self.ratio, self.value, self.inplace = p, scale, ratio, value, \
            inplace

    @staticmethod
    def get_params(img, scale, ratio, value=None, generator=None):
        """(i, j, h, w, v): the rectangle and what fills it; the whole image unchanged if
        ten tries find no rectangle that fits."""
        channels, height, width = F.get_dimensions(img)
        area = height * width
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            erase_area = area * _uniform(scale[0], scale[1], generator)
            aspect = math.exp(_uniform(log_ratio[0], log_ratio[1], generator))
            h = int(round(math.sqrt(erase_area * aspect)))
            w = int(round(math.sqrt(erase_area / aspect)))
            if not (h < height and w < width):
                continue
            if value is None:
                v = ember.randn(channels, h, w, generator=generator)
            else:
                v = ember.as_tensor([float(x) for x in value]).reshape([-1, 1, 1])
            i = _randint(0, height - h + 1, generator)
            j = _randint(0, width - w + 1, generator)
            return i, j, h, w, v
        return 0, 0, height, width, img

    def forward(self, img):
        if _uniform(0.0, 1.0, self.generator) >= self.p:
            return img
        value = self.value
        if isinstance(value, numbers.Number):
            value = [float(value)]
        elif isinstance(value, str):
            value = None
        elif value is not None:
            value = list(value)
        channels = F.get_image_num_channels(img)
        if value is not None and len(value) not in (1, channels):
            raise ValueError(f"If value is a sequence, it should have either a single value "
                             f"or {channels} (number of input channels)")
        i, j, h, w, v = self.get_params(img, self.scale, self.ratio, value, self.generator)
        if v is img:
            return img
        return F.erase(img, i, j, h, w, v, self.inplace)


def _jitter_range(value, name, center=1.0, bound=(0, float("inf")), clip_first=True):
    if value is None:
        return None
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f"If {name} is a single number, it must be non negative.")
        value = [center - float(value), center + float(value)]
        if clip_first:
            value[0] = max(value[0], 0.0)
    elif len(value) == 2:
        value = [float(value[0]), float(value[1])]
        if not bound[0] <= value[0] <= value[1] <= bound[1]:
            raise ValueError(f"{name} values should be between {bound}, but got {value}.")
    else:
        raise TypeError(f"{name} should be a single number or a list/tuple with length 2.")
    if value[0] == value[1] == center:
        return None
    return value


class ColorJitter(_Random):
    """Random brightness, contrast, saturation and hue, applied in a random order."""

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0, *,
                 per_sample: bool = False, generator=None):
        super().__init__(generator, per_sample)
        self.brightness = _jitter_range(brightness, "brightness")
        self.contrast = _jitter_range(contrast, "contrast")
        self.saturation = _jitter_range(saturation, "saturation")
        self.hue = _jitter_range(hue, "hue", center=0, bound=(-0.5, 0.5), clip_first=False)

    @staticmethod
    def get_params(brightness, contrast, saturation, hue, generator=None):
        order = [int(v) for v in ember.randperm(4, generator=generator).tolist()]
        draws = [None if r is None else _uniform(r[0], r[1], generator)
                 for r in (brightness, contrast, saturation, hue)]
        return (order, *draws)

    def forward(self, img):
        n = self._batch_size(img)
        if n is None:
            order, b, c, s, h = self.get_params(self.brightness, self.contrast,
                                                self.saturation, self.hue, self.generator)
        else:   # one order per batch, one factor per image
            order = [int(v) for v in ember.randperm(4, generator=self.generator).tolist()]
            b, c, s, h = (None if r is None else self._uniforms(n, r[0], r[1], img.device)
                          for r in (self.brightness, self.contrast, self.saturation, self.hue))
        for fn_id in order:
            if fn_id == 0 and b is not None:
                img = F.adjust_brightness(img, b)
            elif fn_id == 1 and c is not None:
                img = F.adjust_contrast(img, c)
            elif fn_id == 2 and s is not None:
                img = F.adjust_saturation(img, s)
            elif fn_id == 3 and h is not None:
                img = F.adjust_hue(img, h)
        return img


class GaussianBlur(_Random):
    def __init__(self, kernel_size, sigma=(0.1, 2.0), *, per_sample: bool = False,
                 generator=None):
        super().__init__(generator, per_sample)
        self.kernel_size = _size_pair(kernel_size, "kernel size")
        for k in self.kernel_size:
            if k <= 0 or k % 2 == 0:
                raise ValueError("Kernel size value should be an odd and positive number.")
        if isinstance(sigma, numbers.Number):
            if sigma <= 0:
                raise ValueError("If sigma is a single number, it must be positive.")
            sigma = (float(sigma), float(sigma))
        elif not 0.0 < sigma[0] <= sigma[1]:
            raise ValueError("sigma values should be positive and of the form (min, max).")
        self.sigma = tuple(sigma)

    @staticmethod
    def get_params(sigma_min: float, sigma_max: float, generator=None) -> float:
        if sigma_min == sigma_max:
            return sigma_min
        return _uniform(sigma_min, sigma_max, generator)

    def forward(self, img):
        n = self._batch_size(img)
        if n is not None:
            return F.gaussian_blur(img, self.kernel_size,
                                   self._uniforms(n, self.sigma[0], self.sigma[1],
                                                  img.device))
        sigma = self.get_params(self.sigma[0], self.sigma[1], self.generator)
        return F.gaussian_blur(img, self.kernel_size, [sigma, sigma])


def _degrees_range(degrees, name="degrees"):
    if isinstance(degrees, numbers.Number):
        if degrees < 0:
            raise ValueError(f"If {name} is a single number, it must be positive.")
        return [-float(degrees), float(degrees)]
    if len(degrees) != 2:
        raise ValueError(f"If {name} is a sequence, it must be of len 2.")
    return [float(d) for d in degrees]


class RandomRotation(_Random):
    def __init__(self, degrees, interpolation=InterpolationMode.NEAREST, expand: bool = False,
                 center=None, fill=0, *, per_sample: bool = False, generator=None):
        super().__init__(generator, per_sample)
        if per_sample and expand:
            raise ValueError("RandomRotation: per_sample=True needs expand=False (rotated "
                             "images of one batch must keep one size)")
        self.degrees = _degrees_range(degrees)
        self.interpolation, self.expand, self.center, self.fill = \
            interpolation, expand, center, fill

    @staticmethod
    def get_params(degrees, generator=None) -> float:
        return _uniform(degrees[0], degrees[1], generator)

    def forward(self, img):
        n = self._batch_size(img)
        if n is not None:
            _, h, w = F.get_dimensions(img)
            maps = [F._inverse_affine_matrix(_center(self.center, w, h),
                                             -self.get_params(self.degrees, self.generator),
                                             [0.0, 0.0], 1.0, [0.0, 0.0]) for _ in range(n)]
            return F._apply_grid(img, maps, F._grid_mode(self.interpolation),
                                 _fill_for(self.fill, img))
        angle = self.get_params(self.degrees, self.generator)
        return F.rotate(img, angle, self.interpolation, self.expand, self.center,
                        _fill_for(self.fill, img))


def _center(center, w, h):
    return [0.0, 0.0] if center is None else [c - s * 0.5 for c, s in zip(center, [w, h])]


def _fill_for(fill, img):
    channels = F.get_image_num_channels(img)
    if isinstance(fill, numbers.Number):
        return [float(fill)] * channels
    return [float(f) for f in fill]


class RandomAffine(_Random):
    def __init__(self, degrees, translate=None, scale=None, shear=None,
                 interpolation=InterpolationMode.NEAREST, fill=0, center=None, *,
                 per_sample: bool = False, generator=None):
        super().__init__(generator, per_sample)
        self.degrees = _degrees_range(degrees)
        if translate is not None and not all(0.0 <= t <= 1.0 for t in translate):
            raise ValueError("translation values should be between 0 and 1")
        if scale is not None and any(s <= 0 for s in scale):
            raise ValueError("scale values should be positive")
        self.translate, self.scale = translate, scale
        if shear is not None:
            shear = _degrees_range(shear, "shear") if isinstance(shear, numbers.Number) \
                else [float(s) for s in shear]
            if len(shear) not in (2, 4):
                raise ValueError("shear should be a sequence of length 2 or 4.")
        self.shear = shear
        self.interpolation, self.fill, self.center = interpolation, fill, center

    @staticmethod
    def get_params(degrees, translate, scale_ranges, shears, img_size, generator=None):
        """(angle, (tx, ty), scale, (shear_x, shear_y)); img_size is [width, height]."""
        angle = _uniform(degrees[0], degrees[1], generator)
        if translate is not None:
            max_dx = float(translate[0] * img_size[0])
            max_dy = float(translate[1] * img_size[1])
            tx = int(round(_uniform(-max_dx, max_dx, generator)))
            ty = int(round(_uniform(-max_dy, max_dy, generator)))
            translations = (tx, ty)
        else:
            translations = (0, 0)
        scale = 1.0 if scale_ranges is None else \
            _uniform(scale_ranges[0], scale_ranges[1], generator)
        shear_x = shear_y = 0.0
        if shears is not None:
            shear_x = _uniform(shears[0], shears[1], generator)
            if len(shears) == 4:
                shear_y = _uniform(shears[2], shears[3], generator)
        return angle, translations, scale, (shear_x, shear_y)

    def forward(self, img):
        n = self._batch_size(img)
        if n is not None:
            _, h, w = F.get_dimensions(img)
            maps = []
            for _ in range(n):
                angle, translate, scale, shear = self.get_params(
                    self.degrees, self.translate, self.scale, self.shear, [w, h],
                    self.generator)
                maps.append(F._inverse_affine_matrix(_center(self.center, w, h), angle,
                                                     [float(t) for t in translate], scale,
                                                     list(shear)))
            return F._apply_grid(img, maps, F._grid_mode(self.interpolation),
                                 _fill_for(self.fill, img))
        angle, translate, scale, shear = self.get_params(
            self.degrees, self.translate, self.scale, self.shear, F.get_image_size(img),
            self.generator)
        return F.affine(img, angle, translate, scale, shear, self.interpolation,
                        _fill_for(self.fill, img), self.center)


class _RandomApplyFn(_Random):
    """Apply a functional op with probability p (one draw per call)."""

    def __init__(self, p: float = 0.5, *, generator=None):
        super().__init__(generator)
        self.p = p

    def _apply(self, img):
        raise NotImplementedError

    def forward(self, img):
        if float(ember.rand(1, generator=self.generator).item()) < self.p:
            return self._apply(img)
        return img


class RandomPosterize(_RandomApplyFn):
    def __init__(self, bits: int, p: float = 0.5, *, generator=None):
        super().__init__(p, generator=generator)
        self.bits = bits

    def _apply(self, img):
        return F.posterize(img, self.bits)


class RandomSolarize(_RandomApplyFn):
    def __init__(self, threshold: float, p: float = 0.5, *, generator=None):
        super().__init__(p, generator=generator)
        self.threshold = threshold

    def _apply(self, img):
        return F.solarize(img, self.threshold)


class RandomAdjustSharpness(_RandomApplyFn):
    def __init__(self, sharpness_factor: float, p: float = 0.5, *, generator=None):
        super().__init__(p, generator=generator)
        self.sharpness_factor = sharpness_factor

    def _apply(self, img):
        return F.adjust_sharpness(img, self.sharpness_factor)


class RandomAutocontrast(_RandomApplyFn):
    def _apply(self, img):
        return F.autocontrast(img)


class RandomEqualize(_RandomApplyFn):
    def _apply(self, img):
        return F.equalize(img)


class RandomInvert(_RandomApplyFn):
    def _apply(self, img):
        return F.invert(img)


class RandomChoice(_Random):
    """Apply one of the transforms, drawn with probabilities p (uniform by default)."""

    def __init__(self, transforms, p=None, *, generator=None):
        super().__init__(generator)
        self.transforms = list(transforms)
        if p is not None and len(p) != len(self.transforms):
            raise ValueError(f"Length of p doesn't match the number of transforms: "
                             f"{len(p)} != {len(self.transforms)}")
        self.p = None if p is None else [float(v) / sum(p) for v in p]

    def __call__(self, *args):
        if self.p is None:
            index = _randint(0, len(self.transforms), self.generator)
        else:
            draw, index = _uniform(0.0, 1.0, self.generator), 0
            while index < len(self.p) - 1 and draw >= sum(self.p[:index + 1]):
                index += 1
        return self.transforms[index](*args)


class RandomOrder(_Random):
    """Apply all the transforms in a random order."""

    def __init__(self, transforms, *, generator=None):
        super().__init__(generator)
        self.transforms = list(transforms)

    def forward(self, img):
        for i in ember.randperm(len(self.transforms), generator=self.generator).tolist():
            img = self.transforms[int(i)](img)
        return img


class FiveCrop(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = _size_pair(size)

    def forward(self, img):
        return F.five_crop(img, self.size)


class TenCrop(nn.Module):
    def __init__(self, size, vertical_flip: bool = False):
        super().__init__()
        self.size, self.vertical_flip = _size_pair(size), vertical_flip

    def forward(self, img):
        return F.ten_crop(img, self.size, self.vertical_flip)


class RandomPerspective(_Random):
    """With probability p, a perspective warp moving each corner inward by up to
    distortion_scale of half the image."""

    def __init__(self, distortion_scale: float = 0.5, p: float = 0.5,
                 interpolation=InterpolationMode.BILINEAR, fill=0, *, generator=None):
        super().__init__(generator)
        self.distortion_scale, self.p = distortion_scale, p
        self.interpolation = interpolation
        self.fill = 0 if fill is None else fill

    @staticmethod
    def get_params(width: int, height: int, distortion_scale: float, generator=None):
        """(startpoints, endpoints): the image corners and where they go."""
        dw, dh = int(distortion_scale * (width // 2)), int(distortion_scale * (height // 2))

        def near(lo, hi):
            return _randint(lo, hi, generator)
        topleft = [near(0, dw + 1), near(0, dh + 1)]
        topright = [near(width - dw - 1, width), near(0, dh + 1)]
        botright = [near(width - dw - 1, width), near(height - dh - 1, height)]
        botleft = [near(0, dw + 1), near(height - dh - 1, height)]
        start = [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]
        return start, [topleft, topright, botright, botleft]

    def forward(self, img):
        fill = _fill_for(self.fill, img)
        if _uniform(0.0, 1.0, self.generator) < self.p:
            _, h, w = F.get_dimensions(img)
            start, end = self.get_params(w, h, self.distortion_scale, self.generator)
            return F.perspective(img, start, end, self.interpolation, fill)
        return img


def _two_floats(value, name):
    if isinstance(value, numbers.Number):
        return [float(value), float(value)]
    value = [float(v) for v in value]
    if len(value) == 1:
        return value * 2
    if len(value) != 2:
        raise ValueError(f"If {name} is a sequence its length should be 2. Got {len(value)}")
    return value


class ElasticTransform(_Random):
    """Elastic deformation (Simard et al. 2003): smoothed uniform displacement fields
    scaled by alpha (pixels), sigma the Gaussian's standard deviation."""

    def __init__(self, alpha=50.0, sigma=5.0, interpolation=InterpolationMode.BILINEAR, fill=0,
                 *, generator=None):
        super().__init__(generator)
        self.alpha, self.sigma = _two_floats(alpha, "alpha"), _two_floats(sigma, "sigma")
        self.interpolation = interpolation
        self.fill = [float(fill)] if isinstance(fill, numbers.Number) else \
            [float(f) for f in fill]

    @staticmethod
    def get_params(alpha, sigma, size, generator=None):
        """A [1, H, W, 2] displacement in grid_sample's normalized coordinates."""
        fields = []
        for axis in range(2):
            d = ember.rand([1, 1] + list(size), generator=generator) * 2 - 1
            if sigma[axis] > 0.0:
                k = int(8 * sigma[axis] + 1)
                k += 1 if k % 2 == 0 else 0
                d = F.gaussian_blur(d, [k, k], list(sigma))
            fields.append(d * alpha[axis] / size[1 - axis])
        return ember.cat(fields, dim=1).permute([0, 2, 3, 1])

    def forward(self, img):
        _, h, w = F.get_dimensions(img)
        displacement = self.get_params(self.alpha, self.sigma, [h, w], self.generator)
        return F.elastic_transform(img, displacement, self.interpolation, self.fill)


class LinearTransformation(nn.Module):
    """Flatten, subtract mean_vector, multiply by transformation_matrix (ZCA whitening)."""

    def __init__(self, transformation_matrix, mean_vector):
        super().__init__()
        d = int(transformation_matrix.shape[0])
        if tuple(transformation_matrix.shape) != (d, d):
            raise ValueError(f"transformation_matrix should be square. Got "
                             f"{tuple(transformation_matrix.shape)} rectangular matrix.")
        if int(mean_vector.shape[0]) != d:
            raise ValueError(f"mean_vector should have the same length {int(mean_vector.shape[0])}"
                             f" as any one of the dimensions of the transformation_matrix "
                             f"[{tuple(transformation_matrix.shape)}]")
        self.transformation_matrix, self.mean_vector = transformation_matrix, mean_vector

    def forward(self, tensor):
        shape = list(tensor.shape)
        n = shape[-3] * shape[-2] * shape[-1]
        if n != int(self.transformation_matrix.shape[0]):
            raise ValueError(f"Input tensor and transformation matrix have incompatible shape."
                             f"[{shape[-3]} x {shape[-2]} x {shape[-1]}] != "
                             f"{int(self.transformation_matrix.shape[0])}")
        flat = tensor.reshape([-1, n]) - self.mean_vector.to(tensor.dtype)
        out = ember.matmul(flat, self.transformation_matrix.to(tensor.dtype))
        return out.reshape(shape)
