"""Observers: modules that watch values go by and choose a scale and zero point.

torch.ao.quantization.observer's classes under the same names and arguments. Each
observer keeps running statistics in buffers (so they live in `state_dict`) and
`calculate_qparams()` turns them into qparams with the documented formulas, computed
in float32 in the same order as torch.ao (tests/quant/test_observers.py checks every
result bit for bit):

- affine:    scale = max((max(x_max, 0) - min(x_min, 0)) / (qmax - qmin), eps)
             zero_point = clamp(qmin - round(min(x_min, 0) / scale), qmin, qmax)  (int32)
- symmetric: scale = max(max(-min(x_min, 0), max(x_max, 0)) / ((qmax - qmin) / 2), eps)
             zero_point = 0, or the middle of the range for quint8 (int64)
- float qparams (per channel, embedding tables): scale = (x_max - x_min) / (qmax - qmin)
             (1 where not above eps), zero_point = -x_min / scale (float)

The quantized range is the dtype's, halved by `reduce_range` (x86's activations use
it so that the int8 dot products cannot saturate), or a custom quant_min/quant_max
that must include 0.
"""
from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from ... import nn
from ...frontend.tensor import Tensor
from ...ir import dtypes
from ...ir.quantized import (per_channel_affine, per_channel_affine_float_qparams,
                             per_channel_symmetric, per_tensor_affine, per_tensor_symmetric)

F32 = np.float32
EPS = float(np.finfo(np.float32).eps)
_SUPPORTED = ("quint8", "qint8", "qint32", "uint8", "int8", "int32")


# --- constructors with arguments -------------------------------------------------------------
class _PartialWrapper:
    """`Observer.with_args(...)`: a constructor with some arguments fixed (torch.ao's
    _PartialWrapper); `with_callable_args` fixes arguments computed at construction."""

    def __init__(self, p):
        self.p = p
        self.callable_args = {}

    def __call__(self, *args, **keywords):
        for name, make in self.callable_args.items():
            if name not in keywords:
                keywords = {**keywords, name: make()}
        return self.p(*args, **keywords)

    def __repr__(self) -> str:
        return self.p.__repr__() + self.callable_args.__repr__()

    def with_args(self, **kwargs):
        return _with_args(self, **kwargs)

    def with_callable_args(self, **kwargs):
        return _with_callable_args(self, **kwargs)


def _with_args(cls_or_self, **kwargs):
    return _PartialWrapper(functools.partial(cls_or_self, **kwargs))


def _with_callable_args(cls_or_self, **kwargs):
    wrapper = _PartialWrapper(functools.partial(cls_or_self))
    wrapper.callable_args = dict(kwargs)
    return wrapper


def _values(x) -> np.ndarray:
    """An observed tensor's values as float32 numpy (observers never record autograd)."""
    arr = x.detach()._values() if isinstance(x, Tensor) else np.asarray(x)
    return np.asarray(arr, np.float32)


def _buffer(value, dtype=np.float32) -> Tensor:
    return Tensor._from_array(np.asarray(value, dtype))


# --- the base classes ------------------------------------------------------------------------
class ObserverBase(nn.Module):
    """Base of every observer: `dtype` of the values it prepares, `is_dynamic`."""

    with_args = classmethod(_with_args)
    with_callable_args = classmethod(_with_callable_args)

    def __init__(self, dtype, is_dynamic: bool = False):
        super().__init__()
        self.dtype = dtype
        self.is_dynamic = is_dynamic

    def forward(self, x):
        raise NotImplementedError

    def calculate_qparams(self, **kwargs):
        raise NotImplementedError


def quant_range(dtype, quant_min, quant_max, reduce_range: bool) -> tuple[int, int]:
    """The integer range an observer quantizes into (see the module docstring)."""
    if quant_min is not None or quant_max is not None:
        qmin, qmax = int(quant_min), int(quant_max)
        if reduce_range:
            qmin, qmax = qmin // 2, qmax // 2
        return qmin, qmax
    return dtype_qrange(getattr(dtype, "name", str(dtype)), reduce_range) or (0, 255)


_DTYPE_QRANGES = {"qint8": (-128, 127), "int8": (-128, 127), "quint8": (0, 255),
                  "uint8": (0, 255), "qint32": (-(2 ** 31), 2 ** 31 - 1),
                  "int32": (-(2 ** 31), 2 ** 31 - 1), "uint16": (0, 2 ** 16 - 1),
                  "int16": (-(2 ** 15), 2 ** 15 - 1)}


def dtype_qrange(name: str, reduce_range: bool):
    """A quantized dtype's integer range by name, the 8-bit ones halved by reduce_range
    (torch.ao's rule); None for a name not listed."""
    qrange = _DTYPE_QRANGES.get(name)
    if qrange is not None and reduce_range and name in ("qint8", "int8", "quint8", "uint8"):
        qrange = (qrange[0] // 2, qrange[1] // 2)
    return qrange


class UniformQuantizationObserverBase(ObserverBase):
    """Arguments and the qparams formulas shared by the min/max observers."""

    def __init__(self, dtype=dtypes.quint8, qscheme=per_tensor_affine, reduce_range=False,
                 quant_min=None, quant_max=None, factory_kwargs=None, eps=EPS,
                 is_dynamic=False, **kwargs):
        super().__init__(dtype, is_dynamic)
        self.qscheme = qscheme
        if reduce_range:
            warnings.warn("Please use quant_min and quant_max to specify the range for "
                          "observers. reduce_range will be deprecated in a future release.")
        self.reduce_range = reduce_range
        self.register_buffer("eps", _buffer([eps]))
        if qscheme not in (per_tensor_affine, per_tensor_symmetric, per_channel_affine,
                           per_channel_symmetric, per_channel_affine_float_qparams):
            raise ValueError(f"Default Observer only supports per_tensor_affine, "
                             f"per_tensor_symmetric, per_channel_affine, per_channel_symmetric "
                             f"and per_channel_float_qparams quantization schemes, got {qscheme}")
        name = getattr(dtype, "name", str(dtype))
        if name not in _SUPPORTED:
            raise ValueError(f"Default Observer only works for ember.quint8, ember.qint8, "
                             f"ember.qint32 (and uint8/int8/int32) data types, got {dtype}")
        self.has_customized_qrange = quant_min is not None and quant_max is not None
        if self.has_customized_qrange:
            if not quant_min <= 0 <= quant_max:
                raise ValueError("Used-specified quantization range must include 0.")
            if quant_min >= quant_max:
                raise ValueError("qmin must be strictly less than qmax for user-specified "
                                 "quantization range.")
        self.quant_min, self.quant_max = quant_range(
            dtype, quant_min if self.has_customized_qrange else None,
            quant_max if self.has_customized_qrange else None, reduce_range)

    @property
    def _symmetric(self) -> bool:
        return self.qscheme in (per_tensor_symmetric, per_channel_symmetric)

    def _calculate_qparams(self, min_val: np.ndarray, max_val: np.ndarray):
        """(scale, zero_point) tensors from float32 min/max arrays (0-d: per tensor)."""
        min_val = np.asarray(min_val, F32)
        max_val = np.asarray(max_val, F32)
        if not _valid_min_max(min_val, max_val):
            return _buffer([1.0]), _buffer([0], np.int64)
        eps = np.asarray(self.eps._values(), F32).reshape(())
        scale, zero_point = qparams_from_min_max(min_val, max_val, self.quant_min,
                                                 self.quant_max, self.dtype, eps,
                                                 self.has_customized_qrange, self.qscheme)
        return _buffer(scale, F32), _buffer(zero_point, zero_point.dtype)

    def reset_min_max_vals(self):
        raise NotImplementedError


def qparams_from_min_max(min_val, max_val, qmin: int, qmax: int, dtype, eps,
                         has_customized_qrange: bool, qscheme):
    """The module docstring's formulas on validated float32 min/max arrays: numpy
    (scale, zero_point), at least 1-d. Shared by the observers and
    `utils.determine_qparams`."""
    eps = F32(np.asarray(eps, F32).reshape(-1)[0])
    min_neg = np.minimum(min_val, F32(0))
    max_pos = np.maximum(max_val, F32(0))
    if qscheme in (per_tensor_symmetric, per_channel_symmetric):
        max_pos = np.maximum(-min_neg, max_pos)
        scale = np.maximum(max_pos / F32((qmax - qmin) / 2), eps)
        zp_value = 0
        if getattr(dtype, "name", "") in ("quint8", "uint8"):
            zp_value = (qmin + qmax) // 2 if has_customized_qrange else 128
        zero_point = np.full(scale.shape, zp_value, np.int64)
    elif qscheme is per_channel_affine_float_qparams:
        scale = (max_val - min_val) / F32(qmax - qmin)
        scale = np.where(scale > eps, scale, F32(1)).astype(F32)
        zero_point = (F32(-1) * min_val / scale).astype(F32)
    else:
        scale = np.maximum((max_pos - min_neg) / F32(qmax - qmin), eps)
        zero_point = qmin - np.rint(min_neg / scale).astype(np.int64)   # int arithmetic
        zero_point = np.clip(zero_point, qmin, qmax).astype(np.int32)
    return np.asarray(scale, F32).reshape(-1) if scale.ndim == 0 else scale, \
        zero_point.reshape(-1) if zero_point.ndim == 0 else zero_point


def _valid_min_max(min_val: np.ndarray, max_val: np.ndarray) -> bool:
    """False (with torch.ao's warning) before any value was observed."""
    if min_val.size == 0 or max_val.size == 0 or \
            (min_val.ndim == 0 and min_val == np.inf and max_val == -np.inf):
        warnings.warn("must run observer before calling calculate_qparams. "
                      "Returning default values.")
        return False
    if np.any(min_val > max_val):
        raise ValueError(f"min {min_val} should be less than max {max_val}")
    return True


# --- per-tensor observers --------------------------------------------------------------------
class MinMaxObserver(UniformQuantizationObserverBase):
    """Running minimum and maximum of every value seen."""

    def __init__(self, dtype=dtypes.quint8, qscheme=per_tensor_affine, reduce_range=False,
                 quant_min=None, quant_max=None, factory_kwargs=None, eps=EPS,
                 is_dynamic=False, **kwargs):
        if qscheme not in (per_tensor_affine, per_tensor_symmetric):
            raise NotImplementedError(f"{type(self).__name__}'s qscheme only supports "
                                      f"ember.per_tensor_symmetric and "
                                      f"ember.per_tensor_affine, got {qscheme}")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs,
                         eps, is_dynamic, **kwargs)
        self.register_buffer("min_val", _buffer(np.inf))
        self.register_buffer("max_val", _buffer(-np.inf))

    def forward(self, x_orig):
        x = _values(x_orig)
        if x.size == 0:
            return x_orig
        self._update(F32(x.min()), F32(x.max()))
        return x_orig

    def _update(self, cur_min, cur_max):
        old_min = np.asarray(self.min_val._values(), F32)
        old_max = np.asarray(self.max_val._values(), F32)
        self.min_val = _buffer(np.minimum(cur_min, old_min))
        self.max_val = _buffer(np.maximum(cur_max, old_max))

    def calculate_qparams(self):
        return self._calculate_qparams(self.min_val._values(), self.max_val._values())

    def extra_repr(self) -> str:
        return f"min_val={_fmt(self.min_val)}, max_val={_fmt(self.max_val)}"

    def reset_min_max_vals(self):
        self.min_val = _buffer(np.inf)
        self.max_val = _buffer(-np.inf)


def _fmt(t: Tensor) -> str:
    arr = t._values()
    if arr.ndim == 0:
        v = float(arr)
        return repr(v) if math.isinf(v) else f"{v}"
    return repr(t)


def _moving_average(old: np.ndarray, cur: np.ndarray, c: float) -> np.ndarray:
    """old + c * (cur - old), in float32 as torch.ao computes it."""
    return (old + F32(c) * (cur - old)).astype(F32)


class MovingAverageMinMaxObserver(MinMaxObserver):
    """Exponential moving averages of each batch's min and max (QAT's activations)."""

    def __init__(self, averaging_constant=0.01, dtype=dtypes.quint8, qscheme=per_tensor_affine,
                 reduce_range=False, quant_min=None, quant_max=None, eps=EPS,
                 is_dynamic=False, **kwargs):
        if is_dynamic and averaging_constant != 1:     # 1: each batch's own range
            raise NotImplementedError("MovingAverageMinMaxObserver doesn't support dynamic "
                                      "quantization for averaging constant of "
                                      f"{averaging_constant}")
        self.averaging_constant = averaging_constant
        super().__init__(dtype=dtype, qscheme=qscheme, reduce_range=reduce_range,
                         quant_min=quant_min, quant_max=quant_max, eps=eps,
                         is_dynamic=is_dynamic, **kwargs)

    def _update(self, cur_min, cur_max):
        old_min = np.asarray(self.min_val._values(), F32)
        old_max = np.asarray(self.max_val._values(), F32)
        if old_min == np.inf and old_max == -np.inf:
            new_min, new_max = cur_min, cur_max
        else:
            new_min = _moving_average(old_min, cur_min, self.averaging_constant)
            new_max = _moving_average(old_max, cur_max, self.averaging_constant)
        self.min_val = _buffer(new_min)
        self.max_val = _buffer(new_max)


# --- per-channel observers -------------------------------------------------------------------
class _LoadsAnyShape:
    """Mixin: the buffers named in `_RESHAPED_ON_LOAD` take the loaded tensor's shape (a
    per-channel observer starts empty; a fake quantize's scale has one entry until it
    observes), as torch.ao's modules load them."""

    _RESHAPED_ON_LOAD: tuple = ()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict,
                              missing_keys, unexpected_keys, error_msgs):
        for name in self._RESHAPED_ON_LOAD:
            value = state_dict.get(prefix + name)
            if value is not None and self._buffers.get(name) is not None:
                self._buffers[name] = value.detach().clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict,
                                      missing_keys, unexpected_keys, error_msgs)


class PerChannelMinMaxObserver(_LoadsAnyShape, UniformQuantizationObserverBase):
    """Running min/max of each slice along `ch_axis` (weights: one scale per output
    channel)."""

    _RESHAPED_ON_LOAD = ("min_val", "max_val")

    def __init__(self, ch_axis=0, dtype=dtypes.quint8, qscheme=per_channel_affine,
                 reduce_range=False, quant_min=None, quant_max=None, factory_kwargs=None,
                 eps=EPS, is_dynamic=False, **kwargs):
        if qscheme not in (per_channel_affine, per_channel_symmetric,
                           per_channel_affine_float_qparams):
            raise NotImplementedError(f"{type(self).__name__}'s qscheme only supports "
                                      f"per-channel schemes, got {qscheme}")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs,
                         eps, is_dynamic, **kwargs)
        self.ch_axis = ch_axis
        self.register_buffer("min_val", _buffer(np.zeros(0)))
        self.register_buffer("max_val", _buffer(np.zeros(0)))

    def _channel_min_max(self, x: np.ndarray):
        rows = np.moveaxis(x, self.ch_axis, 0).reshape(x.shape[self.ch_axis], -1)
        return rows.min(axis=1).astype(F32), rows.max(axis=1).astype(F32)

    def forward(self, x_orig):
        x = _values(x_orig)
        if x.size == 0:
            return x_orig
        cur_min, cur_max = self._channel_min_max(x)
        old_min = np.asarray(self.min_val._values(), F32)
        old_max = np.asarray(self.max_val._values(), F32)
        if old_min.size == 0 or old_max.size == 0:
            new_min, new_max = cur_min, cur_max
        else:
            new_min, new_max = self._combine(old_min, old_max, cur_min, cur_max)
        self.min_val = _buffer(new_min)
        self.max_val = _buffer(new_max)
        return x_orig

    def _combine(self, old_min, old_max, cur_min, cur_max):
        return np.minimum(cur_min, old_min), np.maximum(cur_max, old_max)

    def calculate_qparams(self):
        return self._calculate_qparams(self.min_val._values(), self.max_val._values())

    def extra_repr(self) -> str:
        return f"min_val={_fmt(self.min_val)}, max_val={_fmt(self.max_val)}"

    def reset_min_max_vals(self):
        self.min_val = _buffer(np.zeros(0))
        self.max_val = _buffer(np.zeros(0))


class MovingAveragePerChannelMinMaxObserver(PerChannelMinMaxObserver):
    """Per-channel moving averages of min and max (QAT's per-channel weights)."""

    def __init__(self, averaging_constant=0.01, ch_axis=0, dtype=dtypes.quint8,
                 qscheme=per_channel_affine, reduce_range=False, quant_min=None,
                 quant_max=None, eps=EPS, is_dynamic=False, **kwargs):
        if is_dynamic:
            raise NotImplementedError("MovingAveragePerChannelMinMaxObserver doesn't support "
                                      "dynamic quantization")
        super().__init__(ch_axis=ch_axis, dtype=dtype, qscheme=qscheme,
                         reduce_range=reduce_range, quant_min=quant_min, quant_max=quant_max,
                         eps=eps, is_dynamic=is_dynamic, **kwargs)
        self.averaging_constant = averaging_constant

    def _combine(self, old_min, old_max, cur_min, cur_max):
        c = self.averaging_constant
        return _moving_average(old_min, cur_min, c), _moving_average(old_max, cur_max, c)


# --- observers that do not observe -----------------------------------------------------------
class PlaceholderObserver(ObserverBase):
    """Records only the dtype a value should take (float16 casts, dynamic quantization)."""

    def __init__(self, dtype=dtypes.float32, custom_op_name="", compute_dtype=None,
                 quant_min=None, quant_max=None, qscheme=None, eps=None, is_dynamic=False):
        super().__init__(dtype, is_dynamic)
        if qscheme is None:
            qscheme = per_tensor_affine
        if eps is None:
            eps = EPS
        self.quant_min, self.quant_max = quant_min, quant_max
        self.qscheme, self.eps = qscheme, eps
        self.custom_op = custom_op_name
        if compute_dtype:
            self.is_dynamic = True
            warnings.warn("Please use `is_dynamic` instead of `compute_dtype`. `compute_dtype` "
                          "will be deprecated in a future release of PyTorch.")

    def forward(self, x):
        return x

    def calculate_qparams(self):
        # torch.ao raises a bare Exception here; scripts may catch exactly that
        raise Exception(f"calculate_qparams should not be called for {type(self).__name__}")

    def extra_repr(self) -> str:
        return f"dtype={self.dtype}, is_dynamic={self.is_dynamic}"


class FixedQParamsObserver(ObserverBase):
    """Fixed qparams for ops whose output range is known (sigmoid: [0, 1], tanh: [-1, 1])."""

    def __init__(self, scale, zero_point, dtype=dtypes.quint8, qscheme=per_tensor_affine,
                 quant_min=0, quant_max=255, is_dynamic=False, **kwargs):
        if is_dynamic:
            raise NotImplementedError("FixedQParamsObserver doesn't support dynamic quantization")
        super().__init__(dtype, is_dynamic)
        self.quant_min, self.quant_max = quant_min, quant_max
        self.register_buffer("scale", _buffer([scale]))
        self.register_buffer("zero_point", _buffer([zero_point], np.int32))
        self.qscheme = qscheme

    def forward(self, x):
        return x

    def calculate_qparams(self):
        return self.scale, self.zero_point


class NoopObserver(PlaceholderObserver):
    """torch.ao's NoopObserver: a placeholder that never quantizes (float16 by default)."""

    def __init__(self, dtype=dtypes.float16, custom_op_name=""):
        super().__init__(dtype=dtype, custom_op_name=custom_op_name)

    def extra_repr(self) -> str:
        return ""                # torch.ao prints NoopObserver()


class RecordingObserver(ObserverBase):
    """Debugging: keeps every tensor it sees (`get_tensor_value()`), chooses no qparams."""

    def __init__(self, dtype=dtypes.quint8):
        super().__init__(dtype=dtype, is_dynamic=False)
        self.tensor_val = []

    def forward(self, x):
        self.tensor_val.append(x.clone())
        return x

    def calculate_qparams(self):
        raise Exception("calculate_qparams should not be called for RecordingObserver")

    def get_tensor_value(self):
        return self.tensor_val


# --- the defaults torch.ao names -------------------------------------------------------------
default_observer = MinMaxObserver.with_args(quant_min=0, quant_max=127)
default_weight_observer = MinMaxObserver.with_args(dtype=dtypes.qint8,
                                                   qscheme=per_tensor_symmetric)
default_per_channel_weight_observer = PerChannelMinMaxObserver.with_args(
    dtype=dtypes.qint8, qscheme=per_channel_symmetric)
default_placeholder_observer = PlaceholderObserver
default_dynamic_quant_observer = PlaceholderObserver.with_args(
    dtype=dtypes.quint8, quant_min=0, quant_max=255, is_dynamic=True)
default_float_qparams_observer = PerChannelMinMaxObserver.with_args(
    dtype=dtypes.quint8, qscheme=per_channel_affine_float_qparams, ch_axis=0)
default_fixed_qparams_range_0to1_observer = FixedQParamsObserver.with_args(
    scale=1.0 / 256.0, zero_point=0, dtype=dtypes.quint8, quant_min=0, quant_max=255)
default_fixed_qparams_range_neg1to1_observer = FixedQParamsObserver.with_args(
    scale=2.0 / 256.0, zero_point=128, dtype=dtypes.quint8, quant_min=0, quant_max=255)
default_debug_observer = RecordingObserver
default_symmetric_fixed_qparams_observer = default_fixed_qparams_range_neg1to1_observer
default_affine_fixed_qparams_observer = default_fixed_qparams_range_0to1_observer
# qnnpack's symmetric int8 (XNNPACK): weights in [-127, 127], scales at least 2**-12
weight_observer_range_neg_127_to_127 = MinMaxObserver.with_args(
    dtype=dtypes.qint8, qscheme=per_tensor_symmetric, quant_min=-127, quant_max=127,
    eps=2 ** -12)
per_channel_weight_observer_range_neg_127_to_127 = PerChannelMinMaxObserver.with_args(
    dtype=dtypes.qint8, qscheme=per_channel_symmetric, quant_min=-127, quant_max=127,
    eps=2 ** -12)


# --- histogram -------------------------------------------------------------------------------
def _histc(x: np.ndarray, bins: int, lo, hi) -> np.ndarray:
    """torch.histc in float32: equal-width bins over [lo, hi], hi itself in the last bin."""
    lo, hi = F32(lo), F32(hi)
    x = x[(x >= lo) & (x <= hi)]
    if hi == lo:
        idx = np.zeros(x.shape, np.int64)
    else:
        idx = ((x - lo) / (hi - lo) * F32(bins)).astype(np.int64)
    idx = np.clip(np.where(x == hi, bins - 1, idx), 0, bins - 1)
    return np.bincount(idx, minlength=bins).astype(F32)


class HistogramObserver(UniformQuantizationObserverBase):
    """A running histogram of the values; calculate_qparams searches it for the [min, max]
    that minimizes the L2 error of quantizing the histogram (torch.ao's default activation
    observer for x86/fbgemm/qnnpack).

    The search: starting from the full range, repeatedly move in whichever end (lower
    or upper) lets go of less probability mass, in steps of 1e-5 of the total; stop when
    the quantization error of the shrunk range stops decreasing. The error of a range
    sums, over source bins, the integral of the squared distance to the nearest of the
    256 destination bin centres, assuming values spread evenly within each bin.
    Histograms of later batches with a wider range are merged by splitting each old
    bin into `upsample_rate` equal parts and moving each part to the new bin holding
    its midpoint.
    """

    def __init__(self, bins=2048, dtype=dtypes.quint8, qscheme=per_tensor_affine,
                 reduce_range=False, quant_min=None, quant_max=None, factory_kwargs=None,
                 eps=EPS, is_dynamic=False, **kwargs):
        if qscheme not in (per_tensor_affine, per_tensor_symmetric):
            raise NotImplementedError(f"HistogramObserver's qscheme only supports "
                                      f"ember.per_tensor_symmetric and ember.per_tensor_affine, "
                                      f"got {qscheme}")
        super().__init__(dtype, qscheme, reduce_range, quant_min, quant_max, factory_kwargs,
                         eps, is_dynamic, **kwargs)
        self.bins = bins
        self.register_buffer("histogram", _buffer(np.zeros(bins)))
        self.register_buffer("min_val", _buffer(np.inf))
        self.register_buffer("max_val", _buffer(-np.inf))
        self.dst_nbins = 2 ** (8 * dtype.itemsize)
        self.upsample_rate = 16

    # -- recording --
    def forward(self, x_orig):
        x = _values(x_orig).reshape(-1)
        if x.size == 0:
            return x_orig
        finite = x[np.isfinite(x)]
        if finite.size != x.size:
            warnings.warn("HistogramObserver: ignoring infinite values when computing the "
                          "quantization range")
        if finite.size == 0:
            return x_orig
        x_min, x_max = F32(finite.min()), F32(finite.max())
        cur_min, cur_max = F32(self.min_val._values()), F32(self.max_val._values())
        if cur_min == np.inf or cur_max == -np.inf:
            hist, new_min, new_max = _histc(finite, self.bins, x_min, x_max), x_min, x_max
        else:
            new_min, new_max = min(cur_min, x_min), max(cur_max, x_max)
            update = _histc(finite, self.bins, new_min, new_max)
            hist = self._combine(np.asarray(self.histogram._values(), F32), cur_min, cur_max,
                                 update, new_min, new_max)
        self.histogram = _buffer(hist)
        self.min_val = _buffer(new_min)
        self.max_val = _buffer(new_max)
        return x_orig

    def _combine(self, orig, orig_min, orig_max, update, new_min, new_max):
        if new_min == orig_min and new_max == orig_max:
            return orig + update
        if orig_min == orig_max:          # every old value sat at one point
            return _histc(np.asarray([orig_min], F32), self.bins, new_min, new_max) * \
                orig.sum(dtype=F32) + update
        return update + self._upscale(orig, orig_min, orig_max, new_min, new_max)

    def _upscale(self, hist, orig_min, orig_max, new_min, new_max):
        rate = self.upsample_rate
        parts = np.repeat(hist, rate) / F32(rate)
        n = self.bins * rate
        mids = (_linspace(orig_min, orig_max, n + 1)[:-1] +
                (orig_max - orig_min) / F32(2 * n)).astype(F32)
        edges = _linspace(new_min, new_max, self.bins + 1)
        which = np.clip(np.searchsorted(edges, mids, side="right") - 1, 0, self.bins - 1)
        return np.bincount(which, weights=parts, minlength=self.bins).astype(F32)

    # -- the search --
    def _quantization_error(self, hist, bin_width, start_bin: int, end_bin: int) -> float:
        dst_width = bin_width * F32(end_bin - start_bin + 1) / F32(self.dst_nbins)
        if dst_width == 0.0:
            return 0.0
        src = np.arange(self.bins, dtype=np.int64)
        begin = ((src - start_bin) * bin_width).astype(F32)
        end = (begin + bin_width).astype(F32)
        top = F32(self.dst_nbins - 1)
        dst_begin = np.clip(np.floor(begin / dst_width), 0, top).astype(F32)
        dst_begin_center = (dst_begin + F32(0.5)) * dst_width
        dst_end = np.clip(np.floor(end / dst_width), 0, top).astype(F32)
        density = hist / bin_width
        half = dst_width / F32(2)
        norm = _norm(begin - dst_begin_center, np.full(self.bins, half, F32), density)
        norm = norm + (dst_end - dst_begin - F32(1)) * _norm(-half, half, density)
        dst_end_center = dst_end * dst_width + half
        norm = norm + _norm(-half, end - dst_end_center, density)
        return float(norm.astype(F32).sum(dtype=F32))

    def _non_linear_param_search(self):
        hist = np.asarray(self.histogram._values(), F32)
        min_val, max_val = F32(self.min_val._values()), F32(self.max_val._values())
        bin_width = (max_val - min_val) / F32(self.bins)
        total = hist.sum(dtype=F32)
        csum = np.cumsum(hist, dtype=F32)
        stepsize, alpha, beta = 1e-5, 0.0, 1.0
        start_bin, end_bin = 0, self.bins - 1
        norm_min = float("inf")
        while alpha < beta:
            next_alpha, next_beta = alpha + stepsize, beta - stepsize
            lo_target, hi_target = F32(next_alpha) * total, F32(next_beta) * total
            left = start_bin
            while left < end_bin and csum[left] < lo_target:
                left += 1
            right = end_bin
            while right > start_bin and csum[right] > hi_target:
                right -= 1
            next_start, next_end = start_bin, end_bin
            if (left - start_bin) > (end_bin - right):
                next_start, alpha = left, next_alpha
            else:
                next_end, beta = right, next_beta
            if next_start == start_bin and next_end == end_bin:
                continue
            norm = self._quantization_error(hist, bin_width, next_start, next_end)
            if norm > norm_min:
                break
            norm_min, start_bin, end_bin = norm, next_start, next_end
        new_min = F32(min_val + bin_width * F32(start_bin))
        new_max = F32(min_val + bin_width * F32(end_bin + 1))
        return new_min, new_max

    def calculate_qparams(self):
        min_val, max_val = F32(self.min_val._values()), F32(self.max_val._values())
        if min_val == np.inf and max_val == -np.inf:
            warnings.warn("must run observer before calling calculate_qparams. "
                          "Returning default scale and zero point ")
            return _buffer([1.0]), _buffer([0], np.int64)
        new_min, new_max = self._non_linear_param_search()
        return self._calculate_qparams(new_min, new_max)

    def extra_repr(self) -> str:
        return f"min_val={_fmt(self.min_val)}, max_val={_fmt(self.max_val)}"

    def reset_min_max_vals(self):
        self.min_val = _buffer(np.inf)
        self.max_val = _buffer(-np.inf)
        self.histogram = _buffer(np.zeros(self.bins))


def _linspace(start, end, steps: int) -> np.ndarray:
    """torch.linspace's float32 values (as measured): the first half counted up from `start`, the second
    half down from `end`, each point one fused multiply-add (a float64 product of a
    float32 step and an integer is exact, so rounding once to float32 is the fma)."""
    start, end = F32(start), F32(end)
    step = np.float64((end - start) / F32(steps - 1))
    i = np.arange(steps, dtype=np.float64)
    up = (np.float64(start) + i * step).astype(F32)
    down = (np.float64(end) - (steps - 1 - i) * step).astype(F32)
    return np.where(np.arange(steps) < steps // 2, up, down).astype(F32)


def _norm(delta_begin, delta_end, density):
    """Integral of x^2 over [delta_begin, delta_end], times the bin's density."""
    return density * ((delta_end * delta_end * delta_end -
                       delta_begin * delta_begin * delta_begin) / F32(3))


class ReuseInputObserver(ObserverBase):
    """For ops whose output reuses the input's qparams (reshape): observes nothing."""

    def __init__(self):
        super().__init__(dtypes.quint8, is_dynamic=False)

    def forward(self, x):
        return x

    def calculate_qparams(self):
        raise Exception("calculate_qparams should not be called for ReuseInputObserver")  # noqa: TRY002


default_reuse_input_observer = ReuseInputObserver
default_histogram_observer = HistogramObserver.with_args(quant_min=0, quant_max=127)


__all__ = [
    'ObserverBase', 'UniformQuantizationObserverBase', 'MinMaxObserver',
    'MovingAverageMinMaxObserver', 'PerChannelMinMaxObserver',
    'MovingAveragePerChannelMinMaxObserver', 'PlaceholderObserver', 'FixedQParamsObserver',
    'NoopObserver', 'default_observer', 'default_weight_observer',
    'default_per_channel_weight_observer', 'default_placeholder_observer',
    'default_dynamic_quant_observer', 'default_float_qparams_observer',
    'default_fixed_qparams_range_0to1_observer',
    'default_fixed_qparams_range_neg1to1_observer', 'HistogramObserver', 'ReuseInputObserver',
    'weight_observer_range_neg_127_to_127', 'per_channel_weight_observer_range_neg_127_to_127',
    'RecordingObserver', 'default_debug_observer', 'default_histogram_observer',
    'default_symmetric_fixed_qparams_observer', 'default_affine_fixed_qparams_observer',
    'default_reuse_input_observer', 'get_observer_state_dict', 'load_observer_state_dict']


def _is_observer(module) -> bool:
    from .fake_quantize import FakeQuantizeBase
    return isinstance(module, (ObserverBase, FakeQuantizeBase))


def get_observer_state_dict(mod):
    """The state_dict entries of `mod`'s observers and fake quantizes (their running
    statistics and qparams), by qualified name."""
    from collections import OrderedDict
    prefixes = tuple(name + "." for name, m in mod.named_modules() if name and _is_observer(m))
    return OrderedDict((k, v) for k, v in mod.state_dict().items() if k.startswith(prefixes))


def load_observer_state_dict(mod, obs_dict) -> None:
    """Load `get_observer_state_dict`'s entries back into `mod`'s observers; an observer
    buffer may change shape (an unobserved per-channel min_val is empty). Missing or
    unexpected observer entries are an error, as in torch.ao."""
    observers = {name: m for name, m in mod.named_modules() if name and _is_observer(m)}
    used, missing = set(), []
    for name, observer in observers.items():
        for buffer_name in list(observer._buffers):
            key = f"{name}.{buffer_name}"
            if key not in obs_dict:
                missing.append(key)
                continue
            setattr(observer, buffer_name, obs_dict[key].clone())
            used.add(key)
    unexpected = [k for k in obs_dict if k not in used]
    if missing or unexpected:
        raise Exception(f"Missing keys for observer {missing} in state_dict"
                        if missing else f"Unexpected keys for observer {unexpected} in state_dict")
