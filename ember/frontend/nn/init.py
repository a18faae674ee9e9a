"""ember.nn.init: PyTorch's initializers and fan rules, drawing from ember's generator.

Every initializer fills its tensor in place (no autograd, version bumped) and
returns it. Values come from `generator` or the default seeded generator, so a
model built after `ember.manual_seed(s)` is reproducible (numbers differ from
PyTorch's, whose engine differs; the distributions match).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..random import numpy_rng
from ..tensor import Tensor


def _no_data_on_meta(init):
    """An initializer of a meta tensor writes nothing (PyTorch's too): return it before
    drawing host values of its whole shape, so a model built on meta allocates nothing."""
    @functools.wraps(init)
    def initialize(tensor, *args, **kwargs):
        if isinstance(tensor, Tensor) and tensor._storage.device == "meta":
            return tensor
        return init(tensor, *args, **kwargs)
    return initialize


def _fill_(tensor: Tensor, values) -> Tensor:
    values = np.asarray(values).astype(tensor._array.dtype, copy=False)
    if tensor._storage.device != "cpu":
        from ..devices import copy_into
        copy_into(tensor, Tensor._from_array(np.broadcast_to(values, tuple(tensor.shape))))
    else:
        tensor._array[...] = values
    tensor._bump_version()
    return tensor


def _need_floating(name: str, tensor: Tensor) -> None:
    """PyTorch's random fills refuse integer tensors (NotImplementedError there)."""
    if not (tensor.dtype.is_floating_point or tensor.dtype.is_complex):
        raise NotImplementedError(f"nn.init.{name}: not implemented for {tensor.dtype} "
                                  "(a floating point tensor is needed)")


def calculate_gain(nonlinearity: str, param=None) -> float:
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                  "conv_transpose2d", "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1       # an int, as PyTorch's
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         "dimensions")
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


@_no_data_on_meta
def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    _need_floating("uniform_", tensor)
    return _fill_(tensor, numpy_rng(generator).uniform(a, b, tuple(tensor.shape)))


@_no_data_on_meta
def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    _need_floating("normal_", tensor)
    return _fill_(tensor, numpy_rng(generator).normal(mean, std, tuple(tensor.shape)))


@_no_data_on_meta
def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator=None) -> Tensor:
    """Normal(mean, std) restricted to [a, b], by resampling what falls outside."""
    rng = numpy_rng(generator)
    out = rng.normal(mean, std, tuple(tensor.shape))
    bad = (out < a) | (out > b)
    while bad.any():
        out[bad] = rng.normal(mean, std, int(bad.sum()))
        bad = (out < a) | (out > b)
    return _fill_(tensor, out)


@_no_data_on_meta
def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill_(tensor, np.full(tuple(tensor.shape), val))


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


@_no_data_on_meta
def eye_(tensor: Tensor) -> Tensor:
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill_(tensor, np.eye(*tensor.shape))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    if 0 in tensor.shape:
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator=None) -> Tensor:
    if 0 in tensor.shape:
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator)


@_no_data_on_meta
def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = numpy_rng(generator).normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill_(tensor, (gain * q).reshape(tuple(tensor.shape)))


@_no_data_on_meta
def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """A convolution weight (3-5 dims) that passes its input through: the identity on the
    first min(out/groups, in) channels of each group, at the kernel's centre."""
    if tensor.ndim not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    shape = tuple(tensor.shape)
    if shape[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    out_per_group = shape[0] // groups
    values = np.zeros(shape)
    centre = tuple(s // 2 for s in shape[2:])
    for g in range(groups):
        for d in range(min(out_per_group, shape[1])):
            values[(g * out_per_group + d, d) + centre] = 1
    return _fill_(tensor, values)


@_no_data_on_meta
def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator=None) -> Tensor:
    """A 2-D tensor of N(0, std) values with a `sparsity` fraction of each column zeroed."""
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    rows, cols = tensor.shape
    rng = numpy_rng(generator)
    values = rng.normal(0.0, std, (rows, cols))
    zeros = int(math.ceil(sparsity * rows))
    for c in range(cols):
        values[rng.permutation(rows)[:zeros], c] = 0
    return _fill_(tensor, values)


def _deprecated(new):
    """PyTorch's pre-0.4 initializer names (no trailing underscore) warn and call the new."""
    import functools
    import warnings

    @functools.wraps(new)
    def old(*args, **kwargs):
        warnings.warn(f"ember.nn.init.{new.__name__[:-1]} is now deprecated in favor of "
                      f"ember.nn.init.{new.__name__}.", FutureWarning, stacklevel=2)
        return new(*args, **kwargs)
    old.__name__ = new.__name__[:-1]
    return old


uniform = _deprecated(uniform_)
normal = _deprecated(normal_)
constant = _deprecated(constant_)
eye = _deprecated(eye_)
dirac = _deprecated(dirac_)
xavier_uniform = _deprecated(xavier_uniform_)
xavier_normal = _deprecated(xavier_normal_)
kaiming_uniform = _deprecated(kaiming_uniform_)
kaiming_normal = _deprecated(kaiming_normal_)
orthogonal = _deprecated(orthogonal_)
sparse = _deprecated(sparse_)
