"""ember.nn.functional's convolutions beyond conv1d/conv2d/conv_transpose2d (conv3d,
conv_transpose1d/3d) and the sliding-window pair unfold/fold (aten's im2col/col2im).

Each normalises PyTorch's int-or-tuple arguments and calls the registry op of the same
aten name, so eager execution, tracing and autograd see one op.
"""
from __future__ import annotations

from ...ir.registry import OPS


def _ntuple(v, n: int) -> list[int]:
    if isinstance(v, (list, tuple)):
        return [int(x) for x in v]
    return [int(v)] * n


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    pad = padding if isinstance(padding, str) else _ntuple(padding, 3)
    return OPS["conv3d"](input, weight, bias, _ntuple(stride, 3), pad, _ntuple(dilation, 3),
                         groups)


def _conv_transpose(name: str, nd: int, input, weight, bias, stride, padding, output_padding,
                    groups, dilation):
    if isinstance(padding, str):
        raise TypeError(f"{name}(): argument 'padding' must be a tuple of ints, not str")
    return OPS[name](input, weight, bias, _ntuple(stride, nd), _ntuple(padding, nd),
                     _ntuple(output_padding, nd), groups, _ntuple(dilation, nd))


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    return _conv_transpose("conv_transpose3d", 3, input, weight, bias, stride, padding,
                           output_padding, groups, dilation)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding local blocks of a (N, C, H, W) or (C, H, W) input as columns:
    (N, C*kH*kW, L)."""
    return OPS["im2col"](input, _ntuple(kernel_size, 2), _ntuple(dilation, 2),
                         _ntuple(padding, 2), _ntuple(stride, 2))


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The adjoint of unfold: sums columns (N, C*kH*kW, L) back into (N, C, *output_size)."""
    return OPS["col2im"](input, _ntuple(output_size, 2), _ntuple(kernel_size, 2),
                         _ntuple(dilation, 2), _ntuple(padding, 2), _ntuple(stride, 2))
