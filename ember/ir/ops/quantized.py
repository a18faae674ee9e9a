"""Quantized compute ops: what convert_fx lowers dequant -> float op -> quant patterns to.

Operands are quantized tensors (their references receive `QuantizedArray`s); results
are quantized with the output scale and zero point the graph carries as constants.
The NumPy references are the correctness baseline for the int8 kernels: integer
accumulation (exact; done as float64 matrix products of integer values, exact below
2**53, so BLAS does the work), then requantization in float32 as torch.ao's x86 / fbgemm
engines do it (ir/quantized.py `requant_columns`, bit for bit):

    acc[i, o] = sum_k (x[i, k] - x_zp) * (w[o, k] - w_zp[o])
    raw[i, o] = float32(acc) + float32(bias[o] / atw[o])     atw = x_scale * w_scale[o]
                (per-tensor weights: fma(bias, float32(1 / atw), float32(acc)))
    out       = roundeven(raw * (atw / scale)) + zero_point, clamped (at zero_point when relu)

`quantized_linear_dynamic` quantizes its float input per call (qparams from the
batch's min/max, range 0..127 as fbgemm/x86 do) and returns float:
fma(float32(acc), x_scale * w_scale[o], bias[o]) with one rounding, as fbgemm.

These ops take quantized operands, which the table-driven tests cannot build from
NumPy samples; they are tagged QUANTIZED and tested against torch.ao in tests/quant.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..meta import TensorMeta
from ..quantized import (QuantizedArray, dequantize_array, fma_float32, qrange,
                         quantize_array, requant_columns, requantize_sums)
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from .conv import conv2d as _conv2d
from .conv import conv3d as _conv3d

Q = {Tag.QUANTIZED}


def _require_quantized(x, what: str, name: str):
    if not getattr(x.dtype, "is_quantized", False):
        raise DTypeError(f"{what}: expected {name} to be a quantized tensor, got dtype {x.dtype}")


def _centered(qa: QuantizedArray, channel_axis: int = 0) -> np.ndarray:
    """q - zero_point as float64 (exact integers)."""
    q = qa.int_repr.astype(np.float64)
    if qa.axis is None:
        return q - qa.zero_point
    shape = [1] * q.ndim
    shape[qa.axis] = q.shape[qa.axis]
    return q - qa.zero_point.reshape(shape)


def _weight_scales(w: QuantizedArray, n_out: int) -> np.ndarray:
    if w.axis is None:
        return np.full(n_out, np.float32(w.scale), np.float32)
    if w.axis != 0:
        raise ShapeError(f"quantized weights must be quantized per output channel (axis 0), "
                         f"got axis {w.axis}")
    return np.asarray(w.scale, np.float32)


def requantize(acc: np.ndarray, x_scale: float, w: QuantizedArray, bias, scale: float,
               zero_point: int, relu: bool, dtype, channel_axis: int) -> QuantizedArray:
    """int accumulators -> quantized output (torch.ao's float32 requantization)."""
    n = acc.shape[channel_axis]
    cols = requant_columns(x_scale, _weight_scales(w, n), w.axis is None, bias, scale, n)
    lo, hi = qrange(dtype)
    q = requantize_sums(acc, cols, zero_point, max(lo, zero_point) if relu else lo, hi,
                        channel_axis)
    return QuantizedArray(q.astype(dtype.np_dtype), dtype, float(scale), int(zero_point))


def _linear_acc(x: QuantizedArray, w: QuantizedArray) -> np.ndarray:
    return _centered(x) @ _centered(w).T


def _linear_meta(self, weight, bias, scale, zero_point, relu):
    _require_quantized(self, "quantized_linear", "input")
    _require_quantized(weight, "quantized_linear", "weight")
    if weight.ndim != 2 or self.shape[-1] != weight.shape[1]:
        raise ShapeError(f"quantized_linear: input {list(self.shape)} and weight "
                         f"{list(weight.shape)} do not match")
    return TensorMeta(tuple(self.shape[:-1]) + (weight.shape[0],), self.dtype,
                      str(self.device))


def _linear_ref(x, w, bias, scale, zero_point, relu):
    acc = _linear_acc(x, w)
    return requantize(acc, x.scale, w, bias, scale, zero_point, relu, x.dtype, acc.ndim - 1)


quantized_linear = defop(
    "quantized_linear(Tensor self, Tensor weight, Tensor? bias, float scale, int zero_point, "
    "bool relu=False) -> Tensor",
    meta=_linear_meta, reference=_linear_ref, derivative=NOT_DIFFERENTIABLE, tags=Q,
)


def _float_meta(t):
    return TensorMeta(tuple(t.shape), dtypes.float32, str(t.device))


def _conv_meta_for(name: str, float_conv):
    def meta(self, weight, bias, stride, padding, dilation, groups, scale, zero_point, relu):
        _require_quantized(self, name, "input")
        _require_quantized(weight, name, "weight")
        key = _conv_meta_key(name, self, weight, stride, padding, dilation, groups)
        found = _CONV_METAS.get(key) if key is not None else None
        if found is None:
            out = float_conv.meta(_float_meta(self), _float_meta(weight), None, stride,
                                  padding, dilation, groups)
            found = TensorMeta(out.shape, self.dtype, str(self.device))
            if key is not None and len(_CONV_METAS) < 4096:
                _CONV_METAS[key] = found
        return found
    return meta


# Concrete geometries seen before (an int8 model calls each layer's alike every time; the
# float conv rule costs tens of microseconds a call): the same answer, or the same error
# again since failures are never stored. Symbolic sizes are never keyed.
_CONV_METAS: dict = {}


def _conv_meta_key(name, x, w, stride, padding, dilation, groups):
    parts = (tuple(x.shape), tuple(w.shape), tuple(stride), tuple(padding), tuple(dilation),
             (groups,))
    if not all(type(v) is int for part in parts for v in part):
        return None
    return (name,) + parts + (x.dtype, str(x.device))


def _conv_ref_for(float_conv):
    def ref(x, w, bias, stride, padding, dilation, groups, scale, zero_point, relu):
        acc = float_conv.reference(_centered(x), _centered(w), None, stride, padding, dilation,
                                   groups)
        acc = np.rint(acc)          # exact integers up to float64 summation order
        return requantize(acc, x.scale, w, bias, scale, zero_point, relu, x.dtype, 1)
    return ref


quantized_conv2d = defop(
    "quantized_conv2d(Tensor self, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, "
    "int[2] dilation, int groups, float scale, int zero_point, bool relu=False) -> Tensor",
    meta=_conv_meta_for("quantized_conv2d", _conv2d), reference=_conv_ref_for(_conv2d),
    derivative=NOT_DIFFERENTIABLE, tags=Q,
)

quantized_conv3d = defop(
    "quantized_conv3d(Tensor self, Tensor weight, Tensor? bias, int[3] stride, int[3] padding, "
    "int[3] dilation, int groups, float scale, int zero_point, bool relu=False) -> Tensor",
    meta=_conv_meta_for("quantized_conv3d", _conv3d), reference=_conv_ref_for(_conv3d),
    derivative=NOT_DIFFERENTIABLE, tags=Q,
)


def _binary_meta(name):
    def meta(self, other, scale, zero_point, relu):
        _require_quantized(self, name, "self")
        _require_quantized(other, name, "other")
        from .rules import broadcast_shapes
        return TensorMeta(broadcast_shapes(self.shape, other.shape), self.dtype,
                          str(self.device))
    return meta


def _binary_ref(fn):
    def ref(a, b, scale, zero_point, relu):
        real = fn(dequantize_array(a), dequantize_array(b))
        if relu:
            real = np.maximum(real, np.float32(0))
        return quantize_array(real, scale, zero_point, a.dtype)
    return ref


def _dequantize_fma(qa: QuantizedArray) -> np.ndarray:
    """torch's vectorized dequantize of 8-bit values: one fma in float32,
    q * scale + float32(scale * -zero_point). q * scale (8 x 24 bits) plus that float32
    is exact in float64, so rounding the float64 sum once is the fma's rounding."""
    scale = np.float32(qa.scale)
    premul = np.float32(scale * np.float32(-qa.zero_point))
    wide = qa.int_repr.astype(np.float64)
    wide *= np.float64(scale)
    wide += np.float64(premul)
    return wide.astype(np.float32)


def _add_ref(a, b, scale, zero_point, relu):
    """quantized_add as torch's quantized add kernel computes it (bit for bit, measured
    against torch.ops.quantized.add / add_relu): each operand dequantized by one fma,
    added in float32, relu, then rint(float32(sum * float32(1 / scale))) + zero_point,
    clamped. (quantize_array's float64 steps round a few values in a million the other
    way.)"""
    plain = all(q.axis is None and q.int_repr.dtype.itemsize == 1 and
                abs(q.zero_point) < 1 << 23 for q in (a, b))
    if not plain:
        return _binary_ref(np.add)(a, b, scale, zero_point, relu)
    real = _dequantize_fma(a) + _dequantize_fma(b)
    if relu:
        real = np.maximum(real, np.float32(0))
    lo, hi = qrange(a.dtype)
    real *= np.float32(1.0) / np.float32(scale)
    q = np.rint(real) + np.float32(zero_point)
    return QuantizedArray(np.clip(q, lo, hi).astype(a.int_repr.dtype), a.dtype, float(scale),
                          int(zero_point))


quantized_add = defop(
    "quantized_add(Tensor self, Tensor other, float scale, int zero_point, bool relu=False) "
    "-> Tensor",
    meta=_binary_meta("quantized_add"), reference=_add_ref,
    derivative=NOT_DIFFERENTIABLE, tags=Q,
)

def _mul_ref(a, b, scale, zero_point, relu):
    """quantized_mul as torch's quantized mul kernel computes it (bit for bit, measured
    against torch.ops.quantized.mul / mul_relu): the integer product of the centered
    operands times float32(a_scale * b_scale / scale) (the quotient taken in double),
    rounded half to even, plus the zero point, clamped (from the zero point with relu).
    (Dequantizing, multiplying and quantizing rounds ~0.4% of values the other way.)"""
    plain = all(q.axis is None and q.int_repr.dtype.itemsize == 1 for q in (a, b))
    if not plain:
        return _binary_ref(np.multiply)(a, b, scale, zero_point, relu)
    mult = np.float32(float(a.scale) * float(b.scale) / float(scale))
    prod = (a.int_repr.astype(np.int64) - int(a.zero_point)) * \
        (b.int_repr.astype(np.int64) - int(b.zero_point))
    q = np.rint(prod.astype(np.float32) * mult).astype(np.int64) + int(zero_point)
    lo, hi = qrange(a.dtype)
    q = np.clip(q, max(lo, zero_point) if relu else lo, hi)
    return QuantizedArray(q.astype(a.int_repr.dtype), a.dtype, float(scale), int(zero_point))


quantized_mul = defop(
    "quantized_mul(Tensor self, Tensor other, float scale, int zero_point, bool relu=False) "
    "-> Tensor",
    meta=_binary_meta("quantized_mul"), reference=_mul_ref,
    derivative=NOT_DIFFERENTIABLE, tags=Q,
)


def _conv_add_meta(self, weight, bias, stride, padding, dilation, groups, conv_scale,
                   conv_zero_point, conv_relu, other, scale, zero_point, relu=False):
    out = quantized_conv2d.meta(self, weight, bias, stride, padding, dilation, groups,
                                conv_scale, conv_zero_point, conv_relu)
    _require_quantized(other, "quantized_conv2d_add", "other")
    if tuple(other.shape) != tuple(out.shape) or other.dtype != out.dtype:
        raise ShapeError(f"quantized_conv2d_add: the convolution gives {list(out.shape)} "
                         f"{out.dtype}, the residual is {list(other.shape)} {other.dtype}")
    return out


def _conv_add_ref(x, w, bias, stride, padding, dilation, groups, conv_scale,
                  conv_zero_point, conv_relu, other, scale, zero_point, relu=False):
    conv = quantized_conv2d.reference(x, w, bias, stride, padding, dilation, groups,
                                      conv_scale, conv_zero_point, conv_relu)
    return quantized_add.reference(conv, other, scale, zero_point, relu)


# A quantized conv whose only reader is a residual quantized_add(_relu), as one op: what
# the compiler's `fuse-qresidual` pass makes of the pair (never convert_fx, whose graph
# mirrors torch.ao's). Its value is the pair's exactly: the conv's result rounded to its
# own (conv_scale, conv_zero_point), then added to `other` as quantized_add does.
quantized_conv2d_add = defop(
    "quantized_conv2d_add(Tensor self, Tensor weight, Tensor? bias, int[2] stride, "
    "int[2] padding, int[2] dilation, int groups, float conv_scale, int conv_zero_point, "
    "bool conv_relu, Tensor other, float scale, int zero_point, bool relu=False) -> Tensor",
    meta=_conv_add_meta, reference=_conv_add_ref, derivative=NOT_DIFFERENTIABLE, tags=Q,
)


def _scalar_meta(name):
    def meta(self, other):
        _require_quantized(self, name, "self")
        return TensorMeta(self.shape, self.dtype, str(self.device))
    return meta


def _add_scalar_ref(x, other):
    """torch's quantized add_scalar: the output qparams absorb the constant. The zero
    point moves by round(c / scale) while that stays in range (the integers are kept);
    past the range the zero point pins to the bound it crossed and the scale widens to
    cover the shifted range, the integers requantized to it."""
    if x.axis is not None:
        raise DTypeError("quantized_add_scalar: expected a per-tensor quantized input")
    lo, hi = qrange(x.dtype)
    s, z = float(x.scale), int(x.zero_point)
    c_q = int(np.rint(float(np.float32(other)) / s))     # the constant as float32, as torch
    shifted = z - c_q
    if lo <= shifted <= hi:
        return QuantizedArray(x.int_repr, x.dtype, s, shifted)
    if shifted < lo:
        scale, zero = (hi - shifted) / (hi - lo) * s, lo
    else:
        scale, zero = (shifted - lo) / (hi - lo) * s, hi
    multiplier = np.float32(s) * (np.float32(1) / np.float32(scale))   # torch's, in float32
    src = (x.int_repr.astype(np.int64) - z + c_q).astype(np.float32)
    q = np.clip(np.rint(src * multiplier) + zero, lo, hi).astype(x.dtype.np_dtype)
    return QuantizedArray(q, x.dtype, scale, zero)


def _mul_scalar_ref(x, other):
    """torch's quantized mul_scalar: integers kept, the scale multiplied by |c|; a
    negative c mirrors the integers and the zero point inside the range; c == 0 gives
    zeros with scale 1 and zero point 0."""
    if x.axis is not None:
        raise DTypeError("quantized_mul_scalar: expected a per-tensor quantized input")
    lo, hi = qrange(x.dtype)
    c, s, z = float(other), float(x.scale), int(x.zero_point)
    if c == 0.0:
        return QuantizedArray(np.zeros_like(x.int_repr), x.dtype, 1.0, 0)
    if c > 0:
        return QuantizedArray(x.int_repr, x.dtype, c * s, z)
    mirrored = (hi + lo - x.int_repr.astype(np.int64)).astype(x.dtype.np_dtype)
    return QuantizedArray(mirrored, x.dtype, -c * s, hi - (z - lo))


quantized_add_scalar = defop(
    "quantized_add_scalar(Tensor self, float other) -> Tensor",
    meta=_scalar_meta("quantized_add_scalar"), reference=_add_scalar_ref,
    derivative=NOT_DIFFERENTIABLE, tags=Q,
)

quantized_mul_scalar = defop(
    "quantized_mul_scalar(Tensor self, float other) -> Tensor",
    meta=_scalar_meta("quantized_mul_scalar"), reference=_mul_scalar_ref,
    derivative=NOT_DIFFERENTIABLE, tags=Q,
)


def _dynamic_meta(self, weight, bias, relu):
    if not self.dtype.is_floating_point:
        raise DTypeError(f"quantized_linear_dynamic: expected a float input, got {self.dtype}")
    _require_quantized(weight, "quantized_linear_dynamic", "weight")
    if weight.ndim != 2 or self.shape[-1] != weight.shape[1]:
        raise ShapeError(f"quantized_linear_dynamic: input {list(self.shape)} and weight "
                         f"{list(weight.shape)} do not match")
    return TensorMeta(tuple(self.shape[:-1]) + (weight.shape[0],), dtypes.float32,
                      str(self.device))


def dynamic_input_qparams(x: np.ndarray, qmin: int = 0, qmax: int = 127):
    """Per-batch affine qparams for a dynamically quantized input (range includes 0)."""
    if not x.size:
        return dynamic_range_qparams(0.0, 0.0, qmin, qmax)
    return dynamic_range_qparams(float(np.min(x)), float(np.max(x)), qmin, qmax)


def dynamic_range_qparams(x_min: float, x_max: float, qmin: int = 0, qmax: int = 127):
    """dynamic_input_qparams from the input's min and max (a native pass finds them)."""
    lo, hi = min(x_min, 0.0), max(x_max, 0.0)
    scale = (hi - lo) / (qmax - qmin)
    if scale == 0.0:
        scale = 0.1
    scale = float(np.float32(scale))
    zero_point = int(min(max(qmin - round(lo / scale), qmin), qmax))
    return scale, zero_point


def _dynamic_ref(x, w, bias, relu):
    scale, zp = dynamic_input_qparams(x)
    qx = quantize_array(x, scale, zp, dtypes.quint8)
    acc = _linear_acc(qx, w)
    mult = np.float32(scale) * _weight_scales(w, acc.shape[-1])
    if bias is None:
        real = acc.astype(np.float32) * mult
    else:       # fbgemm's multiply and bias add, contracted into one fma
        real = fma_float32(acc.astype(np.float32), mult, np.asarray(bias, np.float32))
    return np.maximum(real, np.float32(0)) if relu else real


quantized_linear_dynamic = defop(
    "quantized_linear_dynamic(Tensor self, Tensor weight, Tensor? bias, bool relu=False) "
    "-> Tensor",
    meta=_dynamic_meta, reference=_dynamic_ref, derivative=NOT_DIFFERENTIABLE, tags=Q,
)
