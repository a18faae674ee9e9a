"""ember.audio's TimeStretch / phase_vocoder and WaveRNN against torchaudio itself
(loaded without its C++ extension, see tests/domain_oracles.py), and FLAC through
soundfile against soundfile's own reading and writing."""
import numpy as np
import pytest
import torch

import ember
import ember.audio as audio
import ember.audio.functional as AF
import ember.audio.transforms as AT

from domain_oracles import import_torchaudio

torchaudio = import_torchaudio()
needs_torchaudio = pytest.mark.skipif(
    torchaudio is None, reason="torchaudio is not installed (pip install --no-deps torchaudio)")


@needs_torchaudio
@pytest.mark.parametrize("rate,shape,hop", [(1.3, (2, 33, 20), None), (0.7, (33, 17), 8),
                                            (2.0, (1, 2, 33, 9), None), (1.0, (33, 5), None)])
def test_time_stretch_matches_torchaudio(rate, shape, hop):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(*shape, dtype=torch.cdouble, generator=gen, requires_grad=True)
    ref_mod = torchaudio.transforms.TimeStretch(hop_length=hop, n_freq=33, fixed_rate=rate)
    mod = AT.TimeStretch(hop_length=hop, n_freq=33, fixed_rate=rate).double()
    np.testing.assert_allclose(mod.phase_advance.numpy(), ref_mod.phase_advance.numpy(),
                               rtol=1e-6)
    ref = ref_mod.double()(x)
    ex = ember.tensor(x.detach().numpy(), requires_grad=True)
    out = mod(ex)
    assert tuple(out.shape) == tuple(ref.shape) and out.dtype == ember.complex128
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), atol=1e-10)
    if rate == 1.0:
        return
    weight = torch.randn(ref.shape, dtype=torch.double, generator=gen)
    (ref.real * weight + ref.imag * weight ** 2).sum().backward()
    ew = ember.tensor(weight.numpy())
    (out.real * ew + out.imag * ew ** 2).sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), x.grad.numpy(), atol=1e-9)


@needs_torchaudio
def test_time_stretch_float32_and_override():
    x = torch.randn(2, 17, 12, dtype=torch.cfloat, generator=torch.Generator().manual_seed(4))
    ref = torchaudio.transforms.TimeStretch(n_freq=17)(x, 1.6)
    out = AT.TimeStretch(n_freq=17)(ember.tensor(x.numpy()), 1.6)
    # float32: the accumulated phase grows with time, so compare with a phase-scaled bound
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=2e-4)
    with pytest.raises(ValueError, match="must pass a valid rate"):
        AT.TimeStretch(n_freq=17)(ember.tensor(x.numpy()))
    advance = ember.linspace(0, np.pi * 16, 17).reshape(-1, 1)
    direct = AF.phase_vocoder(ember.tensor(x.numpy()), 1.6, advance)
    np.testing.assert_allclose(direct.numpy(), out.numpy(), atol=1e-6)


# --- FLAC through soundfile -------------------------------------------------------------
def _soundfile():
    return pytest.importorskip("soundfile", reason="soundfile is not installed "
                               "(pip install soundfile)")


def test_load_flac_written_by_soundfile(tmp_path):
    sf = _soundfile()
    ints = np.random.default_rng(5).integers(-32768, 32767, (400, 2)).astype(np.int16)
    path = tmp_path / "a.flac"
    sf.write(path, ints, 16000, subtype="PCM_16")
    wav, sr = audio.load(path)
    assert sr == 16000 and wav.dtype == ember.float32 and tuple(wav.shape) == (2, 400)
    np.testing.assert_array_equal(wav.numpy(), ints.T / 32768.0)
    part, _ = audio.load(path, frame_offset=10, num_frames=30, channels_first=False)
    np.testing.assert_array_equal(part.numpy(), ints[10:40] / 32768.0)
    meta = audio.info(path)
    assert (meta.sample_rate, meta.num_frames, meta.num_channels, meta.bits_per_sample,
            meta.encoding) == (16000, 400, 2, 16, "FLAC")


@pytest.mark.parametrize("bits", [16, 24])
def test_save_flac_soundfile_reads_it(tmp_path, bits):
    sf = _soundfile()
    src = np.random.default_rng(6).uniform(-0.9, 0.9, (1, 300)).astype(np.float32)
    path = tmp_path / "b.flac"
    audio.save(path, ember.tensor(src), 8000, bits_per_sample=bits, compression=8)
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == 8000 and sf.info(path).subtype == f"PCM_{bits}"
    np.testing.assert_allclose(data.T, src, atol=2.0 ** -(bits - 1))   # one quantization step
    back, _ = audio.load(path)
    np.testing.assert_array_equal(back.numpy(), data.T)
    # an explicit format wins over the extension
    audio.save(tmp_path / "c.bin", ember.tensor(src), 8000, format="flac")
    assert sf.info(tmp_path / "c.bin").format == "FLAC"
    with pytest.raises(ValueError, match="FLAC stores signed integer PCM"):
        audio.save(path, ember.tensor(src), 8000, encoding="PCM_F")
