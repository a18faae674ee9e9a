"""torchaudio.functional's feature and utility functions over ember tensors: mu-law
companding, deltas, linear filter banks, spectral centroid, pitch detection, sliding-window
CMN, loudness (ITU-R BS.1770-4), pitch shift, convolutions, noise mixing, speed, and the
Frechet distance. Everything but the data-dependent pitch search and edit distance is
written in ember ops, so it is differentiable where torchaudio's is.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

import ember
import ember.nn.functional as F
from ember.ir import dtypes

from . import _filtering

__all__ = ["mu_law_encoding", "mu_law_decoding", "compute_deltas", "linear_fbanks",
           "spectral_centroid", "detect_pitch_frequency", "sliding_window_cmn", "loudness",
           "pitch_shift", "convolve", "fftconvolve", "add_noise", "speed",
           "frechet_distance", "edit_distance"]


# --- mu-law -----------------------------------------------------------------------------
def _as_float(x):
    if not x.dtype.is_floating_point:
        return x.to(dtypes.float32)
    return x


def mu_law_encoding(x, quantization_channels: int):
    """Companded and quantized to [0, quantization_channels): x in [-1, 1] ->
    sign(x) log(1 + mu |x|) / log(1 + mu), mapped to integers (int64)."""
    if not x.dtype.is_floating_point:
        warnings.warn("The input Tensor must be of floating type. This will be an error in "
                      "the v0.12 release.")
        x = _as_float(x)
    mu = float(quantization_channels - 1)
    log1p_mu = math.log1p(mu)
    companded = ember.sign(x) * ember.log1p(mu * ember.abs(x)) / log1p_mu
    return ((companded + 1) / 2 * mu + 0.5).to(dtypes.int64)


def mu_law_decoding(x_mu, quantization_channels: int):
    """Inverse of mu_law_encoding: integers in [0, quantization_channels) -> [-1, 1]."""
    x_mu = _as_float(x_mu)
    mu = float(quantization_channels - 1)
    x = x_mu / mu * 2 - 1.0
    return ember.sign(x) * (ember.exp(ember.abs(x) * math.log1p(mu)) - 1.0) / mu


# --- deltas, filter banks, centroid -------------------------------------------------------
def compute_deltas(specgram, win_length: int = 5, mode: str = "replicate"):
    """Regression deltas along time: sum_n n (c[t+n] - c[t-n]) / (2 sum_n n^2)."""
    if win_length < 3:
        raise ValueError(f"Window length should be greater than or equal to 3. Found "
                         f"win_length {win_length}")
    shape = list(specgram.shape)
    x = specgram.reshape([1, -1, shape[-1]])
    n = (win_length - 1) // 2
    denom = n * (n + 1) * (2 * n + 1) / 3
    x = F.pad(x, [n, n], mode=mode)
    channels = int(x.shape[1])
    kernel = ember.arange(-n, n + 1, dtype=specgram.dtype, device=specgram.device)
    kernel = kernel.reshape([1, 1, -1]).expand([channels, 1, 2 * n + 1])
    return (F.conv1d(x, kernel, groups=channels) / denom).reshape(shape)


def linear_fbanks(n_freqs: int, f_min: float, f_max: float, n_filter: int,
                  sample_rate: int):
    """Triangular filters with centres equally spaced in Hz, [n_freqs, n_filter]."""
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs, dtype=np.float32).astype(np.float64)
    f_pts = np.linspace(f_min, f_max, n_filter + 2, dtype=np.float32).astype(np.float64)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    rising = -slopes[:, :-2] / f_diff[:-1]
    falling = slopes[:, 2:] / f_diff[1:]
    return ember.tensor(np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32))


def spectral_centroid(waveform, sample_rate: int, pad: int, window, n_fft: int,
                      hop_length: int, win_length: int):
    """The magnitude-weighted mean frequency of each frame, (..., time)."""
    from .functional import spectrogram  # noqa: PLC0415 - functional re-exports this module
    spec = spectrogram(waveform, pad=pad, window=window, n_fft=n_fft, hop_length=hop_length,
                       win_length=win_length, power=1.0, normalized=False)
    freqs = ember.linspace(0, sample_rate // 2, 1 + n_fft // 2, device=spec.device)
    freqs = freqs.to(spec.dtype).reshape([-1, 1])
    return (freqs * spec).sum(-2) / spec.sum(-2)


# --- pitch ------------------------------------------------------------------------------
def _nccf(x, sample_rate, frame_time, freq_low):
    """Normalized cross-correlation of each frame with itself delayed by 1..lags samples,
    [B, frames, lags] (torchaudio's normalization: divided by both squared norms)."""
    eps = 1e-9
    lags = int(math.ceil(sample_rate / freq_low))
    frame = int(math.ceil(sample_rate * frame_time))
    length = int(x.shape[-1])
    frames = int(math.ceil(length / frame))
    x = F.pad(x, [0, lags + frames * frame - length])
    out = []
    for lag in range(1, lags + 1):
        s1 = x[..., :-lag].unfold(-1, frame, frame)[..., :frames, :]
        s2 = x[..., lag:].unfold(-1, frame, frame)[..., :frames, :]
        n1 = (eps + ember.linalg.vector_norm(s1, 2, -1)) ** 2
        n2 = (eps + ember.linalg.vector_norm(s2, 2, -1)) ** 2
        out.append(((s1 * s2).sum(-1) / n1 / n2).unsqueeze(-1))
    return ember.cat(out, -1)


def _best_lags(nccf, sample_rate, freq_high):
    """Lag (1-based) of the highest correlation per frame, preferring the best lag in the
    first half when it is within 1% of the overall best (avoids octave errors)."""
    lag_min = int(math.ceil(sample_rate / freq_high))
    best_val, best_idx = ember.max(nccf[..., lag_min:], -1)
    half_val, half_idx = ember.max(nccf[..., lag_min:int(nccf.shape[-1]) // 2], -1)
    take_half = half_val > 0.99 * best_val
    return ember.where(take_half, half_idx, best_idx) + lag_min + 1


def _median_smooth(indices, win_length):
    """Running median (the lower middle value for even windows), the first value
    repeated in front."""
    pad = (win_length - 1) // 2
    first = indices[..., :1].expand(list(indices.shape[:-1]) + [pad])
    rolled = ember.cat([first, indices], -1).unfold(-1, win_length, 1)
    return ember.median(rolled, -1)[0]


def detect_pitch_frequency(waveform, sample_rate: int, frame_time: float = 10 ** (-2),
                           win_length: int = 30, freq_low: int = 85,
                           freq_high: int = 3400):
    """Pitch per frame from the normalized cross-correlation function and median
    smoothing, (..., frames)."""
    shape = list(waveform.shape)
    x = waveform.reshape([-1, shape[-1]])
    lags = _best_lags(_nccf(x, sample_rate, frame_time, freq_low), sample_rate, freq_high)
    lags = _median_smooth(lags, win_length)
    freq = sample_rate / (1e-9 + lags.to(dtypes.float32))
    return freq.reshape(shape[:-1] + [int(freq.shape[-1])])


# --- sliding-window CMN -----------------------------------------------------------------
def _cmn_windows(num_frames, cmn_window, min_cmn_window, center):
    """[start, end) of the frames averaged for each frame (Kaldi's rule)."""
    starts, ends = np.empty(num_frames, np.int64), np.empty(num_frames, np.int64)
    for t in range(num_frames):
        if center:
            start = t - cmn_window // 2
            end = start + cmn_window
        else:
            start, end = t - cmn_window, t + 1
        if start < 0:
            end -= start
            start = 0
        if not center and end > t:
            end = max(t + 1, min_cmn_window)
        if end > num_frames:
            start = max(0, start - (end - num_frames))
            end = num_frames
        starts[t], ends[t] = start, end
    return starts, ends


def sliding_window_cmn(specgram, cmn_window: int = 600, min_cmn_window: int = 100,
                       center: bool = False, norm_vars: bool = False):
    """Cepstral mean (and optionally variance) normalization over a sliding window of
    frames; input (..., time, freq)."""
    shape = list(specgram.shape)
    num_frames = shape[-2]
    x = specgram.reshape([-1, num_frames, shape[-1]])
    starts, ends = _cmn_windows(num_frames, cmn_window, min_cmn_window, center)
    zero = ember.zeros_like(x[:, :1])
    csum = ember.cat([zero, x.cumsum(1)], 1)
    start_idx, end_idx = ember.from_numpy(starts), ember.from_numpy(ends)
    counts = ember.from_numpy((ends - starts).astype(np.float64)).to(x.dtype).reshape([1, -1, 1])
    total = csum.index_select(1, end_idx) - csum.index_select(1, start_idx)
    out = x - total / counts
    if norm_vars:
        csq = ember.cat([zero, (x * x).cumsum(1)], 1)
        squares = csq.index_select(1, end_idx) - csq.index_select(1, start_idx)
        variance = squares / counts - (total * total) / (counts * counts)
        single = ember.from_numpy(ends - starts == 1).reshape([1, -1, 1])
        out = ember.where(single, ember.zeros_like(out), out * variance ** -0.5)
    return out.reshape(shape)


# --- loudness -----------------------------------------------------------------------------
def loudness(waveform, sample_rate: int):
    """Integrated loudness in LKFS (ITU-R BS.1770-4): K-weighting (a high shelf, then a
    high pass), mean energy over 400 ms blocks with 75% overlap, channel weights, an
    absolute gate at -70 LKFS and a relative gate 10 LU below the gated loudness.
    Input (..., channels, time) with at most 5 channels."""
    if int(waveform.shape[-2]) > 5:
        raise ValueError("Only up to 5 channels are supported.")
    block = int(round(0.4 * sample_rate))
    step = int(round(block * 0.25))
    x = _filtering.treble_biquad(waveform, sample_rate, 4.0, 1500.0, 1 / math.sqrt(2))
    x = _filtering.highpass_biquad(x, sample_rate, 38.0, 0.5)
    energy = (x * x).unfold(-1, block, step).mean(-1)                 # (..., ch, blocks)
    weights = ember.tensor([1.0, 1.0, 1.0, 1.41, 1.41], dtype=x.dtype,
                           device=x.device)[:int(energy.shape[-2])]
    block_loudness = -0.691 + 10 * ember.log10((weights.unsqueeze(-1) * energy).sum(-2))

    def gated_loudness(gate):                                         # gate (..., blocks)
        kept = gate.unsqueeze(-2).to(energy.dtype)
        mean = (kept * energy).sum(-1) / kept.sum(-1)
        return -0.691 + 10 * ember.log10((weights * mean).sum(-1))

    absolute = block_loudness > -70.0
    relative = gated_loudness(absolute) - 10
    return gated_loudness(absolute & (block_loudness > relative.unsqueeze(-1)))


# --- pitch shift, speed -----------------------------------------------------------------
def pitch_shift(waveform, sample_rate: int, n_steps: int, bins_per_octave: int = 12,
                n_fft: int = 512, win_length: int | None = None,
                hop_length: int | None = None, window=None):
    """Shift the pitch by n_steps / bins_per_octave octaves: time-stretch by the phase
    vocoder, then resample back to the original duration."""
    from .functional import phase_vocoder, resample  # noqa: PLC0415
    hop_length = n_fft // 4 if hop_length is None else hop_length
    win_length = n_fft if win_length is None else win_length
    if window is None:
        window = ember.hann_window(win_length, device=waveform.device)
    shape = list(waveform.shape)
    x = waveform.reshape([-1, shape[-1]])
    rate = 2.0 ** (-float(n_steps) / bins_per_octave)
    spec = ember.stft(x, n_fft, hop_length, win_length, window, center=True,
                      pad_mode="reflect", normalized=False, onesided=True,
                      return_complex=True)
    advance = ember.linspace(0, math.pi * hop_length, int(spec.shape[-2]),
                             device=spec.device)[..., None]
    stretched = phase_vocoder(spec, rate, advance)
    x = ember.istft(stretched, n_fft, hop_length, win_length, window,
                    length=int(round(shape[-1] / rate)))
    shifted = resample(x, int(sample_rate / rate), sample_rate)
    length = int(shifted.shape[-1])
    if length > shape[-1]:
        shifted = shifted[..., :shape[-1]]
    else:
        shifted = F.pad(shifted, [0, shape[-1] - length])
    return shifted.reshape(shape)


def speed(waveform, orig_freq: int, factor: float, lengths=None):
    """Play `factor` times faster by resampling from factor * orig_freq to orig_freq;
    returns the waveform and the scaled lengths (or None)."""
    from .functional import resample  # noqa: PLC0415
    source, target = int(factor * orig_freq), int(orig_freq)
    g = math.gcd(source, target)
    source, target = source // g, target // g
    out_lengths = None
    if lengths is not None:
        out_lengths = ember.ceil(lengths * target / source).to(lengths.dtype)
    return resample(waveform, source, target), out_lengths


# --- convolution, noise -------------------------------------------------------------------
def _check_convolve(x, y, mode):
    if x.ndim != y.ndim:
        raise ValueError(f"The operands must be the same dimension (got {x.ndim} and "
                         f"{y.ndim}).")
    for a, b in zip(x.shape[:-1], y.shape[:-1]):
        if not (a == b or a == 1 or b == 1):
            raise ValueError(f"Leading dimensions of x and y are not broadcastable (got "
                             f"{list(x.shape)} and {list(y.shape)}).")
    if mode not in ("full", "valid", "same"):
        raise ValueError(f"Unrecognized mode value '{mode}'. Please specify one of "
                         f"['full', 'valid', 'same'].")


def _convolve_mode(full, x_len, y_len, mode):
    """'valid': the central max - min + 1 samples; 'same': the central len(x) samples."""
    if mode == "full":
        return full
    target = max(x_len, y_len) - min(x_len, y_len) + 1 if mode == "valid" else x_len
    start = (int(full.shape[-1]) - target) // 2
    return full[..., start:start + target]


def fftconvolve(x, y, mode: str = "full"):
    """Linear convolution along the last dim by FFT (leading dims broadcast)."""
    _check_convolve(x, y, mode)
    n = int(x.shape[-1]) + int(y.shape[-1]) - 1
    full = ember.fft.irfft(ember.fft.rfft(x, n=n) * ember.fft.rfft(y, n=n), n=n)
    return _convolve_mode(full, int(x.shape[-1]), int(y.shape[-1]), mode)


def convolve(x, y, mode: str = "full"):
    """Linear convolution along the last dim by direct summation (a grouped conv1d)."""
    _check_convolve(x, y, mode)
    x_len, y_len = int(x.shape[-1]), int(y.shape[-1])
    if x_len < y_len:
        x, y = y, x
    lead = [max(a, b) for a, b in zip(x.shape[:-1], y.shape[:-1])]
    x = x.expand(lead + [int(x.shape[-1])]).reshape([1, -1, int(x.shape[-1])])
    y = y.expand(lead + [int(y.shape[-1])]).reshape([-1, 1, int(y.shape[-1])])
    groups = int(y.shape[0])
    full = F.conv1d(x, y.flip(-1), groups=groups, padding=int(y.shape[-1]) - 1)
    return _convolve_mode(full.reshape(lead + [int(full.shape[-1])]), x_len, y_len, mode)


def add_noise(waveform, noise, snr, lengths=None):
    """waveform + noise scaled so that the signal-to-noise ratio is `snr` dB, energies
    measured over the first `lengths` samples of each signal when given."""
    if not (waveform.ndim - 1 == noise.ndim - 1 == snr.ndim and
            (lengths is None or lengths.ndim == snr.ndim)):
        raise ValueError("Input leading dimensions don't match.")
    length = int(waveform.shape[-1])
    if length != int(noise.shape[-1]):
        raise ValueError(f"Length dimensions of waveform and noise don't match (got {length}"
                         f" and {int(noise.shape[-1])}).")
    signal, masked_noise = waveform, noise
    if lengths is not None:
        mask = ember.arange(length, device=waveform.device) < lengths.unsqueeze(-1)
        signal, masked_noise = waveform * mask, noise * mask
    energy_signal = (signal * signal).sum(-1)
    energy_noise = (masked_noise * masked_noise).sum(-1)
    snr_now = 10 * (ember.log10(energy_signal) - ember.log10(energy_noise))
    scale = 10 ** ((snr_now - snr) / 20.0)
    return waveform + scale.unsqueeze(-1) * noise


# --- distances --------------------------------------------------------------------------
def frechet_distance(mu_x, sigma_x, mu_y, sigma_y):
    """Frechet distance of two Gaussians: |mu_x - mu_y|^2 + tr(S_x) + tr(S_y)
    - 2 tr((S_x S_y)^(1/2)), the last from the eigenvalues of S_x S_y."""
    if mu_x.ndim != 1:
        raise ValueError(f"Input mu_x must be one-dimensional; got dimension {mu_x.ndim}.")
    if sigma_x.ndim != 2:
        raise ValueError(f"Input sigma_x must be two-dimensional; got dimension "
                         f"{sigma_x.ndim}.")
    if tuple(mu_x.shape) != tuple(mu_y.shape):
        raise ValueError(f"Inputs mu_x and mu_y must have the same shape; got "
                         f"{list(mu_x.shape)} and {list(mu_y.shape)}.")
    if tuple(sigma_x.shape) != tuple(sigma_y.shape):
        raise ValueError(f"Inputs sigma_x and sigma_y must have the same shape; got "
                         f"{list(sigma_x.shape)} and {list(sigma_y.shape)}.")
    diff = mu_x - mu_y
    traces = ember.trace(sigma_x) + ember.trace(sigma_y)
    root_trace = ember.linalg.eigvals(sigma_x @ sigma_y).sqrt().real.sum()
    return (diff * diff).sum() + traces - 2 * root_trace


def edit_distance(seq1, seq2) -> int:
    """Levenshtein distance between two sequences (substitution, insertion, deletion)."""
    previous = list(range(len(seq2) + 1))
    for i, a in enumerate(seq1, 1):
        current = [i] + [0] * len(seq2)
        for j, b in enumerate(seq2, 1):
            current[j] = previous[j - 1] if a == b else \
                1 + min(previous[j - 1], current[j - 1], previous[j])
        previous = current
    return previous[-1]
