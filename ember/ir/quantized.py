"""Quantized values: schemes, qparams and the NumPy kernels that map float <-> int.

A quantized tensor stands for `scale * (q - zero_point)`; `q` is stored as a plain
integer array (uint8 for quint8, int8 for qint8, int32 for qint32). `QuantizedArray`
is that array plus its qparams: what the registry ops' NumPy references receive and
return for quantized operands, so eager execution and the graph interpreter share
one set of kernels.

The rounding follows PyTorch's CPU kernels bit for bit, as measured against torch
2.13 (tests/quant/test_qtensor.py checks it): round half to even, float32 arithmetic,
with these orders of operations, which differ between paths:
- per-tensor quint8/qint8: `rint(fma(x, 1/scale, zp))` (one rounding of x*inv + zp);
- per-tensor qint32 and every per-channel dtype: `rint(f32(x * inv) + f32(zp))`;
- fake quantization: `rint(x * inv) + zp`, clamped, then `(q - zp) * scale` in float32;
- dequantize: `(q - zp) * scale` in float32 per tensor, in float64 per channel.
`inv` is always the float32 reciprocal of the float32 scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import dtypes
from .dtypes import DType
from .errors import DTypeError


class QScheme:
    """torch.qscheme singletons: ember.per_tensor_affine, ..."""
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"ember.{self.name}"

    def __reduce__(self):
        return (qscheme_from_name, (self.name,))


per_tensor_affine = QScheme("per_tensor_affine")
per_channel_affine = QScheme("per_channel_affine")
per_tensor_symmetric = QScheme("per_tensor_symmetric")
per_channel_symmetric = QScheme("per_channel_symmetric")
per_channel_affine_float_qparams = QScheme("per_channel_affine_float_qparams")
QSCHEMES = {q.name: q for q in (per_tensor_affine, per_channel_affine, per_tensor_symmetric,
                                per_channel_symmetric, per_channel_affine_float_qparams)}


def qscheme_from_name(name: str) -> QScheme:
    return QSCHEMES[name]


def is_per_channel(qscheme: QScheme) -> bool:
    return qscheme in (per_channel_affine, per_channel_symmetric,
                       per_channel_affine_float_qparams)


def qrange(dtype: DType) -> tuple[int, int]:
    """The full integer range of a quantized dtype's storage."""
    found = _QRANGES.get(dtype)
    if found is None:
        info = np.iinfo(dtype.np_dtype)
        found = _QRANGES[dtype] = (int(info.min), int(info.max))
    return found


_QRANGES: dict = {}       # np.iinfo costs microseconds per call, on every int8 op


def check_quantized_dtype(dtype: DType, what: str) -> None:
    if not dtype.is_quantized:
        raise DTypeError(f"{what} expects a quantized dtype (ember.quint8, ember.qint8 or "
                         f"ember.qint32), got {dtype}")


@dataclass(frozen=True, eq=False)
class QuantizedArray:
    """An integer array with its qparams. Per tensor: `scale` is a Python float and
    `zero_point` an int, `axis` is None. Per channel: float64 `scale` and int64
    `zero_point` arrays along `axis` (float32 zero points: the float-qparams scheme of
    quantized embeddings)."""
    int_repr: np.ndarray
    dtype: DType
    scale: object
    zero_point: object
    axis: int | None = None

    @property
    def shape(self):
        return self.int_repr.shape

    @property
    def qscheme(self) -> QScheme:
        if self.axis is None:
            return per_tensor_affine
        if np.asarray(self.zero_point).dtype.kind == "f":
            return per_channel_affine_float_qparams
        return per_channel_affine

    def with_values(self, int_repr: np.ndarray) -> "QuantizedArray":
        """Same qparams over new integers (shape ops, max pooling: per-tensor only)."""
        return QuantizedArray(int_repr, self.dtype, self.scale, self.zero_point, self.axis)

    def dequantize(self) -> np.ndarray:
        return dequantize_array(self)


def _channel_shape(ndim: int, axis: int, n: int) -> list[int]:
    shape = [1] * ndim
    shape[axis] = n
    return shape


def quantize_array(x: np.ndarray, scale: float, zero_point: int, dtype: DType) -> QuantizedArray:
    """quantize_per_tensor on a float array (computed in float32, as PyTorch does)."""
    x = np.asarray(x, np.float32)
    lo, hi = qrange(dtype)
    inv = np.float32(1.0) / np.float32(scale)
    if dtype is dtypes.qint32:
        q = np.clip(np.rint(x * inv + np.float32(zero_point)).astype(np.float64), lo, hi)
    else:   # one rounding of x * inv + zp: the product of two float32 is exact in float64
        wide = x.astype(np.float64)
        wide *= np.float64(inv)
        wide += zero_point
        q = wide.astype(np.float32)
        np.rint(q, out=q)
        np.clip(q, lo, hi, out=q)       # 8-bit bounds are exact in float32
    q = q.astype(dtype.np_dtype)
    return QuantizedArray(q, dtype, float(scale), int(zero_point))


def quantize_channel_array(x: np.ndarray, scales: np.ndarray, zero_points: np.ndarray,
                           axis: int, dtype: DType) -> QuantizedArray:
    x = np.asarray(x, np.float32)
    lo, hi = qrange(dtype)
    shape = _channel_shape(x.ndim, axis, x.shape[axis])
    scales = np.asarray(scales, np.float64).reshape(-1)
    float_qparams = np.asarray(zero_points).dtype.kind == "f"   # PyTorch: float zero points
    zero_points = np.asarray(zero_points).astype(
        np.float32 if float_qparams else np.int64).reshape(-1)
    inv = (np.float32(1.0) / scales.astype(np.float32)).reshape(shape)
    q = np.rint(x * inv + zero_points.astype(np.float32).reshape(shape))
    q = np.clip(q.astype(np.float64), lo, hi).astype(dtype.np_dtype)
    return QuantizedArray(q, dtype, scales, zero_points, axis)


def dequantize_array(qa: QuantizedArray) -> np.ndarray:
    if qa.axis is None and qa.int_repr.dtype.itemsize == 1 and abs(qa.zero_point) < 1 << 23:
        # 8-bit values minus the zero point are exact in float32: the same values as the
        # int64 steps below, without the int64 pass
        centered = qa.int_repr.astype(np.float32)
        centered -= np.float32(qa.zero_point)
        centered *= np.float32(qa.scale)
        return centered
    q = qa.int_repr.astype(np.int64)
    if qa.axis is None:
        return (q - qa.zero_point).astype(np.float32) * np.float32(qa.scale)
    shape = _channel_shape(q.ndim, qa.axis, q.shape[qa.axis])
    if qa.qscheme is per_channel_affine_float_qparams:      # in float32, as PyTorch
        return (q.astype(np.float32) - qa.zero_point.reshape(shape)) * \
            qa.scale.astype(np.float32).reshape(shape)
    return ((q - qa.zero_point.reshape(shape)) * qa.scale.reshape(shape)).astype(np.float32)


def fake_quantize_values(x: np.ndarray, scale, zero_point, quant_min: int, quant_max: int):
    """(output, mask) of fake quantization; scale/zero_point broadcast against x."""
    x = np.asarray(x, np.float32)
    inv = np.float32(1.0) / np.asarray(scale, np.float32)
    if np.asarray(zero_point).dtype.kind == "f":
        # float zero points (per_channel_affine_float_qparams, embeddings): torch adds the
        # zero point before rounding and dequantizes (q - zp) * scale in double
        zp = np.asarray(zero_point, np.float32)
        q = np.rint(x * inv + zp)
        mask = (q >= quant_min) & (q <= quant_max)
        out = (np.clip(q, quant_min, quant_max).astype(np.float64) - zp) * \
            np.asarray(scale, np.float32)
        return out.astype(np.float32), mask
    zp = np.asarray(zero_point).astype(np.float32)
    q = np.rint(x * inv) + zp
    mask = (q >= quant_min) & (q <= quant_max)
    out = (np.clip(q, quant_min, quant_max) - zp) * np.asarray(scale, np.float32)
    return out.astype(np.float32), mask


def channel_params(scale, zero_point, x: np.ndarray, axis: int):
    """Per-channel scale/zero_point arrays reshaped to broadcast against x along axis."""
    shape = _channel_shape(x.ndim, axis, x.shape[axis])
    return (np.asarray(scale).reshape(shape), np.asarray(zero_point).reshape(shape))
