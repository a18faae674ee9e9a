"""torchaudio.transforms' spectral modules over ember tensors (differentiable, compilable).

Windows, filter banks and DCT matrices are buffers, as in torchaudio, so they follow
`.to(device)` and appear in the state_dict under the same names.
"""
from __future__ import annotations

import math

import ember
from ember import nn

from . import functional as AF

__all__ = ["Spectrogram", "InverseSpectrogram", "GriffinLim", "Resample", "MelScale",
           "MelSpectrogram", "MFCC", "AmplitudeToDB", "FrequencyMasking", "TimeMasking",
           "TimeStretch", "LFCC", "InverseMelScale", "MuLawEncoding", "MuLawDecoding",
           "ComputeDeltas", "Fade", "Vol", "SlidingWindowCmn", "SpectralCentroid",
           "PitchShift", "Loudness", "Convolve", "FFTConvolve", "Speed", "AddNoise",
           "Preemphasis", "Deemphasis", "Vad",
           "SpecAugment", "SpeedPerturbation", "PSD", "RTFMVDR", "SoudenMVDR"]


class Spectrogram(nn.Module):
    def __init__(self, n_fft: int = 400, win_length: int | None = None,
                 hop_length: int | None = None, pad: int = 0, window_fn=AF.hann_window,
                 power: float | None = 2.0, normalized=False, wkwargs=None,
                 center: bool = True, pad_mode: str = "reflect", onesided: bool = True):
        super().__init__()
        self.n_fft = n_fft
        self.win_length = win_length if win_length is not None else n_fft
        self.hop_length = hop_length if hop_length is not None else self.win_length // 2
        self.register_buffer("window", window_fn(self.win_length, **(wkwargs or {})))
        self.pad, self.power, self.normalized = pad, power, normalized
        self.center, self.pad_mode, self.onesided = center, pad_mode, onesided

    def forward(self, waveform):
        return AF.spectrogram(waveform, self.pad, self.window, self.n_fft, self.hop_length,
                              self.win_length, self.power, self.normalized, self.center,
                              self.pad_mode, self.onesided)


class InverseSpectrogram(nn.Module):
    """Complex (..., freq, time) spectrogram -> (..., time) waveform."""

    def __init__(self, n_fft: int = 400, win_length: int | None = None,
                 hop_length: int | None = None, pad: int = 0, window_fn=AF.hann_window,
                 normalized=False, wkwargs=None, center: bool = True,
                 pad_mode: str = "reflect", onesided: bool = True):
        super().__init__()
        self.n_fft = n_fft
        self.win_length = win_length if win_length is not None else n_fft
        self.hop_length = hop_length if hop_length is not None else self.win_length // 2
        self.register_buffer("window", window_fn(self.win_length, **(wkwargs or {})))
        self.pad, self.normalized, self.center = pad, normalized, center
        self.pad_mode, self.onesided = pad_mode, onesided

    def forward(self, spectrogram, length: int | None = None):
        return AF.inverse_spectrogram(spectrogram, length, self.pad, self.window, self.n_fft,
                                      self.hop_length, self.win_length, self.normalized,
                                      self.center, self.pad_mode, self.onesided)


class GriffinLim(nn.Module):
    """Waveform from a magnitude (power) spectrogram by iterative phase recovery."""

    def __init__(self, n_fft: int = 400, n_iter: int = 32, win_length: int | None = None,
                 hop_length: int | None = None, window_fn=AF.hann_window, power: float = 2.0,
                 wkwargs=None, momentum: float = 0.99, length: int | None = None,
                 rand_init: bool = True, *, generator=None):
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in the range [0, 1). Found: {momentum}")
        self.n_fft, self.n_iter = n_fft, n_iter
        self.win_length = win_length if win_length is not None else n_fft
        self.hop_length = hop_length if hop_length is not None else self.win_length // 2
        self.register_buffer("window", window_fn(self.win_length, **(wkwargs or {})))
        self.power, self.momentum, self.length = power, momentum, length
        self.rand_init, self.generator = rand_init, generator

    def forward(self, specgram):
        return AF.griffinlim(specgram, self.window, self.n_fft, self.hop_length,
                             self.win_length, self.power, self.n_iter, self.momentum,
                             self.length, self.rand_init, self.generator)


class Resample(nn.Module):
    def __init__(self, orig_freq: int = 16000, new_freq: int = 16000,
                 resampling_method: str = "sinc_interp_hann", lowpass_filter_width: int = 6,
                 rolloff: float = 0.99, beta: float | None = None, *, dtype=None):
        super().__init__()
        self.orig_freq, self.new_freq = orig_freq, new_freq
        self.resampling_method, self.lowpass_filter_width = resampling_method, \
            lowpass_filter_width
        self.rolloff, self.beta = rolloff, beta

    def forward(self, waveform):
        return AF.resample(waveform, self.orig_freq, self.new_freq, self.lowpass_filter_width,
                           self.rolloff, self.resampling_method, self.beta)


class MelScale(nn.Module):
    """(..., n_stft, time) spectrogram -> (..., n_mels, time)."""

    def __init__(self, n_mels: int = 128, sample_rate: int = 16000, f_min: float = 0.0,
                 f_max: float | None = None, n_stft: int = 201, norm: str | None = None,
                 mel_scale: str = "htk"):
        super().__init__()
        self.n_mels, self.sample_rate = n_mels, sample_rate
        self.f_max = f_max if f_max is not None else float(sample_rate // 2)
        self.f_min, self.norm, self.mel_scale = f_min, norm, mel_scale
        if f_min > self.f_max:
            raise ValueError(f"Require f_min: {f_min} <= f_max: {self.f_max}")
        self.register_buffer("fb", AF.melscale_fbanks(n_stft, f_min, self.f_max, n_mels,
                                                      sample_rate, norm, mel_scale))

    def forward(self, specgram):
        fb = self.fb.to(specgram.dtype)
        return ember.matmul(specgram.transpose(-1, -2), fb).transpose(-1, -2)


class MelSpectrogram(nn.Module):
    def __init__(self, sample_rate: int = 16000, n_fft: int = 400,
                 win_length: int | None = None, hop_length: int | None = None,
                 f_min: float = 0.0, f_max: float | None = None, pad: int = 0,
                 n_mels: int = 128, window_fn=AF.hann_window, power: float = 2.0,
                 normalized: bool = False, wkwargs=None, center: bool = True,
                 pad_mode: str = "reflect", onesided=None, norm: str | None = None,
                 mel_scale: str = "htk"):
        super().__init__()
        self.sample_rate, self.n_fft, self.n_mels = sample_rate, n_fft, n_mels
        self.spectrogram = Spectrogram(n_fft, win_length, hop_length, pad, window_fn, power,
                                       normalized, wkwargs, center, pad_mode, True)
        self.mel_scale = MelScale(n_mels, sample_rate, f_min, f_max, n_fft // 2 + 1, norm,
                                  mel_scale)

    def forward(self, waveform):
        return self.mel_scale(self.spectrogram(waveform))


class AmplitudeToDB(nn.Module):
    def __init__(self, stype: str = "power", top_db: float | None = None):
        super().__init__()
        if top_db is not None and top_db < 0:
            raise ValueError("top_db must be positive value")
        self.stype, self.top_db = stype, top_db
        self.multiplier = 10.0 if stype == "power" else 20.0
        self.amin, self.ref_value, self.db_multiplier = 1e-10, 1.0, 0.0

    def forward(self, x):
        return AF.amplitude_to_DB(x, self.multiplier, self.amin, self.db_multiplier,
                                  self.top_db)


class MFCC(nn.Module):
    def __init__(self, sample_rate: int = 16000, n_mfcc: int = 40, dct_type: int = 2,
                 norm: str = "ortho", log_mels: bool = False, melkwargs=None):
        super().__init__()
        if dct_type != 2:
            raise ValueError(f"DCT type not supported: {dct_type}")
        self.n_mfcc, self.dct_type, self.norm, self.log_mels = n_mfcc, dct_type, norm, log_mels
        self.top_db = 80.0
        self.amplitude_to_DB = AmplitudeToDB("power", self.top_db)
        self.MelSpectrogram = MelSpectrogram(sample_rate=sample_rate, **(melkwargs or {}))
        if n_mfcc > self.MelSpectrogram.n_mels:
            raise ValueError("Cannot select more MFCC coefficients than # mel bins")
        self.register_buffer("dct_mat", AF.create_dct(n_mfcc, self.MelSpectrogram.n_mels, norm))

    def forward(self, waveform):
        mel = self.MelSpectrogram(waveform)
        if self.log_mels:
            mel = ember.log(mel + 1e-6)
        else:
            mel = self.amplitude_to_DB(mel)
        dct = self.dct_mat.to(mel.dtype)
        return ember.matmul(mel.transpose(-1, -2), dct).transpose(-1, -2)


class _AxisMasking(nn.Module):
    def __init__(self, mask_param: int, axis: int, iid_masks: bool, p: float = 1.0,
                 generator=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"The value of p must be between 0.0 and 1.0 ({p} given).")
        self.mask_param, self.axis, self.iid_masks, self.p = mask_param, axis, iid_masks, p
        self.generator = generator

    def forward(self, specgram, mask_value: float = 0.0):
        # iid: one band per leading index (example, channel) of a 3-D or larger input;
        # a 2-D spectrogram has one band either way
        if self.iid_masks and specgram.ndim >= 3:
            return AF.mask_along_axis_iid(specgram, self.mask_param, mask_value,
                                          self.axis - 3, self.p, self.generator)
        if isinstance(mask_value, ember.Tensor):
            mask_value = float(mask_value.item())
        return AF.mask_along_axis(specgram, self.mask_param, mask_value,
                                  self.axis - 3, self.p, self.generator)


class FrequencyMasking(_AxisMasking):
    """SpecAugment's frequency mask: zero a random band of at most freq_mask_param bins."""

    def __init__(self, freq_mask_param: int, iid_masks: bool = False, generator=None):
        super().__init__(freq_mask_param, 1, iid_masks, generator=generator)


class TimeMasking(_AxisMasking):
    """SpecAugment's time mask: a random band of at most time_mask_param (and at most
    p * length) frames."""

    def __init__(self, time_mask_param: int, iid_masks: bool = False, p: float = 1.0,
                 generator=None):
        super().__init__(time_mask_param, 2, iid_masks, p, generator)


class TimeStretch(nn.Module):
    """Stretch a complex spectrogram [..., n_freq, time] in time by 1 / rate, keeping the
    pitch (phase vocoder). phase_advance is the buffer of expected per-hop phase advances,
    linspace(0, pi * hop_length, n_freq), as torchaudio registers it."""

    def __init__(self, hop_length: int | None = None, n_freq: int = 201,
                 fixed_rate: float | None = None):
        super().__init__()
        self.fixed_rate = fixed_rate
        n_fft = (n_freq - 1) * 2
        hop_length = hop_length if hop_length is not None else n_fft // 2
        self.register_buffer("phase_advance",
                             ember.linspace(0, math.pi * hop_length, n_freq).reshape(-1, 1))

    def forward(self, complex_specgrams, overriding_rate: float | None = None):
        if not complex_specgrams.dtype.is_complex:
            raise ValueError(f"TimeStretch: expected complex input (a Spectrogram with "
                             f"power=None), got dtype {complex_specgrams.dtype}")
        rate = self.fixed_rate if overriding_rate is None else overriding_rate
        if rate is None:
            raise ValueError("If no fixed_rate is specified, must pass a valid rate to the "
                             "forward method.")
        return AF.phase_vocoder(complex_specgrams, rate, self.phase_advance)


class LFCC(nn.Module):
    """Linear-frequency cepstral coefficients: Spectrogram -> linear triangular filters
    (`filter_mat`) -> dB (or log) -> DCT-II (`dct_mat`)."""

    def __init__(self, sample_rate: int = 16000, n_filter: int = 128, f_min: float = 0.0,
                 f_max: float | None = None, n_lfcc: int = 40, dct_type: int = 2,
                 norm: str = "ortho", log_lf: bool = False, speckwargs=None):
        super().__init__()
        if dct_type != 2:
            raise ValueError(f"DCT type not supported: {dct_type}")
        self.sample_rate, self.f_min, self.n_filter, self.n_lfcc = (sample_rate, f_min,
                                                                     n_filter, n_lfcc)
        self.f_max = f_max if f_max is not None else float(sample_rate // 2)
        self.dct_type, self.norm, self.log_lf, self.top_db = dct_type, norm, log_lf, 80.0
        self.amplitude_to_DB = AmplitudeToDB("power", self.top_db)
        self.Spectrogram = Spectrogram(**(speckwargs or {}))
        if n_lfcc > self.Spectrogram.n_fft:
            raise ValueError("Cannot select more LFCC coefficients than # fft bins")
        self.register_buffer("filter_mat", AF.linear_fbanks(
            self.Spectrogram.n_fft // 2 + 1, f_min, self.f_max, n_filter, sample_rate))
        self.register_buffer("dct_mat", AF.create_dct(n_lfcc, n_filter, norm))

    def forward(self, waveform):
        spec = self.Spectrogram(waveform)
        spec = ember.matmul(spec.transpose(-1, -2), self.filter_mat.to(spec.dtype))
        spec = spec.transpose(-1, -2)
        spec = ember.log(spec + 1e-6) if self.log_lf else self.amplitude_to_DB(spec)
        out = ember.matmul(spec.transpose(-1, -2), self.dct_mat.to(spec.dtype))
        return out.transpose(-1, -2)


class InverseMelScale(nn.Module):
    """(..., n_mels, time) -> (..., n_stft, time): the least-squares (minimum-norm where
    underdetermined) solution of fb^T X = melspec, negative values zeroed. torchaudio
    calls LAPACK through `driver`; ember uses the pseudo-inverse, whatever the driver."""

    def __init__(self, n_stft: int, n_mels: int = 128, sample_rate: int = 16000,
                 f_min: float = 0.0, f_max: float | None = None, norm: str | None = None,
                 mel_scale: str = "htk", driver: str = "gels"):
        super().__init__()
        if driver not in ("gels", "gelsy", "gelsd", "gelss"):
            raise ValueError(f'driver must be one of ["gels", "gelsy", "gelsd", "gelss"]. '
                             f'Found {driver}.')
        self.n_stft, self.n_mels, self.sample_rate = n_stft, n_mels, sample_rate
        self.f_max = f_max or float(sample_rate // 2)
        self.f_min, self.norm, self.mel_scale, self.driver = f_min, norm, mel_scale, driver
        if f_min > self.f_max:
            raise ValueError(f"Require f_min: {f_min} <= f_max: {self.f_max}")
        self.register_buffer("fb", AF.melscale_fbanks(n_stft, f_min, self.f_max, n_mels,
                                                      sample_rate, norm, mel_scale))

    def forward(self, melspec):
        shape = list(melspec.shape)
        if shape[-2] != self.n_mels:
            raise ValueError(f"Expected an input with {self.n_mels} mel bins. Found: "
                             f"{shape[-2]}")
        inverse = ember.linalg.pinv(self.fb.to(melspec.dtype).transpose(0, 1))
        spec = ember.relu(ember.matmul(inverse, melspec.reshape([-1] + shape[-2:])))
        return spec.reshape(shape[:-2] + [self.n_stft, shape[-1]])


class MuLawEncoding(nn.Module):
    def __init__(self, quantization_channels: int = 256):
        super().__init__()
        self.quantization_channels = quantization_channels

    def forward(self, x):
        return AF.mu_law_encoding(x, self.quantization_channels)


class MuLawDecoding(nn.Module):
    def __init__(self, quantization_channels: int = 256):
        super().__init__()
        self.quantization_channels = quantization_channels

    def forward(self, x_mu):
        return AF.mu_law_decoding(x_mu, self.quantization_channels)


class ComputeDeltas(nn.Module):
    def __init__(self, win_length: int = 5, mode: str = "replicate"):
        super().__init__()
        self.win_length, self.mode = win_length, mode

    def forward(self, specgram):
        return AF.compute_deltas(specgram, self.win_length, self.mode)


def _fade_curve(length, shape_name, rising):
    """The fade-in (rising) or fade-out curve of `length` samples, as torchaudio shapes
    them from t = linspace(0, 1, length)."""
    t = ember.linspace(0, 1, length)
    if shape_name == "linear":
        curve = t if rising else 1 - t
    elif shape_name == "exponential":
        curve = ember.pow(2.0, t - 1) * t if rising else ember.pow(2.0, -t) * (1 - t)
    elif shape_name == "logarithmic":
        curve = ember.log10(0.1 + t) + 1 if rising else ember.log10(1.1 - t) + 1
    elif shape_name == "quarter_sine":
        curve = ember.sin(t * math.pi / 2 + (0 if rising else math.pi / 2))
    elif shape_name == "half_sine":
        curve = ember.sin(t * math.pi + (-1 if rising else 1) * math.pi / 2) / 2 + 0.5
    else:
        raise ValueError(f"Fade: unknown fade_shape {shape_name!r} (linear, exponential, "
                         f"logarithmic, quarter_sine, half_sine)")
    return curve


class Fade(nn.Module):
    """Fade in over the first fade_in_len samples and out over the last fade_out_len."""

    def __init__(self, fade_in_len: int = 0, fade_out_len: int = 0,
                 fade_shape: str = "linear"):
        super().__init__()
        self.fade_in_len, self.fade_out_len, self.fade_shape = (fade_in_len, fade_out_len,
                                                                 fade_shape)

    def forward(self, waveform):
        length = int(waveform.shape[-1])
        ones_in = ember.ones(length - self.fade_in_len)
        ones_out = ember.ones(length - self.fade_out_len)
        fade_in = ember.cat([_fade_curve(self.fade_in_len, self.fade_shape, True), ones_in])
        fade_out = ember.cat([ones_out, _fade_curve(self.fade_out_len, self.fade_shape, False)])
        envelope = (ember.clamp(fade_in, 0, 1) * ember.clamp(fade_out, 0, 1))
        return envelope.to(waveform.device) * waveform


class Vol(nn.Module):
    """Scale by an amplitude ratio, a power ratio or decibels; clamp to [-1, 1]."""

    def __init__(self, gain: float, gain_type: str = "amplitude"):
        super().__init__()
        if gain_type in ("amplitude", "power") and gain < 0:
            raise ValueError("If gain_type = amplitude or power, gain must be positive.")
        self.gain, self.gain_type = gain, gain_type

    def forward(self, waveform):
        if self.gain_type == "amplitude":
            waveform = waveform * self.gain
        elif self.gain_type == "db":
            waveform = AF.gain(waveform, self.gain)
        elif self.gain_type == "power":
            waveform = AF.gain(waveform, 10 * math.log10(self.gain))
        return ember.clamp(waveform, -1, 1)


class SlidingWindowCmn(nn.Module):
    def __init__(self, cmn_window: int = 600, min_cmn_window: int = 100,
                 center: bool = False, norm_vars: bool = False):
        super().__init__()
        self.cmn_window, self.min_cmn_window = cmn_window, min_cmn_window
        self.center, self.norm_vars = center, norm_vars

    def forward(self, specgram):
        return AF.sliding_window_cmn(specgram, self.cmn_window, self.min_cmn_window,
                                     self.center, self.norm_vars)


class SpectralCentroid(nn.Module):
    def __init__(self, sample_rate: int, n_fft: int = 400, win_length: int | None = None,
                 hop_length: int | None = None, pad: int = 0, window_fn=AF.hann_window,
                 wkwargs=None):
        super().__init__()
        self.sample_rate, self.n_fft, self.pad = sample_rate, n_fft, pad
        self.win_length = win_length if win_length is not None else n_fft
        self.hop_length = hop_length if hop_length is not None else self.win_length // 2
        self.register_buffer("window", window_fn(self.win_length, **(wkwargs or {})))

    def forward(self, waveform):
        return AF.spectral_centroid(waveform, self.sample_rate, self.pad, self.window,
                                    self.n_fft, self.hop_length, self.win_length)


class PitchShift(nn.Module):
    def __init__(self, sample_rate: int, n_steps: int, bins_per_octave: int = 12,
                 n_fft: int = 512, win_length: int | None = None,
                 hop_length: int | None = None, window_fn=AF.hann_window, wkwargs=None):
        super().__init__()
        self.sample_rate, self.n_steps, self.bins_per_octave = (sample_rate, n_steps,
                                                                 bins_per_octave)
        self.n_fft = n_fft
        self.win_length = win_length if win_length is not None else n_fft
        self.hop_length = hop_length if hop_length is not None else self.win_length // 4
        self.register_buffer("window", window_fn(self.win_length, **(wkwargs or {})))

    def forward(self, waveform):
        return AF.pitch_shift(waveform, self.sample_rate, self.n_steps, self.bins_per_octave,
                              self.n_fft, self.win_length, self.hop_length,
                              self.window.to(waveform.dtype))


class Loudness(nn.Module):
    def __init__(self, sample_rate: int):
        super().__init__()
        self.sample_rate = sample_rate

    def forward(self, waveform):
        return AF.loudness(waveform, self.sample_rate)


class _Convolve(nn.Module):
    def __init__(self, mode: str = "full"):
        super().__init__()
        if mode not in ("full", "valid", "same"):
            raise ValueError(f"Unrecognized mode value '{mode}'.")
        self.mode = mode


class Convolve(_Convolve):
    def forward(self, x, y):
        return AF.convolve(x, y, self.mode)


class FFTConvolve(_Convolve):
    def forward(self, x, y):
        return AF.fftconvolve(x, y, self.mode)


class Speed(nn.Module):
    def __init__(self, orig_freq, factor):
        super().__init__()
        self.orig_freq, self.factor = orig_freq, factor
        self.source_sample_rate = int(factor * orig_freq)
        self.target_sample_rate = int(orig_freq)

    def forward(self, waveform, lengths=None):
        return AF.speed(waveform, self.orig_freq, self.factor, lengths)


class AddNoise(nn.Module):
    def forward(self, waveform, noise, snr, lengths=None):
        return AF.add_noise(waveform, noise, snr, lengths)


class Preemphasis(nn.Module):
    def __init__(self, coeff: float = 0.97):
        super().__init__()
        self.coeff = coeff

    def forward(self, waveform):
        return AF.preemphasis(waveform, self.coeff)


class Deemphasis(nn.Module):
    def __init__(self, coeff: float = 0.97):
        super().__init__()
        self.coeff = coeff

    def forward(self, waveform):
        return AF.deemphasis(waveform, self.coeff)


class Vad(nn.Module):
    """Trim leading silence (functional.vad with these settings)."""

    def __init__(self, sample_rate: int, trigger_level: float = 7.0,
                 trigger_time: float = 0.25, search_time: float = 1.0,
                 allowed_gap: float = 0.25, pre_trigger_time: float = 0.0,
                 boot_time: float = 0.35, noise_up_time: float = 0.1,
                 noise_down_time: float = 0.01, noise_reduction_amount: float = 1.35,
                 measure_freq: float = 20.0, measure_duration: float | None = None,
                 measure_smooth_time: float = 0.4, hp_filter_freq: float = 50.0,
                 lp_filter_freq: float = 6000.0, hp_lifter_freq: float = 150.0,
                 lp_lifter_freq: float = 2000.0):
        super().__init__()
        self.sample_rate = sample_rate
        self.settings = dict(
            trigger_level=trigger_level, trigger_time=trigger_time, search_time=search_time,
            allowed_gap=allowed_gap, pre_trigger_time=pre_trigger_time, boot_time=boot_time,
            noise_up_time=noise_up_time, noise_down_time=noise_down_time,
            noise_reduction_amount=noise_reduction_amount, measure_freq=measure_freq,
            measure_duration=measure_duration, measure_smooth_time=measure_smooth_time,
            hp_filter_freq=hp_filter_freq, lp_filter_freq=lp_filter_freq,
            hp_lifter_freq=hp_lifter_freq, lp_lifter_freq=lp_lifter_freq)
        for name, value in self.settings.items():
            setattr(self, name, value)

    def forward(self, waveform):
        return AF.vad(waveform, self.sample_rate, **self.settings)


class SpecAugment(nn.Module):
    """SpecAugment (Park et al. 2019): n_time_masks time bands, then n_freq_masks
    frequency bands, filled with zeros or the spectrogram's mean; independent per example
    and channel with iid_masks (inputs of 3 or more dims)."""

    def __init__(self, n_time_masks: int, time_mask_param: int, n_freq_masks: int,
                 freq_mask_param: int, iid_masks: bool = True, p: float = 1.0,
                 zero_masking: bool = False, generator=None):
        super().__init__()
        self.n_time_masks, self.time_mask_param = n_time_masks, time_mask_param
        self.n_freq_masks, self.freq_mask_param = n_freq_masks, freq_mask_param
        self.iid_masks, self.p, self.zero_masking = iid_masks, p, zero_masking
        self.generator = generator

    def forward(self, specgram):
        value = 0.0 if self.zero_masking else specgram.mean()
        iid = self.iid_masks and specgram.ndim > 2
        mask = AF.mask_along_axis_iid if iid else AF.mask_along_axis
        if not iid and isinstance(value, ember.Tensor):
            value = float(value.item())
        for _ in range(self.n_time_masks):
            specgram = mask(specgram, self.time_mask_param, value, -1, self.p, self.generator)
        for _ in range(self.n_freq_masks):
            specgram = mask(specgram, self.freq_mask_param, value, -2, self.p, self.generator)
        return specgram


class SpeedPerturbation(nn.Module):
    """Speed by one of `factors`, drawn uniformly per call (Ko et al. 2015)."""

    def __init__(self, orig_freq: int, factors, generator=None):
        super().__init__()
        self.speeders = nn.ModuleList([Speed(orig_freq, factor) for factor in factors])
        self.generator = generator

    def forward(self, waveform, lengths=None):
        idx = int(ember.randint(len(self.speeders), (), generator=self.generator).item())
        return self.speeders[idx](waveform, lengths)


class PSD(nn.Module):
    """Spatial covariance per frequency, (..., channel, freq, time) -> (..., freq, channel,
    channel); a per-channel mask (multi_mask) is averaged over channels first."""

    def __init__(self, multi_mask: bool = False, normalize: bool = True, eps: float = 1e-15):
        super().__init__()
        self.multi_mask, self.normalize, self.eps = multi_mask, normalize, eps

    def forward(self, specgram, mask=None):
        if mask is not None and self.multi_mask:
            mask = mask.mean(-3)
        return AF.psd(specgram, mask, self.normalize, self.eps)


class RTFMVDR(nn.Module):
    """MVDR beamforming from a relative transfer function and the noise PSD."""

    def forward(self, specgram, rtf, psd_n, reference_channel, diagonal_loading: bool = True,
                diag_eps: float = 1e-7, eps: float = 1e-8):
        weights = AF.mvdr_weights_rtf(rtf, psd_n, reference_channel, diagonal_loading,
                                      diag_eps, eps)
        return AF.apply_beamforming(weights, specgram)


class SoudenMVDR(nn.Module):
    """MVDR beamforming from the speech and noise PSDs (Souden's solution)."""

    def forward(self, specgram, psd_s, psd_n, reference_channel,
                diagonal_loading: bool = True, diag_eps: float = 1e-7, eps: float = 1e-8):
        weights = AF.mvdr_weights_souden(psd_s, psd_n, reference_channel, diagonal_loading,
                                         diag_eps, eps)
        return AF.apply_beamforming(weights, specgram)
