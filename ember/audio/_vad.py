"""torchaudio.functional.vad: SoX's voice activity detector, which trims the silence (or
noise) before the first speech-like activity.

Every `1 / measure_freq` s a window of `measure_duration` s is measured: its magnitude
spectrum (band-limited to hp_filter_freq..lp_filter_freq) is smoothed over time, a noise
spectrum is tracked (learned during the first `boot_time` s, then following the signal up
slowly and down fast) and subtracted, and the power of the result's cepstrum within the
lifter band (pitch-like periodicity) gives the measure. Activity triggers when the
smoothed measure reaches trigger_level; the output then starts at the earliest measure,
within `search_time` before, that belongs to the triggering burst (gaps up to
`allowed_gap` s allowed), less `pre_trigger_time`. Measures run in float32, as SoX and
torchaudio compute them. A sequential state machine: runs on the host, not
differentiable.
"""
from __future__ import annotations

import math
import warnings

import numpy as np


__all__ = ["vad"]

_F32 = np.float32


def _hann(n):
    return (0.5 - 0.5 * np.cos(2 * math.pi * np.arange(n) / n)).astype(_F32)


class _Measurer:
    """The per-channel spectral state and the windows of one vad call."""

    def __init__(self, channels, sample_rate, measure_len, hp_filter, lp_filter, hp_lifter,
                 lp_lifter, noise_reduction, smooth_mult, up_mult, down_mult):
        self.dft_len = 16
        while self.dft_len < measure_len:
            self.dft_len *= 2
        self.measure_len = measure_len
        self.window = (np.full(measure_len, 2.0 / math.sqrt(measure_len), _F32)
                       * _hann(measure_len))
        self.lo = max(int(hp_filter / sample_rate * self.dft_len + 0.5), 1)
        self.hi = min(int(lp_filter / sample_rate * self.dft_len + 0.5), self.dft_len // 2)
        band = self.hi - self.lo
        self.lifter_window = np.full(band, 2.0 / math.sqrt(float(band)), _F32) * _hann(band)
        self.c_lo = math.ceil(sample_rate * 0.5 / lp_lifter)
        self.c_hi = min(math.floor(sample_rate * 0.5 / hp_lifter), self.dft_len // 4)
        if self.c_hi <= self.c_lo:
            raise ValueError(f"Expected cepstrum_start to be smaller than cepstrum_end."
                             f"Found: cepstrum_start: {self.c_lo}, cepstrum_end: {self.c_hi}.")
        self.spectrum = np.zeros((channels, self.dft_len), _F32)
        self.noise = np.zeros((channels, self.dft_len), _F32)
        self.noise_reduction, self.smooth_mult = noise_reduction, smooth_mult
        self.up_mult, self.down_mult = _F32(up_mult), _F32(down_mult)

    def measure(self, ch, samples, boot_count) -> float:
        lo, hi = self.lo, self.hi
        buf = np.zeros(self.dft_len, _F32)
        buf[:self.measure_len] = samples.astype(_F32) * self.window
        mag = np.abs(np.fft.rfft(buf)[lo:hi]).astype(_F32)
        mult = _F32(boot_count / (1.0 + boot_count) if boot_count >= 0 else self.smooth_mult)
        spec = self.spectrum[ch]
        spec[lo:hi] = spec[lo:hi] * mult + mag * (_F32(1) - mult)
        power = spec[lo:hi] ** 2
        if boot_count >= 0:
            track = np.zeros(hi - lo, _F32)
        else:
            track = np.where(power > self.noise[ch, lo:hi], self.up_mult, self.down_mult)
        self.noise[ch, lo:hi] = self.noise[ch, lo:hi] * track + power * (_F32(1) - track)
        clean = np.sqrt(np.maximum(_F32(0), power - _F32(self.noise_reduction) *
                                   self.noise[ch, lo:hi]))
        ceps_buf = np.zeros(self.dft_len >> 1, _F32)
        ceps_buf[lo:hi] = clean * self.lifter_window
        ceps = np.fft.rfft(ceps_buf)[self.c_lo:self.c_hi]
        total = float((np.abs(ceps).astype(_F32) ** 2).sum(dtype=_F32))
        result = math.log(total / (self.c_hi - self.c_lo)) if total > 0 else -math.inf
        return max(0.0, 21 + result)


def _flush_count(measures_row, index, trigger_level, gap_len, previous):
    """How many of the last measures (newest first) belong to the triggering burst."""
    n = len(measures_row)
    k, j_trigger, j_zero = index, n, n
    for j in range(n):
        if measures_row[k] >= trigger_level and j <= j_trigger + gap_len:
            j_zero = j_trigger = j
        elif measures_row[k] == 0 and j_trigger >= j_zero:
            j_zero = j
        k = (k + n - 1) % n
    return min(max(previous, min(n - 1, j_zero)), n)


def vad(waveform, sample_rate: int, trigger_level: float = 7.0, trigger_time: float = 0.25,
        search_time: float = 1.0, allowed_gap: float = 0.25, pre_trigger_time: float = 0.0,
        boot_time: float = 0.35, noise_up_time: float = 0.1, noise_down_time: float = 0.01,
        noise_reduction_amount: float = 1.35, measure_freq: float = 20.0,
        measure_duration: float | None = None, measure_smooth_time: float = 0.4,
        hp_filter_freq: float = 50.0, lp_filter_freq: float = 6000.0,
        hp_lifter_freq: float = 150.0, lp_lifter_freq: float = 2000.0):
    """Trim leading silence: (channels?, time) -> (channels?, time'), all channels cut
    at the same sample."""
    if waveform.ndim > 2:
        warnings.warn(f"Expected input tensor dimension of 1 for single channel or 2 for "
                      f"multi-channel. Got {waveform.ndim} instead. Batch semantics is not "
                      f"supported.")
    measure_duration = 2.0 / measure_freq if measure_duration is None else measure_duration
    measure_len = int(sample_rate * measure_duration + 0.5)
    period = int(sample_rate / measure_freq + 0.5)
    measures_len = math.ceil(search_time * measure_freq)
    gap_len = int(allowed_gap * measure_freq + 0.5)
    fixed_pre = int(pre_trigger_time * sample_rate + 0.5)
    samples_len = fixed_pre + measures_len * period + measure_len
    shape = list(waveform.shape)
    x = waveform.detach().cpu().numpy().reshape(-1, shape[-1])
    channels, length = x.shape
    meter = _Measurer(channels, sample_rate, measure_len, hp_filter_freq, lp_filter_freq,
                      hp_lifter_freq, lp_lifter_freq, noise_reduction_amount,
                      math.exp(-1.0 / (measure_smooth_time * measure_freq)),
                      math.exp(-1.0 / (noise_up_time * measure_freq)),
                      math.exp(-1.0 / (noise_down_time * measure_freq)))
    trigger_mult = _F32(math.exp(-1.0 / (trigger_time * measure_freq)))
    boot_max = int(boot_time * measure_freq - 0.5)
    mean = np.zeros(channels, _F32)
    measures = np.zeros((channels, measures_len), _F32)
    boot_count = index = flushed = flush = 0
    triggered, pos = False, 0
    for pos in range(measure_len, length, period):
        for ch in range(channels):
            value = meter.measure(ch, x[ch, pos - measure_len:pos], boot_count)
            measures[ch, index] = value
            mean[ch] = mean[ch] * trigger_mult + _F32(value) * (_F32(1) - trigger_mult)
            triggered = triggered or bool(mean[ch] >= trigger_level)
            if triggered:
                flush = _flush_count(measures[ch], index, trigger_level, gap_len, flush)
        index = (index + 1) % measures_len
        if boot_count >= 0:
            boot_count = -1 if boot_count == boot_max else boot_count + 1
        if triggered:
            flushed = (measures_len - flush) * period
            break
    if not triggered and shape[-1] >= fixed_pre:
        start, stop = 0, fixed_pre
    else:
        start, stop = max(pos - samples_len + flushed, 0), shape[-1]
    return waveform.reshape([-1, shape[-1]])[:, start:stop].reshape(
        shape[:-1] + [stop - start])
