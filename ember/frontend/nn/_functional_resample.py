"""ember.nn.functional's resampling: interpolate (and the older upsample,
upsample_nearest, upsample_bilinear), pixel_shuffle/pixel_unshuffle, channel_shuffle,
grid_sample and affine_grid.

interpolate does what PyTorch's Python layer does (argument checks, output size from
scale_factor, recompute_scale_factor, the mode's op for the input's rank) and calls the
registry op of the aten name (area mode is adaptive average pooling).
"""
from __future__ import annotations

import math

from ...ir.registry import OPS

_LINEAR_MODES = ("linear", "bilinear", "bicubic", "trilinear")
# mode -> {spatial dims: op name}
_OPS = {
    "nearest": {1: "upsample_nearest1d", 2: "upsample_nearest2d", 3: "upsample_nearest3d"},
    "nearest-exact": {1: "_upsample_nearest_exact1d", 2: "_upsample_nearest_exact2d",
                      3: "_upsample_nearest_exact3d"},
    "linear": {1: "upsample_linear1d"},
    "bilinear": {2: "upsample_bilinear2d"},
    "trilinear": {3: "upsample_trilinear3d"},
    "bicubic": {2: "upsample_bicubic2d"},
}
_AA_OPS = {"bilinear": "_upsample_bilinear2d_aa", "bicubic": "_upsample_bicubic2d_aa"}


def _spatial(input, dim):
    return [int(n) for n in input.shape[2:2 + dim]]


def _sizes_and_scales(input, dim, size, scale_factor, recompute_scale_factor):
    """(output_size, scales per dim or None) as PyTorch's interpolate derives them."""
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
        sizes = list(size) if isinstance(size, (list, tuple)) else [size] * dim
        if len(sizes) != dim:
            raise ValueError(f"Input and output must have the same number of spatial "
                             f"dimensions, but got input with spatial dimensions of "
                             f"{_spatial(input, dim)} and output size of {list(size)}. Please "
                             f"provide input tensor in (N, C, d1, d2, ...,dK) format and output "
                             f"size in (o1, o2, ...,oK) format.")
        return [int(s) for s in sizes], [None] * dim
    if scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    scales = list(scale_factor) if isinstance(scale_factor, (list, tuple)) else \
        [scale_factor] * dim
    if len(scales) != dim:
        raise ValueError(f"Input and scale_factor must have the same number of spatial "
                         f"dimensions, but got input with spatial dimensions of "
                         f"{_spatial(input, dim)} and scale_factor of shape "
                         f"{list(scale_factor)}. Please provide input tensor in (N, C, d1, d2, "
                         f"...,dK) format and scale_factor in (s1, s2, ...,sK) format.")
    scales = [float(s) for s in scales]
    sizes = [int(math.floor(float(n) * s)) for n, s in zip(_spatial(input, dim), scales)]
    return sizes, (None if recompute_scale_factor else scales)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """Resize the spatial dims of (N, C, *spatial) input; see torch.nn.functional's."""
    dim = input.ndim - 2
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating "
                             "modes: linear | bilinear | bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    if antialias and not (mode in ("bilinear", "bicubic") and input.ndim == 4):
        raise ValueError("Anti-alias option is restricted to bilinear and bicubic modes and "
                         "requires a 4-D tensor as input")
    if mode == "area" and size is None:
        recompute_scale_factor = True
    sizes, scales = _sizes_and_scales(input, dim, size, scale_factor, recompute_scale_factor)
    if scales is None:
        scales = [None] * dim
    if mode == "area" and dim in (1, 2, 3):
        return OPS[f"adaptive_avg_pool{dim}d"](input, sizes)
    name = _AA_OPS.get(mode) if antialias else _OPS.get(mode, {}).get(dim)
    if name is None:
        _raise_mode_error(input, mode)
    if mode in _LINEAR_MODES:
        return OPS[name](input, sizes, bool(align_corners), *scales)
    return OPS[name](input, sizes, *scales)


def _raise_mode_error(input, mode):
    if mode not in ("nearest", "nearest-exact", "area") + _LINEAR_MODES:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported "
                                  f"(got {input.ndim}D) for the modes: nearest | linear | "
                                  f"bilinear | bicubic | trilinear | area | nearest-exact (got "
                                  f"{mode})")
    needs = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}.get(mode)
    if needs is not None and input.ndim in (3, 4, 5):
        raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs {needs}D "
                                  f"input")
    raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got "
                              f"{input.ndim}D) for the modes: nearest | linear | bilinear | "
                              f"bicubic | trilinear | area | nearest-exact (got {mode})")


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# --- rearrangements ---------------------------------------------------------------------
def pixel_shuffle(input, upscale_factor):
    return OPS["pixel_shuffle"](input, int(upscale_factor))


def pixel_unshuffle(input, downscale_factor):
    return OPS["pixel_unshuffle"](input, int(downscale_factor))


def channel_shuffle(input, groups):
    return OPS["channel_shuffle"](input, int(groups))


native_channel_shuffle = channel_shuffle
