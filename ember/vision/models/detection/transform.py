"""torchvision.models.detection.transform: GeneralizedRCNNTransform (normalize, resize so
the short side reaches min_size without the long side passing max_size, zero-pad into one
batch whose sides are multiples of size_divisible) and ImageList, plus the inverse box
rescaling applied to the detections."""
from __future__ import annotations

import math

import numpy as np

import ember
from ember import nn
import ember.nn.functional as F

__all__ = ["ImageList", "GeneralizedRCNNTransform", "resize_boxes"]


class ImageList:
    """A padded batch of images and the (height, width) of each before padding."""

    def __init__(self, tensors, image_sizes):
        self.tensors = tensors
        self.image_sizes = [tuple(int(d) for d in s) for s in image_sizes]

    def to(self, device):
        return ImageList(self.tensors.to(device), self.image_sizes)


def _resized_shape(height: int, width: int, min_size: float, max_size: float):
    """torchvision's eager rule: scale = min(min_size / short side, max_size / long side) in
    double precision, new side = floor(side * scale) (interpolate's recompute_scale_factor)."""
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return math.floor(height * scale), math.floor(width * scale)


def resize_boxes(boxes, original_size, new_size):
    """Scale (x1, y1, x2, y2) boxes from an image of original_size to new_size (h, w)."""
    ratio_h = np.float32(new_size[0]) / np.float32(original_size[0])
    ratio_w = np.float32(new_size[1]) / np.float32(original_size[1])
    x1, y1, x2, y2 = boxes.unbind(1)
    return ember.stack([x1 * float(ratio_w), y1 * float(ratio_h), x2 * float(ratio_w),
                        y2 * float(ratio_h)], dim=1)


class GeneralizedRCNNTransform(nn.Module):
    """Input images (a list of CxHxW float tensors, sizes may differ) -> an ImageList.
    In eval mode the short side goes to min_size[-1]; in training mode to a size drawn
    from min_size (with ember's generator)."""

    def __init__(self, min_size, max_size, image_mean, image_std, size_divisible: int = 32,
                 fixed_size=None, **kwargs):
        super().__init__()
        if not isinstance(min_size, (list, tuple)):
            min_size = (min_size,)
        self.min_size = tuple(min_size)
        self.max_size = max_size
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.size_divisible = size_divisible
        self.fixed_size = fixed_size
        self._skip_resize = kwargs.pop("_skip_resize", False)

    def forward(self, images, targets=None):
        images = list(images)
        targets = [dict(t) for t in targets] if targets is not None else None
        for i, image in enumerate(images):
            if image.ndim != 3:
                raise ValueError(f"images is expected to be a list of 3d tensors of shape "
                                 f"[C, H, W], got {list(image.shape)}")
            image = self.normalize(image)
            image, target = self.resize(image, targets[i] if targets is not None else None)
            images[i] = image
            if targets is not None:
                targets[i] = target
        image_sizes = [tuple(int(d) for d in img.shape[-2:]) for img in images]
        return ImageList(self.batch_images(images, self.size_divisible), image_sizes), targets

    def normalize(self, image):
        if not image.dtype.is_floating_point:
            raise TypeError(f"Expected input images to be of floating type (in range [0, 1]), "
                            f"but found type {image.dtype} instead")
        mean = ember.tensor(self.image_mean, dtype=image.dtype).to(image.device)
        std = ember.tensor(self.image_std, dtype=image.dtype).to(image.device)
        mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        return (image - mean) / std

    def _target_size(self) -> float:
        if not self.training:
            return float(self.min_size[-1])
        pick = int(ember.randint(0, len(self.min_size), (1,)).item())
        return float(self.min_size[pick])

    def resize(self, image, target=None):
        height, width = (int(d) for d in image.shape[-2:])
        if self._skip_resize:
            return image, target
        if self.fixed_size is not None:
            new_hw = (int(self.fixed_size[1]), int(self.fixed_size[0]))
        else:
            new_hw = _resized_shape(height, width, self._target_size(), float(self.max_size))
        image = F.interpolate(image.unsqueeze(0), size=list(new_hw), mode="bilinear",
                              align_corners=False)[0]
        if target is not None and "boxes" in target:
            target["boxes"] = resize_boxes(target["boxes"], (height, width), new_hw)
        return image, target

    @staticmethod
    def batch_images(images, size_divisible: int = 32):
        """Zero-pad every image at the bottom/right to the largest size rounded up to
        size_divisible, and stack."""
        max_h = max(int(img.shape[-2]) for img in images)
        max_w = max(int(img.shape[-1]) for img in images)
        max_h = int(math.ceil(max_h / size_divisible) * size_divisible)
        max_w = int(math.ceil(max_w / size_divisible) * size_divisible)
        padded = [F.pad(img, [0, max_w - int(img.shape[-1]), 0, max_h - int(img.shape[-2])])
                  for img in images]
        return ember.stack(padded, dim=0)

    def postprocess(self, result, image_shapes, original_image_sizes):
        """Scale each image's detected boxes back to the size it had before resizing."""
        if self.training:
            return result
        for det, resized, original in zip(result, image_shapes, original_image_sizes):
            det["boxes"] = resize_boxes(det["boxes"], resized, original)
        return result

    def extra_repr(self) -> str:
        return (f"Normalize(mean={self.image_mean}, std={self.image_std}), "
                f"Resize(min_size={self.min_size}, max_size={self.max_size}, mode='bilinear')")
