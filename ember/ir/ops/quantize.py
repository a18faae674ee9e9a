"""Quantization ops: float <-> quantized tensors, and fake quantization.

`quantize_per_tensor` / `quantize_per_channel` make quantized tensors (dtypes quint8,
qint8, qint32); `dequantize` reads them (`Tensor.int_repr()` and the qparam accessors are
methods of the quantized Tensor, frontend/quantized.py). Their NumPy references take and
return `ir.quantized.QuantizedArray` for quantized operands (eager wraps it as a
quantized Tensor). `fake_quantize_per_*_affine` stay in float: quantize then dequantize,
with PyTorch's straight-through gradient (the output gradient where the rounded value
fell inside [quant_min, quant_max], zero elsewhere). The arithmetic order of every
kernel is documented in ir/quantized.py.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..meta import TensorMeta
from ..quantized import (QuantizedArray, channel_params, check_quantized_dtype,
                         dequantize_array, fake_quantize_values, quantize_array,
                         quantize_channel_array)
from ..registry import NOT_DIFFERENTIABLE, defop
from . import samples as S


def _float_input(x, what: str):
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{what} expects a floating point input, got {x.dtype}")


def _quantize_meta(self, scale, zero_point, dtype):
    _float_input(self, "quantize_per_tensor")
    dtype = dtypes.as_dtype(dtype)
    check_quantized_dtype(dtype, "quantize_per_tensor")
    if float(scale) <= 0:
        raise ValueError(f"quantize_per_tensor: scale must be positive, got {float(scale)}")
    return TensorMeta(tuple(self.shape), dtype, str(self.device))


quantize_per_tensor = defop(
    "quantize_per_tensor(Tensor self, float scale, int zero_point, ScalarType dtype) -> Tensor",
    meta=_quantize_meta,
    reference=lambda x, scale, zero_point, dtype: quantize_array(
        x, float(scale), int(zero_point), dtypes.as_dtype(dtype)),
    derivative=NOT_DIFFERENTIABLE,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 5) * 4, 0.05, 7), {"dtype": "quint8"}),
                         S.Sample((S.randn(rng, 6), 0.1, -3), {"dtype": "qint8"}),
                         S.Sample((S.randn(rng, 2, 3), 0.01, 11), {"dtype": "qint32"})],
    torch_ref="torch.quantize_per_tensor",
)


def _channel_meta(self, scales, zero_points, axis, dtype):
    _float_input(self, "quantize_per_channel")
    dtype = dtypes.as_dtype(dtype)
    check_quantized_dtype(dtype, "quantize_per_channel")
    if not 0 <= axis < self.ndim:
        raise ShapeError(f"Channel axis out of range in per channel affine quantization. Got: "
                         f"{axis} Expected: [0, {self.ndim})")
    n = self.shape[axis]
    if tuple(scales.shape) != (n,) or tuple(zero_points.shape) != (n,):
        raise ShapeError(f"quantize_per_channel: expected scales and zero_points of size {n} "
                         f"(the size of dim {axis}), got {list(scales.shape)} and "
                         f"{list(zero_points.shape)}")
    return TensorMeta(tuple(self.shape), dtype, str(self.device))


quantize_per_channel = defop(
    "quantize_per_channel(Tensor self, Tensor scales, Tensor zero_points, int axis, "
    "ScalarType dtype) -> Tensor",
    meta=_channel_meta,
    reference=lambda x, scales, zero_points, axis, dtype: quantize_channel_array(
        x, scales, zero_points, axis, dtypes.as_dtype(dtype)),
    derivative=NOT_DIFFERENTIABLE,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 3, 4) * 3, np.array([0.1, 0.02, 0.3]),
                  np.array([0, 5, -2]), 0), {"dtype": "qint8"}),
        S.Sample((S.randn(rng, 2, 4), np.array([0.1, 0.02, 0.3, 0.05]),
                  np.array([100, 5, 20, 128]), 1), {"dtype": "quint8"})],
    torch_ref="torch.quantize_per_channel",
)


def _quantized_input(x, what: str):
    if not x.dtype.is_quantized:
        raise DTypeError(f"{what} expects a quantized tensor, got dtype {x.dtype}")


def _dequantize_meta(self):
    if not self.dtype.is_quantized:   # torch: dequantize of a float tensor is the identity
        _float_input(self, "dequantize")
        return TensorMeta(tuple(self.shape), self.dtype, str(self.device))
    return TensorMeta(tuple(self.shape), dtypes.float32, str(self.device))


dequantize = defop(
    "dequantize(Tensor self) -> Tensor",
    meta=_dequantize_meta,
    reference=lambda x: dequantize_array(x) if isinstance(x, QuantizedArray) else x.copy(),
    derivative=NOT_DIFFERENTIABLE,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4),))],
    torch_ref="torch.dequantize", method=True,
)


def _fake_meta(self, *qparams):
    _float_input(self, "fake_quantize")
    quant_min, quant_max = qparams[-2:]
    if quant_min > quant_max:
        raise ValueError(f"`quant_min` should be less than or equal to `quant_max`, got "
                         f"{quant_min} and {quant_max}")
    return TensorMeta(tuple(self.shape), self.dtype, str(self.device))


def _fake_samples(rng):
    x = S.randn(rng, 4, 6) * 2
    return [S.Sample((x, 0.05, 3, 0, 255), grad=False),
            S.Sample((x, 0.1, 0, -128, 127), grad=False),
            S.Sample((S.randn(rng, 7), 0.3, 2, 0, 15), grad=False)]


_fake_mask_per_tensor = defop(
    "_fake_quantize_per_tensor_mask(Tensor self, float scale, int zero_point, int quant_min, "
    "int quant_max) -> Tensor",
    meta=lambda self, *q: _fake_meta(self, *q).with_(dtype=dtypes.bool_),
    reference=lambda x, scale, zp, lo, hi: fake_quantize_values(x, scale, zp, lo, hi)[1],
    derivative=NOT_DIFFERENTIABLE,
    samples=lambda rng: [S.Sample((S.randn(rng, 4, 6) * 2, 0.05, 3, 0, 255))],
    torch_ref=lambda torch: lambda *a: torch.ops.aten.fake_quantize_per_tensor_affine_cachemask(
        *a)[1],
)

fake_quantize_per_tensor_affine = defop(
    "fake_quantize_per_tensor_affine(Tensor self, float scale, int zero_point, int quant_min, "
    "int quant_max) -> Tensor",
    meta=_fake_meta,
    reference=lambda x, scale, zp, lo, hi: fake_quantize_values(
        x, float(scale), int(zp), lo, hi)[0].astype(x.dtype),
    derivative=lambda g, self, scale, zero_point, quant_min, quant_max: g * (
        _fake_mask_per_tensor(self, scale, zero_point, quant_min, quant_max)),
    saves=("self",),
    samples=_fake_samples,
    torch_ref="torch.fake_quantize_per_tensor_affine",
)


def _fake_channel_meta(self, scale, zero_point, axis, quant_min, quant_max):
    out = _fake_meta(self, quant_min, quant_max)
    if not 0 <= axis < self.ndim:
        raise ShapeError("`axis` must be between 0 and number of dimensions of input")
    n = self.shape[axis]
    if tuple(scale.shape) != (n,) or tuple(zero_point.shape) != (n,):
        raise ShapeError(f"fake_quantize_per_channel_affine: expected scale and zero_point of "
                         f"size {n} (dim {axis}), got {list(scale.shape)} and "
                         f"{list(zero_point.shape)}")
    return out


def _fake_channel(x, scale, zp, axis, lo, hi):
    s, z = channel_params(scale, zp, x, axis)
    return fake_quantize_values(x, s, z, lo, hi)


def _fake_channel_samples(rng):
    return [S.Sample((S.randn(rng, 3, 5) * 2, np.array([0.05, 0.1, 0.2], np.float32),
                      np.array([3, 0, 10], np.int32), 0, 0, 255), grad=False),
            S.Sample((S.randn(rng, 2, 4), np.array([0.01, 0.1, 0.2, 0.02], np.float32),
                      np.array([0, 0, 1, -3], np.int32), 1, -128, 127), grad=False)]


_fake_mask_per_channel = defop(
    "_fake_quantize_per_channel_mask(Tensor self, Tensor scale, Tensor zero_point, int axis, "
    "int quant_min, int quant_max) -> Tensor",
    meta=lambda self, *q: _fake_channel_meta(self, *q).with_(dtype=dtypes.bool_),
    reference=lambda *a: _fake_channel(*a)[1],
    derivative=NOT_DIFFERENTIABLE,
    samples=lambda rng: _fake_channel_samples(rng)[:1],
    torch_ref=lambda torch: lambda *a: torch.ops.aten.fake_quantize_per_channel_affine_cachemask(
        *a)[1],
)

fake_quantize_per_channel_affine = defop(
    "fake_quantize_per_channel_affine(Tensor self, Tensor scale, Tensor zero_point, int axis, "
    "int quant_min, int quant_max) -> Tensor",
    meta=_fake_channel_meta,
    reference=lambda *a: _fake_channel(*a)[0].astype(a[0].dtype),
    derivative=lambda g, self, scale, zero_point, axis, quant_min, quant_max: (
        g * _fake_mask_per_channel(self, scale, zero_point, axis, quant_min, quant_max),
        None, None),
    saves=("self", "scale", "zero_point"),
    samples=_fake_channel_samples,
    torch_ref="torch.fake_quantize_per_channel_affine",
)
