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


# --- int8 GEMM / conv requantization (torch.ao's quantized linear and conv) -----------------
# torch.ao's x86 and fbgemm engines requantize an int8 GEMM's int32 sums in float32 with
# these operations, in this order (measured against torch 2.13 bit for bit; rounding the
# product before adding the zero point is what makes ties differ from quantize_per_tensor):
#
#   atw  = float32(x_scale) * float32(w_scale[n])           act-times-weight scale
#   mult = atw / float32(out_scale)
#   raw  = float32(acc) + float32(bias[n] / atw)             per-channel weights
#        = fma(bias[n], float32(1 / atw), float32(acc))      per-tensor weights (one rounding)
#   q    = clamp(roundeven(raw * mult) + zero_point, lo, hi)
#
# Both raw forms are fma(bias_term[n], factor, float32(acc)) with factor 1 per channel.

@dataclass(frozen=True)
class RequantColumns:
    """The per-output-column constants of that requantization: mult and bias_term
    (float32 arrays) and the scalar factor."""
    mult: np.ndarray
    bias_term: np.ndarray
    factor: float


def requant_columns(x_scale: float, w_scales, per_tensor: bool, bias, out_scale: float,
                    n: int) -> RequantColumns:
    """The constants for n output columns; w_scales: one scale (per-tensor weights) or n."""
    atw = np.float32(x_scale) * np.broadcast_to(np.asarray(w_scales, np.float32), (n,))
    mult = (atw / np.float32(out_scale)).astype(np.float32)
    if bias is None:
        return RequantColumns(mult, np.zeros(n, np.float32), 1.0)
    bias = np.broadcast_to(np.asarray(bias, np.float32), (n,))
    if per_tensor:      # the bias times the float32 reciprocal, fused into the add
        return RequantColumns(mult, bias.copy(), float(np.float32(1.0 / np.float64(atw[0]))))
    return RequantColumns(mult, (bias / atw).astype(np.float32), 1.0)


def fma_float32(x: np.ndarray, y, z) -> np.ndarray:
    """float32(x * y + z) with one rounding (as an fma instruction), for float32 inputs
    (broadcast together): the product is exact in float64; the float64 sum's own rounding
    is undone where it would make the float32 rounding land on a tie that the exact sum
    is not on."""
    p = np.asarray(x, np.float64) * np.asarray(y, np.float64)
    z = np.broadcast_to(np.asarray(z, np.float64), p.shape)
    s = p + z
    t = s - p
    err = (p - (s - t)) + (z - t)            # s + err == p + z exactly (TwoSum)
    out = s.astype(np.float32)
    near = out.astype(np.float64)
    other = np.where(near < s, np.nextafter(out, np.float32(np.inf)),
                     np.nextafter(out, np.float32(-np.inf))).astype(np.float64)
    tie = ((near + other) * 0.5 == s) & (err != 0)
    if tie.any():
        nudged = np.where(err > 0, np.nextafter(s, np.inf), np.nextafter(s, -np.inf))
        out = np.where(tie, nudged.astype(np.float32), out)
    return out


def requantize_sums(acc: np.ndarray, cols: RequantColumns, zero_point: int, lo: int, hi: int,
                    channel_axis: int) -> np.ndarray:
    """The integer outputs (int64) of int32 sums `acc` (any integer or exact float array)
    whose output channels lie along channel_axis."""
    shape = [1] * acc.ndim
    shape[channel_axis] = acc.shape[channel_axis]
    a = np.asarray(acc).astype(np.float32)
    bias = cols.bias_term.reshape(shape)
    if cols.factor == 1.0:
        raw = a + bias
    else:
        raw = fma_float32(np.broadcast_to(bias, a.shape), cols.factor, a)
    q = np.rint(raw * cols.mult.reshape(shape)).astype(np.int64) + int(zero_point)
    return np.clip(q, lo, hi)
