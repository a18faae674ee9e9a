"""torchaudio.functional's filters and effects against torchaudio 2.11 (imported without its
C++ extension, so its pure-Python loops are the oracle): lfilter (orders, one or many
filters, batching, clamp, gradients in the waveform and both coefficient tensors),
filtfilt, the biquad family with float and tensor parameters, SoX effects, and batch
consistency (a batch equals its items filtered one by one). Cases of the kind
torchaudio's functional_impl.py, batch_consistency and autograd tests run, in our words."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.audio.functional as AF
from tests.domain_oracles import import_torchaudio

torchaudio = import_torchaudio()
pytestmark = pytest.mark.skipif(torchaudio is None, reason="torchaudio is not installed")
TF = torchaudio.functional if torchaudio is not None else None


def _recursion_leaving_input(windows, a_flipped, padded_out):
    """torchaudio's all-pole loop for when its extension is missing subtracts into its
    input (the FIR output, which autograd saved), so the oracle's backward raises; the
    extension's loop leaves the input alone. This is that loop, leaving it alone."""
    order = a_flipped.size(1)
    for i, x in enumerate(windows.permute(2, 0, 1)):
        past = padded_out[:, :, i:i + order]
        padded_out[:, :, i + order - 1] = x - (past.transpose(0, 1) @ a_flipped.unsqueeze(2)
                                               )[..., 0].t()


if torchaudio is not None:
    import torchaudio.functional.filtering as _ta_filtering
    _ta_filtering._lfilter_core_loop = _recursion_leaving_input


def _wave(seed, shape, amp=0.5):
    return np.random.default_rng(seed).uniform(-amp, amp, shape)


def _both(name, x, *args, **kwargs):
    got = getattr(AF, name)(ember.tensor(x), *args, **kwargs)
    want = getattr(TF, name)(torch.tensor(x), *args, **kwargs)
    return got, want


def _close(got, want, atol=1e-10):
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), atol=atol,
                               rtol=max(atol, 1e-9))


def _stable_coeffs(seed, order, filters=None):
    """Coefficients of a stable filter (poles inside radius 0.9), a0 not 1."""
    rng = np.random.default_rng(seed)
    shape = (order,) if filters is None else (filters, order)

    def one():
        poles = 0.9 * rng.uniform(0.1, 1.0, order - 1) * np.exp(
            1j * rng.uniform(0, np.pi, order - 1))
        a = np.real(np.poly(np.concatenate([poles, poles.conj()])[:order - 1]))
        return a * rng.uniform(0.5, 2.0), rng.uniform(-1, 1, order)
    pairs = [one() for _ in range(1 if filters is None else filters)]
    a = np.stack([p[0] for p in pairs]).reshape(shape)
    b = np.stack([p[1] for p in pairs]).reshape(shape)
    return a, b


# --- lfilter ----------------------------------------------------------------------------
@pytest.mark.parametrize("order", [1, 2, 3, 5])
@pytest.mark.parametrize("shape", [(60,), (2, 60), (2, 3, 60)])
@pytest.mark.parametrize("clamp", [True, False])
def test_lfilter_one_filter(order, shape, clamp):
    a, b = _stable_coeffs(order, order)
    x = _wave(order, shape)
    got = AF.lfilter(ember.tensor(x), ember.tensor(a), ember.tensor(b), clamp=clamp)
    want = TF.lfilter(torch.tensor(x), torch.tensor(a), torch.tensor(b), clamp=clamp)
    _close(got, want)


@pytest.mark.parametrize("batching", [True, False])
@pytest.mark.parametrize("shape", [(3, 50), (2, 3, 50)])
def test_lfilter_many_filters(batching, shape):
    a, b = _stable_coeffs(10, 3, filters=3)
    x = _wave(11, shape)
    got = AF.lfilter(ember.tensor(x), ember.tensor(a), ember.tensor(b), batching=batching)
    want = TF.lfilter(torch.tensor(x), torch.tensor(a), torch.tensor(b), batching=batching)
    assert tuple(got.shape) == tuple(want.shape)
    _close(got, want)


def test_lfilter_float32():
    a, b = _stable_coeffs(12, 3)
    x = _wave(13, (2, 80)).astype(np.float32)
    got = AF.lfilter(ember.tensor(x), ember.tensor(a.astype(np.float32)),
                     ember.tensor(b.astype(np.float32)))
    want = TF.lfilter(torch.tensor(x), torch.tensor(a.astype(np.float32)),
                      torch.tensor(b.astype(np.float32)))
    assert got.dtype == ember.float32
    _close(got, want, atol=1e-5)


def test_lfilter_pure_fir_and_pure_delay():
    x = _wave(14, (2, 30))
    got = AF.lfilter(ember.tensor(x), ember.tensor([1.0, 0.0, 0.0]),
                     ember.tensor([0.0, 0.0, 1.0]), clamp=False)
    np.testing.assert_allclose(got.numpy()[:, 2:], x[:, :-2], atol=1e-15)
    np.testing.assert_allclose(got.numpy()[:, :2], 0.0)


@pytest.mark.parametrize("order,filters", [(2, None), (3, None), (3, 2)])
def test_lfilter_gradients(order, filters):
    a, b = _stable_coeffs(15 + order, order, filters)
    x = _wave(16, (2, 2, 40) if filters else (2, 40))
    ex, ea, eb = (ember.tensor(v, requires_grad=True) for v in (x, a, b))
    tx, ta, tb = (torch.tensor(v, requires_grad=True) for v in (x, a, b))
    got = AF.lfilter(ex, ea, eb, clamp=False)
    want = TF.lfilter(tx, ta, tb, clamp=False)
    c = _wave(17, tuple(want.shape), 1.0)
    (got * ember.tensor(c)).sum().backward()
    (want * torch.tensor(c)).sum().backward()
    for e, t in ((ex, tx), (ea, ta), (eb, tb)):
        _close(e.grad, t.grad, atol=1e-9)


def test_lfilter_gradient_matches_finite_differences():
    a, b = _stable_coeffs(18, 3)
    x = _wave(19, (30,))
    assert ember.autograd.gradcheck(
        lambda w, aa, bb: AF.lfilter(w, aa, bb, clamp=False),
        (ember.tensor(x, requires_grad=True), ember.tensor(a, requires_grad=True),
         ember.tensor(b, requires_grad=True)))


@pytest.mark.parametrize("call,match", [
    (lambda: AF.lfilter(ember.zeros(10), ember.ones(3), ember.ones(2)), "same size"),
    (lambda: AF.lfilter(ember.zeros(2, 10), ember.ones(3, 3), ember.ones(3, 3)), "batches"),
    (lambda: AF.lfilter(ember.zeros(10), ember.ones(1, 1, 3), ember.ones(1, 1, 3)),
     "dimension")])
def test_lfilter_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("clamp", [True, False])
@pytest.mark.parametrize("filters", [None, 2])
def test_filtfilt(clamp, filters):
    a, b = _stable_coeffs(20, 3, filters)
    x = _wave(21, (2, 70))
    got = AF.filtfilt(ember.tensor(x), ember.tensor(a), ember.tensor(b), clamp=clamp)
    want = TF.filtfilt(torch.tensor(x), torch.tensor(a), torch.tensor(b), clamp=clamp)
    _close(got, want)


# --- biquads ----------------------------------------------------------------------------
BIQUADS = [
    ("lowpass_biquad", (16000, 1500.0), {}), ("lowpass_biquad", (8000, 300.0), {"Q": 2.0}),
    ("highpass_biquad", (16000, 1500.0), {}), ("highpass_biquad", (44100, 80.0), {"Q": 0.5}),
    ("allpass_biquad", (16000, 1000.0), {}), ("allpass_biquad", (16000, 3000.0), {"Q": 3.0}),
    ("bandpass_biquad", (16000, 2000.0), {}),
    ("bandpass_biquad", (16000, 2000.0), {"const_skirt_gain": True, "Q": 1.5}),
    ("bandreject_biquad", (16000, 2000.0), {}), ("band_biquad", (16000, 1000.0), {}),
    ("band_biquad", (16000, 1000.0), {"noise": True, "Q": 2.0}),
    ("bass_biquad", (16000, 6.0), {}), ("bass_biquad", (16000, -4.0, 250.0, 1.2), {}),
    ("treble_biquad", (16000, 6.0), {}), ("treble_biquad", (16000, -3.0, 5000.0), {}),
    ("equalizer_biquad", (16000, 1000.0, 5.0), {}),
    ("equalizer_biquad", (16000, 3000.0, -6.0, 2.0), {}),
    ("deemph_biquad", (44100,), {}), ("deemph_biquad", (48000,), {}),
    ("riaa_biquad", (44100,), {}), ("riaa_biquad", (48000,), {}), ("riaa_biquad", (88200,), {}),
    ("riaa_biquad", (96000,), {}),
]


@pytest.mark.parametrize("name,args,kwargs", BIQUADS)
def test_biquad_family(name, args, kwargs):
    got, want = _both(name, _wave(22, (2, 3, 120)), *args, **kwargs)
    _close(got, want)


@pytest.mark.parametrize("name,args,kwargs", BIQUADS[:17:2])
def test_biquad_batch_consistency(name, args, kwargs):
    x = _wave(23, (4, 100))
    batched = getattr(AF, name)(ember.tensor(x), *args, **kwargs)
    for i in range(4):
        _close(batched[i], torch.tensor(
            getattr(AF, name)(ember.tensor(x[i]), *args, **kwargs).numpy()))


def test_biquad_raw_coefficients():
    got, want = _both("biquad", _wave(24, (2, 90)), 0.4, 0.2, 0.1, 1.2, -0.3, 0.2)
    _close(got, want)


@pytest.mark.parametrize("name,args", [("lowpass_biquad", (16000, 1200.0, 0.9)),
                                       ("equalizer_biquad", (16000, 1200.0, 3.0, 0.9)),
                                       ("bass_biquad", (16000, 4.0, 200.0, 0.9)),
                                       ("band_biquad", (16000, 1200.0, 0.9))])
def test_biquad_gradients_in_tensor_parameters(name, args):
    """Frequencies, gains and Q as tensors: gradients reach them, as torchaudio's
    autograd tests check."""
    x = _wave(25, (2, 60))
    sr, params = args[0], args[1:]
    eps = [ember.tensor(p, dtype=ember.float64, requires_grad=True) for p in params]
    tps = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    got = getattr(AF, name)(ex, sr, *eps)
    want = getattr(TF, name)(tx, sr, *tps)
    c = _wave(26, tuple(want.shape), 1.0)
    (got * ember.tensor(c)).sum().backward()
    (want * torch.tensor(c)).sum().backward()
    _close(ex.grad, tx.grad, atol=1e-8)
    for e, t in zip(eps, tps):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name,args", [("deemph_biquad", (22050,)), ("riaa_biquad", (16000,))])
def test_fixed_rate_filters_refuse_other_rates(name, args):
    with pytest.raises(ValueError, match="Sample rate"):
        getattr(AF, name)(ember.zeros(10), *args)


# --- effects ----------------------------------------------------------------------------
@pytest.mark.parametrize("amount", [0.0, 30.0, 75.0, 100.0])
def test_contrast(amount):
    got, want = _both("contrast", _wave(27, (2, 50), 1.0), amount)
    _close(got, want)


def test_contrast_range():
    with pytest.raises(ValueError, match="0-100"):
        AF.contrast(ember.zeros(4), 120.0)


@pytest.mark.parametrize("shift,limiter", [(0.5, None), (-0.5, None), (0.3, 0.05),
                                           (-0.3, 0.05), (0.8, 0.1), (1.5, None)])
def test_dcshift(shift, limiter):
    x = _wave(28, (2, 200), 0.99)
    got = AF.dcshift(ember.tensor(x), shift, limiter)
    want = TF.dcshift(torch.tensor(x.copy()), shift, limiter)   # torchaudio writes into x
    _close(got, want)


@pytest.mark.parametrize("gain_db", [0.0, 3.0, -6.0])
def test_gain(gain_db):
    got, want = _both("gain", _wave(29, (3, 40)), gain_db)
    _close(got, want)


@pytest.mark.parametrize("gain,colour", [(20, 20), (5, 0), (40, 60), (0, 10)])
def test_overdrive(gain, colour):
    got, want = _both("overdrive", _wave(30, (2, 150), 0.8), gain, colour)
    _close(got, want)


@pytest.mark.parametrize("coeff", [0.97, 0.5, 0.0])
def test_preemphasis_and_deemphasis(coeff):
    x = _wave(31, (2, 3, 64))
    got, want = _both("preemphasis", x, coeff)
    _close(got, want)
    got, want = _both("deemphasis", x, coeff)
    _close(got, want)
    back = AF.deemphasis(AF.preemphasis(ember.tensor(x), coeff), coeff)
    np.testing.assert_allclose(back.numpy(), x, atol=1e-12)


def test_preemphasis_gradient():
    x = _wave(32, (2, 20))
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (AF.preemphasis(ex, 0.9) ** 2).sum().backward()
    (TF.preemphasis(tx, 0.9) ** 2).sum().backward()
    _close(ex.grad, tx.grad)


@pytest.mark.parametrize("kwargs", [{}, dict(sinusoidal=False, delay_ms=2.0, decay=0.6),
                                    dict(gain_in=0.9, gain_out=0.5, mod_speed=2.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_phaser(kwargs, dtype):
    x = _wave(33, (2, 2, 500), 0.8).astype(dtype)
    got, want = _both("phaser", x, 8000, **kwargs)
    assert got.dtype == (ember.float32 if dtype == np.float32 else ember.float64)
    _close(got, want, atol=0)


@pytest.mark.parametrize("kwargs", [
    {}, dict(regen=30.0, modulation="triangular"),
    dict(interpolation="quadratic", delay=2.0, depth=5.0, phase=60.0),
    dict(regen=-50.0, width=30.0, speed=2.0)])
@pytest.mark.parametrize("shape", [(2, 500), (2, 3, 500)])
def test_flanger(kwargs, shape):
    got, want = _both("flanger", _wave(34, shape, 0.8), 8000, **kwargs)
    _close(got, want, atol=0)


def test_flanger_arguments():
    with pytest.raises(ValueError, match="channels"):
        AF.flanger(ember.zeros(5, 10), 8000)
    with pytest.raises(ValueError, match="modulation"):
        AF.flanger(ember.zeros(2, 10), 8000, modulation="square")
    with pytest.raises(ValueError, match="interpolation"):
        AF.flanger(ember.zeros(2, 10), 8000, interpolation="cubic")


def test_filtfilt_and_deemphasis_gradients():
    a, b = _stable_coeffs(35, 3)
    x = _wave(36, (2, 40))
    ex, tx = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ea, ta = ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    (AF.filtfilt(ex, ea, ember.tensor(b), clamp=False) ** 2).sum().backward()
    (TF.filtfilt(tx, ta, torch.tensor(b), clamp=False) ** 2).sum().backward()
    _close(ex.grad, tx.grad, atol=1e-9)
    _close(ea.grad, ta.grad, atol=1e-8)
    ex, tx = ember.tensor(x * 0.1, requires_grad=True), torch.tensor(x * 0.1, requires_grad=True)
    (AF.deemphasis(ex, 0.8) ** 2).sum().backward()
    (TF.deemphasis(tx, 0.8) ** 2).sum().backward()
    _close(ex.grad, tx.grad)


def _speech_like(sr, seconds, onset, seed):
    """Low noise, then a voiced (harmonic, amplitude-modulated) burst from `onset` s."""
    t = np.arange(int(sr * seconds)) / sr
    voiced = (0.4 * np.sin(2 * np.pi * 150 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
              + 0.2 * np.sin(2 * np.pi * 300 * t))
    noise = np.random.default_rng(seed).normal(0, 0.003, t.shape)
    return noise + voiced * (t > onset)


@pytest.mark.parametrize("kwargs", [{}, dict(pre_trigger_time=0.1),
                                    dict(trigger_level=5.0, allowed_gap=0.1),
                                    dict(search_time=0.5, boot_time=0.2, measure_freq=25.0)])
@pytest.mark.parametrize("layout", ["mono", "stereo", "float32"])
def test_vad_trims_like_torchaudio(kwargs, layout):
    x = _speech_like(8000, 1.5, 0.6, 37)
    if layout == "stereo":
        x = np.stack([x, np.roll(x, 2000)])
    elif layout == "float32":
        x = x.astype(np.float32)
    got, want = _both("vad", x, 8000, **kwargs)
    assert tuple(got.shape) == tuple(want.shape)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_vad_on_noise_only_returns_the_pre_trigger_part():
    x = np.random.default_rng(38).normal(0, 0.003, 8000)
    for pre in (0.0, 0.1):
        got, want = _both("vad", x, 8000, pre_trigger_time=pre)
        assert tuple(got.shape) == tuple(want.shape)


def test_vad_transform_and_lifter_check():
    import ember.audio.transforms as AT
    x = _speech_like(8000, 1.2, 0.5, 39)
    got = AT.Vad(8000, trigger_level=6.0)(ember.tensor(x))
    want = torchaudio.transforms.Vad(8000, trigger_level=6.0)(torch.tensor(x))
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    with pytest.raises(ValueError, match="cepstrum"):
        AF.vad(ember.tensor(x), 8000, hp_lifter_freq=3000.0)


@pytest.mark.parametrize("noise_shaping", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(50,), (2, 3, 50)])
def test_dither_tpdf_equals_torchaudio(noise_shaping, dtype, shape):
    x = _wave(40, shape, 0.8).astype(dtype)
    got, want = _both("dither", x, "TPDF", noise_shaping)
    _close(got, want, atol=0)


@pytest.mark.parametrize("density", ["RPDF", "GPDF"])
@pytest.mark.parametrize("noise_shaping", [False, True])
def test_dither_random_offsets_are_input_samples(density, noise_shaping):
    """RPDF / GPDF add one constant drawn from the input's own samples (one of them less
    0.5, or a sum of seven): the result is a 16-bit requantization of x plus that
    constant, reproducible with a seeded generator."""
    x = _wave(41, (2, 40), 0.8)
    ex = ember.tensor(x)
    got = AF.dither(ex, density, noise_shaping, generator=ember.Generator().manual_seed(4))
    again = AF.dither(ex, density, noise_shaping, generator=ember.Generator().manual_seed(4))
    np.testing.assert_array_equal(got.numpy(), again.numpy())
    np.testing.assert_array_equal(ex.numpy(), x)               # the input is untouched
    plain = got.numpy()
    if noise_shaping:
        # undo the shaping: y = d + shift(d - x)  =>  d[n] = y[n] - (d[n-1] - x[n-1])
        d = np.empty_like(plain)
        d[:, 0] = plain[:, 0]
        for n in range(1, plain.shape[1]):
            d[:, n] = plain[:, n] - (d[:, n - 1] - x[:, n - 1])
        plain = d
    scaled = x * (2 ** 15 - 2)
    quanta = np.round(plain * 2 ** 15)
    # one constant c for every sample: quanta = round(scaled + c), so quanta - scaled
    # spans at most one quantum
    spread = quanta - scaled
    assert spread.max() - spread.min() <= 1.0 + 1e-9
    if density == "RPDF":
        candidates = x.reshape(-1) - 0.5
        assert any((np.round(scaled + c) == quanta).all() for c in candidates)


def test_lfilter_second_derivatives():
    """The all-pole backward is written in ember ops (the adjoint is the same recursion),
    so gradgradcheck passes as torchaudio's autograd tests require of lfilter."""
    a, b = _stable_coeffs(43, 3)
    args = (ember.tensor(_wave(44, (2, 16)), requires_grad=True),
            ember.tensor(a, requires_grad=True), ember.tensor(b, requires_grad=True))
    assert ember.autograd.gradgradcheck(lambda w, aa, bb: AF.lfilter(w, aa, bb, clamp=False),
                                        args)
    freq = ember.tensor(900.0, dtype=ember.float64, requires_grad=True)
    assert ember.autograd.gradgradcheck(
        lambda w, f: AF.lowpass_biquad(w, 8000, f), (args[0] * 0.5, freq))
