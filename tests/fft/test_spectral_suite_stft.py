"""torch.stft / torch.istft and the window functions, cases of the kind PyTorch's
test_spectral_ops.py and test_tensor_creation_ops.py exercise, re-expressed as ember tests
with torch as the oracle: the argument grid of stft (hop/win lengths, windows, center,
pad_mode, normalized, onesided, return_complex), istft round trips with length, batched vs
per-item, gradients, torch's *_window factories and torch.signal.windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from tests.oracle import as_numpy


def _rand(seed, shape, complex_=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    return x + 1j * rng.standard_normal(shape) if complex_ else x


def _window(lib, kind, length):
    if kind is None:
        return None
    if kind == "kaiser":
        return lib.kaiser_window(length, True, 8.0, dtype=lib.float64)
    return getattr(lib, f"{kind}_window")(length, dtype=lib.float64)


def _close(got, want, atol=1e-10):
    np.testing.assert_allclose(as_numpy(got), want.detach().resolve_conj().numpy(), atol=atol,
                               rtol=max(1e-8, atol))


STFT_GRID = [
    # n_fft, hop, win_length, window, center, pad_mode, normalized, onesided
    (16, 4, None, "hann", True, "reflect", False, None),
    (16, None, None, None, True, "reflect", False, None),
    (16, 5, 12, "hamming", True, "constant", False, True),
    (15, 3, 15, "blackman", True, "replicate", True, True),
    (15, 4, 9, "bartlett", False, "reflect", False, False),
    (32, 8, 32, "kaiser", True, "circular", True, False),
    (8, 1, 8, "hann", False, "reflect", True, True),
    (20, 7, 11, "hann", True, "reflect", False, False),
    (17, 17, 17, None, False, "reflect", False, True),
    (64, 16, 40, "hamming", True, "constant", True, True),
]


@pytest.mark.parametrize("case", STFT_GRID)
@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("return_complex", [True, False])
def test_stft_argument_grid(case, batched, return_complex):
    n_fft, hop, win, kind, center, pad_mode, normalized, onesided = case
    x = _rand(0, (3, 100) if batched else (100,))
    kw = dict(hop_length=hop, win_length=win, center=center, pad_mode=pad_mode,
              normalized=normalized, onesided=onesided, return_complex=return_complex)
    length = win or n_fft
    want = torch.stft(torch.tensor(x), n_fft, window=_window(torch, kind, length), **kw)
    got = ember.stft(ember.tensor(x), n_fft, window=_window(ember, kind, length), **kw)
    assert tuple(got.shape) == tuple(want.shape)
    _close(got, want)


@pytest.mark.parametrize("case", STFT_GRID[:6])
def test_stft_batched_equals_per_item(case):
    n_fft, hop, win, kind, center, pad_mode, normalized, onesided = case
    x = ember.tensor(_rand(1, (4, 90)))
    window = _window(ember, kind, win or n_fft)
    kw = dict(hop_length=hop, win_length=win, window=window, center=center,
              pad_mode=pad_mode, normalized=normalized, onesided=onesided,
              return_complex=True)
    batched = ember.stft(x, n_fft, **kw)
    for i in range(4):
        np.testing.assert_allclose(as_numpy(batched[i]), as_numpy(ember.stft(x[i], n_fft, **kw)),
                                   atol=1e-12)


@pytest.mark.parametrize("n_fft,hop,win", [(16, 4, None), (16, 4, 10)])
@pytest.mark.parametrize("dtype", ["float32", "complex64", "complex128"])
def test_stft_dtypes(n_fft, hop, win, dtype):
    x = _rand(2, (2, 64), dtype.startswith("complex")).astype(dtype)
    want = torch.stft(torch.tensor(x), n_fft, hop, win, return_complex=True)
    got = ember.stft(ember.tensor(x), n_fft, hop, win, return_complex=True)
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
    _close(got, want, atol=1e-4 if dtype in ("float32", "complex64") else 1e-10)


ISTFT_GRID = [
    # n_fft, hop, win_length, window, center, normalized, length
    (16, 4, None, "hann", True, False, None),
    (16, 4, None, "hann", True, True, 80),
    (16, 4, 12, "hamming", True, False, 95),
    (15, 5, 15, "hann", True, False, None),
    (32, 8, 32, "blackman", True, True, 120),
    (16, 4, 16, "hann", True, False, 130),
    (20, 5, 20, "kaiser", True, False, None),
    (12, 3, 12, None, False, False, None),
]


@pytest.mark.parametrize("case", ISTFT_GRID)
@pytest.mark.parametrize("batched", [False, True])
def test_istft_inverts_stft_like_torch(case, batched):
    n_fft, hop, win, kind, center, normalized, length = case
    x = _rand(3, (2, 100) if batched else (100,))
    window_len = win or n_fft
    kw = dict(hop_length=hop, win_length=win, center=center, normalized=normalized)
    tspec = torch.stft(torch.tensor(x), n_fft, window=_window(torch, kind, window_len),
                       return_complex=True, **kw)
    want = torch.istft(tspec, n_fft, window=_window(torch, kind, window_len), length=length,
                       **kw)
    got = ember.istft(ember.tensor(tspec.numpy()), n_fft,
                      window=_window(ember, kind, window_len), length=length, **kw)
    _close(got, want)
    if length is not None and length <= 100:
        np.testing.assert_allclose(as_numpy(got), x[..., :length], atol=1e-9)


@pytest.mark.parametrize("onesided", [True, False])
def test_istft_of_two_sided_spectrum(onesided):
    x = _rand(4, (60,))
    spec = torch.stft(torch.tensor(x), 16, 4, return_complex=True, onesided=onesided,
                      window=torch.hann_window(16, dtype=torch.float64))
    want = torch.istft(spec, 16, 4, window=torch.hann_window(16, dtype=torch.float64),
                       onesided=onesided)
    got = ember.istft(ember.tensor(spec.numpy()), 16, 4,
                      window=ember.hann_window(16, dtype=ember.float64), onesided=onesided)
    _close(got, want)


@pytest.mark.parametrize("kw", [
    dict(n_fft=16, hop_length=4), dict(n_fft=16, hop_length=3, win_length=10),
    dict(n_fft=12, hop_length=4, center=False), dict(n_fft=16, hop_length=4, normalized=True),
    dict(n_fft=16, hop_length=4, pad_mode="constant"), dict(n_fft=16, onesided=False)])
def test_stft_gradient_matches_torch(kw):
    x = _rand(5, (2, 48))
    tx, ex = torch.tensor(x, requires_grad=True), ember.tensor(x, requires_grad=True)
    n = kw.get("win_length", kw["n_fft"])
    tw = torch.hann_window(n, dtype=torch.float64)
    want = torch.stft(tx, window=tw, return_complex=True, **kw)
    got = ember.stft(ex, window=ember.hann_window(n, dtype=ember.float64),
                     return_complex=True, **kw)
    c = _rand(6, tuple(want.shape), True)
    (want * torch.tensor(c).conj()).real.sum().backward()
    (got * ember.tensor(c).conj()).real.sum().backward()
    _close(ex.grad, tx.grad)


@pytest.mark.parametrize("kw", [dict(length=None), dict(length=50), dict(normalized=True),
                                dict(length=70)])
def test_istft_gradient_matches_torch(kw):
    spec = torch.stft(torch.tensor(_rand(7, (60,))), 16, 4, return_complex=True,
                      window=torch.hann_window(16, dtype=torch.float64),
                      ).numpy()
    ts = torch.tensor(spec, requires_grad=True)
    es = ember.tensor(spec, requires_grad=True)
    want = torch.istft(ts, 16, 4, window=torch.hann_window(16, dtype=torch.float64), **kw)
    got = ember.istft(es, 16, 4, window=ember.hann_window(16, dtype=ember.float64), **kw)
    c = _rand(8, tuple(want.shape))
    (want * torch.tensor(c)).sum().backward()
    (got * ember.tensor(c)).sum().backward()
    _close(es.grad, ts.grad)


def test_stft_gradient_with_respect_to_window():
    x = _rand(9, (40,))
    w = np.random.default_rng(10).random(12) + 0.5
    tw, ew = torch.tensor(w, requires_grad=True), ember.tensor(w, requires_grad=True)
    want = torch.stft(torch.tensor(x), 16, 4, 12, tw, return_complex=True).abs().sum()
    got = ember.stft(ember.tensor(x), 16, 4, 12, ew, return_complex=True).abs().sum()
    want.backward()
    got.backward()
    _close(ew.grad, tw.grad)


# --- windows --------------------------------------------------------------------------
LEGACY = ["hann_window", "hamming_window", "blackman_window", "bartlett_window",
          "kaiser_window"]


@pytest.mark.parametrize("name", LEGACY)
@pytest.mark.parametrize("length", [0, 1, 2, 5, 10, 33])
@pytest.mark.parametrize("periodic", [True, False])
def test_legacy_window_factories(name, length, periodic):
    got = getattr(ember, name)(length, periodic, dtype=ember.float64)
    want = getattr(torch, name)(length, periodic, dtype=torch.float64)
    _close(got, want, atol=1e-12)


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_window_default_dtype_and_requires_grad(name):
    got = getattr(ember, name)(7, requires_grad=True)
    assert got.dtype == ember.float32 and got.requires_grad
    _close(got.detach(), getattr(torch, name)(7), atol=1e-6)


@pytest.mark.parametrize("alpha,beta", [(0.54, 0.46), (0.5, 0.5), (0.6, 0.3)])
@pytest.mark.parametrize("periodic", [True, False])
def test_hamming_window_alpha_beta(alpha, beta, periodic):
    _close(ember.hamming_window(11, periodic, alpha, beta, dtype=ember.float64),
           torch.hamming_window(11, periodic, alpha, beta, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("beta", [0.0, 2.5, 12.0, 20.0])
def test_kaiser_window_beta(beta):
    _close(ember.kaiser_window(16, True, beta, dtype=ember.float64),
           torch.kaiser_window(16, True, beta, dtype=torch.float64), atol=1e-12)


SIGNAL_WINDOWS = [("hann", {}), ("hamming", {}), ("blackman", {}), ("bartlett", {}),
                  ("cosine", {}), ("nuttall", {}), ("kaiser", {"beta": 5.0}),
                  ("gaussian", {"std": 2.5}), ("exponential", {"tau": 3.0}),
                  ("general_hamming", {"alpha": 0.6}),
                  ("general_cosine", {"a": [0.46, 0.23, 0.31]})]


@pytest.mark.parametrize("name,kw", SIGNAL_WINDOWS)
@pytest.mark.parametrize("M", [0, 1, 6, 13])
@pytest.mark.parametrize("sym", [True, False])
def test_signal_windows(name, kw, M, sym):
    got = getattr(ember.signal.windows, name)(M, sym=sym, dtype=ember.float64, **kw)
    want = getattr(torch.signal.windows, name)(M, sym=sym, dtype=torch.float64, **kw)
    _close(got, want, atol=1e-12)


def test_exponential_window_with_center():
    _close(ember.signal.windows.exponential(10, center=2.0, tau=2.0, sym=False,
                                            dtype=ember.float64),
           torch.signal.windows.exponential(10, center=2.0, tau=2.0, sym=False,
                                            dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("call", [
    lambda m: m.signal.windows.hann(-1), lambda m: m.signal.windows.kaiser(5, beta=-1.0),
    lambda m: m.signal.windows.gaussian(5, std=0.0),
    lambda m: m.signal.windows.exponential(5, center=1.0),
    lambda m: m.signal.windows.hann(4, dtype=m.int64),
    lambda m: m.signal.windows.general_cosine(4, a=[])])
def test_window_errors(call):
    with pytest.raises(Exception):
        call(torch)
    with pytest.raises(ValueError):
        call(ember)


@pytest.mark.parametrize("call", [
    lambda m: m.stft(m.ones(20, dtype=m.float64), 8, 2, 9, return_complex=True),
    lambda m: m.stft(m.ones(20, dtype=m.float64), 8, 2, window=m.ones(5, dtype=m.float64),
                     return_complex=True),
    lambda m: m.stft(m.ones(2, 2, 20, dtype=m.float64), 8, return_complex=True),
    lambda m: m.istft(m.ones(5, 4, dtype=m.complex128), 8, 2, length=3, onesided=True,
                      win_length=10)])
def test_stft_istft_errors(call):
    with pytest.raises(Exception):
        call(torch)
    with pytest.raises(RuntimeError):
        call(ember)
