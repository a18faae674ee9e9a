"""Identity, Linear, Bilinear: PyTorch's parameter names, shapes and initialization."""
from __future__ import annotations

import math

import numpy as np

from ....ir.errors import ShapeError
from ...tensor import Tensor
from .. import functional as F, init
from ._util import checkable, kaiming_init, weight_and_bias
from .module import Module


class Identity(Module):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b; weight (out_features, in_features), kaiming-uniform(a=sqrt(5))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        weight_and_bias(self, (out_features, in_features), out_features, bias, dtype)

    def reset_parameters(self) -> None:
        kaiming_init(self.weight, self.bias, self.in_features, init_empty_fan=True)

    def forward(self, input):
        if type(input) is Tensor:           # the check below on the array's own shape
            shape = input._array.shape
            if shape and shape[-1] == self.in_features:
                return F.linear(input, self.weight, self.bias)
        if checkable(input) and (input.ndim == 0 or input.shape[-1] != self.in_features):
            rows = int(np.prod(input.shape[:-1])) if input.ndim else 1
            cols = input.shape[-1] if input.ndim else 0
            raise ShapeError(f"Linear(in_features={self.in_features}, out_features="
                             f"{self.out_features}): expected input with last dimension "
                             f"{self.in_features}, got {list(input.shape)} (mat1 and mat2 "
                             f"shapes cannot be multiplied ({rows}x{cols} and "
                             f"{self.in_features}x{self.out_features}))")
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Bilinear(Module):
    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        weight_and_bias(self, (out_features, in1_features, in2_features), out_features, bias,
                        dtype)

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
