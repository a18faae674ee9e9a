"""ember.nn.functional's pooling beyond max/avg/adaptive-avg 2-d: max, average and
adaptive pooling in 1 and 3 dims, adaptive max pooling, max unpooling, power-average
(lp) pooling and fractional max pooling.

Each function normalises PyTorch's arguments (stride defaults to kernel_size, an int
means every dim, `return_indices`) and calls the registry op of the aten name. lp_pool
and max_unpool1d are compositions of other ops, as in PyTorch.
"""
from __future__ import annotations

import math

from ...ir.errors import ShapeError
from ...ir.registry import OPS
from ..factories import rand


def _ntuple(v, n: int) -> list[int]:
    if isinstance(v, (list, tuple)):
        return [int(x) for x in v] * (n if len(v) == 1 else 1)
    return [int(v)] * n


def _stride(stride, kernel_size, n):
    if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0):
        return _ntuple(kernel_size, n)
    return _ntuple(stride, n)


# --- max pooling ------------------------------------------------------------------------
def _max_pool(nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    args = (input, _ntuple(kernel_size, nd), _stride(stride, kernel_size, nd),
            _ntuple(padding, nd), _ntuple(dilation, nd), ceil_mode)
    if return_indices:
        return tuple(OPS[f"max_pool{nd}d_with_indices"](*args))
    return OPS[f"max_pool{nd}d"](*args)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices)


def max_pool1d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    return _max_pool(1, input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool2d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool3d_with_indices(input, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False, return_indices=True):
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, True)


# --- average pooling --------------------------------------------------------------------
def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    return OPS["avg_pool1d"](input, _ntuple(kernel_size, 1), _stride(stride, kernel_size, 1),
                             _ntuple(padding, 1), ceil_mode, count_include_pad)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    return OPS["avg_pool3d"](input, _ntuple(kernel_size, 3), _stride(stride, kernel_size, 3),
                             _ntuple(padding, 3), ceil_mode, count_include_pad,
                             divisor_override)


# --- adaptive pooling -------------------------------------------------------------------
def _output_size(input, output_size, nd):
    """PyTorch's adaptive output size: an int means every dim, None keeps the input's."""
    size = list(output_size) if isinstance(output_size, (list, tuple)) else [output_size] * nd
    if len(size) != nd:
        raise ShapeError(f"adaptive_pool{nd}d: output_size must be an int or {nd} values, "
                         f"got {output_size}")
    return [input.shape[input.ndim - nd + i] if s is None else int(s) for i, s in
            enumerate(size)]


def adaptive_avg_pool1d(input, output_size):
    return OPS["adaptive_avg_pool1d"](input, _output_size(input, output_size, 1))


def adaptive_avg_pool3d(input, output_size):
    return OPS["adaptive_avg_pool3d"](input, _output_size(input, output_size, 3))


def _adaptive_max(nd, input, output_size, return_indices):
    out, indices = OPS[f"adaptive_max_pool{nd}d"](input, _output_size(input, output_size, nd))
    return (out, indices) if return_indices else out


def adaptive_max_pool1d(input, output_size, return_indices=False):
    return _adaptive_max(1, input, output_size, return_indices)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    return _adaptive_max(2, input, output_size, return_indices)


def adaptive_max_pool3d(input, output_size, return_indices=False):
    return _adaptive_max(3, input, output_size, return_indices)


def adaptive_max_pool1d_with_indices(input, output_size, return_indices=True):
    return _adaptive_max(1, input, output_size, True)


def adaptive_max_pool2d_with_indices(input, output_size, return_indices=True):
    return _adaptive_max(2, input, output_size, True)


def adaptive_max_pool3d_with_indices(input, output_size, return_indices=True):
    return _adaptive_max(3, input, output_size, True)


# --- max unpooling ----------------------------------------------------------------------
def _unpool_size(nd, input, kernel_size, stride, padding, output_size):
    k = _ntuple(kernel_size, nd)
    s = _stride(stride, kernel_size, nd)
    p = _ntuple(padding, nd)
    default = [(input.shape[input.ndim - nd + i] - 1) * s[i] - 2 * p[i] + k[i]
               for i in range(nd)]
    if output_size is None:
        return default, s, p
    size = list(output_size)
    if len(size) in (nd + 1, nd + 2):
        size = size[-nd:]
    if len(size) != nd:
        raise ValueError(f"output_size should be a sequence containing {nd} or {nd + 2} "
                         f"elements, but it has a length of '{len(size)}'")
    for i in range(nd):
        low, high = default[i] - s[i], default[i] + s[i]
        if not low < size[i] < high:
            raise ValueError(f'invalid output_size "{size}" (dim {i} must be between {low} '
                             f'and {high})')
    return [int(v) for v in size], s, p


def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    size, _, _ = _unpool_size(1, input, kernel_size, stride, padding, output_size)
    # a length-L plane is a (1, L) plane with the same flat indices
    out = OPS["max_unpool2d"](input.unsqueeze(-2), indices.unsqueeze(-2), [1, size[0]])
    return out.squeeze(-2)


def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    size, _, _ = _unpool_size(2, input, kernel_size, stride, padding, output_size)
    return OPS["max_unpool2d"](input, indices, size)


def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    size, s, p = _unpool_size(3, input, kernel_size, stride, padding, output_size)
    return OPS["max_unpool3d"](input, indices, size, s, p)


# --- power-average pooling --------------------------------------------------------------
def _lp_pool(nd, input, norm_type, kernel_size, stride, ceil_mode):
    """(sum over the window of x**p) ** (1/p), as PyTorch computes it: an average pool of
    x**p times the window size (negative averages, from odd p, clamp to 0)."""
    k = _ntuple(kernel_size, nd)
    powered = input.pow(norm_type)
    if nd == 1:
        avg = avg_pool1d(powered, k, stride, 0, ceil_mode)
    elif nd == 2:
        avg = OPS["avg_pool2d"](powered, k, _stride(stride, k, 2), [0, 0], ceil_mode, True,
                                None)
    else:
        avg = avg_pool3d(powered, k, stride, 0, ceil_mode)
    return (avg.sign() * avg.abs().relu()).mul(math.prod(k)).pow(1.0 / norm_type)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _lp_pool(3, input, norm_type, kernel_size, stride, ceil_mode)


# --- fractional max pooling -------------------------------------------------------------
def _fractional(nd, input, kernel_size, output_size, output_ratio, return_indices,
                _random_samples):
    if output_size is None and output_ratio is None:
        raise ValueError(f"fractional_max_pool{nd}d requires specifying either an output_size "
                         f"or an output_ratio")
    if output_size is None:
        ratio = output_ratio if isinstance(output_ratio, (list, tuple)) else \
            [output_ratio] * nd
        output_size = [int(input.shape[input.ndim - nd + i] * float(ratio[i]))
                       for i in range(nd)]
    planes = input.shape[0] if input.ndim == nd + 2 else 1
    if _random_samples is None:
        _random_samples = rand(planes, input.shape[-nd - 1], nd, dtype=input.dtype)
    elif _random_samples.ndim == 3 and _random_samples.shape[0] > planes:
        _random_samples = _random_samples[:planes]   # PyTorch reads the first N rows
    out, indices = OPS[f"fractional_max_pool{nd}d"](
        input, _ntuple(kernel_size, nd), _ntuple(output_size, nd), _random_samples)
    return (out, indices) if return_indices else out


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None,
                          return_indices=False, _random_samples=None):
    return _fractional(2, input, kernel_size, output_size, output_ratio, return_indices,
                       _random_samples)


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None,
                          return_indices=False, _random_samples=None):
    return _fractional(3, input, kernel_size, output_size, output_ratio, return_indices,
                       _random_samples)


def fractional_max_pool2d_with_indices(input, kernel_size, output_size=None,
                                       output_ratio=None, return_indices=True,
                                       _random_samples=None):
    return _fractional(2, input, kernel_size, output_size, output_ratio, True,
                       _random_samples)


def fractional_max_pool3d_with_indices(input, kernel_size, output_size=None,
                                       output_ratio=None, return_indices=True,
                                       _random_samples=None):
    return _fractional(3, input, kernel_size, output_size, output_ratio, True,
                       _random_samples)
