"""torchaudio's multi-channel functions (psd, MVDR weights, RTF estimates, beamforming)
and transforms (PSD, SoudenMVDR, RTFMVDR) against torchaudio 2.11 on the same complex
spectrograms: values, reference channel as an index or a one-hot tensor, batching,
complex gradients, and the errors (cases of the kind functional_impl.py and the
multi-channel transform tests run, in our words)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.audio.functional as AF
import ember.audio.transforms as AT
from tests.domain_oracles import import_torchaudio

torchaudio = import_torchaudio()
pytestmark = pytest.mark.skipif(torchaudio is None, reason="torchaudio is not installed")
TF = torchaudio.functional if torchaudio is not None else None


def _spec(seed, shape):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def _close(got, want, atol=1e-10):
    np.testing.assert_allclose(got.detach().numpy(), want.detach().resolve_conj().numpy(),
                               atol=atol, rtol=1e-7)


def _psds(shape=(2, 4, 9, 30), seed=0):
    spec = _spec(seed, shape)
    mask = np.random.default_rng(seed + 1).random(shape[:-3] + shape[-2:])
    ps = TF.psd(torch.tensor(spec), torch.tensor(mask))
    pn = TF.psd(torch.tensor(spec), torch.tensor(1 - mask))
    return spec, mask, ps, pn


def _ref(batch, channels, index):
    ref = np.zeros((batch, channels))
    ref[:, index] = 1.0
    return ref


@pytest.mark.parametrize("shape", [(3, 9, 20), (2, 4, 9, 20)])
@pytest.mark.parametrize("masked,normalize", [(False, True), (True, True), (True, False)])
def test_psd(shape, masked, normalize):
    spec = _spec(1, shape)
    mask = np.random.default_rng(2).random(shape[:-3] + shape[-2:]) if masked else None
    got = AF.psd(ember.tensor(spec), None if mask is None else ember.tensor(mask), normalize)
    want = TF.psd(torch.tensor(spec), None if mask is None else torch.tensor(mask), normalize)
    _close(got, want, atol=1e-9)


@pytest.mark.parametrize("reference", ["int", "tensor"])
@pytest.mark.parametrize("loading", [True, False])
def test_mvdr_weights_souden(reference, loading):
    _, _, ps, pn = _psds()
    ref_e = 2 if reference == "int" else ember.tensor(_ref(2, 4, 2))
    ref_t = 2 if reference == "int" else torch.tensor(_ref(2, 4, 2))
    _close(AF.mvdr_weights_souden(ember.tensor(ps.numpy()), ember.tensor(pn.numpy()), ref_e,
                                  loading),
           TF.mvdr_weights_souden(ps, pn, ref_t, loading))


@pytest.mark.parametrize("reference", [None, "int", "tensor"])
def test_mvdr_weights_rtf(reference):
    _, _, ps, pn = _psds()
    rtf = TF.rtf_evd(ps)
    ref_e = {None: None, "int": 1, "tensor": ember.tensor(_ref(2, 4, 1))}[reference]
    ref_t = {None: None, "int": 1, "tensor": torch.tensor(_ref(2, 4, 1))}[reference]
    _close(AF.mvdr_weights_rtf(ember.tensor(rtf.numpy()), ember.tensor(pn.numpy()), ref_e),
           TF.mvdr_weights_rtf(rtf, pn, ref_t))


def test_rtf_evd_is_the_principal_eigenvector():
    _, _, ps, _ = _psds()
    got = AF.rtf_evd(ember.tensor(ps.numpy())).numpy()
    want = TF.rtf_evd(ps).numpy()
    # eigenvectors are defined up to a unit phase: compare |<got, want>| = 1
    overlap = np.abs((got.conj() * want).sum(-1))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-10)


@pytest.mark.parametrize("n_iter", [1, 2, 3, 6])
@pytest.mark.parametrize("reference", ["int", "tensor"])
def test_rtf_power(n_iter, reference):
    _, _, ps, pn = _psds()
    ref_e = 0 if reference == "int" else ember.tensor(_ref(2, 4, 0))
    ref_t = 0 if reference == "int" else torch.tensor(_ref(2, 4, 0))
    _close(AF.rtf_power(ember.tensor(ps.numpy()), ember.tensor(pn.numpy()), ref_e, n_iter),
           TF.rtf_power(ps, pn, ref_t, n_iter), atol=1e-8)


def test_apply_beamforming_and_transforms():
    spec, mask, ps, pn = _psds()
    es, eps_, epn = (ember.tensor(a) for a in (spec, ps.numpy(), pn.numpy()))
    w = TF.mvdr_weights_souden(ps, pn, 0)
    _close(AF.apply_beamforming(ember.tensor(w.numpy()), es),
           TF.apply_beamforming(w, torch.tensor(spec)))
    _close(AT.SoudenMVDR()(es, eps_, epn, 0),
           torchaudio.transforms.SoudenMVDR()(torch.tensor(spec), ps, pn, 0))
    rtf = TF.rtf_evd(ps)
    _close(AT.RTFMVDR()(es, ember.tensor(rtf.numpy()), epn, 0),
           torchaudio.transforms.RTFMVDR()(torch.tensor(spec), rtf, pn, 0))
    multi = np.random.default_rng(5).random(spec.shape)
    _close(AT.PSD(multi_mask=True)(es, ember.tensor(multi)),
           torchaudio.transforms.PSD(multi_mask=True)(torch.tensor(spec), torch.tensor(multi)),
           atol=1e-9)


def test_beamforming_gradients():
    spec, mask, ps, pn = _psds((3, 5, 12), seed=7)
    es, em = ember.tensor(spec, requires_grad=True), ember.tensor(mask, requires_grad=True)
    ts, tm = torch.tensor(spec, requires_grad=True), torch.tensor(mask, requires_grad=True)

    def pipeline(F, s, m):
        psd_s, psd_n = F.psd(s, m), F.psd(s, 1 - m)
        return F.apply_beamforming(F.mvdr_weights_souden(psd_s, psd_n, 0), s)
    got, want = pipeline(AF, es, em), pipeline(TF, ts, tm)
    c = _spec(8, tuple(want.shape))
    (got * ember.tensor(c).conj()).real.sum().backward()
    (want * torch.tensor(c).conj()).real.sum().backward()
    _close(es.grad, ts.grad, atol=1e-8)
    _close(em.grad, tm.grad, atol=1e-8)


@pytest.mark.parametrize("call,error", [
    (lambda: AF.mvdr_weights_souden(ember.ones(3, 2, 2), ember.ones(3, 2, 2), 0), TypeError),
    (lambda: AF.mvdr_weights_souden(ember.ones(3, 2, 2, dtype=ember.complex128),
                                    ember.ones(3, 3, 3, dtype=ember.complex128), 0), ValueError),
    (lambda: AF.rtf_power(ember.ones(3, 2, 2, dtype=ember.complex128),
                          ember.ones(3, 2, 2, dtype=ember.complex128), 0, 0), ValueError),
    (lambda: AF.apply_beamforming(ember.ones(3, 2, dtype=ember.complex128),
                                  ember.ones(2, 2, 3, 4, dtype=ember.complex128)), ValueError),
    (lambda: AF.psd(ember.ones(2, 3, 4, dtype=ember.complex128), ember.ones(2, 3)),
     ValueError),
    (lambda: AF.mvdr_weights_souden(ember.ones(3, 2, 2, dtype=ember.complex128),
                                    ember.ones(3, 2, 2, dtype=ember.complex128), 0.5),
     TypeError)])
def test_errors(call, error):
    with pytest.raises(error):
        call()
