"""Normalizations and distances of ember.nn.functional beyond batch/layer/group norm.

rms_norm, instance_norm, local_response_norm, cosine_similarity, pairwise_distance,
pdist and cdist, each a composite of ember ops (mean, vector_norm, index_select, ...),
so autograd, tracing and compile come from the primitives. Values follow PyTorch's
formulas, including where eps enters (cosine_similarity clamps each norm,
pairwise_distance adds eps to the difference) and how instance_norm updates running
statistics (the batch mean of per-instance statistics, unbiased variance).
"""
from __future__ import annotations

import numpy as np

from ...ir import dtypes
from ...ir.autocast import autocast_as
from ...ir.ops.rules import broadcast_shapes
from ...ir.registry import OPS
from ..autograd import no_grad
from ..tensor import Tensor
from ._functional_common import BadArgument, cast


def _vector_norm(x, p, dim, keepdim=False):
    return OPS["linalg_vector_norm"](x, p, dim, keepdim)


def _normalized_dims(input, normalized_shape, name):
    shape = [normalized_shape] if isinstance(normalized_shape, int) else list(normalized_shape)
    n = len(shape)
    if n == 0 or input.ndim < n or list(input.shape[input.ndim - n:]) != shape:
        raise BadArgument(f"{name}: Given normalized_shape={shape}, expected input with shape "
                          f"[*, {', '.join(map(str, shape))}], but got input of size "
                          f"{list(input.shape)}")
    return shape, list(range(input.ndim - n, input.ndim))


def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
             eps: float | None = None) -> Tensor:
    """input / sqrt(mean(input^2 over the last dims) + eps) * weight; eps defaults to the
    dtype's machine epsilon, as in PyTorch."""
    shape, dims = _normalized_dims(input, normalized_shape, "rms_norm")
    if weight is not None and list(weight.shape) != shape:
        raise BadArgument(f"rms_norm: weight of shape {list(weight.shape)} does not match "
                          f"normalized_shape {shape}")
    if eps is None:
        eps = float(np.finfo(np.dtype(_real_name(input.dtype))).eps)
    mean_square = (input * input).mean(dims, keepdim=True)
    out = input * (mean_square + eps).rsqrt()
    return out if weight is None else out * weight


def _real_name(dtype) -> str:
    name = dtype.name
    return {"complex64": "float32", "complex128": "float64", "bfloat16": "float32"}.get(
        name, name if dtype.is_floating_point else "float32")


def instance_norm(input: Tensor, running_mean: Tensor | None = None,
                  running_var: Tensor | None = None, weight: Tensor | None = None,
                  bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each (sample, channel) over its spatial dims. With use_input_stats and
    running buffers, the buffers move toward the batch mean of the per-instance mean and
    unbiased variance; without use_input_stats the running statistics are used."""
    if input.ndim < 2:
        raise BadArgument(f"instance_norm: expected an input with a batch and a channel dim, "
                          f"got shape {list(input.shape)}")
    c = input.shape[1]
    spatial = list(range(2, input.ndim))
    per_channel = [1, c] + [1] * len(spatial)
    if use_input_stats:
        count = int(np.prod(input.shape[2:]))
        if count <= 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input "
                             f"size {list(input.shape)}")
        mean = input.mean(spatial, keepdim=True)
        centered = input - mean
        var = (centered * centered).mean(spatial, keepdim=True)
        normed = centered * (var + eps).rsqrt()
        _update_running(running_mean, running_var, mean, var, count, momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("Expected running_mean and running_var to be defined when "
                             "use_input_stats is false")
        normed = (input - running_mean.reshape(per_channel)) * \
            (running_var.reshape(per_channel) + eps).rsqrt()
    if weight is not None:
        normed = normed * weight.reshape(per_channel)
    if bias is not None:
        normed = normed + bias.reshape(per_channel)
    return normed


def _update_running(running_mean, running_var, mean, var, count, momentum):
    c = mean.shape[1]
    with no_grad():
        if running_mean is not None:
            batch_mean = mean.detach().reshape([-1, c]).mean([0])
            running_mean.copy_(running_mean * (1 - momentum) + batch_mean * momentum)
        if running_var is not None:
            unbiased = var.detach().reshape([-1, c]).mean([0]) * (count / (count - 1))
            running_var.copy_(running_var * (1 - momentum) + unbiased * momentum)


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
    """input / (k + alpha * mean of squares over `size` neighbouring channels)^beta. The
    window is zero-padded (size//2 before, (size-1)//2 after) and always divided by size
    (an integer division for integer inputs, as PyTorch's average pooling does)."""
    if input.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {input.ndim} "
                         f"dimensions)")
    if input.numel() == 0:
        return input
    c = input.shape[1]
    square = input * input
    from .functional import pad
    padded = pad(square, [0, 0] * (input.ndim - 2) + [size // 2, (size - 1) // 2])
    total = padded.narrow(1, 0, c)
    for offset in range(1, size):
        total = total + padded.narrow(1, offset, c)
    if input.dtype.is_floating_point or input.dtype.is_complex:
        return input / (total / size * alpha + k) ** beta
    # integers: PyTorch's average pooling floor-divides; the rest is in the default dtype
    float_dtype = dtypes.get_default_dtype()
    average = cast(total.div(size, rounding_mode="floor"), float_dtype)
    return cast(input, float_dtype) / (average * alpha + k) ** beta


def _clamp_value_only(norm, eps):
    """max(norm, eps) in value, but differentiated as norm: PyTorch clamps the norms in
    place under no_grad, so the norm's own derivative still flows where it was clamped."""
    return norm + (norm.clamp_min(eps) - norm).detach()


@autocast_as("cosine_similarity")
def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1/max(|x1|, eps) * x2/max(|x2|, eps)) along dim, after broadcasting (the max
    taken for the value only, as PyTorch)."""
    shape = list(broadcast_shapes(tuple(x1.shape), tuple(x2.shape)))
    x1, x2 = x1.expand(shape), x2.expand(shape)
    dims = [dim] if shape else None          # a 0-d pair takes dim 0 or -1, as in PyTorch
    unit1 = x1 / _clamp_value_only(_vector_norm(x1, 2, dims, True), eps)
    unit2 = x2 / _clamp_value_only(_vector_norm(x2, 2, dims, True), eps)
    return (unit1 * unit2).sum(dims) if dims else unit1 * unit2


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Tensor:
    """The p-norm of x1 - x2 + eps over the last dim of the broadcast shape."""
    diff = x1 - x2 + eps
    if max(x1.ndim, x2.ndim) == 0:
        return _vector_norm(diff, p, None, keepdim)
    return _vector_norm(diff, p, [-1], keepdim)


@autocast_as("pdist")
def pdist(input: Tensor, p: float = 2.0) -> Tensor:
    """Distances between all pairs of rows i < j, in row-major order of (i, j)."""
    if input.ndim != 2:
        raise BadArgument(f"pdist only supports 2D tensors, got: {input.ndim}D")
    if p < 0:
        raise BadArgument("pdist only supports non-negative p values")
    rows, cols = np.triu_indices(input.shape[0], 1)
    first = input.index_select(0, Tensor._from_array(rows.astype(np.int64)))
    second = input.index_select(0, Tensor._from_array(cols.astype(np.int64)))
    return _vector_norm(first - second, p, [-1])


_COMPUTE_MODES = ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
                  "donot_use_mm_for_euclid_dist")


@autocast_as("cdist")
def cdist(x1: Tensor, x2: Tensor, p: float = 2.0,
          compute_mode: str = "use_mm_for_euclid_dist_if_necessary") -> Tensor:
    """p-norm distances between each row of x1 [*, P, M] and of x2 [*, R, M]: [*, P, R].

    Every compute_mode takes the direct difference (PyTorch's matmul form for p=2 is a
    speed choice that loses accuracy for nearby points; the values agree within it)."""
    if x1.ndim < 2 or x2.ndim < 2:
        raise BadArgument(f"cdist only supports at least 2D tensors, X1 got: {x1.ndim}D"
                          if x1.ndim < 2 else
                          f"cdist only supports at least 2D tensors, X2 got: {x2.ndim}D")
    if x1.shape[-1] != x2.shape[-1]:
        raise BadArgument(f"X1 and X2 must have the same number of columns. X1: "
                          f"{x1.shape[-1]} X2: {x2.shape[-1]}")
    if p < 0:
        raise BadArgument("cdist only supports non-negative p values")
    if compute_mode not in _COMPUTE_MODES:
        raise BadArgument(f"{compute_mode} is not a valid value for compute_mode")
    if not x1.dtype.is_floating_point or not x2.dtype.is_floating_point:
        raise BadArgument(f"cdist only supports floating-point dtypes, X1 got: "
                          f"{x1.dtype.name}")
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)              # [*, P, R, M]
    return _vector_norm(diff, p, [-1])


__all__ = ["rms_norm", "instance_norm", "local_response_norm", "cosine_similarity",
           "pairwise_distance", "pdist", "cdist"]
