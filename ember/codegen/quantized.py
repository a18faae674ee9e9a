"""Native kernels for the quantized ops eager mode runs (ir/ops/quantized.py).

Where the CPU has AVX-512 VNNI, quantized_linear and quantized_linear_dynamic run their
integer GEMM through codegen/llvm/qgemm.py (vpdpbusd) instead of the NumPy reference;
zero points are applied as row/column-sum corrections and the requantization epilogue
is the reference's own (`ir.ops.quantized.requantize`), so results are identical to
the reference bit for bit. `kernel_for` returns None where no native kernel applies
(no VNNI, a signed int8 input, weights not per tensor or per output channel); the
caller then runs the reference.
"""
from __future__ import annotations

import numpy as np

from ..ir import dtypes
from ..ir.ops.quantized import dynamic_input_qparams, requantize
from ..ir.quantized import QuantizedArray, quantize_array
from .llvm import qgemm as Q


def _int_matmul(x: QuantizedArray, w: QuantizedArray, packed) -> np.ndarray:
    """sum_k (x - x_zp) * (w - w_zp) as int64, x [..., K] flattened to rows."""
    rows = x.int_repr.reshape(-1, x.int_repr.shape[-1])
    c = Q.qgemm(rows, packed).astype(np.int64)
    x_zp = int(x.zero_point)
    w_zp = np.zeros(w.int_repr.shape[0], np.int64) if w.axis is None and w.zero_point == 0 \
        else np.broadcast_to(np.asarray(w.zero_point, np.int64), (w.int_repr.shape[0],))
    if x_zp:
        c -= x_zp * packed.row_sums[None, :]
    if np.any(w_zp):
        c -= rows.astype(np.int64).sum(axis=1, keepdims=True) * w_zp[None, :]
        c += packed.k * x_zp * w_zp[None, :]
    return c.reshape(*x.int_repr.shape[:-1], c.shape[-1])


def _scales(w: QuantizedArray, n: int) -> np.ndarray:
    if w.axis is None:
        return np.full(n, np.float32(w.scale), np.float32)
    return np.asarray(w.scale, np.float32)


def _usable(x_dtype, w: QuantizedArray) -> bool:
    return Q.available() and x_dtype is dtypes.quint8 and w.dtype is dtypes.qint8 and \
        w.int_repr.ndim == 2 and w.axis in (None, 0)


def kernel_for(op_name: str, args: list, cache: dict):
    """A callable computing the op on `args` (the reference's arguments), or None.
    `cache` is owned by the weight tensor: it keeps the packed weight between calls."""
    if op_name == "quantized_linear":
        x, w = args[0], args[1]
        if not (isinstance(x, QuantizedArray) and _usable(x.dtype, w)):
            return None
        return lambda: _linear(*args, cache=cache)
    if op_name == "quantized_conv2d":
        x, w, groups = args[0], args[1], args[6]
        if not (isinstance(x, QuantizedArray) and groups == 1 and x.axis is None and
                Q.available() and x.dtype is dtypes.quint8 and w.dtype is dtypes.qint8 and
                w.axis in (None, 0)):
            return None
        return lambda: _conv2d(*args, cache=cache)
    if op_name == "quantized_linear_dynamic":
        w = args[1]
        if not _usable(dtypes.quint8, w):
            return None
        return lambda: _linear_dynamic(*args, cache=cache)
    return None


def _packed(w: QuantizedArray, cache: dict):
    if "vnni" not in cache:
        cache["vnni"] = Q.PackedWeight(w.int_repr)
    return cache["vnni"]


def _linear(x, w, bias, scale, zero_point, relu, cache):
    acc = _int_matmul(x, w, _packed(w, cache))
    return requantize(acc, x.scale, _scales(w, acc.shape[-1]), bias, scale, zero_point, relu,
                      x.dtype, acc.ndim - 1)


def _im2col(q: np.ndarray, pad_value: int, kh: int, kw: int, stride, padding, dilation):
    """uint8 [N, C, H, W] -> rows [N * OH * OW, C * KH * KW] (padding with the zero
    point: the quantized form of 0.0)."""
    n, c, h, w = q.shape
    (ph, pw), (sh, sw), (dh, dw) = padding, stride, dilation
    padded = np.full((n, c, h + 2 * ph, w + 2 * pw), pad_value, np.uint8)
    padded[:, :, ph:ph + h, pw:pw + w] = q
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    win = np.lib.stride_tricks.sliding_window_view(
        padded, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :oh, :ow]      # N, C, OH, OW, KH, KW
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * oh * ow, -1), \
        (n, oh, ow)


def _conv2d(x, w, bias, stride, padding, dilation, groups, scale, zero_point, relu, cache):
    oc, _, kh, kw = w.int_repr.shape
    rows, (n, oh, ow) = _im2col(x.int_repr, int(x.zero_point), kh, kw, stride, padding,
                                dilation)
    flat_w = QuantizedArray(w.int_repr.reshape(oc, -1), w.dtype, w.scale, w.zero_point, w.axis)
    flat_x = QuantizedArray(rows, x.dtype, x.scale, x.zero_point)
    acc = _int_matmul(flat_x, flat_w, _packed(flat_w, cache))
    acc = acc.reshape(n, oh, ow, oc).transpose(0, 3, 1, 2)
    return requantize(acc, x.scale, _scales(w, oc), bias, scale, zero_point, relu, x.dtype, 1)


def _linear_dynamic(x, w, bias, relu, cache):
    scale, zp = dynamic_input_qparams(x)
    qx = quantize_array(x, scale, zp, dtypes.quint8)
    acc = _int_matmul(qx, w, _packed(w, cache))
    real = acc.astype(np.float32) * (np.float32(scale) * _scales(w, acc.shape[-1]))
    if bias is not None:
        real = real + np.asarray(bias, np.float32)
    return np.maximum(real, np.float32(0)) if relu else real
