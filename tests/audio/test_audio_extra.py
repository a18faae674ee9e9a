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


def test_time_stretch_compiles_in_a_spectrogram_pipeline():
    class Stretched(ember.nn.Module):
        def __init__(self):
            super().__init__()
            self.spec = AT.Spectrogram(64, power=None)
            self.stretch = AT.TimeStretch(n_freq=33, fixed_rate=0.8)

        def forward(self, wave):
            return self.stretch(self.spec(wave)).abs()
    model = Stretched()
    wave = ember.tensor(np.random.default_rng(12).normal(size=(2, 800)).astype(np.float32))
    eager = model(wave)
    assert tuple(eager.shape) == (2, 33, 33)                # ceil(26 / 0.8) frames
    np.testing.assert_allclose(ember.compile(model)(wave).numpy(), eager.numpy(), atol=1e-4)
    assert ember.compile.explain(model, wave).graph_break_count == 0


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


# --- WaveRNN ----------------------------------------------------------------------------
_WAVERNN = dict(upsample_scales=[2, 3], n_classes=16, hop_length=6, n_res_block=2, n_rnn=12,
                n_fc=10, kernel_size=3, n_freq=8, n_hidden=6, n_output=8)


def _wavernn_pair():
    torch.manual_seed(7)
    ref = torchaudio.models.WaveRNN(**_WAVERNN)
    with torch.no_grad():   # non-trivial batch-norm statistics
        for name, buf in ref.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                buf.normal_(0, 0.2)
    model = audio.models.WaveRNN(**_WAVERNN)
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    return ref.eval(), model.eval()


@needs_torchaudio
def test_wavernn_forward_matches_torchaudio():
    ref, model = _wavernn_pair()
    gen = torch.Generator().manual_seed(8)
    n_time = 6
    specgram = torch.randn(2, 1, 8, n_time, generator=gen)
    waveform = torch.rand(2, 1, (n_time - 2) * 6, generator=gen) * 2 - 1
    expected = ref(waveform, specgram)
    out = model(ember.tensor(waveform.numpy()), ember.tensor(specgram.numpy()))
    assert tuple(out.shape) == tuple(expected.shape) == (2, 1, 24, 16)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), atol=1e-5)
    full = audio.models.WaveRNN(upsample_scales=[5, 5, 8], n_classes=256, hop_length=200)
    assert sum(p.numel() for p in full.parameters()) == 4_404_903   # torchaudio's count
    with pytest.raises(ValueError, match="total_scale == hop_length"):
        audio.models.WaveRNN([2, 3], 16, hop_length=5)
    with pytest.raises(ValueError, match="input channel of waveform is 1"):
        model(ember.tensor(waveform.numpy()).repeat(1, 2, 1), ember.tensor(specgram.numpy()))


@needs_torchaudio
def test_wavernn_gradients_match_torchaudio():
    ref, model = _wavernn_pair()
    ref.double()
    model.double()
    gen = torch.Generator().manual_seed(9)
    specgram = torch.randn(1, 1, 8, 4, dtype=torch.double, generator=gen, requires_grad=True)
    waveform = torch.rand(1, 1, 12, dtype=torch.double, generator=gen)
    weight = torch.randn(1, 1, 12, 16, dtype=torch.double, generator=gen)
    (ref(waveform, specgram) * weight).sum().backward()
    es = ember.tensor(specgram.detach().numpy(), requires_grad=True)
    (model(ember.tensor(waveform.numpy()), es) * ember.tensor(weight.numpy())).sum().backward()
    np.testing.assert_allclose(es.grad.numpy(), specgram.grad.numpy(), atol=1e-10)
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), atol=1e-10, err_msg=name)


@needs_torchaudio
def test_wavernn_infer_matches_torchaudio_with_argmax_sampling(monkeypatch):
    ref, model = _wavernn_pair()
    specgram = torch.randn(2, 8, 3, generator=torch.Generator().manual_seed(10))
    # sampling replaced by argmax on both sides, so the generated sequences are comparable
    monkeypatch.setattr(torch, "multinomial", lambda probs, n: probs.argmax(1, keepdim=True))
    expected, ref_lengths = ref.infer(specgram, torch.tensor([3, 2]))
    monkeypatch.setattr(type(model), "_sample",
                        staticmethod(lambda probs, gen: probs.argmax(1, keepdim=True)))
    out, lengths = model.infer(ember.tensor(specgram.numpy()), ember.tensor([3, 2]))
    assert tuple(out.shape) == tuple(expected.shape) == (2, 1, 18)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-6)
    assert lengths.tolist() == ref_lengths.tolist() == [18, 12]
    monkeypatch.undo()
    sampled, _ = model.infer(ember.tensor(specgram.numpy()),
                             generator=ember.Generator().manual_seed(0))
    again, _ = model.infer(ember.tensor(specgram.numpy()),
                           generator=ember.Generator().manual_seed(0))
    values = sampled.numpy()
    np.testing.assert_array_equal(values, again.numpy())
    assert values.min() >= -1 and values.max() <= 1


# --- the earlier models, now against torchaudio's own ----------------------------------
@needs_torchaudio
def test_conv_tasnet_and_wav2letter_match_torchaudio():
    cfg = dict(num_sources=2, enc_kernel_size=8, enc_num_feats=12, msk_kernel_size=3,
               msk_num_feats=6, msk_num_hidden_feats=10, msk_num_layers=3, msk_num_stacks=2)
    torch.manual_seed(11)
    ref = torchaudio.models.ConvTasNet(**cfg).double().eval()
    model = audio.models.ConvTasNet(**cfg).to(ember.float64)
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = torch.randn(2, 1, 101, dtype=torch.double)          # 101: needs end padding
    np.testing.assert_allclose(model(ember.tensor(x.numpy())).detach().numpy(),
                               ref(x).detach().numpy(), atol=1e-10)
    ref_w2l = torchaudio.models.Wav2Letter(num_classes=5, input_type="mfcc", num_features=10)
    w2l = audio.models.Wav2Letter(num_classes=5, input_type="mfcc", num_features=10)
    assert list(w2l.state_dict()) == list(ref_w2l.state_dict())
    w2l.load_state_dict({k: v.numpy() for k, v in ref_w2l.state_dict().items()})
    feats = torch.randn(1, 10, 40)
    np.testing.assert_allclose(w2l(ember.tensor(feats.numpy())).detach().numpy(),
                               ref_w2l(feats).detach().numpy(), atol=1e-4)
    assert list(audio.models.Wav2Letter(5).state_dict()) == \
        list(torchaudio.models.Wav2Letter(5).state_dict())
