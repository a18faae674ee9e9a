"""ember.allclose and ember.equal (and the Tensor methods), PyTorch's semantics.

- `allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool`: every
  element of `isclose` (the registry op, ir/ops/closeness.py) is true: same dtype
  required, shapes broadcast.
- `equal(input, other) -> bool`: same shape and equal elements; dtypes may differ
  (compared after promotion, as torch.equal does); NaN is never equal to NaN.
"""
from __future__ import annotations

from ..ir.registry import OPS
from .tensor import Tensor


def allclose(input: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    return bool(OPS["isclose"](input, other, rtol, atol, equal_nan).all())


def equal(input: Tensor, other: Tensor) -> bool:
    if tuple(input.shape) != tuple(other.shape):
        return False
    return bool(OPS["eq"](input, other).all())


Tensor.allclose = allclose
Tensor.equal = equal
