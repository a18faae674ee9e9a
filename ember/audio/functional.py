"""torchaudio.functional's spectral pieces over ember tensors.

The short-time Fourier transform frames the signal with Tensor.unfold and transforms the
frames with ember.fft.rfft, so every function here is differentiable with respect to the
waveform and traces for ember.compile.
"""
from __future__ import annotations

import math

import numpy as np

import ember
import ember.nn.functional as F
from ember.ir import dtypes

from ._features import *  # noqa: F401,F403 - torchaudio.functional's flat namespace
from ._features import __all__ as _features_all
from ._filtering import *  # noqa: F401,F403
from ._filtering import __all__ as _filtering_all
from ._beamforming import *  # noqa: F401,F403
from ._beamforming import __all__ as _beamforming_all
from ._vad import vad  # noqa: F401

__all__ = _features_all + _filtering_all + _beamforming_all + [
    "vad", "hann_window", "stft", "istft", "spectrogram", "inverse_spectrogram", "griffinlim",
    "resample", "melscale_fbanks", "create_dct", "amplitude_to_DB", "DB_to_amplitude",
    "mask_along_axis", "mask_along_axis_iid", "phase_vocoder"]


def hann_window(window_length: int, periodic: bool = True, dtype=None):
    """0.5 - 0.5 cos(2 pi n / N), N = length (periodic) or length - 1 (symmetric)."""
    dtype = dtype or dtypes.float32
    if window_length <= 1:
        return ember.ones(max(window_length, 0), dtype=dtype)
    denom = window_length if periodic else window_length - 1
    n = np.arange(window_length, dtype=np.float64)
    return ember.tensor(0.5 - 0.5 * np.cos(2.0 * math.pi * n / denom), dtype=dtype)


def _pad_window(window, win_length: int, n_fft: int):
    """Centre a win_length window inside n_fft samples (torch.stft's rule)."""
    if win_length == n_fft:
        return window
    left = (n_fft - win_length) // 2
    return F.pad(window, [left, n_fft - win_length - left])


def _frame_spectra(waveform, n_fft, hop_length, win_length, window, center, pad_mode,
                   normalized, onesided=True):
    """rfft of the windowed frames, [B, frames, freq], and the batch shape to restore."""
    shape = list(waveform.shape)
    x = waveform.reshape([-1, shape[-1]])
    if center:
        half = n_fft // 2
        if pad_mode == "reflect" and shape[-1] <= half:
            raise ValueError(f"stft: reflect padding of {half} needs a signal longer than "
                             f"{half} samples, got {shape[-1]}")
        x = F.pad(x.unsqueeze(1), [half, half], mode=pad_mode).squeeze(1)
    if int(x.shape[-1]) < n_fft:
        raise ValueError(f"stft: the signal ({int(x.shape[-1])} samples after padding) is "
                         f"shorter than n_fft={n_fft}")
    frames = x.unfold(-1, n_fft, hop_length)                       # [B, frames, n_fft]
    if window is not None:
        frames = frames * _pad_window(window.to(frames.dtype), win_length, n_fft)
    transform = ember.fft.rfft if onesided else ember.fft.fft
    spec = transform(frames, dim=-1)                                # [B, frames, freq]
    if normalized:
        spec = spec * (1.0 / math.sqrt(n_fft))
    return spec, shape[:-1]


def _to_freq_time(spec, batch_shape):
    spec = spec.transpose(-1, -2)
    return spec.reshape(batch_shape + list(spec.shape[-2:]))


def stft(waveform, n_fft: int, hop_length: int, win_length: int, window, center: bool = True,
         pad_mode: str = "reflect", normalized: bool = False, onesided: bool = True):
    """Complex STFT (..., freq, frames) of a (..., time) signal, as torch.stft with
    return_complex=True computes it (all n_fft bins when not onesided)."""
    spec, batch_shape = _frame_spectra(waveform, n_fft, hop_length, win_length, window,
                                       center, pad_mode, normalized, onesided)
    return _to_freq_time(spec, batch_shape)


def _magnitude(spec, power: float):
    parts = ember.view_as_real(spec)
    energy = (parts * parts).sum(-1)
    if power == 2.0:
        return energy
    if power == 1.0:
        return ember.sqrt(energy)
    return energy ** (power / 2.0)


def spectrogram(waveform, pad: int, window, n_fft: int, hop_length: int, win_length: int,
                power: float | None, normalized, center: bool = True,
                pad_mode: str = "reflect", onesided: bool = True):
    """|STFT|^power (or the complex STFT when power is None), torchaudio's arguments."""
    if pad > 0:
        waveform = F.pad(waveform, [pad, pad], mode="constant")
    spec, batch_shape = _frame_spectra(waveform, n_fft, hop_length, win_length, window,
                                       center, pad_mode, normalized == "frame_length",
                                       onesided)
    if normalized is True or normalized == "window":
        spec = spec * (1.0 / float(ember.sqrt((window.to(dtypes.float64) ** 2).sum()).item()))
    if power is not None:
        # magnitude before the transpose: it keeps view_as_real on a contiguous spectrum
        # (ember.compile mis-strides view_as_real of a transposed complex tensor)
        spec = _magnitude(spec, float(power))
    return _to_freq_time(spec, batch_shape)


def istft(spec, n_fft: int, hop_length: int, win_length: int, window, center: bool = True,
          normalized: bool = False, onesided: bool = True, length: int | None = None):
    """Inverse of `stft` (torch.istft's rule): irfft each frame, window, overlap-add, and
    divide by the summed squared window."""
    shape = list(spec.shape)
    n_freq, n_frames = shape[-2], shape[-1]
    want = n_fft // 2 + 1 if onesided else n_fft
    if n_freq != want:
        raise ValueError(f"istft: expected {want} frequency bins for n_fft={n_fft} "
                         f"(onesided={onesided}), got {n_freq}")
    if not onesided:   # a real signal's spectrum is Hermitian: the first half decides it
        spec = spec[..., :n_fft // 2 + 1, :]
        n_freq = n_fft // 2 + 1
    spec = spec.reshape([-1, n_freq, n_frames]).transpose(-1, -2)        # [B, frames, freq]
    frames = ember.fft.irfft(spec, n=n_fft, dim=-1)                      # [B, frames, n_fft]
    if normalized:
        frames = frames * math.sqrt(n_fft)
    win = ember.ones(n_fft, dtype=frames.dtype) if window is None else \
        _pad_window(window.to(frames.dtype), win_length, n_fft)
    frames = frames * win
    total = n_fft + hop_length * (n_frames - 1)
    fold = dict(output_size=(1, total), kernel_size=(1, n_fft), stride=(1, hop_length))
    signal = F.fold(frames.transpose(1, 2), **fold).reshape([-1, total])
    envelope = F.fold((win * win).reshape([1, n_fft, 1]).expand([1, n_fft, n_frames]),
                      **fold).reshape([total])
    start = n_fft // 2 if center else 0
    end = total - (n_fft // 2 if center else 0) if length is None else start + length
    end_in = min(end, total)
    env = envelope[start:end_in]
    if bool((env.abs() < 1e-11).any()):
        raise RuntimeError("istft: window overlap add min: the window's squared sum "
                           "(NOLA condition) vanishes somewhere; use another window or hop")
    out = signal[:, start:end_in] / env
    if end > end_in:   # a longer requested length is zero-padded, as torch does
        out = F.pad(out, [0, end - end_in])
    return out.reshape(shape[:-2] + [int(out.shape[-1])])


def inverse_spectrogram(spectrogram, length, pad: int, window, n_fft: int, hop_length: int,
                        win_length: int, normalized, center: bool = True,
                        pad_mode: str = "reflect", onesided: bool = True):
    """Waveform from a complex spectrogram (torchaudio.functional.inverse_spectrogram)."""
    if not spectrogram.dtype.is_complex:
        raise ValueError("Expected `spectrogram` to be complex dtype.")
    if normalized is True or normalized == "window":
        spectrogram = spectrogram * float(ember.sqrt((window.to(dtypes.float64) ** 2).sum())
                                          .item())
    wave = istft(spectrogram, n_fft, hop_length, win_length, window, center,
                 normalized == "frame_length", onesided,
                 None if length is None else length + 2 * pad)
    if pad > 0:
        wave = wave[..., pad:int(wave.shape[-1]) - pad]
    return wave


def griffinlim(specgram, window, n_fft: int, hop_length: int, win_length: int, power: float,
               n_iter: int, momentum: float, length: int | None, rand_init: bool,
               generator=None):
    """Phase recovery from a magnitude spectrogram (Griffin & Lim 1984, with the "fast"
    momentum of Perraudin et al. 2013), as torchaudio.functional.griffinlim."""
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in range [0, 1). Found: {momentum}")
    momentum = momentum / (1 + momentum)
    magnitude = specgram.pow(1.0 / power)
    real_dtype = magnitude.dtype
    if rand_init:
        # as torchaudio: real and imaginary parts uniform in [0, 1)
        angles = ember.complex(ember.rand(*magnitude.shape, generator=generator,
                                          dtype=real_dtype),
                               ember.rand(*magnitude.shape, generator=generator,
                                          dtype=real_dtype))
    else:
        angles = ember.complex(ember.ones_like(magnitude), ember.zeros_like(magnitude))
    previous = ember.zeros_like(angles)
    for _ in range(n_iter):
        inverse = istft(magnitude * angles, n_fft, hop_length, win_length, window, True,
                        False, True, length)
        rebuilt = stft(inverse, n_fft, hop_length, win_length, window, True, "reflect")
        angles = rebuilt - previous * momentum
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    return istft(magnitude * angles, n_fft, hop_length, win_length, window, True, False,
                 True, length)


def _sinc_kernels(orig: int, new: int, lowpass_filter_width: int, rolloff: float,
                  resampling_method: str, beta: float | None):
    """[new, taps] windowed-sinc interpolation filters, one per output phase (float64).
    Written with in-place NumPy ops: for a large reduced ratio (pitch_shift resamples
    e.g. 8979 -> 8000) the table has tens of millions of entries."""
    if resampling_method not in ("sinc_interp_hann", "sinc_interp_kaiser"):
        raise ValueError(f"Invalid resampling method: {resampling_method}")
    base = min(orig, new) * rolloff
    width = int(math.ceil(lowpass_filter_width * orig / base))
    idx = np.arange(-width, width + orig, dtype=np.float64) / orig
    t = np.subtract.outer(-np.arange(new, dtype=np.float64) / new, -idx)
    t *= base
    np.minimum(t, lowpass_filter_width, out=t)
    np.maximum(t, -lowpass_filter_width, out=t)
    if resampling_method == "sinc_interp_hann":
        window = t * (math.pi / lowpass_filter_width / 2)
        np.cos(window, out=window)
        window *= window
    else:
        beta = 14.769656459379492 if beta is None else beta
        window = t / lowpass_filter_width
        window *= window
        np.subtract(1, window, out=window)
        np.sqrt(window, out=window)
        window = np.i0(beta * window) / np.i0(beta)
    t *= math.pi
    zero = t == 0
    t[zero] = 1.0                      # sin(t) / t -> 1 at t = 0
    kernels = np.sin(t)
    kernels /= t
    kernels[zero] = 1.0
    kernels *= window
    kernels *= base / orig
    return kernels, width


def resample(waveform, orig_freq: int, new_freq: int, lowpass_filter_width: int = 6,
             rolloff: float = 0.99, resampling_method: str = "sinc_interp_hann",
             beta: float | None = None):
    """Band-limited resampling by windowed-sinc filters (a strided conv1d), as
    torchaudio.functional.resample."""
    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError("Original frequency and desired frequecy should be positive")
    if int(orig_freq) != orig_freq or int(new_freq) != new_freq:
        raise ValueError(f"resample: frequencies must be whole numbers (got orig_freq="
                         f"{orig_freq}, new_freq={new_freq}): the sinc kernels are built for "
                         f"the ratio of two integers; multiply both by a common factor")
    if orig_freq == new_freq:
        return waveform
    g = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // g, int(new_freq) // g
    kernels, width = _sinc_kernels(orig, new, lowpass_filter_width, rolloff,
                                   resampling_method, beta)
    shape = list(waveform.shape)
    length = shape[-1]
    x = waveform.reshape([-1, 1, length])
    x = F.pad(x, [width, width + orig])
    weight = ember.tensor(kernels[:, None, :], dtype=waveform.dtype, device=waveform.device)
    out = F.conv1d(x, weight, stride=orig)                       # [B, new, frames]
    out = out.transpose(1, 2).reshape([int(out.shape[0]), -1])
    target = int(math.ceil(new * length / orig))
    return out[..., :target].reshape(shape[:-1] + [target])


# --- mel scale --------------------------------------------------------------------------
def _hz_to_mel(freq: np.ndarray, mel_scale: str) -> np.ndarray:
    if mel_scale == "htk":
        return 2595.0 * np.log10(1.0 + freq / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0     # slaney: linear below 1 kHz, log above
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    mels = freq / f_sp
    above = freq >= min_log_hz
    return np.where(above, min_log_mel + np.log(np.maximum(freq, 1e-12) / min_log_hz) / logstep,
                    mels)


def _mel_to_hz(mels: np.ndarray, mel_scale: str) -> np.ndarray:
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)),
                    f_sp * mels)


def melscale_fbanks(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int,
                    norm: str | None = None, mel_scale: str = "htk"):
    """Triangular mel filters, [n_freqs, n_mels] (torchaudio's layout)."""
    if norm not in (None, "slaney"):
        raise ValueError('norm must be one of None or "slaney"')
    if mel_scale not in ("htk", "slaney"):
        raise ValueError('mel_scale should be one of "htk" or "slaney".')
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    m_pts = np.linspace(_hz_to_mel(np.float64(f_min), mel_scale),
                        _hz_to_mel(np.float64(f_max), mel_scale), n_mels + 2)
    f_pts = _mel_to_hz(m_pts, mel_scale)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    rising = -slopes[:, :-2] / f_diff[:-1]
    falling = slopes[:, 2:] / f_diff[1:]
    fb = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        fb *= (2.0 / (f_pts[2:n_mels + 2] - f_pts[:n_mels]))[None, :]
    if (fb.max(axis=0) == 0.0).any():
        import warnings
        warnings.warn(f"At least one mel filterbank has all zero values. The value for "
                      f"`n_mels` ({n_mels}) may be set too high. Or, the value for `n_freqs` "
                      f"({n_freqs}) may be set too low.")
    return ember.tensor(fb.astype(np.float32))


def create_dct(n_mfcc: int, n_mels: int, norm: str | None):
    """DCT-II matrix [n_mels, n_mfcc] (orthonormal with norm='ortho')."""
    if norm not in (None, "ortho"):
        raise ValueError('norm must be either "ortho" or None')
    n = np.arange(n_mels, dtype=np.float64)
    k = np.arange(n_mfcc, dtype=np.float64)[:, None]
    dct = np.cos(math.pi / n_mels * (n + 0.5) * k)
    if norm is None:
        dct *= 2.0
    else:
        dct[0] *= 1.0 / math.sqrt(2.0)
        dct *= math.sqrt(2.0 / n_mels)
    return ember.tensor(dct.T.astype(np.float32))


# --- decibels ---------------------------------------------------------------------------
def amplitude_to_DB(x, multiplier: float, amin: float, db_multiplier: float,
                    top_db: float | None = None):
    """multiplier * log10(max(x, amin)) - multiplier * db_multiplier, floored at
    (max - top_db) per spectrogram (the last three dims when there are more than two)."""
    x_db = multiplier * ember.log10(ember.clamp(x, min=amin))
    x_db = x_db - multiplier * db_multiplier
    if top_db is not None:
        shape = list(x_db.shape)
        packed = shape[-3] if x_db.ndim > 2 else 1
        flat = x_db.reshape([-1, packed, shape[-2], shape[-1]])
        floor = flat.amax(dim=(-3, -2, -1), keepdim=True) - top_db
        x_db = ember.maximum(flat, floor).reshape(shape)
    return x_db


def DB_to_amplitude(x, ref: float, power: float):
    return ref * ember.pow(ember.pow(10.0, 0.1 * x), power)


# --- SpecAugment masks ------------------------------------------------------------------
def _check_axis(axis, ndim, allowed):
    if axis not in allowed:
        raise ValueError(f"Only Frequency and Time masking are supported (axis {axis} for a "
                         f"{ndim}-D input)")


def mask_along_axis(specgram, mask_param: int, mask_value: float, axis: int, p: float = 1.0,
                    generator=None):
    """Mask one random band [start, start + width) along axis (-2 freq, -1 time; also the
    positive dims 1/2 of a 3-D or 2/3 of a 4-D input), the same band for the whole batch."""
    ndim = specgram.ndim
    if ndim < 2:
        raise ValueError(f"Spectrogram must have at least two dimensions (time and "
                         f"frequency) ({ndim} given).")
    axis = axis if axis < 0 else axis - ndim
    _check_axis(axis, ndim, (-2, -1))
    _check_p(p)
    size = int(specgram.shape[axis])
    if p < 1.0:
        mask_param = min(mask_param, int(size * p))
    if mask_param < 1:
        return specgram
    value = float(ember.rand(1, generator=generator).item()) * mask_param
    start = float(ember.rand(1, generator=generator).item()) * (size - value)
    lo, hi = int(start), int(start) + int(value)
    idx = ember.arange(size, device=specgram.device)
    mask = (idx >= lo) & (idx < hi)
    mask = mask.reshape([size, 1]) if axis == -2 else mask.reshape([1, size])
    return _fill(specgram, mask, mask_value)


def mask_along_axis_iid(specgram, mask_param: int, mask_value, axis: int,
                        p: float = 1.0, generator=None):
    """One independent band per leading index (example, channel, ...) of a (..., freq,
    time) input of at least 3 dims; axis is ndim - 2 (freq) or ndim - 1 (time), or -2 /
    -1. mask_value may be a number or a 0-d tensor (SpecAugment masks with the mean)."""
    ndim = specgram.ndim
    if ndim < 3:
        raise ValueError(f"Spectrogram must have at least three dimensions ({ndim} given).")
    axis = axis if axis < 0 else axis - ndim
    if axis not in (-2, -1):
        raise ValueError(f"Only Frequency and Time masking are supported (axis {ndim - 2} "
                         f"and axis {ndim - 1} supported; {axis + ndim} given).")
    _check_p(p)
    size = int(specgram.shape[axis])
    if p < 1.0:
        mask_param = min(mask_param, int(size * p))
    if mask_param < 1:
        return specgram
    lead = [int(d) for d in specgram.shape[:-2]]
    # drawn from the (CPU) generator, then moved: the same bands on every device
    value = ember.rand(*lead, generator=generator).to(specgram.device) * mask_param
    start = ember.rand(*lead, generator=generator).to(specgram.device) * (size - value)
    lo = ember.trunc(start)
    hi = lo + ember.trunc(value)
    idx = ember.arange(size, dtype=lo.dtype, device=specgram.device)
    mask = (idx >= lo[..., None]) & (idx < hi[..., None])              # [..., size]
    mask = mask.unsqueeze(-1) if axis == -2 else mask.unsqueeze(-2)
    return _fill(specgram, mask, mask_value)


def _check_p(p):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"The value of p must be between 0.0 and 1.0 ({p} given).")


def _fill(specgram, mask, mask_value):
    if isinstance(mask_value, ember.Tensor):
        return ember.where(mask, mask_value.to(specgram.dtype), specgram)
    return specgram.masked_fill(mask, mask_value)


# --- phase vocoder ----------------------------------------------------------------------
def _stretch_positions(num_frames: int, rate: float, dtype) -> np.ndarray:
    """The fractional input frame read for each output frame: 0, rate, 2 * rate, ... below
    num_frames, rounded to the spectrogram's real dtype as torch.arange(0, n, rate) is."""
    count = int(math.ceil(num_frames / rate))
    return (np.arange(count, dtype=np.float64) * rate).astype(dtype)


def phase_vocoder(complex_specgrams, rate: float, phase_advance):
    """Speed a complex spectrogram [..., freq, time] up by rate (time shrinks to
    ceil(time / rate)) without changing pitch: each output frame interpolates the
    magnitudes of the two input frames around its position, and its phase advances by the
    measured instantaneous frequency of that pair (the expected advance phase_advance
    [freq, 1] plus the deviation wrapped to [-pi, pi]); the first frame keeps its phase."""
    if rate == 1.0:
        return complex_specgrams
    if not complex_specgrams.dtype.is_complex:
        raise ValueError(f"phase_vocoder: expected a complex spectrogram, got dtype "
                         f"{complex_specgrams.dtype}")
    shape = list(complex_specgrams.shape)
    specs = complex_specgrams.reshape([-1] + shape[-2:])
    real_dtype = specs.real.dtype
    positions = _stretch_positions(shape[-1], float(rate), real_dtype.np_dtype)
    alphas = ember.from_numpy(np.mod(positions, 1.0).astype(positions.dtype))
    first_phase = specs[..., :1].angle()
    padded = F.pad(specs, [0, 2])      # frames past the end read as silence
    index = positions.astype(np.int64)
    before = padded.index_select(-1, ember.from_numpy(index))
    after = padded.index_select(-1, ember.from_numpy(index + 1))
    advance = phase_advance.to(real_dtype)
    deviation = after.angle() - before.angle() - advance
    deviation = deviation - 2 * math.pi * ember.round(deviation / (2 * math.pi))
    step = deviation + advance
    phase = ember.cat([first_phase, step[..., :-1]], dim=-1).cumsum(-1)
    magnitude = alphas * after.abs() + (1 - alphas) * before.abs()
    stretched = ember.polar(magnitude, phase)
    return stretched.reshape(shape[:-2] + list(stretched.shape[1:]))
