"""torchvision.tv_tensors for ember: Tensor subclasses that tell transforms.v2 what a
tensor is (Image, Video, Mask, BoundingBoxes with their format and canvas size).

As in torchvision, an op on a TVTensor returns a plain Tensor (the metadata would not be
right after arbitrary ops), except clone / to / detach / requires_grad_, which keep the
type and the metadata; `wrap(tensor, like=...)` re-attaches them.
"""
from __future__ import annotations

import enum

import ember

__all__ = ["TVTensor", "Image", "Video", "Mask", "BoundingBoxes", "BoundingBoxFormat", "wrap",
           "is_rotated_bounding_format"]


class TVTensor(ember.Tensor):
    """Base of the tv_tensors: plain-Tensor results from ops, metadata kept where the op
    keeps the meaning."""

    _meta: tuple = ()

    @classmethod
    def _from(cls, tensor, **meta):
        out = tensor.as_subclass(cls)
        for name in cls._meta:
            setattr(out, name, meta[name])
        return out

    @staticmethod
    def _tensor(data, dtype=None, device=None, requires_grad=None):
        t = data if isinstance(data, ember.Tensor) else ember.as_tensor(data)
        if dtype is not None or device is not None:
            t = t.to(device=device, dtype=dtype)
        if requires_grad is not None:
            t = t.detach().requires_grad_(requires_grad) if requires_grad else t.detach()
        return t

    def __init__(self, *args, **kwargs):   # __new__ did the work
        pass

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        with ember.DisableTorchFunctionSubclass():
            out = func(*args, **(kwargs or {}))
        first = args[0] if args else None
        if func in _KEEP and isinstance(first, TVTensor) and isinstance(out, ember.Tensor):
            return wrap(out, like=first)
        return out

    def __reduce_ex__(self, protocol):
        return (_rebuild, (type(self), self.as_subclass(ember.Tensor),
                           {n: getattr(self, n) for n in self._meta}))

    def __repr__(self):
        body = repr(self.as_subclass(ember.Tensor))
        extra = "".join(f", {n}={getattr(self, n)!r}" for n in self._meta)
        return f"{type(self).__name__}({body}{extra})"


def _rebuild(cls, tensor, meta):
    return cls._from(tensor, **meta)


_KEEP = {ember.Tensor.clone, ember.Tensor.to, ember.Tensor.detach, ember.Tensor.requires_grad_}


class Image(TVTensor):
    """[..., C, H, W] image; a 2-D input gets a channel dim; a PIL image is converted."""

    def __new__(cls, data, *, dtype=None, device=None, requires_grad=None):
        if not isinstance(data, ember.Tensor) and hasattr(data, "getbands"):
            from .transforms.functional import pil_to_tensor
            data = pil_to_tensor(data)
        t = cls._tensor(data, dtype, device, requires_grad)
        if t.ndim < 2:
            raise ValueError(f"Image needs at least 2 dimensions, got {t.ndim}")
        if t.ndim == 2:
            t = t.unsqueeze(0)
        return cls._from(t)


class Video(TVTensor):
    """[..., T, C, H, W] video."""

    def __new__(cls, data, *, dtype=None, device=None, requires_grad=None):
        t = cls._tensor(data, dtype, device, requires_grad)
        if t.ndim < 4:
            raise ValueError(f"Video needs at least 4 dimensions (T, C, H, W), got {t.ndim}")
        return cls._from(t)


class Mask(TVTensor):
    """[..., H, W] segmentation or instance masks."""

    def __new__(cls, data, *, dtype=None, device=None, requires_grad=None):
        if not isinstance(data, ember.Tensor) and hasattr(data, "getbands"):
            import numpy as np
            data = ember.from_numpy(np.array(data))
        return cls._from(cls._tensor(data, dtype, device, requires_grad))


class BoundingBoxFormat(enum.Enum):
    XYXY = "XYXY"
    XYWH = "XYWH"
    CXCYWH = "CXCYWH"


def is_rotated_bounding_format(format) -> bool:
    """ember builds the axis-aligned formats only."""
    return False


class BoundingBoxes(TVTensor):
    """[N, 4] boxes with their `format` and the `canvas_size` (height, width) they live
    in; `clamping_mode` ("soft", "hard" or None) says whether transforms clamp them."""

    _meta = ("format", "canvas_size", "clamping_mode")

    def __new__(cls, data, *, format, canvas_size, clamping_mode="soft", dtype=None,
                device=None, requires_grad=None):
        if isinstance(format, str):
            if format.upper() not in BoundingBoxFormat.__members__:
                raise ValueError(f"BoundingBoxes: format {format!r} is not one of "
                                 f"{list(BoundingBoxFormat.__members__)} (ember builds the "
                                 f"axis-aligned formats only)")
            format = BoundingBoxFormat[format.upper()]
        if clamping_mode not in ("soft", "hard", None):
            raise ValueError(f"clamping_mode must be None, 'soft' or 'hard', got "
                             f"{clamping_mode}.")
        t = cls._tensor(data, dtype, device, requires_grad)
        if t.ndim == 1:
            t = t.unsqueeze(0)
        if t.ndim != 2 or int(t.shape[-1]) != 4:
            raise ValueError(f"Expected a 1D or 2D tensor of boxes with 4 values each, got "
                             f"shape {list(t.shape)}")
        return cls._from(t, format=format, canvas_size=tuple(int(s) for s in canvas_size),
                         clamping_mode=clamping_mode)


def wrap(wrappee, *, like, **kwargs):
    """`wrappee` as the type of `like`, with like's metadata unless overridden."""
    meta = {n: kwargs.get(n, getattr(like, n)) for n in type(like)._meta}
    return type(like)._from(wrappee.as_subclass(ember.Tensor) if isinstance(wrappee, TVTensor)
                            else wrappee, **meta)
