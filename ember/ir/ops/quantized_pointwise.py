"""Pointwise functions of 8-bit quantized tensors as torch's quantized kernels compute them:
sigmoid, tanh and hardsigmoid with their fixed output qparams, hardswish with given ones
(`quantized_hardswish`, torch.ops.quantized.hardswish).

An 8-bit input has 256 possible values, so each op is a table: the function computed
once per input integer exactly as torch's kernel computes it elementwise (dequantize in
float32, the function in float32, quantize to the output qparams by a float32 product
with the inverse scale), then a gather. The
tables equal torch's results on every input integer (tests/quant/test_qpointwise.py
checks all 256 against torch for many input qparams); the gather costs one byte read
and one byte written per element.
"""
from __future__ import annotations

import functools

import numpy as np

from .. import dtypes
from ..errors import DTypeError
from ..meta import TensorMeta
from ..quantized import QuantizedArray, dequantize_array, qrange
from ..registry import NOT_DIFFERENTIABLE, Tag, defop


def _sigmoid(x):
    return np.float32(1) / (np.float32(1) + np.exp(-x))


def _hardsigmoid(x):
    return np.clip(x + np.float32(3), np.float32(0), np.float32(6)) / np.float32(6)


def _hardswish(x):
    return x * np.clip(x + np.float32(3), np.float32(0), np.float32(6)) / np.float32(6)


FUNCTIONS = {"sigmoid": _sigmoid, "tanh": np.tanh, "hardsigmoid": _hardsigmoid,
             "hardswish": _hardswish}

# torch's fixed output qparams, by input dtype: sigmoid and hardsigmoid map onto [0, 1),
# tanh onto [-1, 1)
FIXED_QPARAMS = {
    "sigmoid": {"quint8": (1.0 / 256, 0), "qint8": (1.0 / 256, -128)},
    "hardsigmoid": {"quint8": (1.0 / 256, 0), "qint8": (1.0 / 256, -128)},
    "tanh": {"quint8": (2.0 / 256, 128), "qint8": (2.0 / 256, 0)},
}


def fixed_qparams(name: str, dtype) -> tuple | None:
    """(scale, zero_point) of a fixed-qparams op's output for this input dtype, or None."""
    return FIXED_QPARAMS.get(name, {}).get(dtype.name)


def lut_applies(qa: QuantizedArray) -> bool:
    """Per-tensor 8-bit values: what the tables cover."""
    return qa.axis is None and qa.dtype in (dtypes.quint8, dtypes.qint8)


@functools.lru_cache(maxsize=256)
def table(name: str, dtype_name: str, scale: float, zero_point: int, out_scale: float,
          out_zero_point: int) -> np.ndarray:
    """The op's result integer for each input integer, indexed by the input's bytes (an
    int8 input's -128..127 read as uint8 0..255: index = value & 0xff)."""
    dtype = dtypes.dtype_from_name(dtype_name)
    ints = np.arange(256, dtype=np.uint8).view(dtype.np_dtype)
    real = dequantize_array(QuantizedArray(ints, dtype, scale, zero_point))
    out = FUNCTIONS[name](real).astype(np.float32)
    # torch's vectorized quantize of these kernels: float32(1 / scale) taken from the
    # double division (not 1 / float32(scale), quantize_per_tensor's), one float32
    # product, rounded half to even, then the zero point (measured: a value whose product
    # lands on .5 rounds the other way with the float32 inverse)
    inv = np.float32(1.0 / float(out_scale))
    lo, hi = qrange(dtype)
    q = np.clip(np.rint(out * inv) + np.float32(out_zero_point), lo, hi)
    q = q.astype(dtype.np_dtype)
    q.flags.writeable = False
    return q


def apply_table(name: str, qa: QuantizedArray, out_scale: float,
                out_zero_point: int) -> QuantizedArray:
    """name(qa) requantized to (out_scale, out_zero_point), by table (same layout)."""
    lut = table(name, qa.dtype.name, float(qa.scale), int(qa.zero_point), float(out_scale),
                int(out_zero_point))
    src = qa.int_repr
    out = np.empty_like(src)            # keeps a channels-last input's memory order
    np.take(lut, src.view(np.uint8), out=out)
    return QuantizedArray(out, qa.dtype, float(out_scale), int(out_zero_point))


def apply_fixed(name: str, qa: QuantizedArray) -> QuantizedArray:
    """sigmoid / tanh / hardsigmoid of an 8-bit quantized value, torch's fixed qparams."""
    return apply_table(name, qa, *fixed_qparams(name, qa.dtype))


def _hardswish_meta(self, output_scale, output_zero_point):
    if not getattr(self.dtype, "is_quantized", False) or \
            self.dtype not in (dtypes.quint8, dtypes.qint8):
        raise DTypeError(f"quantized hardswish: expected a quint8 or qint8 input, got "
                         f"{self.dtype}")
    return TensorMeta(tuple(self.shape), self.dtype, str(self.device))


def _hardswish_ref(x, output_scale, output_zero_point):
    if x.axis is not None:
        raise DTypeError("quantized hardswish: expected a per-tensor quantized input")
    return apply_table("hardswish", x, output_scale, output_zero_point)


quantized_hardswish = defop(
    "quantized_hardswish(Tensor self, float output_scale, int output_zero_point) -> Tensor",
    meta=_hardswish_meta, reference=_hardswish_ref, derivative=NOT_DIFFERENTIABLE,
    tags={Tag.QUANTIZED},
)
