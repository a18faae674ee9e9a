"""nn.functional.bilinear as a composition of registry ops.

y[..., o] = sum_ij x1[..., i] W[o, i, j] x2[..., j] + b[o]: one matmul of x1 against W
laid out as [i, o*j], then a product with x2 summed over j. Autograd, tracing and
compile see only matmul/reshape/mul/sum/add, so gradients of every order come free.
"""
from __future__ import annotations

import math

from ...ir import dtypes
from ...ir.errors import ShapeError
from ...ir.registry import OPS


def _check(input1, input2, weight, bias) -> None:
    if input1.ndim != input2.ndim:
        raise ShapeError(f"bilinear(): input dimensions do not match: got {input1.ndim} and "
                         f"{input2.ndim}")
    for d in range(input1.ndim - 1):
        if input1.shape[d] != input2.shape[d]:
            raise ShapeError(f"bilinear(): input batch dimensions do not match at dim {d}: "
                             f"got {input1.shape[d]} and {input2.shape[d]}")
    if weight.ndim != 3:
        raise ShapeError(f"bilinear(): weight must be 3-D, got {weight.ndim}-D")
    if input1.shape[-1] != weight.shape[1]:
        raise ShapeError(f"bilinear(): input1 size does not match weight size: got "
                         f"{input1.shape[-1]} but expected {weight.shape[1]}")
    if input2.shape[-1] != weight.shape[2]:
        raise ShapeError(f"bilinear(): input2 size does not match weight size: got "
                         f"{input2.shape[-1]} but expected {weight.shape[2]}")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != weight.shape[0]):
        raise ShapeError(f"bilinear(): bias size does not match weight size: got "
                         f"{bias.shape[-1] if bias.ndim else 1} but expected {weight.shape[0]}")


def _weighted_sum(mixed, x2):
    """sum_j mixed[..., j] * x2[..., j] in the inputs' dtype (integers are not widened to
    int64); float16/bfloat16 products and their sum stay in float32 and round once, as
    PyTorch's kernel does."""
    dt = mixed.dtype
    if dt in (dtypes.float16, dtypes.bfloat16):
        wide = OPS["convert_element_type"]
        prod = OPS["mul"](wide(mixed, dtypes.float32), wide(x2, dtypes.float32))
        return wide(OPS["sum"](prod, [-1]), dt)
    return OPS["sum"](OPS["mul"](mixed, x2), [-1], dtype=dt)


def bilinear(input1, input2, weight, bias=None):
    _check(input1, input2, weight, bias)
    reshape, permute = OPS["reshape"], OPS["permute"]
    n_out, n1, n2 = weight.shape
    batch = list(input1.shape[:-1])
    rows = math.prod(batch)
    x1 = reshape(input1, [rows, n1])
    x2 = reshape(input2, [rows, 1, n2])
    w = reshape(permute(weight, [1, 0, 2]), [n1, n_out * n2])
    mixed = reshape(OPS["mm"](x1, w), [rows, n_out, n2])
    out = _weighted_sum(mixed, x2)
    if bias is not None:
        out = OPS["add"](out, bias)
    return reshape(out, batch + [n_out])
