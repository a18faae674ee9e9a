"""torchaudio.functional's filters: lfilter (IIR/FIR difference equations), filtfilt, the
biquad designs of the Audio EQ Cookbook / SoX, and SoX-style effects built on them.

lfilter splits the difference equation  sum_k a_k y[n-k] = sum_k b_k x[n-k]  into its FIR
half (a grouped conv1d, differentiable as any ember op) and its all-pole half, a sequential
recursion run on the host by scipy.signal.lfilter inside an autograd Function. The
all-pole recursion is linear, so its adjoint is the same recursion run backwards in time;
the gradient for a_k is minus the adjoint correlated with the output delayed by k.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.signal

import ember
import ember.nn.functional as F
from ember.frontend.autograd.function import Function

__all__ = ["lfilter", "filtfilt", "biquad", "allpass_biquad", "band_biquad",
           "bandpass_biquad", "bandreject_biquad", "bass_biquad", "treble_biquad",
           "equalizer_biquad", "highpass_biquad", "lowpass_biquad", "deemph_biquad",
           "riaa_biquad", "contrast", "dcshift", "gain", "overdrive", "preemphasis",
           "deemphasis", "phaser", "flanger", "dither"]


def _host(t) -> np.ndarray:
    return t.detach().cpu().numpy()


def _all_pole(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """y[b, c, n] = x[b, c, n] - sum_{k >= 1} a[c, k] y[b, c, n - k] (a[:, 0] == 1)."""
    out = np.empty_like(x)
    for c in range(a.shape[0]):
        out[:, c] = scipy.signal.lfilter(np.ones(1, a.dtype), a[c], x[:, c], axis=-1)
    return out


class _AllPole(Function):
    """The recursive half of lfilter on (batch, channel, time) with normalized a."""

    @staticmethod
    def forward(ctx, x, a):
        y = ember.tensor(_all_pole(_host(x), _host(a)), device=x.device)
        ctx.save_for_backward(a, y)
        return y

    @staticmethod
    def backward(ctx, grad):
        # in ember ops (the adjoint recursion is this Function again), so the backward is
        # itself differentiable: second derivatives work as torchaudio's do
        a, y = ctx.saved_tensors
        adjoint = _AllPole.apply(grad.flip(-1), a).flip(-1)              # [B, C, T]
        order = int(a.shape[1])
        # past[..., n, k] = y[n - k] (zero before the start)
        past = F.pad(y, [order - 1, 0]).unfold(-1, order, 1).flip(-1)   # [B, C, T, order]
        grad_a = -(adjoint.unsqueeze(-1) * past).sum((0, 2))
        return adjoint, grad_a


def _fir(x, b):
    """sum_k b[c, k] x[b, c, n - k], a causal grouped convolution."""
    order = int(b.shape[1])
    weight = b.flip(1).unsqueeze(1)                                  # [C, 1, order]
    return F.conv1d(F.pad(x, [order - 1, 0]), weight, groups=int(b.shape[0]))


def _check_coeffs(waveform, a_coeffs, b_coeffs, batching):
    if tuple(a_coeffs.shape) != tuple(b_coeffs.shape):
        raise ValueError(f"Expected coeffs to be the same size.Found: a_coeffs size: "
                         f"{list(a_coeffs.shape)}, b_coeffs size: {list(b_coeffs.shape)}")
    if a_coeffs.ndim > 2:
        raise ValueError(f"Expected coeffs to have greater than 1 dimension. Found: "
                         f"{a_coeffs.ndim}")
    if a_coeffs.ndim == 2 and batching and (waveform.ndim < 2 or
                                            waveform.shape[-2] != a_coeffs.shape[0]):
        raise ValueError(f"Expected number of batches in waveform and coeffs to be the same."
                         f"Found: coeffs batches: {a_coeffs.shape[0]}, waveform batches: "
                         f"{waveform.shape[-2] if waveform.ndim >= 2 else None}")


def lfilter(waveform, a_coeffs, b_coeffs, clamp: bool = True, batching: bool = True):
    """IIR filter by the difference equation, torchaudio.functional.lfilter: coefficients
    `[order + 1]` (one filter) or `[filters, order + 1]` (filter i on waveform[..., i, :]
    when batching, else every filter on the whole waveform, stacked at dim -2); the
    output is clamped to [-1, 1] when `clamp`. Differentiable in the waveform and both
    coefficient tensors."""
    _check_coeffs(waveform, a_coeffs, b_coeffs, batching)
    a_coeffs = a_coeffs.to(waveform.dtype)
    b_coeffs = b_coeffs.to(waveform.dtype)
    if a_coeffs.ndim == 1:
        a_coeffs, b_coeffs = a_coeffs.unsqueeze(0), b_coeffs.unsqueeze(0)
    elif not batching:
        waveform = ember.stack([waveform] * int(a_coeffs.shape[0]), -2)
    shape = list(waveform.shape)
    x = waveform.reshape([-1, int(a_coeffs.shape[0]), shape[-1]])
    a0 = a_coeffs[:, 0:1]
    out = _AllPole.apply(_fir(x, b_coeffs / a0), a_coeffs / a0)
    if clamp:
        out = ember.clamp(out, -1.0, 1.0)
    return out.reshape(shape)


def filtfilt(waveform, a_coeffs, b_coeffs, clamp: bool = True):
    """Zero-phase filtering: lfilter forward, then over the time-reversed result."""
    forward = lfilter(waveform, a_coeffs, b_coeffs, clamp=False, batching=True)
    return lfilter(forward.flip(-1), a_coeffs, b_coeffs, clamp=clamp, batching=True).flip(-1)


# --- biquads ----------------------------------------------------------------------------
def _scalar(value, like):
    """A 0-d tensor of the waveform's dtype (a tensor argument keeps its gradient)."""
    if isinstance(value, ember.Tensor):
        return value.to(like.dtype).reshape([])
    return ember.tensor(float(value), dtype=like.dtype, device=like.device)


def biquad(waveform, b0, b1, b2, a0, a1, a2):
    """Second-order IIR filter (zero initial conditions); coefficients floats or tensors."""
    b = ember.stack([_scalar(v, waveform) for v in (b0, b1, b2)])
    a = ember.stack([_scalar(v, waveform) for v in (a0, a1, a2)])
    return lfilter(waveform, a, b)


def _w0_alpha(waveform, sample_rate, freq, Q):
    w0 = 2 * math.pi * _scalar(freq, waveform) / sample_rate
    return w0, ember.sin(w0) / 2 / _scalar(Q, waveform)


def lowpass_biquad(waveform, sample_rate: int, cutoff_freq, Q=0.707):
    w0, alpha = _w0_alpha(waveform, sample_rate, cutoff_freq, Q)
    cos = ember.cos(w0)
    return biquad(waveform, (1 - cos) / 2, 1 - cos, (1 - cos) / 2, 1 + alpha, -2 * cos,
                  1 - alpha)


def highpass_biquad(waveform, sample_rate: int, cutoff_freq, Q=0.707):
    w0, alpha = _w0_alpha(waveform, sample_rate, cutoff_freq, Q)
    cos = ember.cos(w0)
    return biquad(waveform, (1 + cos) / 2, -1 - cos, (1 + cos) / 2, 1 + alpha, -2 * cos,
                  1 - alpha)


def allpass_biquad(waveform, sample_rate: int, central_freq, Q=0.707):
    w0, alpha = _w0_alpha(waveform, sample_rate, central_freq, Q)
    cos = ember.cos(w0)
    return biquad(waveform, 1 - alpha, -2 * cos, 1 + alpha, 1 + alpha, -2 * cos, 1 - alpha)


def bandpass_biquad(waveform, sample_rate: int, central_freq, Q=0.707,
                    const_skirt_gain: bool = False):
    """Constant 0 dB peak gain, or constant skirt gain (peak gain Q) when asked."""
    w0, alpha = _w0_alpha(waveform, sample_rate, central_freq, Q)
    peak = ember.sin(w0) / 2 if const_skirt_gain else alpha
    return biquad(waveform, peak, 0.0, -peak, 1 + alpha, -2 * ember.cos(w0), 1 - alpha)


def bandreject_biquad(waveform, sample_rate: int, central_freq, Q=0.707):
    w0, alpha = _w0_alpha(waveform, sample_rate, central_freq, Q)
    cos = ember.cos(w0)
    return biquad(waveform, 1.0, -2 * cos, 1.0, 1 + alpha, -2 * cos, 1 - alpha)


def band_biquad(waveform, sample_rate: int, central_freq, Q=0.707, noise: bool = False):
    """SoX's two-pole resonator of bandwidth central_freq / Q; `noise` rescales the gain
    for unpitched audio."""
    freq = _scalar(central_freq, waveform)
    w0 = 2 * math.pi * freq / sample_rate
    a2 = ember.exp(-2 * math.pi * (freq / _scalar(Q, waveform)) / sample_rate)
    a1 = -4 * a2 / (1 + a2) * ember.cos(w0)
    b0 = ember.sqrt(1 - a1 * a1 / (4 * a2)) * (1 - a2)
    if noise:
        b0 = ember.sqrt(((1 + a2) * (1 + a2) - a1 * a1) * (1 - a2) / (1 + a2))
    return biquad(waveform, b0, 0.0, 0.0, 1.0, a1, a2)


def _shelf(waveform, sample_rate, gain_db, freq, Q, high: bool):
    """Cookbook shelving filter: low shelf (bass) or high shelf (treble), gain in dB."""
    w0, alpha = _w0_alpha(waveform, sample_rate, freq, Q)
    A = ember.exp(_scalar(gain_db, waveform) / 40 * math.log(10))
    cos = ember.cos(w0)
    s = 1.0 if high else -1.0            # the high shelf flips the cosine terms' sign
    t1, t2, t3 = 2 * ember.sqrt(A) * alpha, (A - 1) * cos * s, (A + 1) * cos
    b0 = A * ((A + 1) + t2 + t1)
    b1 = -2 * s * A * ((A - 1) + s * t3)
    b2 = A * ((A + 1) + t2 - t1)
    a0 = (A + 1) - t2 + t1
    a1 = 2 * s * ((A - 1) - s * t3)
    a2 = (A + 1) - t2 - t1
    return b0, b1, b2, a0, a1, a2


def bass_biquad(waveform, sample_rate: int, gain, central_freq=100, Q=0.707):
    b0, b1, b2, a0, a1, a2 = _shelf(waveform, sample_rate, gain, central_freq, Q, False)
    return biquad(waveform, b0 / a0, b1 / a0, b2 / a0, a0 / a0, a1 / a0, a2 / a0)


def treble_biquad(waveform, sample_rate: int, gain, central_freq=3000, Q=0.707):
    return biquad(waveform, *_shelf(waveform, sample_rate, gain, central_freq, Q, True))


def equalizer_biquad(waveform, sample_rate: int, center_freq, gain, Q=0.707):
    """Peaking EQ: `gain` dB at center_freq."""
    w0, alpha = _w0_alpha(waveform, sample_rate, center_freq, Q)
    A = ember.exp(_scalar(gain, waveform) / 40.0 * math.log(10))
    cos = ember.cos(w0)
    return biquad(waveform, 1 + alpha * A, -2 * cos, 1 - alpha * A, 1 + alpha / A, -2 * cos,
                  1 - alpha / A)


_DEEMPH = {44100: (5283, 0.4845, -9.477), 48000: (5356, 0.479, -9.62)}


def deemph_biquad(waveform, sample_rate: int):
    """ISO 908 CD de-emphasis: a high shelf of SoX's parameters for 44.1 / 48 kHz."""
    if sample_rate not in _DEEMPH:
        raise ValueError("Sample rate must be 44100 (audio-CD) or 48000 (DAT)")
    freq, slope, gain_db = _DEEMPH[sample_rate]
    w0 = 2 * math.pi * freq / sample_rate
    A = math.exp(gain_db / 40.0 * math.log(10))
    alpha = math.sin(w0) / 2 * math.sqrt((A + 1 / A) * (1 / slope - 1) + 2)
    t1, t2, t3 = 2 * math.sqrt(A) * alpha, (A - 1) * math.cos(w0), (A + 1) * math.cos(w0)
    return biquad(waveform, A * ((A + 1) + t2 + t1), -2 * A * ((A - 1) + t3),
                  A * ((A + 1) + t2 - t1), (A + 1) - t2 + t1, 2 * ((A - 1) - t3),
                  (A + 1) - t2 - t1)


# SoX's RIAA playback equalization: zeros and poles of the z-domain filter per rate
_RIAA = {44100: ([-0.2014898, 0.9233820], [0.7083149, 0.9924091]),
         48000: ([-0.1766069, 0.9321590], [0.7396325, 0.9931330]),
         88200: ([-0.1168735, 0.9648312], [0.8590646, 0.9964002]),
         96000: ([-0.1141486, 0.9676817], [0.8699137, 0.9966946])}


def riaa_biquad(waveform, sample_rate: int):
    """RIAA vinyl playback equalization, normalized to 0 dB at 1 kHz."""
    if sample_rate not in _RIAA:
        raise ValueError("Sample rate must be 44.1k, 48k, 88.2k, or 96k")
    (z0, z1), (p0, p1) = _RIAA[sample_rate]
    b = np.array([1.0, -(z0 + z1), z0 * z1])
    a = np.array([1.0, -(p0 + p1), p0 * p1])
    z = np.exp(-1j * 2 * math.pi * 1000 / sample_rate * np.arange(3))
    b = b / abs((b * z).sum() / (a * z).sum())
    return biquad(waveform, *b.tolist(), *a.tolist())


# --- effects ----------------------------------------------------------------------------
def gain(waveform, gain_db: float = 1.0):
    """Amplitude scaled by gain_db decibels."""
    if gain_db == 0:
        return waveform
    return waveform * (10 ** (gain_db / 20))


def contrast(waveform, enhancement_amount: float = 75.0):
    """SoX's contrast: sin(pi/2 x + c sin(2 pi x)), c = amount / 750."""
    if not 0 <= enhancement_amount <= 100:
        raise ValueError("Allowed range of values for enhancement_amount : 0-100")
    phase = waveform * (math.pi / 2)
    return ember.sin(phase + (enhancement_amount / 750.0) * ember.sin(phase * 4))


def dcshift(waveform, shift: float, limiter_gain: float | None = None):
    """Add `shift`, clamped to [-1, 1]; with a limiter gain, the peaks beyond the limiter
    threshold (on the side the shift pushes toward) are compressed by that gain instead.
    Unlike torchaudio, the input is left unchanged (torchaudio writes into it)."""
    shifted = ember.clamp(waveform + shift, -1.0, 1.0)
    if limiter_gain is None or shift == 0:
        return shifted
    threshold = 1.0 - (abs(shift) - limiter_gain)
    scale = limiter_gain / (1 - threshold)
    if shift > 0:
        peaks = waveform > threshold
        limited = ember.clamp((waveform - threshold) * scale + threshold + shift,
                              max=threshold)
    else:
        peaks = waveform < -threshold
        limited = ember.clamp((waveform + threshold) * scale - threshold + shift,
                              min=-threshold)
    return ember.where(peaks, limited, shifted)


def overdrive(waveform, gain: float = 20, colour: float = 20):
    """SoX's overdrive: a cubic soft clipper on the boosted, offset signal, then a DC
    blocker (y[n] = s[n] - s[n-1] + 0.995 y[n-1]) mixed 3:4 with half the dry signal."""
    driven = waveform * (10 ** (gain / 20)) + colour / 200
    soft = driven - driven ** 3 / 3
    soft = ember.where(driven < -1, ember.full_like(driven, -2.0 / 3.0),
                       ember.where(driven > 1, ember.full_like(driven, 2.0 / 3.0), soft))
    blocker = ember.tensor([[1.0, -0.995]], dtype=waveform.dtype, device=waveform.device)
    ones = ember.tensor([[1.0, -1.0]], dtype=waveform.dtype, device=waveform.device)
    blocked = lfilter(soft.reshape([-1, 1, int(soft.shape[-1])]), blocker, ones,
                      clamp=False).reshape(list(waveform.shape))
    return ember.clamp(waveform * 0.5 + blocked * 0.75, -1.0, 1.0)


def preemphasis(waveform, coeff: float = 0.97):
    """y[n] = x[n] - coeff x[n - 1] (y[0] = x[0])."""
    return ember.cat([waveform[..., :1], waveform[..., 1:] - coeff * waveform[..., :-1]], -1)


def deemphasis(waveform, coeff: float = 0.97):
    """The inverse of preemphasis: y[n] = x[n] + coeff y[n - 1], clamped to [-1, 1]."""
    a = ember.tensor([1.0, -coeff], dtype=waveform.dtype, device=waveform.device)
    b = ember.tensor([1.0, 0.0], dtype=waveform.dtype, device=waveform.device)
    return lfilter(waveform, a, b)


# --- modulated delay effects (host loops: each sample reads what earlier ones wrote) ----
def _wave_table(kind: str, size: int, low: float, high: float, phase: float,
                as_int: bool) -> np.ndarray:
    """One period of SoX's LFO: a sine or a triangle between low and high, starting at
    `phase` radians; rounded half away from zero to int32, or float32."""
    offset = int(phase / math.pi / 2 * size + 0.5)
    point = (np.arange(size) + offset) % size
    if kind == "sine":
        d = (np.sin(point / size * 2 * math.pi) + 1) / 2
    else:
        d = point * 2 / size
        quarter = (4 * point) // size
        d = np.select([quarter == 0, quarter == 3], [d + 0.5, d - 1.5], 1.5 - d)
    d = d * (high - low) + low
    if as_int:
        return np.where(d < 0, d - 0.5, d + 0.5).astype(np.int32)
    return d.astype(np.float32)


def phaser(waveform, sample_rate: int, gain_in: float = 0.4, gain_out: float = 0.74,
           delay_ms: float = 3.0, decay: float = 0.4, mod_speed: float = 0.5,
           sinusoidal: bool = True):
    """SoX's phaser: y[i] = gain_in x[i] + (a modulated delay line of decay * y), times
    gain_out, clamped. Runs on the host; not differentiable."""
    shape = list(waveform.shape)
    x = _host(waveform).reshape(-1, shape[-1]) * np.asarray(gain_in, waveform.dtype.np_dtype)
    buf_len = int(delay_ms * 0.001 * sample_rate + 0.5)
    mod_len = int(sample_rate / mod_speed + 0.5)
    mod = _wave_table("sine" if sinusoidal else "triangle", mod_len, 1.0, float(buf_len),
                      math.pi / 2, True)
    buf = np.zeros((x.shape[0], buf_len), x.dtype)
    out = np.empty_like(x)
    pos = 0
    for i in range(x.shape[1]):
        read = int((pos + mod[i % mod_len]) % buf_len)
        pos = (pos + 1) % buf_len
        out[:, i] = x[:, i] + buf[:, read]
        buf[:, pos] = out[:, i] * np.asarray(decay, x.dtype)
    out = np.clip(out * np.asarray(gain_out, x.dtype), -1, 1)
    return ember.tensor(out.reshape(shape), device=waveform.device)


def flanger(waveform, sample_rate: int, delay: float = 0.0, depth: float = 2.0,
            regen: float = 0.0, width: float = 71.0, speed: float = 0.5,
            phase: float = 25.0, modulation: str = "sinusoidal",
            interpolation: str = "linear"):
    """SoX's flanger on (..., channels <= 4, time): each channel mixes in a copy of
    itself delayed by an LFO-swept fractional delay (linear or quadratic interpolation),
    with `regen`% feedback; channels' LFOs are `phase`% apart. Runs on the host; not
    differentiable."""
    if modulation not in ("sinusoidal", "triangular"):
        raise ValueError('Only "sinusoidal" or "triangular" modulation allowed')
    if interpolation not in ("linear", "quadratic"):
        raise ValueError('Only "linear" or "quadratic" interpolation allowed')
    shape = list(waveform.shape)
    if shape[-2] > 4:
        raise ValueError("Max 4 channels allowed")
    x = _host(waveform).reshape(-1, shape[-2], shape[-1])
    feedback = regen / 100
    mix = width / 100
    in_gain, mix = 1.0 / (1 + mix), mix / (1 + mix)
    mix = mix * (1 - abs(feedback))
    buf_len = int((delay / 1000 + depth / 1000) * sample_rate + 0.5) + 2
    lfo_len = int(sample_rate / speed)
    lfo = _wave_table("sine" if modulation == "sinusoidal" else "triangle", lfo_len,
                      float(math.floor(delay / 1000 * sample_rate + 0.5)), buf_len - 2.0,
                      3 * math.pi / 2, False)
    channels = np.arange(shape[-2])
    channel_offset = (channels * lfo_len * (phase / 100) + 0.5).astype(np.int64)
    bufs = np.zeros(x.shape[:2] + (buf_len,), x.dtype)
    last = np.zeros(x.shape[:2], x.dtype)
    out = np.empty_like(x)
    pos = 0
    for i in range(x.shape[-1]):
        pos = (pos + buf_len - 1) % buf_len
        lag = lfo[(i % lfo_len + channel_offset) % lfo_len]
        frac, whole = lag - np.floor(lag), np.floor(lag).astype(np.int64)
        bufs[:, :, pos] = x[:, :, i] + last * feedback
        taps = [bufs[:, channels, (pos + whole + k) % buf_len] for k in range(3)]
        if interpolation == "linear":
            delayed = taps[0] + (taps[1] - taps[0]) * frac
        else:
            d1, d2 = taps[1] - taps[0], taps[2] - taps[0]
            delayed = taps[0] + ((d2 * 0.5 - d1) * frac + (d1 * 2 - d2 * 0.5)) * frac
        last = delayed
        out[:, :, i] = x[:, :, i] * in_gain + delayed * mix
    return ember.tensor(np.clip(out, -1, 1).reshape(shape), device=waveform.device)


# --- dither -------------------------------------------------------------------------------
def _random_index(high: int, generator) -> int:
    return int(ember.randint(high, (1,), generator=generator).item()) if high > 0 else 0


def dither(waveform, density_function: str = "TPDF", noise_shaping: bool = False,
           generator=None):
    """Requantize to 16 bits with dither added before rounding, as torchaudio does it:
    "TPDF" adds a triangular (Bartlett) ramp over each row's samples (deterministic),
    "RPDF" adds one randomly picked sample of the input minus 0.5, "GPDF" the sum of
    seven randomly picked samples. `noise_shaping` adds each sample's quantization error
    to the next sample. Picks come from `generator` (ember's global one by default), so
    RPDF/GPDF values differ from torchaudio's (torch's generator) by the picks only.
    Unlike torchaudio's GPDF, the input is left unchanged."""
    shape = list(waveform.shape)
    x = waveform.reshape([-1, shape[-1]])
    rows, last = int(x.shape[0]) - 1, int(x.shape[1]) - 1
    channel, time = _random_index(rows, generator), _random_index(last, generator)
    scaled = x * (2 ** 15 - 2)
    if density_function == "RPDF":
        offset = scaled + (x[channel, time] - 0.5)
    elif density_function == "GPDF":
        total = x[channel, time]
        for _ in range(6):
            total = total + x[_random_index(rows, generator), _random_index(last, generator)]
        offset = scaled + total
    else:
        ramp = ember.bartlett_window(last + 1, dtype=x.dtype, device=x.device)
        offset = scaled + ramp
    dithered = ember.round(offset) / 2 ** 15
    if noise_shaping:
        error = dithered - x
        dithered = dithered + F.pad(error, [1, 0])[..., :int(x.shape[1])]
    return dithered.reshape(shape)
