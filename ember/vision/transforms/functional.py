"""torchvision.transforms.functional's tensor half, for ember tensors.

Every function takes a (..., C, H, W) tensor (an image CxHxW or a batch NxCxHxW) and
follows torchvision's tensor semantics: uint8 images are computed in float and rounded
(or truncated, where torchvision truncates) back; float images are taken in [0, 1].
The deterministic functions use only ember ops and static shapes, so they trace and
compile with `ember.compile`.
"""
from __future__ import annotations

import enum
import math
import numbers

import numpy as np

import ember
import ember.nn.functional as F
from ember.ir import dtypes


class InterpolationMode(enum.Enum):
    """torchvision's interpolation names; the tensor path supports the first four."""
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


_TENSOR_MODES = ("nearest", "nearest-exact", "bilinear", "bicubic")


def _mode(interpolation) -> str:
    if isinstance(interpolation, InterpolationMode):
        interpolation = interpolation.value
    if isinstance(interpolation, int):   # PIL's integer constants
        interpolation = {0: "nearest", 2: "bilinear", 3: "bicubic"}.get(interpolation, "?")
    if interpolation not in _TENSOR_MODES:
        raise ValueError(f"Interpolation mode '{interpolation}' is unsupported with Tensor "
                         f"input")
    return interpolation


# --- image facts ------------------------------------------------------------------------
def _check_image(img, name):
    if not isinstance(img, ember.Tensor) and not hasattr(img, "shape"):
        raise TypeError(f"{name}: img should be a Tensor. Got {type(img)}")
    if img.ndim < 2:
        raise TypeError(f"{name}: tensor is not a torch image (expected at least 2 "
                        f"dimensions, got {img.ndim})")


def get_dimensions(img) -> list[int]:
    """[channels, height, width]."""
    _check_image(img, "get_dimensions")
    channels = 1 if img.ndim == 2 else int(img.shape[-3])
    return [channels, int(img.shape[-2]), int(img.shape[-1])]


def get_image_size(img) -> list[int]:
    """[width, height] (torchvision's order)."""
    _, h, w = get_dimensions(img)
    return [w, h]


def get_image_num_channels(img) -> int:
    return get_dimensions(img)[0]


def _is_float(dtype) -> bool:
    return dtype.is_floating_point


def _max_value(dtype) -> float:
    """The value of a fully-on pixel: 1.0 for floats, the dtype's max for integers."""
    if _is_float(dtype):
        return 1.0
    return {dtypes.uint8: 255, dtypes.int8: 127, dtypes.int16: 32767,
            dtypes.int32: 2147483647, dtypes.int64: 9223372036854775807,
            dtypes.bool_: 1}[dtype]


def _as_batch(img):
    """Lift to 4-D for nn.functional ops; returns the lifted tensor and how to undo it."""
    shape = list(img.shape)
    if img.ndim == 4:
        return img, None
    if img.ndim == 3:
        return img.unsqueeze(0), shape
    if img.ndim == 2:
        return img.reshape([1, 1] + shape), shape
    return img.reshape([-1] + shape[-3:]), shape


def _from_batch(out, shape):
    if shape is None:
        return out
    return out.reshape(shape[:-2] + list(out.shape[-2:]))


def _to_compute(img):
    """Float working copy of an image (integers go to float32, as in torchvision)."""
    return img if _is_float(img.dtype) else img.to(dtypes.float32)


def _back_to(out, dtype):
    """Round to the nearest integer for integer images, then cast back."""
    if out.dtype == dtype:
        return out
    if not _is_float(dtype):
        out = ember.round(out)
    return out.to(dtype)


# --- geometry ---------------------------------------------------------------------------
def hflip(img):
    _check_image(img, "hflip")
    return img.flip(-1)


def vflip(img):
    _check_image(img, "vflip")
    return img.flip(-2)


def _pad_arg(padding) -> list[int]:
    """torchvision's padding (int, [all], [lr, tb] or [l, t, r, b]) as [l, r, t, b]."""
    if isinstance(padding, numbers.Number):
        if not isinstance(padding, int):
            raise TypeError(f"Got inappropriate padding arg: {padding}")
        return [padding] * 4
    padding = list(padding)
    if len(padding) == 1:
        return padding * 4
    if len(padding) == 2:
        return [padding[0], padding[0], padding[1], padding[1]]
    if len(padding) == 4:
        return [padding[0], padding[2], padding[1], padding[3]]
    raise ValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not a "
                     f"{len(padding)} element tuple")


def _symmetric_pad(img, lrtb):
    """Mirror padding that repeats the edge pixel (numpy's 'symmetric')."""
    left, right, top, bottom = lrtb
    parts = [img[..., :, :left].flip(-1)] if left else []
    parts.append(img)
    if right:
        parts.append(img[..., :, img.shape[-1] - right:].flip(-1))
    img = ember.cat(parts, dim=-1) if len(parts) > 1 else img
    parts = [img[..., :top, :].flip(-2)] if top else []
    parts.append(img)
    if bottom:
        parts.append(img[..., img.shape[-2] - bottom:, :].flip(-2))
    return ember.cat(parts, dim=-2) if len(parts) > 1 else img


def pad(img, padding, fill=0, padding_mode: str = "constant"):
    """Pad the last two dims; padding is torchvision's (left, top, right, bottom)."""
    _check_image(img, "pad")
    if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
        raise ValueError("Padding mode should be either constant, edge, reflect or symmetric")
    if not isinstance(fill, numbers.Number):
        raise TypeError(f"Got inappropriate fill arg: {fill}")
    lrtb = _pad_arg(padding)
    if min(lrtb) < 0:   # negative padding crops, as in torchvision
        left, right, top, bottom = lrtb
        h, w = int(img.shape[-2]), int(img.shape[-1])
        img = img[..., max(-top, 0):h - max(-bottom, 0), max(-left, 0):w - max(-right, 0)]
        lrtb = [max(p, 0) for p in lrtb]
    if padding_mode == "constant":
        return F.pad(img, lrtb, mode="constant", value=fill)
    if padding_mode == "symmetric":
        return _symmetric_pad(img, lrtb)
    dtype = img.dtype
    batch, shape = _as_batch(_to_compute(img))
    mode = "replicate" if padding_mode == "edge" else "reflect"
    out = _from_batch(F.pad(batch, lrtb, mode=mode), shape)
    return out.to(dtype)


def crop(img, top: int, left: int, height: int, width: int):
    """img[..., top:top+height, left:left+width], zero-padded where it leaves the image."""
    _check_image(img, "crop")
    _, h, w = get_dimensions(img)
    right, bottom = left + width, top + height
    if left < 0 or top < 0 or right > w or bottom > h:
        inside = img[..., max(top, 0):min(bottom, h), max(left, 0):min(right, w)]
        ltrb = [max(-left + min(0, right), 0), max(-top + min(0, bottom), 0),
                max(right - max(w, left), 0), max(bottom - max(h, top), 0)]
        return pad(inside, ltrb, fill=0)
    return img[..., top:bottom, left:right]


def _pair(size, name) -> list[int]:
    if isinstance(size, numbers.Number):
        return [int(size), int(size)]
    size = list(size)
    if len(size) == 1:
        return [size[0], size[0]]
    if len(size) != 2:
        raise ValueError(f"Please provide only two dimensions (h, w) for {name}.")
    return size


def center_crop(img, output_size):
    """Crop the center; pads with zeros first when the crop is larger than the image."""
    crop_h, crop_w = _pair(output_size, "size")
    _, h, w = get_dimensions(img)
    if crop_w > w or crop_h > h:
        ltrb = [(crop_w - w) // 2 if crop_w > w else 0, (crop_h - h) // 2 if crop_h > h else 0,
                (crop_w - w + 1) // 2 if crop_w > w else 0,
                (crop_h - h + 1) // 2 if crop_h > h else 0]
        img = pad(img, ltrb, fill=0)
        _, h, w = get_dimensions(img)
        if crop_w == w and crop_h == h:
            return img
    top = int(round((h - crop_h) / 2.0))
    left = int(round((w - crop_w) / 2.0))
    return crop(img, top, left, crop_h, crop_w)


def _resized_size(h, w, size, max_size):
    """torchvision's rule: one number sets the shorter edge, keeping the aspect ratio."""
    if isinstance(size, numbers.Number):
        size = [int(size)]
    size = list(size)
    if len(size) == 2:
        if max_size is not None:
            raise ValueError("max_size should only be passed if size specifies the length "
                             "of the smaller edge, i.e. size should be an int or a sequence "
                             "of length 1 in torchscript mode.")
        return size
    if len(size) != 1:
        raise ValueError(f"If size is a sequence, it should have 1 or 2 values, got "
                         f"{len(size)}")
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size[0], int(size[0] * long / short)
    if max_size is not None:
        if max_size <= size[0]:
            raise ValueError(f"max_size = {max_size} must be strictly greater than the "
                             f"requested size for the smaller edge size = {size}")
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    return [new_long, new_short] if w <= h else [new_short, new_long]


def resize(img, size, interpolation=InterpolationMode.BILINEAR, max_size=None,
           antialias: bool | None = True):
    """Resize to size=(h, w), or the shorter edge to size; antialias for (bi)linear/cubic."""
    _check_image(img, "resize")
    mode = _mode(interpolation)
    _, h, w = get_dimensions(img)
    new_h, new_w = _resized_size(h, w, size, max_size)
    if (new_h, new_w) == (h, w):
        return img
    dtype = img.dtype
    batch, shape = _as_batch(_to_compute(img))
    linear = mode in ("bilinear", "bicubic")
    out = F.interpolate(batch, size=[new_h, new_w], mode=mode,
                        align_corners=False if linear else None,
                        antialias=bool(antialias) and linear)
    if mode == "bicubic" and dtype == dtypes.uint8:
        out = out.clamp(0, 255)
    return _back_to(_from_batch(out, shape), dtype)


def resized_crop(img, top, left, height, width, size,
                 interpolation=InterpolationMode.BILINEAR, antialias: bool | None = True):
    img = crop(img, top, left, height, width)
    return resize(img, size, interpolation, antialias=antialias)


def five_crop(img, size):
    crop_h, crop_w = _pair(size, "size")
    _, h, w = get_dimensions(img)
    if crop_w > w or crop_h > h:
        raise ValueError(f"Requested crop size {size} is bigger than input size {(h, w)}")
    return (crop(img, 0, 0, crop_h, crop_w), crop(img, 0, w - crop_w, crop_h, crop_w),
            crop(img, h - crop_h, 0, crop_h, crop_w),
            crop(img, h - crop_h, w - crop_w, crop_h, crop_w), center_crop(img, [crop_h, crop_w]))


# --- values -----------------------------------------------------------------------------
def normalize(tensor, mean, std, inplace: bool = False):
    """(tensor - mean[c]) / std[c] over the channel dim of a float (..., C, H, W) tensor."""
    if not _is_float(tensor.dtype):
        raise TypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
    if tensor.ndim < 3:
        raise ValueError(f"Expected tensor to be a tensor image of size (..., C, H, W). Got "
                         f"tensor.size() = {tuple(tensor.shape)}")
    std_values = _concrete_values(std)
    if std_values is not None and (std_values.astype(
            np.float16 if tensor.dtype == dtypes.float16 else np.float64) == 0).any():
        raise ValueError(f"std evaluated to zero after conversion to {tensor.dtype}, leading "
                         f"to division by zero.")
    mean = ember.as_tensor(mean, dtype=tensor.dtype, device=tensor.device)
    std = ember.as_tensor(std, dtype=tensor.dtype, device=tensor.device)
    if mean.ndim == 1:
        mean = mean.reshape([-1, 1, 1])
    if std.ndim == 1:
        std = std.reshape([-1, 1, 1])
    if inplace:
        return tensor.sub_(mean).div_(std)
    return (tensor - mean) / std


def convert_image_dtype(image, dtype=dtypes.float32):
    """Convert and rescale: integers span [0, max], floats [0, 1] (torchvision's rule)."""
    if image.dtype == dtype:
        return image
    if _is_float(image.dtype):
        if _is_float(dtype):
            return image.to(dtype)
        if (image.dtype == dtypes.float32 and dtype in (dtypes.int32, dtypes.int64)) or \
                (image.dtype == dtypes.float64 and dtype == dtypes.int64):
            raise RuntimeError(f"The cast from {image.dtype} to {dtype} cannot be performed "
                               f"safely.")
        eps = 1e-3   # so that 1.0 maps to max, not max + 1
        if image.dtype in (dtypes.float16, dtypes.bfloat16):
            image = image.to(dtypes.float32)   # 255.999 is 256 in half precision
        return (image * (_max_value(dtype) + 1.0 - eps)).to(dtype)
    in_max = _max_value(image.dtype)
    if _is_float(dtype):
        return image.to(dtype) / in_max
    out_max = _max_value(dtype)
    if in_max > out_max:
        factor = (in_max + 1) // (out_max + 1)
        return ember.div(image, factor, rounding_mode="floor").to(dtype)
    factor = (out_max + 1) // (in_max + 1)
    return image.to(dtype) * factor


def _concrete_values(t):
    """The values of a number, list or eager tensor as numpy; None for a tensor being traced
    (ember.compile): checks on values must not break the graph, so they are skipped there."""
    if isinstance(t, numbers.Number) or isinstance(t, (list, tuple)):
        return np.asarray(t, dtype=np.float64)
    if isinstance(t, ember.Tensor):
        return t.detach().cpu().numpy()
    return None


def _per_sample(factor, img, trailing: int):
    """A factor as a number, or (ember extension) a [N] tensor of one factor per image of
    an (N, ..., H, W) batch, shaped to broadcast over the `trailing` dims after N."""
    if isinstance(factor, numbers.Number):
        return float(factor)
    if factor.ndim != 1 or img.ndim < trailing + 1 or int(factor.shape[0]) != int(img.shape[0]):
        raise ValueError(f"a per-image factor must be a 1-D tensor with one value per image "
                         f"of the batch, got shape {list(factor.shape)} for images of shape "
                         f"{list(img.shape)}")
    return factor.to(img.dtype if img.dtype.is_floating_point else dtypes.float32).reshape(
        [-1] + [1] * trailing)


def _blend(img1, img2, ratio):
    ratio = _per_sample(ratio, img1, img1.ndim - 1)
    bound = _max_value(img1.dtype)
    return (ratio * img1 + (1.0 - ratio) * img2).clamp(0, bound).to(img1.dtype)


def rgb_to_grayscale(img, num_output_channels: int = 1):
    """ITU-R 601-2 luma (0.2989 R + 0.587 G + 0.114 B), cast back by truncation."""
    if num_output_channels not in (1, 3):
        raise ValueError("num_output_channels should be either 1 or 3")
    channels = get_image_num_channels(img)
    if channels not in (1, 3):
        raise TypeError(f"Input image tensor permitted channel values are [1, 3], but found "
                        f"{channels}")
    if channels == 1:
        gray = img
    else:
        r, g, b = img.unbind(dim=-3)
        gray = (0.2989 * r + 0.587 * g + 0.114 * b).to(img.dtype).unsqueeze(-3)
    if num_output_channels == 3:
        return gray.expand(list(img.shape[:-3]) + [3] + list(img.shape[-2:]))
    return gray


def _check_factor(value, name):
    values = _concrete_values(value)
    if values is not None and (values < 0).any():
        shown = value if isinstance(value, numbers.Number) else values.tolist()
        raise ValueError(f"{name} ({shown}) is not non-negative.")


def adjust_brightness(img, brightness_factor: float):
    _check_factor(brightness_factor, "brightness_factor")
    return _blend(img, ember.zeros_like(img), brightness_factor)


def adjust_contrast(img, contrast_factor: float):
    _check_factor(contrast_factor, "contrast_factor")
    dtype = img.dtype if _is_float(img.dtype) else dtypes.float32
    gray = rgb_to_grayscale(img) if get_image_num_channels(img) == 3 else img
    mean = gray.to(dtype).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(img, mean, contrast_factor)


def adjust_saturation(img, saturation_factor: float):
    _check_factor(saturation_factor, "saturation_factor")
    if get_image_num_channels(img) == 1:
        return img
    return _blend(img, rgb_to_grayscale(img), saturation_factor)


def _rgb_to_hsv(img):
    r, g, b = img.unbind(dim=-3)
    maxc = img.amax(dim=-3)
    minc = img.amin(dim=-3)
    gray = maxc == minc          # hue is undefined; 0 by convention
    ones = ember.ones_like(maxc)
    chroma = maxc - minc
    s = chroma / ember.where(gray, ones, maxc)
    chroma = ember.where(gray, ones, chroma)
    rc, gc, bc = (maxc - r) / chroma, (maxc - g) / chroma, (maxc - b) / chroma
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    is_b = ~(maxc == g) & ~is_r
    h = is_r.to(img.dtype) * (bc - gc) + is_g.to(img.dtype) * (2.0 + rc - bc) \
        + is_b.to(img.dtype) * (4.0 + gc - rc)
    h = ember.fmod(h / 6.0 + 1.0, 1.0)
    return h, s, maxc


def _hsv_to_rgb(h, s, v):
    sector = ember.floor(h * 6.0)
    frac = h * 6.0 - sector
    sector = ember.remainder(sector, 6.0)
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * frac)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - frac))).clamp(0.0, 1.0)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    channels = []
    for c in range(3):
        out = table[5][c]
        for k in range(4, -1, -1):
            out = ember.where(sector == float(k), table[k][c], out)
        channels.append(out)
    return ember.stack(channels, dim=-3)


def adjust_hue(img, hue_factor: float):
    """Rotate hue by hue_factor turns (in [-0.5, 0.5]) through HSV."""
    values = _concrete_values(hue_factor)
    if values is not None and ((values < -0.5) | (values > 0.5)).any():
        shown = hue_factor if isinstance(hue_factor, numbers.Number) else values.tolist()
        raise ValueError(f"hue_factor ({shown}) is not in [-0.5, 0.5].")
    if get_image_num_channels(img) == 1:
        return img
    dtype = img.dtype
    work = img.to(dtypes.float32) / 255.0 if dtype == dtypes.uint8 else img
    h, s, v = _rgb_to_hsv(work)
    shift = _per_sample(hue_factor, work, work.ndim - 2)
    out = _hsv_to_rgb(ember.fmod(h + shift + 1.0, 1.0), s, v)
    if dtype == dtypes.uint8:
        return (out * 255.0).to(dtype)
    return out


def adjust_gamma(img, gamma: float, gain: float = 1.0):
    if gamma < 0:
        raise ValueError("Gamma should be a non-negative real number")
    dtype = img.dtype
    work = img if _is_float(dtype) else convert_image_dtype(img, dtypes.float32)
    out = (gain * work ** gamma).clamp(0, 1)
    return convert_image_dtype(out, dtype)


def invert(img):
    return _max_value(img.dtype) - img if _is_float(img.dtype) else \
        (_max_value(img.dtype) - img.to(dtypes.int64)).to(img.dtype)


def erase(img, i: int, j: int, h: int, w: int, v, inplace: bool = False):
    """Replace img[..., i:i+h, j:j+w] with v (a tensor broadcastable to (..., C, h, w))."""
    _check_image(img, "erase")
    _, height, width = get_dimensions(img)
    patch = (v if isinstance(v, ember.Tensor) else ember.as_tensor(v)).to(img.dtype)
    patch = patch.to(img.device)
    patch = patch.expand(list(img.shape[:-2]) + [h, w])
    pads = [j, width - j - w, i, height - i - h]
    inside = F.pad(ember.ones(h, w, device=img.device), pads) > 0.5
    out = ember.where(inside, F.pad(patch, pads), img)
    if inplace:
        img.copy_(out)
        return img
    return out


# --- blur -------------------------------------------------------------------------------
def _gaussian_kernel1d(size: int, sigma: float, dtype, device=None):
    half = (size - 1) * 0.5
    x = ember.linspace(-half, half, size, dtype=dtype, device=device)
    pdf = ember.exp(-0.5 * (x / sigma) ** 2)
    return pdf / pdf.sum()


def gaussian_blur(img, kernel_size, sigma=None):
    """Separable Gaussian, reflect-padded; kernel_size and sigma are (x, y) as torchvision's."""
    if isinstance(kernel_size, int):
        kernel_size = [kernel_size, kernel_size]
    kernel_size = list(kernel_size)
    if len(kernel_size) != 2:
        raise ValueError(f"If kernel_size is a sequence its length should be 2. Got "
                         f"{len(kernel_size)}")
    for k in kernel_size:
        if k % 2 == 0 or k < 0:
            raise ValueError(f"kernel_size should have odd and positive integers. Got "
                             f"{kernel_size}")
    if sigma is not None and not isinstance(sigma, (numbers.Number, list, tuple)):
        return _gaussian_blur_per_image(img, kernel_size, sigma)
    if sigma is None:
        sigma = [k * 0.15 + 0.35 for k in kernel_size]
    if isinstance(sigma, numbers.Number):
        sigma = [float(sigma), float(sigma)]
    sigma = [float(s) for s in sigma]
    if len(sigma) == 1:
        sigma = sigma * 2
    if any(s <= 0 for s in sigma):
        raise ValueError(f"sigma should have positive values. Got {sigma}")
    dtype = img.dtype
    batch, shape = _as_batch(_to_compute(img))
    kx = _gaussian_kernel1d(kernel_size[0], sigma[0], batch.dtype, batch.device)
    ky = _gaussian_kernel1d(kernel_size[1], sigma[1], batch.dtype, batch.device)
    channels = int(batch.shape[1])
    kernel = ember.outer(ky, kx).expand([channels, 1, kernel_size[1], kernel_size[0]])
    padded = F.pad(batch, [kernel_size[0] // 2, kernel_size[0] // 2,
                           kernel_size[1] // 2, kernel_size[1] // 2], mode="reflect")
    out = F.conv2d(padded, kernel, groups=channels)
    return _back_to(_from_batch(out, shape), dtype)


def _gaussian_blur_per_image(img, kernel_size, sigma):
    """(ember extension) one isotropic sigma per image of an (N, C, H, W) batch: a grouped
    convolution with N * C kernels."""
    if img.ndim != 4 or sigma.ndim != 1 or int(sigma.shape[0]) != int(img.shape[0]):
        raise ValueError(f"gaussian_blur: a sigma tensor needs one value per image of an "
                         f"(N, C, H, W) batch, got sigma {list(sigma.shape)} for images "
                         f"{list(img.shape)}")
    values = _concrete_values(sigma)
    if values is not None and (values <= 0).any():
        raise ValueError(f"sigma should have positive values. Got {values.tolist()}")
    dtype = img.dtype
    batch = _to_compute(img)
    n, channels, h, w = (int(v) for v in batch.shape)
    sig = sigma.to(batch.device, batch.dtype).reshape([n, 1])

    def kernel1d(size):
        half = (size - 1) * 0.5
        x = ember.linspace(-half, half, size, dtype=batch.dtype,
                           device=batch.device).reshape([1, size])
        pdf = ember.exp(-0.5 * (x / sig) ** 2)
        return pdf / pdf.sum(dim=1, keepdim=True)                      # [N, size]
    kx, ky = kernel1d(kernel_size[0]), kernel1d(kernel_size[1])
    kernel = ky.unsqueeze(2) * kx.unsqueeze(1)                           # [N, kh, kw]
    kernel = kernel.unsqueeze(1).expand([n, channels, kernel_size[1], kernel_size[0]])
    kernel = kernel.reshape([n * channels, 1, kernel_size[1], kernel_size[0]])
    padded = F.pad(batch, [kernel_size[0] // 2, kernel_size[0] // 2,
                           kernel_size[1] // 2, kernel_size[1] // 2], mode="reflect")
    flat = padded.reshape([1, n * channels] + list(padded.shape[-2:]))
    out = F.conv2d(flat, kernel, groups=n * channels).reshape([n, channels, h, w])
    return _back_to(out, dtype)


# --- affine -----------------------------------------------------------------------------
def _inverse_affine_matrix(center, angle, translate, scale, shear) -> list[float]:
    """Output -> input map of T * C * R(angle) S(scale) Sh(shear) * C^-1, as 6 numbers.

    R S Sh without the scale is [[a, b], [c, d]] with det 1, so its inverse is
    [[d, -b], [-c, a]]; the centre and translation are folded into the last column.
    """
    rot = math.radians(angle)
    sx, sy = (math.radians(s) for s in shear)
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0]
    m[2] = m[0] * (-cx - tx) + m[1] * (-cy - ty) + cx
    m[5] = m[3] * (-cx - tx) + m[4] * (-cy - ty) + cy
    return m


def _affine_grid(matrices, w, h, out_w, out_h, dtype, device=None):
    """Sampling grid [M, oh, ow, 2] in grid_sample's normalized coords (pixel centres,
    origin mid-image) for M inverse affine maps of 6 numbers each."""
    xs = ember.linspace(-out_w * 0.5 + 0.5, out_w * 0.5 - 0.5, out_w, dtype=dtype, device=device)
    ys = ember.linspace(-out_h * 0.5 + 0.5, out_h * 0.5 - 0.5, out_h, dtype=dtype, device=device)
    gx = xs.reshape([1, 1, out_w]).expand([1, out_h, out_w])
    gy = ys.reshape([1, out_h, 1]).expand([1, out_h, out_w])
    coeffs = ember.tensor(matrices, dtype=dtype, device=device).reshape([-1, 2, 3, 1, 1])
    # coefficients normalized first, then x * a + y * b + c: torchvision's order of float
    # operations, so that nearest sampling breaks .5 ties the same way
    coeffs = coeffs / ember.tensor([0.5 * w, 0.5 * h], dtype=dtype,
                                   device=device).reshape([1, 2, 1, 1, 1])
    a, b, c, d, e, f = coeffs.reshape([-1, 6, 1, 1]).unbind(1)
    in_x = gx * a + gy * b + c
    in_y = gx * d + gy * e + f
    return ember.stack([in_x, in_y], dim=-1)


def _apply_grid(img, matrix, mode, fill, out_size=None):
    """Resample by an inverse affine map (6 numbers), or one map per image of a batch."""
    dtype = img.dtype
    batch, shape = _as_batch(_to_compute(img))
    n, channels, h, w = (int(s) for s in batch.shape)
    out_h, out_w = out_size if out_size is not None else (h, w)
    per_image = isinstance(matrix[0], (list, tuple))
    if per_image and len(matrix) != n:
        raise ValueError(f"one affine map per image: got {len(matrix)} maps for {n} images")
    grid = _affine_grid(matrix if per_image else [matrix], w, h, out_w, out_h, batch.dtype,
                        batch.device)
    grid = grid if per_image else grid.expand([n, out_h, out_w, 2])
    if fill is not None:    # a ones channel tells which outputs came from outside
        batch = ember.cat([batch, ember.ones_like(batch[:, :1])], dim=1)
    out = F.grid_sample(batch, grid, mode=mode, padding_mode="zeros", align_corners=False)
    if fill is not None:
        out, mask = out[:, :channels], out[:, channels:]
        fill = [float(fill)] * channels if isinstance(fill, numbers.Number) else \
            [float(v) for v in fill]
        if len(fill) == 1:
            fill = fill * channels
        if len(fill) != channels:
            raise ValueError(f"The number of elements in 'fill' does not match the number of "
                             f"channels of the image ({len(fill)} != {channels})")
        fill_t = ember.as_tensor(fill, dtype=out.dtype, device=out.device).reshape(
            [1, channels, 1, 1])
        if mode == "nearest":
            out = ember.where(mask < 0.5, fill_t, out)
        else:
            out = out * mask + (1.0 - mask) * fill_t
    if shape is not None:
        shape = shape[:-2] + [out_h, out_w]
        out = out.reshape(shape)
    return _back_to(out, dtype)


def _grid_mode(interpolation):
    mode = _mode(interpolation)
    if mode not in ("nearest", "bilinear", "bicubic"):
        raise ValueError(f"Interpolation mode '{mode}' is unsupported with Tensor input")
    return mode


def affine(img, angle: float, translate, scale: float, shear, interpolation=InterpolationMode
           .NEAREST, fill=None, center=None):
    """Rotate (clockwise, degrees), translate (pixels), scale and shear (degrees)."""
    _check_image(img, "affine")
    if len(list(translate)) != 2:
        raise ValueError(f"Argument translate should be a sequence of length 2, got "
                         f"{translate}")
    if scale <= 0.0:
        raise ValueError("Argument scale should be positive")
    if isinstance(shear, numbers.Number):
        shear = [float(shear), 0.0]
    shear = [float(s) for s in shear]
    if len(shear) == 1:
        shear = [shear[0], shear[0]]
    _, h, w = get_dimensions(img)
    center_f = [0.0, 0.0] if center is None else \
        [c - s * 0.5 for c, s in zip(center, [w, h])]
    matrix = _inverse_affine_matrix(center_f, float(angle), [float(t) for t in translate],
                                    float(scale), shear)
    return _apply_grid(img, matrix, _grid_mode(interpolation), fill)


def _expanded_size(matrix, w, h) -> tuple[int, int]:
    """Bounding box (h, w) of the image corners under the map, as torchvision computes it:
    in float32, corners shifted to [0, w] x [0, h] before rounding outward (with a 1e-4
    tolerance), so a rotation by 0 keeps the size."""
    theta = np.asarray(matrix, dtype=np.float32).reshape(2, 3)
    corners = np.array([[-0.5 * w, -0.5 * h, 1.0], [-0.5 * w, 0.5 * h, 1.0],
                        [0.5 * w, 0.5 * h, 1.0], [0.5 * w, -0.5 * h, 1.0]], dtype=np.float32)
    pts = corners @ theta.T
    shift = np.array([w * 0.5, h * 0.5], dtype=np.float32)
    lo, hi = pts.min(axis=0) + shift, pts.max(axis=0) + shift
    tol = np.float32(1e-4)
    size = np.ceil(np.trunc(hi / tol) * tol) - np.floor(np.trunc(lo / tol) * tol)
    return int(size[1]), int(size[0])


def rotate(img, angle: float, interpolation=InterpolationMode.NEAREST, expand: bool = False,
           center=None, fill=None):
    """Rotate counter-clockwise by angle degrees about the centre (or `center`)."""
    _check_image(img, "rotate")
    _, h, w = get_dimensions(img)
    center_f = [0.0, 0.0] if center is None else \
        [c - s * 0.5 for c, s in zip(center, [w, h])]
    matrix = _inverse_affine_matrix(center_f, -float(angle), [0.0, 0.0], 1.0, [0.0, 0.0])
    out_size = _expanded_size(matrix, w, h) if expand else None
    return _apply_grid(img, matrix, _grid_mode(interpolation), fill, out_size)


# --- PIL interop ------------------------------------------------------------------------
def pil_to_tensor(pic):
    """PIL image -> uint8 CxHxW tensor (no scaling)."""
    import numpy as np
    arr = np.asarray(pic)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return ember.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def to_tensor(pic):
    """PIL image or HxWxC numpy array -> float CxHxW in [0, 1] (integers divided by max)."""
    import numpy as np
    arr = np.asarray(pic)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    arr = np.ascontiguousarray(arr.transpose(2, 0, 1))
    if arr.dtype == np.uint8:
        return ember.from_numpy(arr.astype(np.float32) / 255.0)
    return ember.from_numpy(arr)


def to_pil_image(pic, mode=None):
    """uint8 (or float in [0, 1]) CxHxW tensor -> PIL image."""
    import numpy as np
    from PIL import Image
    arr = pic.detach().cpu().numpy() if hasattr(pic, "detach") else np.asarray(pic)
    if arr.ndim == 3:
        arr = arr.transpose(1, 2, 0)
        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
    if arr.dtype.kind == "f":
        arr = (arr * 255).astype(np.uint8)
    img = Image.fromarray(arr)
    return img if mode is None or img.mode == mode else img.convert(mode)


# --- histogram and value ops (AutoAugment's vocabulary) --------------------------------
def _check_channels(img, name, allowed=(1, 3)):
    if img.ndim < 3:
        raise TypeError(f"{name}: input image tensor should have at least 3 dimensions, but "
                        f"found {img.ndim}")
    channels = get_image_num_channels(img)
    if channels not in allowed:
        raise TypeError(f"Input image tensor permitted channel values are {list(allowed)}, "
                        f"but found {channels}")


def posterize(img, bits: int):
    """Keep the top `bits` bits of each uint8 value."""
    _check_channels(img, "posterize")
    if img.dtype != dtypes.uint8:
        raise TypeError(f"Only torch.uint8 image tensors are supported, but found {img.dtype}")
    if not 0 <= int(bits) <= 8:
        raise ValueError(f"bits must be in [0, 8], got {bits}")
    mask = (0xFF << (8 - int(bits))) & 0xFF
    return ember.bitwise_and(img, ember.tensor(mask, dtype=dtypes.uint8, device=img.device))


def solarize(img, threshold: float):
    """Invert the values at or above threshold."""
    _check_channels(img, "solarize")
    if threshold > _max_value(img.dtype):
        raise TypeError("Threshold should be less than bound of img.")
    return ember.where(img >= threshold, invert(img), img)


def _blurred_degenerate_image(img):
    """The image smoothed by PIL's SMOOTH kernel (1 1 1 / 1 5 1 / 1 1 1, over 13) inside,
    its one-pixel border unchanged."""
    dtype = img.dtype
    batch, shape = _as_batch(_to_compute(img))
    channels = int(batch.shape[1])
    kernel = ember.ones(3, 3, dtype=batch.dtype, device=batch.device)
    kernel = (kernel + 4.0 * F.pad(ember.ones(1, 1, dtype=batch.dtype, device=batch.device),
                                   [1, 1, 1, 1])) / 13.0
    inner = F.conv2d(batch, kernel.expand([channels, 1, 3, 3]), groups=channels)
    inner = _back_to(_from_batch(inner, shape), dtype)
    return ember.where(_interior_mask(img), F.pad(inner, [1, 1, 1, 1]), img)


def _interior_mask(img):
    h, w = int(img.shape[-2]), int(img.shape[-1])
    inner = ember.ones(h - 2, w - 2, device=img.device)
    return F.pad(inner, [1, 1, 1, 1]) > 0.5


def adjust_sharpness(img, sharpness_factor: float):
    """Blend with a smoothed copy: 0 blurs, 1 is the image, 2 sharpens."""
    if sharpness_factor < 0:
        raise ValueError(f"sharpness_factor ({sharpness_factor}) is not non-negative.")
    _check_channels(img, "adjust_sharpness")
    if int(img.shape[-1]) <= 2 or int(img.shape[-2]) <= 2:
        return img
    return _blend(img, _blurred_degenerate_image(img), sharpness_factor)


def autocontrast(img):
    """Stretch each channel to span [0, max]; constant channels are left alone."""
    _check_channels(img, "autocontrast")
    bound = _max_value(img.dtype)
    dtype = img.dtype if _is_float(img.dtype) else dtypes.float32
    lo = img.amin(dim=(-2, -1), keepdim=True).to(dtype)
    hi = img.amax(dim=(-2, -1), keepdim=True).to(dtype)
    flat = hi == lo
    # bound * reciprocal, not bound / x: torch evaluates `scalar / tensor` that way, and a
    # one-ulp difference flips uint8 truncation
    spread = ember.where(flat, ember.ones_like(hi), hi - lo)
    scale = ember.where(flat, ember.ones_like(hi), spread.reciprocal() * bound)
    lo = ember.where(flat, ember.zeros_like(lo), lo)
    return ((img.to(dtype) - lo) * scale).clamp(0, bound).to(img.dtype)


def _equalize_lut(channel: np.ndarray) -> np.ndarray:
    """PIL's equalization table of one uint8 channel: cumulative histogram over a step that
    ignores the last non-empty bin; identity when the step is 0."""
    hist = np.bincount(channel.reshape(-1), minlength=256).astype(np.int64)
    nonzero = hist[hist != 0]
    step = int(nonzero[:-1].sum()) // 255
    if step == 0:
        return np.arange(256, dtype=np.uint8)
    lut = (np.cumsum(hist) + step // 2) // step
    lut = np.concatenate([[0], lut[:-1]]).clip(0, 255)
    return lut.astype(np.uint8)


def equalize(img):
    """Histogram-equalize each channel of a uint8 image (computed on the host: the lookup
    table depends on the data)."""
    if not 3 <= img.ndim <= 4:
        raise TypeError(f"Input image tensor should have 3 or 4 dimensions, but found "
                        f"{img.ndim}")
    if img.dtype != dtypes.uint8:
        raise TypeError(f"Only torch.uint8 image tensors are supported, but found {img.dtype}")
    _check_channels(img, "equalize")
    arr = img.detach().cpu().numpy()
    flat = arr.reshape(-1, arr.shape[-2], arr.shape[-1])
    out = np.stack([_equalize_lut(ch)[ch] for ch in flat]).reshape(arr.shape)
    return ember.from_numpy(out).to(img.device)


def ten_crop(img, size, vertical_flip: bool = False):
    """The five crops of the image and the five of its (horizontal or vertical) flip."""
    size = _pair(size, "size")
    flipped = vflip(img) if vertical_flip else hflip(img)
    return five_crop(img, size) + five_crop(flipped, size)


# --- perspective and elastic warps --------------------------------------------------------
def _get_perspective_coeffs(startpoints, endpoints) -> list[float]:
    """The 8 coefficients of the output -> input homography mapping endpoints to
    startpoints (least squares in float64, then float32 as torchvision)."""
    if len(startpoints) != 4 or len(endpoints) != 4:
        raise ValueError(f"Please provide exactly four corners, got {len(startpoints)} "
                         f"startpoints and {len(endpoints)} endpoints.")
    a = np.zeros((8, 8))
    for i, (p1, p2) in enumerate(zip(endpoints, startpoints)):
        a[2 * i] = [p1[0], p1[1], 1, 0, 0, 0, -p2[0] * p1[0], -p2[0] * p1[1]]
        a[2 * i + 1] = [0, 0, 0, p1[0], p1[1], 1, -p2[1] * p1[0], -p2[1] * p1[1]]
    b = np.asarray(startpoints, dtype=np.float64).reshape(8)
    coeffs = np.linalg.lstsq(a, b, rcond=None)[0]
    return [float(c) for c in coeffs.astype(np.float32)]


def _grid_fill(fill, channels):
    if fill is None:
        return None
    fill = [float(fill)] if isinstance(fill, numbers.Number) else [float(v) for v in fill]
    if len(fill) > 1 and len(fill) != channels:
        raise ValueError(f"The number of elements in 'fill' cannot broadcast to match the "
                         f"number of channels of the image ({len(fill)} != {channels})")
    return fill


def _sample_grid(img, grid, mode, fill):
    """grid_sample an image (any leading dims) with a [1, H, W, 2] or [N, H, W, 2] grid;
    fill marks outside samples as torchvision's _apply_grid_transform does."""
    dtype = img.dtype
    batch, shape = _as_batch(_to_compute(img))
    n, channels = int(batch.shape[0]), int(batch.shape[1])
    fill = _grid_fill(fill, channels)
    grid = grid.to(batch.dtype).to(batch.device)
    if int(grid.shape[0]) != n:
        grid = grid.expand([n] + list(grid.shape[1:]))
    if fill is not None:
        batch = ember.cat([batch, ember.ones_like(batch[:, :1])], dim=1)
    out = F.grid_sample(batch, grid, mode=mode, padding_mode="zeros", align_corners=False)
    if fill is not None:
        out, mask = out[:, :channels], out[:, channels:]
        fill_t = ember.as_tensor(fill, dtype=out.dtype, device=out.device).reshape(
            [1, len(fill), 1, 1])
        if mode == "nearest":
            out = ember.where(mask < 0.5, fill_t.expand(list(out.shape)), out)
        else:
            out = out * mask + (1.0 - mask) * fill_t
    if shape is not None:
        out = out.reshape(shape[:-2] + list(out.shape[-2:]))
    return _back_to(out, dtype)


def _perspective_grid(coeffs, w, h, dtype, device=None):
    """[1, h, w, 2] grid: pixel centres mapped through the homography, normalized."""
    # torchvision's order of float32 operations (coefficients normalized first)
    theta = ember.tensor([coeffs[:3], coeffs[3:6]], dtype=dtype, device=device)
    theta = theta / ember.tensor([[0.5 * w], [0.5 * h]], dtype=dtype, device=device)
    a, b, c, d, e, f = theta.reshape([6]).tolist()
    g, hh = (float(np.float32(v)) for v in coeffs[6:])
    xs = ember.linspace(0.5, w - 0.5, w, dtype=dtype, device=device).reshape([1, w])
    ys = ember.linspace(0.5, h - 0.5, h, dtype=dtype, device=device).reshape([h, 1])
    den = xs * g + ys * hh + 1.0
    gx = (xs * a + ys * b + c) / den - 1.0
    gy = (xs * d + ys * e + f) / den - 1.0
    return ember.stack([gx, gy], dim=-1).unsqueeze(0)


def perspective(img, startpoints, endpoints, interpolation=InterpolationMode.BILINEAR,
                fill=None):
    """Warp so that the four startpoints land on the four endpoints ([x, y] each)."""
    _check_image(img, "perspective")
    coeffs = _get_perspective_coeffs(startpoints, endpoints)
    mode = _mode(interpolation)
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"Interpolation mode '{mode}' is unsupported with Tensor input")
    _, h, w = get_dimensions(img)
    dtype = img.dtype if _is_float(img.dtype) else dtypes.float32
    return _sample_grid(img, _perspective_grid(coeffs, w, h, dtype, img.device), mode, fill)


def _identity_grid(h, w, dtype, device=None):
    xs = ember.linspace((-w + 1) / w, (w - 1) / w, w, dtype=dtype, device=device)
    ys = ember.linspace((-h + 1) / h, (h - 1) / h, h, dtype=dtype, device=device)
    gx = xs.reshape([1, w]).expand([h, w])
    gy = ys.reshape([h, 1]).expand([h, w])
    return ember.stack([gx, gy], dim=-1).unsqueeze(0)


def elastic_transform(img, displacement, interpolation=InterpolationMode.BILINEAR, fill=None):
    """Resample at identity + displacement; displacement is [1, H, W, 2] in grid_sample's
    normalized coordinates (x then y)."""
    _check_image(img, "elastic_transform")
    if not isinstance(displacement, ember.Tensor):
        raise TypeError("Argument displacement should be a Tensor")
    _, h, w = get_dimensions(img)
    if tuple(int(s) for s in displacement.shape) != (1, h, w, 2):
        raise ValueError(f"Argument displacement shape should be {(1, h, w, 2)}, but given "
                         f"{tuple(int(s) for s in displacement.shape)}")
    mode = _mode(interpolation)
    dtype = img.dtype if _is_float(img.dtype) else dtypes.float32
    grid = _identity_grid(h, w, dtype, img.device) + displacement.to(dtype).to(img.device)
    return _sample_grid(img, grid, mode, fill)
