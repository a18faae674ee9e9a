"""ember.audio against torch.stft, scipy's DCT and WAV reader, Python's wave module and
the mel filters' definition (torchaudio has no build for this torch; librosa would pull
numba, whose llvmlite pin conflicts with ember's)."""
import math
import wave

import numpy as np
import pytest
import scipy.fft
import scipy.io.wavfile
import torch

import ember
import ember.audio as audio
import ember.audio.functional as AF
import ember.audio.transforms as AT


def _signal(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def _torch_spec(x, n_fft, hop, win, power, normalized=False, center=True, pad=0):
    x = torch.nn.functional.pad(x, (pad, pad)) if pad else x
    window = torch.hann_window(win, dtype=x.dtype)
    shape = x.shape
    spec = torch.stft(x.reshape(-1, shape[-1]), n_fft, hop, win, window, center=center,
                      pad_mode="reflect", normalized=normalized == "frame_length",
                      onesided=True, return_complex=True)
    spec = spec.reshape(shape[:-1] + spec.shape[-2:])
    if normalized is True:
        spec = spec / window.pow(2).sum().sqrt()
    return spec if power is None else spec.abs().pow(power)


@pytest.mark.parametrize("n_fft,hop,win,power,normalized,center,pad", [
    (64, 16, 64, 2.0, False, True, 0), (64, 20, 48, 1.0, True, True, 3),
    (32, 8, 32, 2.0, "frame_length", False, 0), (50, 25, 50, 1.5, False, True, 0)])
def test_spectrogram_matches_torch_stft(n_fft, hop, win, power, normalized, center, pad):
    x = _signal((2, 3, 300))
    t = AT.Spectrogram(n_fft, win, hop, pad, power=power, normalized=normalized,
                       center=center, wkwargs={"dtype": ember.float64})
    ex = ember.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    out, ref = t(ex), _torch_spec(tx, n_fft, hop, win, power, normalized, center, pad)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), atol=1e-9,
                               rtol=1e-7)
    w = np.random.default_rng(1).random(tuple(ref.shape))
    (out * ember.tensor(w)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), atol=1e-8, rtol=1e-6)


def test_complex_spectrogram():
    x = _signal((300,), 2)
    out = AT.Spectrogram(64, hop_length=16, power=None)(ember.tensor(x.astype(np.float32)))
    ref = _torch_spec(torch.tensor(x.astype(np.float32)), 64, 16, 64, None)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-4)


def _triangles(n_freqs, f_min, f_max, n_mels, sr, hz_to_mel, mel_to_hz, slaney_norm):
    """Filter m rises linearly from edge m to edge m+1 and falls to edge m+2 (the
    definition), with edges equally spaced on the mel scale."""
    edges = [mel_to_hz(hz_to_mel(f_min) + i * (hz_to_mel(f_max) - hz_to_mel(f_min))
                       / (n_mels + 1)) for i in range(n_mels + 2)]
    fb = np.zeros((n_freqs, n_mels))
    for k in range(n_freqs):
        f = k * (sr // 2) / (n_freqs - 1)
        for m in range(n_mels):
            lo, c, hi = edges[m:m + 3]
            if lo <= f <= c:
                fb[k, m] = (f - lo) / (c - lo)
            elif c < f <= hi:
                fb[k, m] = (hi - f) / (hi - c)
            if slaney_norm:
                fb[k, m] *= 2.0 / (hi - lo)
    return fb


def _slaney_hz_to_mel(f):
    return f / (200 / 3) if f < 1000 else 15.0 + math.log(f / 1000) / (math.log(6.4) / 27)


def _slaney_mel_to_hz(m):
    return m * 200 / 3 if m < 15 else 1000 * math.exp((m - 15) * math.log(6.4) / 27)


@pytest.mark.parametrize("mel_scale,norm", [("htk", None), ("slaney", "slaney"),
                                            ("htk", "slaney")])
def test_melscale_fbanks_definition(mel_scale, norm):
    if mel_scale == "htk":
        to_mel = lambda f: 2595 * math.log10(1 + f / 700)    # noqa: E731
        to_hz = lambda m: 700 * (10 ** (m / 2595) - 1)      # noqa: E731
    else:
        to_mel, to_hz = _slaney_hz_to_mel, _slaney_mel_to_hz
    assert _slaney_hz_to_mel(6400.0) == pytest.approx(42.0)
    fb = AF.melscale_fbanks(65, 20.0, 7600.0, 12, 16000, norm, mel_scale).numpy()
    ref = _triangles(65, 20.0, 7600.0, 12, 16000, to_mel, to_hz, norm == "slaney")
    np.testing.assert_allclose(fb, ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("norm", ["ortho", None])
def test_create_dct_is_scipy_dct2(norm):
    mel = _signal((5, 20), 3)
    out = mel @ AF.create_dct(8, 20, norm).numpy().astype(np.float64)
    ref = scipy.fft.dct(mel, type=2, axis=-1, norm=norm)[:, :8]
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("shape,top_db,stype", [((3, 10, 7), 20.0, "power"),
                                                ((2, 2, 10, 7), 30.0, "magnitude"),
                                                ((10, 7), None, "power")])
def test_amplitude_to_db(shape, top_db, stype):
    x = np.abs(_signal(shape, 4)) ** 3
    x.flat[0] = 0.0
    out = AT.AmplitudeToDB(stype, top_db)(ember.tensor(x)).numpy()
    mult = 10.0 if stype == "power" else 20.0
    ref = mult * np.log10(np.maximum(x, 1e-10))
    if top_db is not None:
        per = ref.reshape(-1, *ref.shape[-3:]) if ref.ndim > 2 else ref[None, None]
        per = np.maximum(per, per.max(axis=(-3, -2, -1), keepdims=True) - top_db)
        ref = per.reshape(ref.shape)
    np.testing.assert_allclose(out, ref, atol=1e-9)


@pytest.mark.parametrize("log_mels", [False, True])
def test_mfcc_and_melspectrogram_compose(log_mels):
    x = _signal((2, 800), 5, np.float32)
    melkw = {"n_fft": 128, "hop_length": 32, "n_mels": 24, "f_min": 30.0}
    mfcc = AT.MFCC(8000, n_mfcc=10, log_mels=log_mels, melkwargs=melkw)
    out = mfcc(ember.tensor(x)).numpy()
    power = _torch_spec(torch.tensor(x, dtype=torch.float64), 128, 32, 128, 2.0).numpy()
    fb = AF.melscale_fbanks(65, 30.0, 4000.0, 24, 8000).numpy()
    mel = np.einsum("bft,fm->bmt", power, fb)
    np.testing.assert_allclose(
        AT.MelSpectrogram(8000, **melkw)(ember.tensor(x)).numpy(), mel, rtol=1e-4,
        atol=1e-4)
    if log_mels:
        db = np.log(mel + 1e-6)
    else:
        db = 10 * np.log10(np.maximum(mel, 1e-10))
        db = np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - 80.0)
    ref = scipy.fft.dct(db, type=2, axis=1, norm="ortho")[:, :10]
    np.testing.assert_allclose(out, ref, atol=2e-3, rtol=1e-4)


def test_melspectrogram_compiles_and_differentiates():
    x = ember.tensor(_signal((2, 640), 6, np.float32))
    mel = AT.MelSpectrogram(16000, n_fft=64, hop_length=16, n_mels=10)
    np.testing.assert_allclose(ember.compile(mel)(x).numpy(), mel(x).numpy(), rtol=1e-4,
                               atol=1e-4)
    explained = ember.compile.explain(mel, x)
    assert explained.graph_break_count == 0, str(explained)
    xg = ember.tensor(_signal((640,), 7), requires_grad=True)
    mel64 = AT.MelSpectrogram(16000, n_fft=64, hop_length=16, n_mels=10,
                              wkwargs={"dtype": ember.float64})
    mel64(xg).sum().backward()
    eps, i = 1e-6, 100
    plus, minus = xg.detach().numpy().copy(), xg.detach().numpy().copy()
    plus[i] += eps
    minus[i] -= eps
    fd = (mel64(ember.tensor(plus)).sum().item() - mel64(ember.tensor(minus)).sum().item()) \
        / (2 * eps)
    assert xg.grad.numpy()[i] == pytest.approx(fd, rel=1e-5)


@pytest.mark.parametrize("cls,axis", [(AT.FrequencyMasking, -2), (AT.TimeMasking, -1)])
def test_masking_bands(cls, axis):
    spec = ember.tensor(np.ones((2, 3, 20, 30), np.float32))
    out = cls(8, generator=ember.Generator().manual_seed(1))(spec).numpy()
    masked = (out == 0).all(axis=tuple(d for d in range(4) if d != 4 + axis))
    band = np.nonzero(masked)[0]
    assert len(band) < 8 and (len(band) == 0 or (np.diff(band) == 1).all())
    assert (out[..., 0, 0] == out[0, 0, 0, 0]).all() if axis == -1 else True
    iid = cls(15, iid_masks=True, generator=ember.Generator().manual_seed(2))(spec).numpy()
    counts = (iid == 0).sum(axis=(-2, -1)).ravel()
    assert len(set(counts.tolist())) > 1          # independent bands per example/channel
    again = cls(15, iid_masks=True, generator=ember.Generator().manual_seed(2))(spec).numpy()
    np.testing.assert_array_equal(iid, again)


def test_time_masking_p_limits_width():
    spec = ember.tensor(np.ones((1, 10, 40), np.float32))
    for seed in range(5):
        out = AT.TimeMasking(30, p=0.1, generator=ember.Generator().manual_seed(seed))(spec)
        assert (out.numpy() == 0).all(axis=(0, 1)).sum() < 4


@pytest.mark.parametrize("dtype,encoding,bits", [
    (np.float32, None, None), (np.float32, "PCM_S", 16), (np.float32, "PCM_S", 24),
    (np.float32, "PCM_S", 32), (np.float32, "PCM_U", 8), (np.int16, None, None)])
def test_wav_round_trip_and_scipy_agrees(tmp_path, dtype, encoding, bits):
    rng = np.random.default_rng(8)
    if dtype == np.int16:
        src = rng.integers(-32768, 32767, (2, 500)).astype(np.int16)
    else:
        src = rng.uniform(-0.9, 0.9, (2, 500)).astype(np.float32)
    path = tmp_path / "a.wav"
    audio.save(path, ember.tensor(src), 8000, encoding=encoding, bits_per_sample=bits)
    wav, sr = audio.load(path)
    assert sr == 8000 and wav.dtype == ember.float32 and tuple(wav.shape) == (2, 500)
    expect = src / 32768.0 if dtype == np.int16 else src
    tol = {None: 1e-7, 16: 2 ** -15, 24: 2 ** -23, 32: 2 ** -31, 8: 2 ** -7}[bits]
    np.testing.assert_allclose(wav.numpy(), expect, atol=tol)
    meta = audio.info(path)
    assert (meta.num_frames, meta.num_channels, meta.sample_rate) == (500, 2, 8000)
    rate, data = scipy.io.wavfile.read(path)       # an independent reader
    assert rate == 8000 and data.shape == (500, 2)
    if bits in (None, 16) or dtype == np.int16:
        scale = 1.0 if data.dtype.kind == "f" else 32768.0
        np.testing.assert_allclose(data.T / scale, wav.numpy(), atol=1e-7)
    part, _ = audio.load(path, frame_offset=100, num_frames=50, channels_first=False)
    np.testing.assert_array_equal(part.numpy(), wav.numpy()[:, 100:150].T)


def test_load_file_written_by_wave_module(tmp_path):
    ints = np.random.default_rng(9).integers(-32768, 32767, (300, 1)).astype("<i2")
    with wave.open(str(tmp_path / "m.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(ints.tobytes())
    wav, sr = audio.load(tmp_path / "m.wav")
    assert sr == 22050
    np.testing.assert_array_equal(wav.numpy(), ints.T / 32768.0)
    raw, _ = audio.load(tmp_path / "m.wav", normalize=False)
    assert raw.dtype == ember.int16
    np.testing.assert_array_equal(raw.numpy(), ints.T)
    (tmp_path / "bad.wav").write_bytes(b"not a wav file")
    with pytest.raises(RuntimeError, match="not a RIFF/WAVE"):
        audio.load(tmp_path / "bad.wav")


def test_compile_view_as_real_of_transposed_complex():
    # view_as_real's meta rule gave contiguous strides for a transposed complex input, so
    # the compiled kernel read the wrong elements (silently; found building ember.audio)
    x = ember.tensor(np.random.default_rng(0).normal(size=(2, 5, 8)).astype(np.float32))

    class M(ember.nn.Module):
        def forward(self, x):
            return ember.view_as_real(ember.fft.rfft(x, dim=-1).transpose(-1, -2)) * 2
    np.testing.assert_allclose(ember.compile(M())(x).numpy(), M()(x).numpy(), atol=1e-5)


@pytest.mark.parametrize("n_fft,hop,win,center,normalized,length", [
    (64, 16, 64, True, False, None), (64, 20, 48, True, True, 290),
    (32, 8, 32, True, "frame_length", None), (64, 16, 64, True, False, 400)])
def test_inverse_spectrogram_matches_torch_istft(n_fft, hop, win, center, normalized, length):
    x = _signal((2, 300), 10)
    spec = _torch_spec(torch.tensor(x), n_fft, hop, win, None, normalized, center)
    inv = AT.InverseSpectrogram(n_fft, win, hop, normalized=normalized, center=center,
                                wkwargs={"dtype": ember.float64})
    es = ember.tensor(spec.detach().numpy(), requires_grad=True)
    out = inv(es, length)
    window = torch.hann_window(win, dtype=torch.float64)
    ts = spec.detach().clone().requires_grad_(True)
    tin = ts * window.pow(2).sum().sqrt() if normalized is True else ts
    ref = torch.istft(tin, n_fft, hop, win, window, center=center,
                      normalized=normalized == "frame_length", length=length)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), atol=1e-9)
    if length is None and center:   # and it inverts the forward transform
        np.testing.assert_allclose(out.detach().numpy()[:, :ref.shape[-1]],
                                   x[:, :ref.shape[-1]], atol=1e-9)
    w = np.random.default_rng(2).random(tuple(ref.shape))
    (out * ember.tensor(w)).sum().backward()
    (ref * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(es.grad.numpy(), ts.grad.numpy(), atol=1e-8)


def test_griffinlim_recovers_a_consistent_signal():
    t = np.arange(2000) / 8000.0
    x = (np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 1250 * t))[None]
    power = AT.Spectrogram(256, hop_length=64, wkwargs={"dtype": ember.float64})(
        ember.tensor(x))
    gl = AT.GriffinLim(256, n_iter=60, hop_length=64, length=2000,
                       wkwargs={"dtype": ember.float64}, generator=ember.Generator().manual_seed(0))
    y = gl(power)
    again = AT.Spectrogram(256, hop_length=64, wkwargs={"dtype": ember.float64})(y)
    rel = np.linalg.norm(np.sqrt(again.numpy()) - np.sqrt(power.numpy())) / \
        np.linalg.norm(np.sqrt(power.numpy()))
    assert tuple(y.shape) == (1, 2000) and rel < 0.1


@pytest.mark.parametrize("orig,new", [(16000, 8000), (8000, 16000), (44100, 16000)])
def test_resample_a_band_limited_sine(orig, new):
    f = 440.0
    x = np.sin(2 * np.pi * f * np.arange(orig // 10) / orig)[None]
    out = AT.Resample(orig, new)(ember.tensor(x)).numpy()
    n_out = int(math.ceil(new * x.shape[-1] / orig))
    ref = np.sin(2 * np.pi * f * np.arange(n_out) / new)
    assert out.shape == (1, n_out)
    inner = slice(n_out // 10, n_out - n_out // 10)   # away from the zero-padded edges
    np.testing.assert_allclose(out[0, inner], ref[inner], atol=2e-3)
    assert AT.Resample(8000, 8000)(ember.tensor(x)) is not None


def test_istft_refuses_a_vanishing_window_envelope():
    """center=False with a Hann window: the first sample has no window weight (torch too
    refuses: 'window overlap add min')."""
    spec = _torch_spec(torch.tensor(_signal((300,), 11)), 32, 8, 32, None, center=False)
    with pytest.raises(RuntimeError, match="window overlap add min"):
        AT.InverseSpectrogram(32, hop_length=8, center=False,
                              wkwargs={"dtype": ember.float64})(ember.tensor(spec.numpy()))


def test_ctc_greedy_decode():
    from ember.audio.models import CTCGreedyDecoder, ctc_greedy_decode
    path = [0, 1, 1, 0, 1, 2, 2, 2, 0, 0, 3, 0]       # -> 1 1 2 3 (blank splits repeats)
    logits = np.full((len(path), 4), -5.0)
    logits[np.arange(len(path)), path] = 1.0
    assert ctc_greedy_decode(ember.tensor(logits)) == [1, 1, 2, 3]
    batch = ember.tensor(np.stack([logits, logits[::-1].copy()]))
    assert ctc_greedy_decode(batch, lengths=[12, 5]) == [[1, 1, 2, 3], [3, 2]]
    assert CTCGreedyDecoder("-abc")(ember.tensor(logits)) == "aabc"
