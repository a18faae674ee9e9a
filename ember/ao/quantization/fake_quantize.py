"""Fake quantization modules for quantization-aware training (torch.ao's names).

`FakeQuantize` observes its input (an observer module inside it), refreshes its
scale and zero point from the observer, and returns the input quantized and
dequantized in float, with the straight-through gradient of
`fake_quantize_per_tensor_affine` / `_per_channel_affine`.
"""
from __future__ import annotations

import numpy as np

from ... import nn
from ...frontend.tensor import Tensor
from ...ir import dtypes
from ...ir.ops.quantize import fake_quantize_per_channel_affine, fake_quantize_per_tensor_affine
from ...ir.quantized import (per_channel_affine, per_channel_affine_float_qparams,
                             per_channel_symmetric, per_tensor_affine, per_tensor_symmetric)
from .observer import (FixedQParamsObserver, _LoadsAnyShape, HistogramObserver, MovingAverageMinMaxObserver,
                       MovingAveragePerChannelMinMaxObserver, _with_args, _with_callable_args,
                       default_fixed_qparams_range_0to1_observer,
                       default_fixed_qparams_range_neg1to1_observer)

_PER_CHANNEL = (per_channel_affine, per_channel_symmetric, per_channel_affine_float_qparams)


def _flag(on: bool, like=None) -> Tensor:
    """A [1] switch buffer (uint8; the fused module's are int64, as torch.ao's)."""
    dtype = like.numpy().dtype if like is not None else np.uint8
    return Tensor._from_array(np.asarray([1 if on else 0], dtype))


class FakeQuantizeBase(nn.Module):
    """Switches shared by every fake quantize module: fake_quant_enabled and
    observer_enabled (uint8 buffers, as in torch.ao, so they round-trip state_dict)."""

    with_args = classmethod(_with_args)
    with_callable_args = classmethod(_with_callable_args)

    def __init__(self):
        super().__init__()
        self.register_buffer("fake_quant_enabled", _flag(True))
        self.register_buffer("observer_enabled", _flag(True))

    def enable_fake_quant(self, enabled: bool = True):
        self.fake_quant_enabled = _flag(enabled, self.fake_quant_enabled)
        return self

    def disable_fake_quant(self):
        return self.enable_fake_quant(False)

    def enable_observer(self, enabled: bool = True):
        self.observer_enabled = _flag(enabled, self.observer_enabled)
        return self

    def disable_observer(self):
        return self.enable_observer(False)


class FakeQuantize(_LoadsAnyShape, FakeQuantizeBase):
    """Observe, then fake-quantize with the observer's current qparams."""

    _RESHAPED_ON_LOAD = ("scale", "zero_point")

    def __init__(self, observer=MovingAverageMinMaxObserver, quant_min=None, quant_max=None,
                 is_dynamic=False, **observer_kwargs):
        super().__init__()
        if quant_min is not None and quant_max is not None:
            if quant_min > quant_max:
                raise ValueError("quant_min must be less than or equal to quant_max")
            observer_kwargs["quant_min"] = quant_min
            observer_kwargs["quant_max"] = quant_max
        observer_kwargs["is_dynamic"] = is_dynamic
        self.activation_post_process = observer(**observer_kwargs)
        app = self.activation_post_process
        self.quant_min, self.quant_max = app.quant_min, app.quant_max
        self.is_dynamic = app.is_dynamic
        self.register_buffer("scale", Tensor._from_array(np.asarray([1.0], np.float32)))
        self.dtype = app.dtype
        self.qscheme = app.qscheme
        # float zero points for per_channel_affine_float_qparams (embeddings), as torch.ao
        self._zero_point_dtype = np.float32 if \
            self.qscheme is per_channel_affine_float_qparams else np.int32
        self.register_buffer("zero_point", Tensor._from_array(
            np.asarray([0], self._zero_point_dtype)))
        self.ch_axis = getattr(app, "ch_axis", -1)
        self.is_per_channel = self.qscheme in _PER_CHANNEL

    def calculate_qparams(self):
        return self.activation_post_process.calculate_qparams()

    def _forward_qparams(self):
        """The qparams forward fake-quantizes with (the observer's here)."""
        return self.calculate_qparams()

    def forward(self, x):
        if int(self.observer_enabled._values()[0]) == 1:
            self.activation_post_process(x.detach())
            scale, zero_point = self._forward_qparams()
            self.scale = Tensor._from_array(np.asarray(scale._values(), np.float32))
            self.zero_point = Tensor._from_array(np.asarray(zero_point._values(),
                                                            self._zero_point_dtype))
        if int(self.fake_quant_enabled._values()[0]) == 1:
            if self.is_per_channel:
                return fake_quantize_per_channel_affine(
                    x, self.scale, self.zero_point, self.ch_axis, self.quant_min,
                    self.quant_max)
            return fake_quantize_per_tensor_affine(
                x, float(self.scale._values()[0]), int(self.zero_point._values()[0]),
                self.quant_min, self.quant_max)
        return x

    def extra_repr(self) -> str:
        return (f"fake_quant_enabled={self.fake_quant_enabled}, observer_enabled="
                f"{self.observer_enabled}, quant_min={self.quant_min}, quant_max="
                f"{self.quant_max}, dtype={self.dtype}, qscheme={self.qscheme}, ch_axis="
                f"{self.ch_axis}, scale={self.scale}, zero_point={self.zero_point}")


class FusedMovingAvgObsFakeQuantize(FakeQuantize):
    """torch.ao fuses observing and fake quantizing into one kernel for speed. Its kernel
    picks qparams its own way (fbgemm's ChooseQuantizationParams), which this reproduces:
    per-tensor affine in float64 (scale = (max - min) / (qmax - qmin) rounded once to
    float32); for symmetric schemes, per tensor or per channel, a range straddling 0 is
    widened to [-s * 128, s * 127] with s = max(|min| / 128, max / 127) (so
    scale = s, zero point 0: not the observer's max(|min|, max) / 127.5), and a one-sided
    range falls back to the affine formula with its zero-point choice by smaller error.

    As in torch.ao, only forward uses the kernel's choice: `calculate_qparams()` (and so
    convert) gives the observer's formula."""

    def __init__(self, observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                 **observer_kwargs):
        super().__init__(observer, quant_min, quant_max, **observer_kwargs)
        self.fake_quant_enabled = _flag(True, Tensor._from_array(np.zeros(1, np.int64)))
        self.observer_enabled = _flag(True, Tensor._from_array(np.zeros(1, np.int64)))

    def extra_repr(self) -> str:
        return (f"fake_quant_enabled={self.fake_quant_enabled}, observer_enabled="
                f"{self.observer_enabled}, scale={self.scale}, zero_point={self.zero_point}, "
                f"dtype={self.dtype}, quant_min={self.quant_min}, quant_max={self.quant_max}, "
                f"qscheme={self.qscheme}, reduce_range="
                f"{getattr(self.activation_post_process, 'reduce_range', False)}")

    def _forward_qparams(self):
        app = self.activation_post_process
        if app.qscheme is not per_tensor_affine or self.is_per_channel:
            lows = app.min_val.numpy()
            if lows.size == 0 or np.min(lows) == np.inf:   # nothing observed yet
                return self.calculate_qparams()
            return self._chosen_qparams(app)
        if float(app.min_val._values()) == np.inf:      # nothing observed yet
            return self.calculate_qparams()
        lo = min(float(app.min_val._values()), 0.0)
        hi = max(float(app.max_val._values()), 0.0)
        eps = float(app.eps._values()[0])
        scale = max((hi - lo) / (self.quant_max - self.quant_min), eps)
        scale32 = np.float32(scale)
        zero_point = self.quant_min - int(np.rint(lo / scale))
        zero_point = min(max(zero_point, self.quant_min), self.quant_max)
        return (Tensor._from_array(np.asarray([scale32], np.float32)),
                Tensor._from_array(np.asarray([zero_point], np.int32)))

    def _chosen_qparams(self, app):
        symmetric = self.qscheme in (per_tensor_symmetric, per_channel_symmetric)
        lows = np.asarray(app.min_val.numpy(), np.float32).reshape(-1)
        highs = np.asarray(app.max_val.numpy(), np.float32).reshape(-1)
        pairs = [_choose_qparams(lo, hi, self.quant_min, self.quant_max, symmetric)
                 for lo, hi in zip(lows, highs)]
        return (Tensor._from_array(np.asarray([p[0] for p in pairs], np.float32)),
                Tensor._from_array(np.asarray([p[1] for p in pairs], np.int32)))


_SMALL_SCALE = np.float32(6.1e-5)


def _choose_qparams(lo, hi, qmin: int, qmax: int, symmetric: bool) -> tuple:
    """fbgemm's ChooseQuantizationParams (torch's fused fake-quant kernel) for one range,
    with its float32 / float64 steps: float32 bounds, float64 scale and zero point."""
    f32 = np.float32
    lo, hi = f32(lo), f32(hi)
    straddles = lo < 0 and hi > 0
    if straddles and symmetric:
        sym_min, sym_max = -((qmax - qmin) // 2 + 1), (qmax - qmin) // 2
        step = max(abs(lo / f32(sym_min)), abs(hi / f32(sym_max)))     # float32, as in C++
        lo, hi = f32(float(step) * sym_min), f32(float(step) * sym_max)
    lo, hi = min(lo, f32(0)), max(hi, f32(0))
    scale = (float(hi) - float(lo)) / (qmax - qmin)
    if f32(scale) == 0 or np.isinf(f32(1) / f32(scale)):
        scale = 0.1
    if scale < float(_SMALL_SCALE):
        original = f32(scale)
        scale = float(_SMALL_SCALE)
        if lo == 0:
            hi = f32(_SMALL_SCALE * (qmax - qmin))
        elif hi == 0:
            lo = f32(-_SMALL_SCALE * (qmax - qmin))
        else:
            amplifier = f32(_SMALL_SCALE / original)
            lo, hi = f32(lo * amplifier), f32(hi * amplifier)
    from_min = qmin - float(lo) / scale
    from_max = qmax - float(hi) / scale
    error_min = abs(qmin) - abs(float(lo) / scale)
    error_max = abs(qmax) - abs(float(hi) / scale)
    initial = from_min if error_min < error_max else from_max
    if lo < 0 and hi > 0 and symmetric:
        initial = (qmin + qmax) / 2
    zero_point = qmin if initial < qmin else qmax if initial > qmax else int(np.rint(initial))
    return f32(scale), zero_point


class FixedQParamsFakeQuantize(FakeQuantize):
    """Fake quantization with fixed qparams (sigmoid, tanh, softmax outputs)."""

    def __init__(self, observer):
        super().__init__(observer=observer)
        if type(self.activation_post_process) is not FixedQParamsObserver:
            raise TypeError(f"{type(self).__name__}'s observer must be a FixedQParamsObserver")
        self.scale = self.activation_post_process.scale
        self.zero_point = self.activation_post_process.zero_point

    def extra_repr(self) -> str:
        return (f"fake_quant_enabled={self.fake_quant_enabled}, observer_enabled="
                f"{self.observer_enabled}, scale={self.scale}, zero_point={self.zero_point}, "
                f"dtype={self.dtype}, quant_min={self.quant_min}, quant_max={self.quant_max}, "
                f"qscheme={self.qscheme}")


default_fake_quant = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=dtypes.quint8,
    qscheme=per_tensor_affine, reduce_range=True)
default_weight_fake_quant = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=dtypes.qint8,
    qscheme=per_tensor_symmetric, reduce_range=False)
default_per_channel_weight_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127,
    dtype=dtypes.qint8, qscheme=per_channel_symmetric, reduce_range=False, ch_axis=0)
default_fused_act_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=dtypes.quint8)
default_fused_wt_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=dtypes.qint8,
    qscheme=per_tensor_symmetric)
default_fused_per_channel_wt_fake_quant = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127,
    dtype=dtypes.qint8, qscheme=per_channel_symmetric)
default_fixed_qparams_range_0to1_fake_quant = FixedQParamsFakeQuantize.with_args(
    observer=default_fixed_qparams_range_0to1_observer)
default_fixed_qparams_range_neg1to1_fake_quant = FixedQParamsFakeQuantize.with_args(
    observer=default_fixed_qparams_range_neg1to1_observer)

default_symmetric_fixed_qparams_fake_quant = default_fixed_qparams_range_neg1to1_fake_quant
default_affine_fixed_qparams_fake_quant = default_fixed_qparams_range_0to1_fake_quant
default_dynamic_fake_quant = FakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, is_dynamic=True,
    dtype=dtypes.quint8, averaging_constant=1)
default_embedding_fake_quant = FakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, qscheme=per_channel_affine_float_qparams,
    dtype=dtypes.quint8, quant_min=0, quant_max=255, ch_axis=0, averaging_constant=1)
default_histogram_fake_quant = FakeQuantize.with_args(
    observer=HistogramObserver, quant_min=0, quant_max=255, dtype=dtypes.quint8,
    qscheme=per_tensor_affine, reduce_range=True)
# XNNPACK-style symmetric int8 weights: [-127, 127], scales at least 2**-12
fused_wt_fake_quant_range_neg_127_to_127 = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAverageMinMaxObserver, quant_min=-127, quant_max=127, dtype=dtypes.qint8,
    qscheme=per_tensor_symmetric, eps=2 ** -12)
fused_per_channel_wt_fake_quant_range_neg_127_to_127 = FusedMovingAvgObsFakeQuantize.with_args(
    observer=MovingAveragePerChannelMinMaxObserver, quant_min=-127, quant_max=127,
    dtype=dtypes.qint8, qscheme=per_channel_symmetric, eps=2 ** -12)


# model.apply(...) switches (torch.ao.quantization's functions): they act on every fake
# quantize module and leave other modules alone
def disable_fake_quant(mod) -> None:
    if isinstance(mod, FakeQuantizeBase):
        mod.disable_fake_quant()


def enable_fake_quant(mod) -> None:
    if isinstance(mod, FakeQuantizeBase):
        mod.enable_fake_quant()


def disable_observer(mod) -> None:
    if isinstance(mod, FakeQuantizeBase):
        mod.disable_observer()


def enable_observer(mod) -> None:
    if isinstance(mod, FakeQuantizeBase):
        mod.enable_observer()


__all__ = [
    'disable_fake_quant', 'enable_fake_quant', 'disable_observer', 'enable_observer',
    'FakeQuantizeBase', 'FakeQuantize', 'FusedMovingAvgObsFakeQuantize',
    'FixedQParamsFakeQuantize', 'default_fake_quant', 'default_weight_fake_quant',
    'default_per_channel_weight_fake_quant', 'default_fused_act_fake_quant',
    'default_fused_wt_fake_quant', 'default_fused_per_channel_wt_fake_quant',
    'default_fixed_qparams_range_0to1_fake_quant',
    'default_fixed_qparams_range_neg1to1_fake_quant',
    'default_symmetric_fixed_qparams_fake_quant', 'default_affine_fixed_qparams_fake_quant',
    'default_dynamic_fake_quant', 'default_embedding_fake_quant',
    'default_histogram_fake_quant', 'fused_wt_fake_quant_range_neg_127_to_127',
    'fused_per_channel_wt_fake_quant_range_neg_127_to_127']
