"""grid_sample and affine_grid (and aten's grid_sampler, grid_sampler_2d/3d,
affine_grid_generator), written as compositions of ember ops.

grid_sample reads input (N, C, *S) at the points of grid (N, *O, nd), whose last dim
holds normalized coordinates (x, y[, z]) in [-1, 1] (x along the last spatial dim).
A coordinate is unnormalized to pixels, passed through the padding rule (border clamps,
reflection mirrors), and the input is gathered at the tap points of the mode: 2^nd
corners blended linearly (bilinear), the nearest point (round half to even), or 4x4
points with cubic-convolution weights, A = -0.75 (bicubic, 2-d only, padding applied to
each tap). Taps outside the input read zero. Because every step is an ember op, the
gradients to input (through gather) and grid (through the weights and the coordinate
transforms) and all higher derivatives come from autograd; tracing and compile see the
primitive ops.
"""
from __future__ import annotations

import itertools

from ...ir import dtypes
from ...ir.autocast import autocast_as
from ...ir.errors import DTypeError, ShapeError
from ...ir.registry import OPS
from ..factories import arange, ones

_MODES = {"bilinear": 0, "nearest": 1, "bicubic": 2}
_PADDINGS = {"zeros": 0, "border": 1, "reflection": 2}
_CUBIC_A = -0.75


def _unnormalize(coord, size, align_corners):
    if align_corners:
        return (coord + 1) / 2 * (size - 1)
    return ((coord + 1) * size - 1) / 2


def _reflect(coord, twice_low, twice_high):
    """coord mirrored into [twice_low / 2, twice_high / 2] (repeatedly)."""
    if twice_low == twice_high:
        return coord * 0
    low, span = twice_low / 2, (twice_high - twice_low) / 2
    distance = (coord - low).abs()
    extra = distance.fmod(span)
    flips = (distance / span).floor()
    even = flips.fmod(2) == 0
    return OPS["where"](even, extra + low, span - extra + low)


def _pad_coordinate(coord, size, padding, align_corners):
    if padding == 1:
        return coord.clamp(0, size - 1)
    if padding == 2:
        bounds = (0, 2 * (size - 1)) if align_corners else (-1, 2 * size - 1)
        return _reflect(coord, *bounds).clamp(0, size - 1)
    return coord


def _gather(input, positions, sizes):
    """input at integer tap positions (one (N, *O) float tensor per spatial dim): (N, C,
    *O), zero where a position falls outside the input."""
    n, c = input.shape[0], input.shape[1]
    out_shape = list(positions[0].shape[1:])
    flat, valid = None, None
    for pos, size in zip(positions, sizes):
        inside = (pos >= 0).logical_and(pos <= size - 1)
        valid = inside if valid is None else valid.logical_and(inside)
        index = OPS["convert_element_type"](pos.clamp(0, size - 1), dtypes.int64)
        flat = index if flat is None else flat * size + index
    flat = flat.reshape([n, 1, -1]).expand([n, c, flat[0].numel()])
    values = input.reshape([n, c, -1]).gather(2, flat).reshape([n, c] + out_shape)
    return OPS["where"](valid.unsqueeze(1), values, 0.0)


def _cubic_weights(t):
    """Cubic-convolution weights of the taps at offsets -1, 0, 1, 2 from floor(x)."""
    def near(x):
        return ((_CUBIC_A + 2) * x - (_CUBIC_A + 3)) * x * x + 1

    def far(x):
        return ((_CUBIC_A * x - 5 * _CUBIC_A) * x + 8 * _CUBIC_A) * x - 4 * _CUBIC_A
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _sample(input, grid, mode, padding, align_corners):
    nd = input.ndim - 2
    sizes = list(input.shape[2:])
    # grid's last dim is (x, y[, z]): x indexes the last spatial dim
    coords = [_unnormalize(grid.select(-1, nd - 1 - d), sizes[d], align_corners)
              for d in range(nd)]
    if mode == 2:
        return _bicubic(input, coords, sizes, padding, align_corners)
    coords = [_pad_coordinate(x, n, padding, align_corners) for x, n in zip(coords, sizes)]
    if mode == 1:
        return _gather(input, [x.round() for x in coords], sizes)
    bases = [x.floor() for x in coords]
    fracs = [x - b for x, b in zip(coords, bases)]
    out = None
    for corner in itertools.product((0, 1), repeat=nd):
        weight = None
        for d, k in enumerate(corner):
            w = fracs[d] if k else 1 - fracs[d]
            weight = w if weight is None else weight * w
        tap = _gather(input, [b + k for b, k in zip(bases, corner)], sizes) * \
            weight.unsqueeze(1)
        out = tap if out is None else out + tap
    return out


def _bicubic(input, coords, sizes, padding, align_corners):
    bases = [x.floor() for x in coords]
    weights = [_cubic_weights(x - b) for x, b in zip(coords, bases)]
    out = None
    for ky, kx in itertools.product(range(4), repeat=2):
        taps = [_pad_coordinate(bases[0] + (ky - 1), sizes[0], padding, align_corners),
                _pad_coordinate(bases[1] + (kx - 1), sizes[1], padding, align_corners)]
        # padding moves tap positions; PyTorch truncates the result toward zero
        taps = [t.trunc() if padding else t for t in taps]
        tap = _gather(input, taps, sizes) * (weights[0][ky] * weights[1][kx]).unsqueeze(1)
        out = tap if out is None else out + tap
    return out


def _check(input, grid, mode):
    if input.dtype != grid.dtype:
        raise DTypeError(f"grid_sampler(): expected input and grid to have same dtype, but "
                         f"input has {input.dtype.name} and grid has {grid.dtype.name}")
    if not input.dtype.is_floating_point:
        raise DTypeError(f"grid_sampler(): expected a floating point input, got "
                         f"{input.dtype.name}")
    if input.ndim not in (4, 5) or grid.ndim != input.ndim:
        raise ShapeError(f"grid_sampler(): expected 4D or 5D input and grid with same number "
                         f"of dimensions, but got input with sizes {list(input.shape)} and "
                         f"grid with sizes {list(grid.shape)}")
    if grid.shape[0] != input.shape[0]:
        raise ShapeError(f"grid_sampler(): expected grid and input to have same batch size, "
                         f"but got input with sizes {list(input.shape)} and grid with sizes "
                         f"{list(grid.shape)}")
    if grid.shape[-1] != input.ndim - 2:
        raise ShapeError(f"grid_sampler(): expected grid to have size {input.ndim - 2} in last "
                         f"dimension, but got grid with sizes {list(grid.shape)}")
    if any(n == 0 for n in input.shape[2:]):
        raise ShapeError(f"grid_sampler(): expected input to have non-empty spatial "
                         f"dimensions, but input has sizes {list(input.shape)}")
    if mode == 2 and input.ndim != 4:
        raise ShapeError(f"grid_sampler(): bicubic interpolation only supports 4D input, but "
                         f"got input with sizes {list(input.shape)}")


@autocast_as("grid_sampler")
def grid_sampler(input, grid, interpolation_mode: int, padding_mode: int,
                 align_corners: bool):
    """aten::grid_sampler: modes and paddings as ints (bilinear 0, nearest 1, bicubic 2;
    zeros 0, border 1, reflection 2)."""
    if interpolation_mode not in (0, 1, 2) or padding_mode not in (0, 1, 2):
        raise ShapeError(f"grid_sampler(): unknown interpolation_mode {interpolation_mode} or "
                         f"padding_mode {padding_mode}")
    _check(input, grid, interpolation_mode)
    return _sample(input, grid, interpolation_mode, padding_mode, bool(align_corners))


def grid_sampler_2d(input, grid, interpolation_mode, padding_mode, align_corners):
    if input.ndim != 4:
        raise ShapeError(f"grid_sampler_2d(): expected 4D input, got {list(input.shape)}")
    return grid_sampler(input, grid, interpolation_mode, padding_mode, align_corners)


def grid_sampler_3d(input, grid, interpolation_mode, padding_mode, align_corners):
    if input.ndim != 5:
        raise ShapeError(f"grid_sampler_3d(): expected 5D input, got {list(input.shape)}")
    return grid_sampler(input, grid, interpolation_mode, padding_mode, align_corners)


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    if mode not in _MODES:
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', "
                         f"'nearest' or 'bicubic', but got: '{mode}'")
    if padding_mode not in _PADDINGS:
        raise ValueError(f"nn.functional.grid_sample(): expected padding_mode to be 'zeros', "
                         f"'border', or 'reflection', but got: '{padding_mode}'")
    return grid_sampler(input, grid, _MODES[mode], _PADDINGS[padding_mode],
                        bool(align_corners))


# --- affine_grid ------------------------------------------------------------------------
def _base_coords(n, align_corners, dtype):
    """n evenly spaced normalized coordinates (pixel centers unless align_corners)."""
    if n <= 1:
        return arange(n, dtype=dtype) * 0
    steps = arange(n, dtype=dtype) * (2.0 / (n - 1)) - 1
    return steps if align_corners else steps * ((n - 1) / n)


def affine_grid_generator(theta, size, align_corners):
    """aten::affine_grid_generator: base grid (x, y[, z], 1) times theta^T per batch."""
    spatial = list(size[2:])
    nd = len(spatial)
    axes = [_base_coords(s, align_corners, theta.dtype) for s in spatial]
    columns = []
    for d in range(nd):      # coordinate d of the base is (x, y, z)[d]: spatial dim nd-1-d
        shape = [1] * nd
        shape[nd - 1 - d] = spatial[nd - 1 - d]
        columns.append(axes[nd - 1 - d].reshape(shape).expand(spatial))
    columns.append(ones(*spatial, dtype=theta.dtype))
    base = OPS["stack"](columns, -1).reshape([1, -1, nd + 1])
    grid = OPS["matmul"](base, theta.transpose(1, 2))
    return grid.reshape([theta.shape[0]] + spatial + [nd])


def affine_grid(theta, size, align_corners=None):
    if not theta.dtype.is_floating_point:
        raise ValueError(f"Expected theta to have floating point type, but got {theta.dtype}")
    size = list(size)
    if len(size) == 4:
        if theta.ndim != 3 or tuple(theta.shape[-2:]) != (2, 3):
            raise ValueError(f"Expected a batch of 2D affine matrices of shape Nx2x3 for size "
                             f"{size}. Got {list(theta.shape)}.")
    elif len(size) == 5:
        if theta.ndim != 3 or tuple(theta.shape[-2:]) != (3, 4):
            raise ValueError(f"Expected a batch of 3D affine matrices of shape Nx3x4 for size "
                             f"{size}. Got {list(theta.shape)}.")
    else:
        raise NotImplementedError(f"affine_grid only supports 4D and 5D sizes, for 2D and 3D "
                                  f"affine transforms, respectively. Got size {size}.")
    if min(size) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {size}")
    if theta.shape[0] != size[0]:
        raise ValueError(f"Expected theta's batch size {theta.shape[0]} to match size[0] "
                         f"{size[0]}")
    return affine_grid_generator(theta, size, bool(align_corners))
