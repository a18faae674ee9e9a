"""Shared shape/dtype rules and argument helpers for op declarations.

Rules raise short messages (`shapes [2, 3] and [4] cannot be broadcast`); the
caller (eager dispatch, ShapeProp, the verifier) prefixes the op name and adds
the user's source line, so every rule stays one screen long.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..dtypes import DType
from ..errors import DTypeError, EmberError, EmberIndexError, ShapeError
from ..meta import (TensorMeta, channels_last, channels_last_3d, contiguous_format,
                    suggest_memory_format,
                    MemoryFormat)
from ..registry import Promotion
from ..symdim import concrete, is_symbolic


def is_tensor_like(v) -> bool:
    return hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(
        v, (np.ndarray, np.generic))


def shape_of(v) -> tuple:
    return tuple(v.shape) if is_tensor_like(v) else ()


def device_of(args) -> str:
    for v in args:
        if is_tensor_like(v):
            return str(v.device)
    return "cpu"


def wrap_dim(dim: int, ndim: int) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise EmberIndexError(f"Dimension out of range (expected to be in range of "
                              f"[{-n}, {n - 1}], but got {dim})")
    return dim % n


def wrap_dims(dims, ndim: int) -> tuple[int, ...]:
    """None/[] -> all dims; ints wrapped; duplicates rejected."""
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return tuple(range(ndim))
    if isinstance(dims, int):
        dims = (dims,)
    out = tuple(wrap_dim(d, ndim) for d in dims)
    if len(set(out)) != len(out):
        raise ShapeError(f"dim {list(dims)} appears multiple times in the list of dims")
    return out


def broadcast_shapes(*shapes) -> tuple[int, ...]:
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-ndim, 0):
        size = 1
        for s in shapes:
            if len(s) >= -i:
                d = s[i]
                if d != 1:
                    if size != 1 and d != size:
                        raise ShapeError(
                            f"The size of tensor a ({size}) must match the size of tensor b "
                            f"({d}) at non-singleton dimension {ndim + i}: shapes "
                            + " and ".join(str(list(x)) for x in shapes)
                            + " cannot be broadcast")
                    size = d
        out.append(size)
    return tuple(out)


_SCALAR_TYPES = (bool, int, float, complex, np.bool_, np.number)


def operand_for_promotion(v):
    """(dtype, ndim) for a tensor, the value itself for a Python/NumPy scalar. Anything else
    (a tuple, an ember.Size, a list) is the user's mistake, named here rather than misread
    as a (dtype, ndim) pair further down."""
    if is_tensor_like(v):
        return (v.dtype, v.ndim)
    if isinstance(v, _SCALAR_TYPES):
        return v
    raise DTypeError(f"expected every operand to be a Tensor or a number, "
                     f"got {type(v).__name__} {v!r}")


def result_dtype(args) -> DType:
    return dtypes.result_type([operand_for_promotion(a) for a in args])


def promote_dtypes(promotion: Promotion, args) -> tuple[DType, DType]:
    """(compute dtype, result dtype) of a pointwise op under PyTorch's promotion kind."""
    dt = result_dtype(args)
    if promotion is Promotion.INT_TO_FLOAT and dt.category <= dtypes.Category.INT:
        dt = dtypes.get_default_dtype()
    if promotion is Promotion.ALWAYS_BOOL:
        return dt, dtypes.bool_
    if promotion is Promotion.COMPLEX_TO_FLOAT:
        return dt, dt.to_real()
    if promotion is Promotion.BOOL_TO_LONG and dt is dtypes.bool_:
        return dtypes.int64, dtypes.int64
    return dt, dt


def opmath(dt: DType) -> DType:
    """Compute half types in float32, as PyTorch's CPU kernels do."""
    return dtypes.float32 if dt in (dtypes.float16, dtypes.bfloat16) else dt


class ScalarOverflowError(EmberError, OverflowError, RuntimeError):
    """A Python int operand past 64 bits (torch's OverflowError "int too big to
    convert")."""


def cast_scalar(value, np_dtype, checked: bool = False) -> np.ndarray:
    """A Python scalar as a 0-d array of `np_dtype`. An int out of an integer dtype's range
    wraps modulo 2**bits, as PyTorch's C++ cast does (-1 as uint8 is 255: `x == -1`,
    `full(.., -1, dtype=uint8)`, alpha=-1); NumPy 2 raises OverflowError instead.
    `checked` applies PyTorch's Scalar-argument check (full, clamp bounds, alpha): above
    the maximum, or below the minimum of a signed type, is an error; negatives into an
    unsigned type still wrap."""
    np_dtype = np.dtype(np_dtype)
    if np_dtype.kind in "iu" and isinstance(value, int) and not isinstance(value, bool):
        if not -2 ** 63 <= value < 2 ** 64:         # wrapping would drop whole words
            raise ScalarOverflowError(f"int too big to convert: {value} does not fit in 64 "
                                      "bits")
        info = np.iinfo(np_dtype)
        if checked and (value > info.max or (np_dtype.kind == "i" and value < info.min)):
            raise DTypeError(f"value cannot be converted to type {np_dtype.name}_t without "
                             f"overflow")
        return np.array(value & 0xFFFF_FFFF_FFFF_FFFF, dtype=np.uint64).astype(np_dtype)
    return np.asarray(value, dtype=np_dtype)


def np_inexact(dtype) -> bool:
    """A NumPy float or complex dtype, bfloat16 included (ml_dtypes' kind is 'V')."""
    return dtype.kind in "fc" or dtype.name == "bfloat16"


def opmath_arrays(*arrays) -> list:
    """NumPy reference operands with float16/bfloat16 widened to float32 (`opmath` for
    arrays: PyTorch's CPU matmul/conv kernels accumulate halves in float32); None stays."""
    return [a.astype(np.float32) if a is not None and a.dtype.itemsize == 2 and
            a.dtype.kind not in "iub" else a for a in arrays]


def pointwise_memory_format(args) -> MemoryFormat:
    """The layout of a pointwise result, as PyTorch's TensorIterator picks it: dims are
    ordered by the strides of the FIRST operand that tells two dims apart (broadcast dims,
    stride 0, tell nothing), so `contiguous + channels_last` is contiguous and
    `channels_last + bias` is channels_last. A single operand keeps its own layout."""
    tensors = [a for a in args if is_tensor_like(a)]
    if len(tensors) == 1:
        a = tensors[0]
        return suggest_memory_format(tuple(a.shape), tuple(a.stride())) \
            if a.ndim in (4, 5) else contiguous_format
    shape = broadcast_shapes(*(tuple(a.shape) for a in tensors))
    if len(shape) not in (4, 5):
        return contiguous_format
    strides = [_broadcast_strides(a, shape) for a in tensors]
    if is_symbolic(shape) or is_symbolic(strides):
        # sizes of an exported program's dynamic dims (s0) have no order of their own:
        # the layout is the one a typical size (s0 = 97) gives
        shape, strides = concrete(shape, 97), concrete(strides, 97)
    order = _dims_innermost_first(shape, strides)
    if len(shape) == 5:                         # channels_last_3d: C, W, H, D, N inside out
        return channels_last_3d if order == [1, 4, 3, 2, 0] else contiguous_format
    return channels_last if order == [1, 3, 2, 0] else contiguous_format


def _broadcast_strides(a, shape: tuple) -> tuple:
    """`a`'s strides once broadcast to `shape` (0 where it is broadcast)."""
    lead = len(shape) - a.ndim
    own = tuple(a.stride())
    return tuple(0 if i < lead or (a.shape[i - lead] == 1 and shape[i] != 1)
                 else own[i - lead] for i in range(len(shape)))


def _dims_innermost_first(shape: tuple, strides: list) -> list:
    """Insertion sort of the dims, innermost first, by operand strides in order."""
    def should_swap(d0, d1) -> int:
        for st in strides:
            s0, s1 = st[d0], st[d1]
            if s0 == 0 or s1 == 0:
                continue                      # broadcast here: ask the next operand
            if s0 != s1:
                return 1 if s0 > s1 else -1
            if shape[d0] > shape[d1]:         # equal strides: the smaller dim goes inner
                return 1
        return 0

    order = list(range(len(shape) - 1, -1, -1))
    for i in range(1, len(order)):
        j = i
        for k in range(i - 1, -1, -1):
            verdict = should_swap(order[k], order[j])
            if verdict > 0:
                order[k], order[j] = order[j], order[k]
                j = k
            elif verdict < 0:
                break
    return order


def pointwise_meta(promotion: Promotion, n_operands: int | None = None,
                   promote: tuple[int, ...] | None = None):
    """Meta rule for pointwise ops: broadcast the first `n_operands` arguments (all
    positional ones by default) and promote the dtypes of those at `promote`."""
    def rule(*args, **_attrs):
        operands = args if n_operands is None else args[:n_operands]
        shape = broadcast_shapes(*(shape_of(a) for a in operands))
        promoted = operands if promote is None else [operands[i] for i in promote]
        _, out_dtype = promote_dtypes(promotion, promoted)
        fmt = pointwise_memory_format(operands) if len(shape) in (4, 5) \
            else contiguous_format
        return TensorMeta(shape, out_dtype, device_of(operands), fmt)
    return rule


def aliasing_meta(x, dtype=None) -> TensorMeta:
    """A view of x with x's shape and layout: the same strides, doubled when a complex x is
    viewed as its real or imaginary part (two reals per element). Views must carry their
    strides: compiled kernels index the shared buffer with them."""
    dtype = dtype or x.dtype
    factor = 2 if x.dtype.is_complex and not dtype.is_complex else 1
    return TensorMeta(tuple(x.shape), dtype, str(x.device),
                      strides=tuple(factor * s for s in x.stride()))


def same_meta(x, *_, **__) -> TensorMeta:
    return TensorMeta(tuple(x.shape), x.dtype, str(x.device), pointwise_memory_format([x]))


def require_float(x, what: str = "input") -> None:
    if not (x.dtype.is_floating_point or x.dtype.is_complex):
        raise DTypeError(f"expected a floating point or complex {what}, got {x.dtype}")


def require_dtype_category(x, allowed: set, what: str) -> None:
    if x.dtype.category not in allowed:
        raise DTypeError(f"{what} not supported for {x.dtype}")


def reduced_shape(shape: tuple, dims: tuple, keepdim: bool) -> tuple:
    if keepdim:
        return tuple(1 if i in dims else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in dims)


def numel(shape) -> int:
    return math.prod(shape)


def as_int_list(v, n: int, name: str) -> tuple[int, ...]:
    """Expand an int or a 1-element list to n ints (stride=2 -> (2, 2))."""
    if isinstance(v, int):
        return (v,) * n
    v = tuple(v)
    if len(v) == 1:
        return v * n
    if len(v) != n:
        raise ShapeError(f"{name} must have {n} elements, got {list(v)}")
    return v


def np_dtype(dt: DType):
    return dt.np_dtype
