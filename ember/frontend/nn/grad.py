"""torch.nn.grad: the gradients of conv{1,2,3}d with respect to their input and weight,
given the output's gradient (as custom autograd Functions and hand-written backward
passes call them). Each is the vector-Jacobian product of the convolution, computed by
ember's autograd on the convolution's own derivative rule."""
from __future__ import annotations

from ..autograd import grad as _autograd_grad
from ..autograd import enable_grad
from ..factories import zeros
from . import functional as F


def _conv_input_grad(conv, input_size, weight, grad_output, stride, padding, dilation,
                     groups):
    with enable_grad():
        input = zeros(*input_size, dtype=grad_output.dtype, device=grad_output.device,
                      requires_grad=True)
        out = conv(input, weight.detach(), None, stride, padding, dilation, groups)
        return _autograd_grad(out, input, grad_output)[0]


def _conv_weight_grad(conv, input, weight_size, grad_output, stride, padding, dilation,
                      groups):
    with enable_grad():
        weight = zeros(*weight_size, dtype=grad_output.dtype, device=grad_output.device,
                       requires_grad=True)
        out = conv(input.detach(), weight, None, stride, padding, dilation, groups)
        return _autograd_grad(out, weight, grad_output)[0]


def conv1d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _conv_input_grad(F.conv1d, input_size, weight, grad_output, stride, padding,
                            dilation, groups)


def conv1d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _conv_weight_grad(F.conv1d, input, weight_size, grad_output, stride, padding,
                             dilation, groups)


def conv2d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _conv_input_grad(F.conv2d, input_size, weight, grad_output, stride, padding,
                            dilation, groups)


def conv2d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _conv_weight_grad(F.conv2d, input, weight_size, grad_output, stride, padding,
                             dilation, groups)


def conv3d_input(input_size, weight, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _conv_input_grad(F.conv3d, input_size, weight, grad_output, stride, padding,
                            dilation, groups)


def conv3d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    return _conv_weight_grad(F.conv3d, input, weight_size, grad_output, stride, padding,
                             dilation, groups)


__all__ = ["conv1d_input", "conv1d_weight", "conv2d_input", "conv2d_weight", "conv3d_input",
           "conv3d_weight"]
