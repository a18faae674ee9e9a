"""torchaudio.transforms against torchaudio 2.11's modules built with the same arguments:
values, buffer names (state_dict keys), batch consistency and float64 gradients, in the
manner of torchaudio's transforms_test_impl.py, batch_consistency and autograd tests
(re-expressed in our words)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ember
import ember.audio.transforms as AT
from tests.domain_oracles import import_torchaudio

torchaudio = import_torchaudio()
pytestmark = pytest.mark.skipif(torchaudio is None, reason="torchaudio is not installed")
TT = torchaudio.transforms if torchaudio is not None else None


def _wave(seed, shape, amp=0.5):
    return np.random.default_rng(seed).uniform(-amp, amp, shape)


def _close(got, want, atol=1e-9, rtol=1e-7):
    np.testing.assert_allclose(got.detach().numpy(),
                               want.detach().resolve_conj().numpy(), atol=atol, rtol=rtol)


def _f64(lib):
    return {"dtype": lib.float64}


def _pair(name, *args, **kwargs):
    """The ember and torchaudio modules (float64 windows where the transform has one)."""
    return getattr(AT, name)(*args, **kwargs), getattr(TT, name)(*args, **kwargs)


def _run(name, x, ctor_args=(), ctor_kwargs=None, ember_kw=None, torch_kw=None, atol=1e-9,
         rtol=1e-7, call_args=()):
    ctor_kwargs = ctor_kwargs or {}
    e = getattr(AT, name)(*ctor_args, **{**ctor_kwargs, **(ember_kw or {})})
    t = getattr(TT, name)(*ctor_args, **{**ctor_kwargs, **(torch_kw or {})})
    got = e(ember.tensor(x), *call_args)
    want = t(torch.tensor(x), *call_args)
    _close(got, want, atol, rtol)
    return e, t


SPEC_KWARGS = [
    dict(n_fft=64), dict(n_fft=64, hop_length=16, win_length=48, power=1.0),
    dict(n_fft=32, power=None, normalized=True), dict(n_fft=50, pad=3, center=False),
    dict(n_fft=40, onesided=False, power=2.0), dict(n_fft=32, pad_mode="constant",
                                                    normalized="frame_length"),
    dict(n_fft=48, window_fn="hamming_window", power=1.5)]


def _spec_kwargs(lib, kw):
    kw = dict(kw)
    kw["wkwargs"] = _f64(lib)
    if "window_fn" in kw:
        kw["window_fn"] = getattr(lib, kw["window_fn"])
    elif lib is ember:
        kw["window_fn"] = ember.hann_window
    return kw


@pytest.mark.parametrize("kw", SPEC_KWARGS)
def test_spectrogram(kw):
    x = _wave(0, (2, 300))
    e = AT.Spectrogram(**_spec_kwargs(ember, kw))
    t = TT.Spectrogram(**_spec_kwargs(torch, kw))
    _close(e(ember.tensor(x)), t(torch.tensor(x)))
    assert sorted(e.state_dict()) == sorted(t.state_dict())


@pytest.mark.parametrize("kw", [dict(n_fft=32), dict(n_fft=32, hop_length=8, normalized=True),
                                dict(n_fft=40, win_length=30, hop_length=10, pad=2)])
def test_inverse_spectrogram(kw):
    x = _wave(1, (2, 200))
    e = AT.InverseSpectrogram(**kw, wkwargs=_f64(ember))
    t = TT.InverseSpectrogram(**kw, wkwargs=_f64(torch))
    spec = TT.Spectrogram(power=None, **kw, wkwargs=_f64(torch))(torch.tensor(x))
    _close(e(ember.tensor(spec.numpy()), 200), t(spec, 200))
    _close(e(ember.tensor(spec.numpy()), 200), torch.tensor(x), atol=1e-9)


def test_griffinlim_without_random_init():
    x = _wave(2, (120,))
    kw = dict(n_fft=32, hop_length=8, n_iter=3, rand_init=False)
    spec = TT.Spectrogram(32, hop_length=8, wkwargs=_f64(torch))(torch.tensor(x))
    e = AT.GriffinLim(**kw, wkwargs=_f64(ember))
    t = TT.GriffinLim(**kw, wkwargs=_f64(torch))
    _close(e(ember.tensor(spec.numpy())), t(spec), atol=1e-7)


@pytest.mark.parametrize("kw", [
    dict(sample_rate=16000, n_fft=128, n_mels=20),
    dict(sample_rate=8000, n_fft=64, n_mels=16, f_min=50.0, f_max=3500.0, norm="slaney",
         mel_scale="slaney"),
    dict(sample_rate=16000, n_fft=100, hop_length=25, n_mels=12, power=1.0),
    dict(sample_rate=22050, n_fft=128, n_mels=24, normalized=True, center=False)])
def test_mel_spectrogram(kw):
    x = _wave(3, (2, 400))
    e = AT.MelSpectrogram(**kw, wkwargs=_f64(ember))
    t = TT.MelSpectrogram(**kw, wkwargs=_f64(torch)).double()
    _close(e(ember.tensor(x)), t(torch.tensor(x)), atol=1e-6, rtol=1e-5)
    assert sorted(e.state_dict()) == sorted(t.state_dict())


@pytest.mark.parametrize("n_stft,kw", [(65, dict(n_mels=16, sample_rate=16000)),
                                       (33, dict(n_mels=10, sample_rate=8000, f_min=100.0,
                                                 norm="slaney", mel_scale="slaney"))])
def test_mel_scale(n_stft, kw):
    spec = np.random.default_rng(4).random((2, n_stft, 7))
    e, t = AT.MelScale(n_stft=n_stft, **kw), TT.MelScale(n_stft=n_stft, **kw).double()
    _close(e(ember.tensor(spec)), t(torch.tensor(spec)), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("n_stft,n_mels", [(33, 16), (65, 20), (17, 24)])
def test_inverse_mel_scale(n_stft, n_mels):
    spec = np.random.default_rng(5).random((2, n_stft, 6))
    mel = TT.MelScale(n_mels, 16000, n_stft=n_stft).double()(torch.tensor(spec))
    e = AT.InverseMelScale(n_stft, n_mels, 16000)
    t = TT.InverseMelScale(n_stft, n_mels, 16000, driver="gelsd").double()
    # the same filters on both sides (the least-squares solution amplifies the ~1e-6
    # float32 differences between ember's and torchaudio's filter values)
    e.load_state_dict({"fb": ember.tensor(t.fb.float().numpy())})
    t.fb = t.fb.float().double()
    _close(e(ember.tensor(mel.numpy())), t(mel), atol=1e-6, rtol=1e-5)


def test_inverse_mel_scale_errors():
    with pytest.raises(ValueError, match="driver"):
        AT.InverseMelScale(17, 8, driver="lu")
    with pytest.raises(ValueError, match="mel bins"):
        AT.InverseMelScale(17, 8)(ember.ones(9, 3))


@pytest.mark.parametrize("kw", [
    dict(sample_rate=16000, n_mfcc=13, melkwargs=dict(n_fft=128, n_mels=20)),
    dict(sample_rate=16000, n_mfcc=20, log_mels=True, melkwargs=dict(n_fft=128, n_mels=20)),
    dict(sample_rate=8000, n_mfcc=10, norm=None, melkwargs=dict(n_fft=64, n_mels=16,
                                                                hop_length=16))])
def test_mfcc(kw):
    x = _wave(6, (2, 400))
    e, t = AT.MFCC(**kw), TT.MFCC(**kw)
    got = e(ember.tensor(x.astype(np.float32)))
    want = t(torch.tensor(x.astype(np.float32)))
    _close(got, want, atol=2e-3, rtol=1e-4)
    assert sorted(e.state_dict()) == sorted(t.state_dict())


@pytest.mark.parametrize("kw", [
    dict(sample_rate=16000, n_filter=20, n_lfcc=13, speckwargs=dict(n_fft=128)),
    dict(sample_rate=16000, n_filter=24, n_lfcc=20, log_lf=True,
         speckwargs=dict(n_fft=64, hop_length=16)),
    dict(sample_rate=8000, n_filter=16, n_lfcc=8, f_min=100.0, f_max=3000.0, norm=None,
         speckwargs=dict(n_fft=64))])
def test_lfcc(kw):
    x = _wave(7, (2, 400)).astype(np.float32)
    e, t = AT.LFCC(**kw), TT.LFCC(**kw)
    _close(e(ember.tensor(x)), t(torch.tensor(x)), atol=2e-3, rtol=1e-4)
    assert sorted(e.state_dict()) == sorted(t.state_dict())


def test_lfcc_too_many_coefficients():
    with pytest.raises(ValueError, match="LFCC"):
        AT.LFCC(n_lfcc=100, speckwargs=dict(n_fft=64))


@pytest.mark.parametrize("name,kw", [
    ("MelSpectrogram", dict(sample_rate=8000, n_fft=64, n_mels=12)),
    ("MFCC", dict(sample_rate=8000, n_mfcc=8, melkwargs=dict(n_fft=64, n_mels=12))),
    ("LFCC", dict(sample_rate=8000, n_filter=12, n_lfcc=8, speckwargs=dict(n_fft=64))),
    ("SpectralCentroid", dict(sample_rate=8000, n_fft=64))])
def test_transform_gradients(name, kw):
    x = _wave(8, (2, 160))
    e = getattr(AT, name)(**kw).double()
    t = getattr(TT, name)(**kw).double()
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    got, want = e(ex), t(tx)
    c = _wave(9, tuple(want.shape), 1.0)
    (got * ember.tensor(c)).sum().backward()
    (want * torch.tensor(c)).sum().backward()
    # filter banks and DCT differ by float32 rounding (computed in float64 here)
    _close(ex.grad, tx.grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("stype,top_db", [("power", None), ("magnitude", None),
                                          ("power", 80.0), ("magnitude", 40.0)])
@pytest.mark.parametrize("shape", [(10, 20), (2, 10, 20), (2, 3, 10, 20)])
def test_amplitude_to_db(stype, top_db, shape):
    x = np.random.default_rng(10).random(shape) ** 3
    _run("AmplitudeToDB", x, (stype, top_db))


@pytest.mark.parametrize("orig,new", [(16000, 8000), (8000, 12000), (44100, 22050)])
@pytest.mark.parametrize("method", ["sinc_interp_hann", "sinc_interp_kaiser"])
def test_resample(orig, new, method):
    x = _wave(11, (2, 300)).astype(np.float32)
    _run("Resample", x, (orig, new, method), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rate", [0.8, 1.2])
def test_time_stretch(rate):
    spec = TT.Spectrogram(64, hop_length=16, power=None)(torch.tensor(_wave(12, (2, 400))))
    e = AT.TimeStretch(hop_length=16, n_freq=33, fixed_rate=rate)
    t = TT.TimeStretch(hop_length=16, n_freq=33, fixed_rate=rate)
    _close(e(ember.tensor(spec.numpy())), t(spec), atol=1e-8)
    _close(e(ember.tensor(spec.numpy()), 1.5), t(spec, 1.5), atol=1e-8)


@pytest.mark.parametrize("shape", ["linear", "exponential", "logarithmic", "quarter_sine",
                                   "half_sine"])
@pytest.mark.parametrize("fade_in,fade_out", [(0, 0), (30, 0), (0, 50), (40, 60), (100, 100)])
def test_fade(shape, fade_in, fade_out):
    x = _wave(13, (2, 100)).astype(np.float32)
    _run("Fade", x, (fade_in, fade_out, shape), atol=1e-6, rtol=1e-5)


def test_fade_batch_consistency_and_gradient():
    x = _wave(14, (3, 80)).astype(np.float32)
    fade = AT.Fade(20, 30, "half_sine")
    batched = fade(ember.tensor(x))
    for i in range(3):
        np.testing.assert_allclose(batched[i].numpy(), fade(ember.tensor(x[i])).numpy())
    ex = ember.tensor(x, requires_grad=True)
    fade(ex).sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), TT.Fade(20, 30, "half_sine")(
        torch.ones(3, 80)).numpy(), atol=1e-6)


@pytest.mark.parametrize("gain,gain_type", [(2.0, "amplitude"), (0.3, "amplitude"),
                                            (6.0, "db"), (-6.0, "db"), (2.0, "power"),
                                            (0.5, "power")])
def test_vol(gain, gain_type):
    _run("Vol", _wave(15, (2, 64), 0.9), (gain, gain_type))


def test_vol_negative_gain():
    with pytest.raises(ValueError, match="positive"):
        AT.Vol(-1.0)


@pytest.mark.parametrize("kw", [dict(), dict(cmn_window=10, min_cmn_window=4),
                                dict(cmn_window=8, center=True, norm_vars=True)])
def test_sliding_window_cmn(kw):
    _run("SlidingWindowCmn", _wave(16, (2, 30, 5), 2.0), ctor_kwargs=kw)


@pytest.mark.parametrize("kw", [dict(sample_rate=8000, n_fft=64),
                                dict(sample_rate=16000, n_fft=100, hop_length=30, pad=2)])
def test_spectral_centroid(kw):
    x = _wave(17, (2, 400))
    e = AT.SpectralCentroid(**kw, wkwargs=_f64(ember))
    t = TT.SpectralCentroid(**kw, wkwargs=_f64(torch))
    _close(e(ember.tensor(x)), t(torch.tensor(x)), atol=1e-8)


@pytest.mark.parametrize("n_steps", [3, -2])
def test_pitch_shift(n_steps):
    x = _wave(18, (2, 600)).astype(np.float32)
    e = AT.PitchShift(1000, n_steps, n_fft=64)
    t = TT.PitchShift(1000, n_steps, n_fft=64)
    _close(e(ember.tensor(x)), t(torch.tensor(x)), atol=5e-4, rtol=1e-3)


def test_loudness():
    t = np.arange(2000) / 4000
    x = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 660 * t)])
    _run("Loudness", x, (4000,), atol=1e-7)


@pytest.mark.parametrize("channels", [2, 256])
def test_mu_law_modules(channels):
    x = np.clip(_wave(19, (2, 100), 1.0), -1, 1)
    enc = AT.MuLawEncoding(channels)(ember.tensor(x))
    want = TT.MuLawEncoding(channels)(torch.tensor(x))
    np.testing.assert_array_equal(enc.numpy(), want.numpy())
    _close(AT.MuLawDecoding(channels)(enc), TT.MuLawDecoding(channels)(want), atol=1e-6)


@pytest.mark.parametrize("win_length,mode", [(5, "replicate"), (3, "constant")])
def test_compute_deltas(win_length, mode):
    _run("ComputeDeltas", _wave(20, (2, 8, 20)), (win_length, mode))


@pytest.mark.parametrize("name", ["Convolve", "FFTConvolve"])
@pytest.mark.parametrize("mode", ["full", "valid", "same"])
def test_convolve_modules(name, mode):
    x, y = _wave(21, (2, 40)), _wave(22, (2, 9))
    e, t = _pair(name, mode)
    _close(e(ember.tensor(x), ember.tensor(y)), t(torch.tensor(x), torch.tensor(y)))


def test_speed_module():
    x = _wave(23, (2, 200)).astype(np.float32)
    e, t = _pair("Speed", 1000, 1.25)
    got, got_len = e(ember.tensor(x), ember.tensor([200, 150]))
    want, want_len = t(torch.tensor(x), torch.tensor([200, 150]))
    _close(got, want, atol=1e-6, rtol=1e-5)
    np.testing.assert_array_equal(got_len.numpy(), want_len.numpy())


def test_add_noise_module():
    x, n = _wave(24, (2, 50)), _wave(25, (2, 50), 0.1)
    got = AT.AddNoise()(ember.tensor(x), ember.tensor(n), ember.tensor([5.0, 10.0]))
    want = TT.AddNoise()(torch.tensor(x), torch.tensor(n), torch.tensor([5.0, 10.0]))
    _close(got, want)


@pytest.mark.parametrize("coeff", [0.97, 0.6])
def test_emphasis_modules(coeff):
    x = _wave(26, (2, 50))
    _run("Preemphasis", x, (coeff,))
    _run("Deemphasis", x, (coeff,))


@pytest.mark.parametrize("name,param", [("FrequencyMasking", 8), ("TimeMasking", 10)])
@pytest.mark.parametrize("iid", [False, True])
def test_masking_is_seeded_and_bounded(name, param, iid):
    x = ember.ones(3, 2, 20, 30)

    def make():
        return getattr(AT, name)(param, iid, generator=ember.Generator().manual_seed(7))
    a, b = make()(x), make()(x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    zeros = a.numpy() == 0
    axis = 2 if name == "FrequencyMasking" else 3
    band = zeros.any(axis=5 - axis)                          # [3, 2, axis length]
    widths = band.sum(-1)
    assert (widths <= param).all()
    if not iid:
        assert (widths == widths.flat[0]).all()             # one band for the batch


def test_time_masking_p_limits_width():
    x = ember.ones(1, 20, 30)
    ember.manual_seed(1)
    for _ in range(5):
        out = AT.TimeMasking(25, p=0.2)(x).numpy()
        assert (out[0, 0] == 0).sum() <= 6


def test_transform_modules_compile():
    """The deterministic transforms trace into one graph: compiled equals eager."""
    x = ember.tensor(_wave(27, (2, 400)).astype(np.float32))
    for module in [AT.LFCC(sample_rate=8000, n_filter=12, n_lfcc=8, speckwargs=dict(n_fft=64)),
                   AT.Fade(40, 40, "quarter_sine"), AT.Vol(3.0, "db"), AT.Preemphasis()]:
        compiled = ember.compile(module)
        np.testing.assert_allclose(compiled(x).numpy(), module(x).numpy(), rtol=1e-4,
                                   atol=1e-4)


def test_docstring_style_phase_advance_buffer():
    e = AT.TimeStretch(hop_length=16, n_freq=33)
    np.testing.assert_allclose(e.phase_advance.numpy()[-1, 0], math.pi * 16, rtol=1e-6)


def _bands(masked, axis):
    """Per leading index, the masked lines along axis (-2 freq, -1 time) of a boolean
    (..., freq, time) mask: lines fully masked."""
    return masked.all(axis=-1) if axis == -2 else masked.all(axis=-2)


@pytest.mark.parametrize("shape", [(2, 20, 30), (2, 3, 20, 30)])
@pytest.mark.parametrize("iid", [True, False])
@pytest.mark.parametrize("zero", [True, False])
def test_spec_augment(shape, iid, zero):
    x = ember.tensor(np.random.default_rng(28).random(shape) + 1.0)
    aug = AT.SpecAugment(2, 6, 2, 4, iid_masks=iid, zero_masking=zero,
                         generator=ember.Generator().manual_seed(5))
    out = aug(x).numpy()
    again = AT.SpecAugment(2, 6, 2, 4, iid_masks=iid, zero_masking=zero,
                           generator=ember.Generator().manual_seed(5))(x).numpy()
    np.testing.assert_array_equal(out, again)
    fill = 0.0 if zero else float(x.mean().item())
    masked = out == fill
    kept = ~masked
    np.testing.assert_array_equal(out[kept], x.numpy()[kept])
    lead = masked.reshape(-1, 20, 30)
    for m in lead:
        assert _bands(m, -1).sum() <= 12 and _bands(m, -2).sum() <= 8
        assert (m == (_bands(m, -1)[None, :] | _bands(m, -2)[:, None])).all()
    if not iid:
        assert (lead == lead[0]).all()


def test_spec_augment_without_masks_is_identity_like_torchaudio():
    x = np.random.default_rng(29).random((2, 10, 12))
    got = AT.SpecAugment(0, 5, 0, 5)(ember.tensor(x))
    want = TT.SpecAugment(0, 5, 0, 5)(torch.tensor(x))
    _close(got, want)
    _close(AT.SpecAugment(2, 5, 2, 5, p=0.0)(ember.tensor(x)),
           TT.SpecAugment(2, 5, 2, 5, p=0.0)(torch.tensor(x)))


def test_iid_masking_of_a_3d_input_draws_per_channel():
    x = ember.ones(6, 20, 30)
    out = AT.TimeMasking(20, iid_masks=True, generator=ember.Generator().manual_seed(2))(x)
    widths = (out.numpy() == 0).all(axis=1).sum(-1)
    assert len(set(widths.tolist())) > 1


def test_mask_value_tensor_and_errors():
    import ember.audio.functional as AF
    x = ember.ones(2, 8, 10)
    out = AF.mask_along_axis_iid(x, 5, ember.tensor(-3.0), 2,
                                 generator=ember.Generator().manual_seed(0))
    assert set(np.unique(out.numpy()).tolist()) <= {1.0, -3.0}
    for args, kwargs in [((5, 0.0, 0), {}), ((5, 0.0, 2), {"p": 1.5})]:
        with pytest.raises(ValueError):
            AF.mask_along_axis_iid(x, *args, **kwargs)
        with pytest.raises(ValueError):
            torchaudio.functional.mask_along_axis_iid(torch.ones(2, 8, 10), *args, **kwargs)
    with pytest.raises(ValueError, match="three dimensions"):
        AF.mask_along_axis_iid(ember.ones(8, 10), 5, 0.0, 1)


def test_speed_perturbation_picks_one_of_the_factors():
    x = ember.tensor(_wave(30, (2, 200)).astype(np.float32))
    lengths = {int(AT.Speed(1000, f)(x)[0].shape[-1]) for f in (0.9, 1.0, 1.1)}
    seen = set()
    pert = AT.SpeedPerturbation(1000, [0.9, 1.0, 1.1],
                                generator=ember.Generator().manual_seed(3))
    for _ in range(12):
        out, _ = pert(x)
        seen.add(int(out.shape[-1]))
    assert seen <= lengths and len(seen) > 1


@pytest.mark.parametrize("make", [
    lambda: AT.MelSpectrogram(8000, n_fft=64, n_mels=12),
    lambda: AT.MFCC(8000, n_mfcc=8, melkwargs=dict(n_fft=64, n_mels=12)),
    lambda: AT.LFCC(8000, n_filter=12, n_lfcc=8, speckwargs=dict(n_fft=64)),
    lambda: AT.Resample(8000, 6000), lambda: AT.SpectralCentroid(8000, n_fft=64),
    lambda: AT.Fade(30, 40, "logarithmic"), lambda: AT.Vol(0.5, "power"),
    lambda: AT.Loudness(4000), lambda: AT.Preemphasis(0.9), lambda: AT.Deemphasis(0.9),
    lambda: AT.PitchShift(1000, 2, n_fft=64)],
    ids=["mel", "mfcc", "lfcc", "resample", "centroid", "fade", "vol", "loudness", "pre",
         "de", "pitch"])
def test_batch_consistency(make):
    """A batch of (channel, time) signals equals each transformed alone."""
    module = make()
    x = ember.tensor(_wave(31, (3, 2, 2000), 0.3).astype(np.float32))
    batched = module(x)
    for i in range(3):
        np.testing.assert_allclose(batched[i].numpy(), module(x[i]).numpy(), rtol=1e-5,
                                   atol=1e-5)


def _grad_check(e_fn, t_fn, *arrays, atol=1e-8, rtol=1e-6):
    es = [ember.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    got, want = e_fn(*es), t_fn(*ts)
    c = np.random.default_rng(41).standard_normal(tuple(want.shape))
    if want.is_complex():
        c = c + 1j * np.random.default_rng(42).standard_normal(tuple(want.shape))
    (got * ember.tensor(c).conj()).real.sum().backward() if want.is_complex() else \
        (got * ember.tensor(c)).sum().backward()
    (want * torch.tensor(c).conj()).real.sum().backward() if want.is_complex() else \
        (want * torch.tensor(c)).sum().backward()
    for e, t in zip(es, ts):
        _close(e.grad, t.grad, atol=atol, rtol=rtol)


@pytest.mark.parametrize("case", ["amplitude_to_db", "vol", "mel_scale", "inverse_mel_scale",
                                  "speed", "inverse_spectrogram", "frechet", "mu_law_decoding",
                                  "griffinlim", "time_masking"])
def test_more_gradients_match_torchaudio(case):
    rng = np.random.default_rng(43)
    if case == "amplitude_to_db":
        x = rng.random((2, 10, 12)) + 0.01
        _grad_check(AT.AmplitudeToDB("magnitude", 30.0), TT.AmplitudeToDB("magnitude", 30.0), x)
    elif case == "vol":
        x = rng.uniform(-0.4, 0.4, (2, 30))
        _grad_check(AT.Vol(6.0, "db"), TT.Vol(6.0, "db"), x)
    elif case == "mel_scale":
        x = rng.random((2, 33, 5))
        _grad_check(AT.MelScale(10, 8000, n_stft=33), TT.MelScale(10, 8000, n_stft=33).double(),
                    x, atol=1e-6, rtol=1e-4)
    elif case == "inverse_mel_scale":
        x = rng.random((2, 10, 4))
        e, t = AT.InverseMelScale(17, 10, 8000), TT.InverseMelScale(17, 10, 8000,
                                                                      driver="gelsd").double()
        e.load_state_dict({"fb": ember.tensor(t.fb.float().numpy())})
        t.fb = t.fb.float().double()
        _grad_check(e, t, x, atol=1e-6, rtol=1e-5)
    elif case == "speed":
        x = rng.uniform(-0.4, 0.4, (2, 100))
        _grad_check(lambda w: AT.Speed(1000, 1.25)(w)[0],
                    lambda w: torchaudio.functional.speed(w, 1000, 1.25)[0], x)
    elif case == "inverse_spectrogram":
        spec = TT.Spectrogram(32, power=None, wkwargs=_f64(torch))(
            torch.tensor(rng.uniform(-0.4, 0.4, (2, 100)))).numpy()
        _grad_check(lambda s: AT.InverseSpectrogram(32, wkwargs=_f64(ember))(s, 100),
                    lambda s: TT.InverseSpectrogram(32, wkwargs=_f64(torch))(s, 100), spec)
    elif case == "frechet":
        a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
        _grad_check(lambda mx, sx, my, sy: ember.audio.functional.frechet_distance(mx, sx, my, sy),
                    torchaudio.functional.frechet_distance, rng.standard_normal(3),
                    a @ a.T + np.eye(3), rng.standard_normal(3), b @ b.T + np.eye(3),
                    atol=1e-7, rtol=1e-5)
    elif case == "mu_law_decoding":
        x = rng.uniform(0, 255, (2, 20))
        _grad_check(AT.MuLawDecoding(256), TT.MuLawDecoding(256), x)
    elif case == "griffinlim":
        spec = rng.random((17, 8)) + 0.1
        _grad_check(AT.GriffinLim(32, n_iter=2, rand_init=False, wkwargs=_f64(ember)),
                    TT.GriffinLim(32, n_iter=2, rand_init=False, wkwargs=_f64(torch)), spec,
                    atol=1e-6, rtol=1e-5)
    else:
        x = rng.random((2, 10, 12))
        _grad_check(lambda s: AT.TimeMasking(0)(s), lambda s: TT.TimeMasking(0)(s), x)


_TWICE = {
    "spectrogram": lambda w: AT.Spectrogram(16, hop_length=8, wkwargs=_f64(ember))(w),
    "mel_spectrogram": lambda w: AT.MelSpectrogram(8000, n_fft=16, hop_length=8,
                                                   n_mels=4).double()(w),
    "resample": lambda w: ember.audio.functional.resample(w, 4, 3),
    "compute_deltas": lambda w: ember.audio.functional.compute_deltas(w),
    "fftconvolve": lambda w: ember.audio.functional.fftconvolve(w, w[..., :5]),
    "convolve": lambda w: ember.audio.functional.convolve(w, w[..., :5], "same"),
    "overdrive": lambda w: ember.audio.functional.overdrive(w * 0.1, 5, 10),
    "deemphasis": lambda w: ember.audio.functional.deemphasis(w * 0.1),
    "spectral_centroid": lambda w: AT.SpectralCentroid(8000, n_fft=16, hop_length=8,
                                                       wkwargs=_f64(ember))(w),
    "inverse_spectrogram": lambda w: AT.InverseSpectrogram(16, hop_length=4,
                                                           wkwargs=_f64(ember))(
        AT.Spectrogram(16, hop_length=4, power=None, wkwargs=_f64(ember))(w), 40),
}


@pytest.mark.parametrize("name", sorted(_TWICE))
def test_second_derivatives(name):
    """gradcheck and gradgradcheck (torchaudio's autograd tests run both)."""
    x = ember.tensor(_wave(45, (1, 40)), requires_grad=True)
    assert ember.autograd.gradcheck(_TWICE[name], (x,))
    assert ember.autograd.gradgradcheck(_TWICE[name], (x,))
