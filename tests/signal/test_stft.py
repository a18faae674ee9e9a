"""ember.stft / ember.istft against torch: values and float64/complex128 gradients for
the options (pad modes, windows shorter than n_fft, normalized, one/two-sided, length,
align_to_window), the errors, and the compiled path."""
import numpy as np
import pytest
import torch

import ember

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 40))
XC = X + 1j * RNG.standard_normal((2, 40))
W = RNG.random(6) + 0.5
S = torch.stft(torch.tensor(X), 8, 2, return_complex=True).numpy()
SC = torch.stft(torch.tensor(XC), 8, 2, return_complex=True).numpy()


def _check(torch_fn, ember_fn, *arrays):
    """Values and gradients (a random cotangent through Re(out * conj(cot)))."""
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    es = [ember.tensor(a, requires_grad=True) for a in arrays]
    want, got = torch_fn(*ts), ember_fn(*es)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), atol=1e-12)
    cot = RNG.standard_normal(tuple(want.shape))
    if want.is_complex():
        cot = cot + 1j * RNG.standard_normal(tuple(want.shape))
    want_grads = torch.autograd.grad((want * torch.tensor(cot).conj()).real.sum(), ts)
    got_grads = ember.autograd.grad([(got * ember.tensor(cot).conj()).real.sum()], es)
    for g, w in zip(got_grads, want_grads):
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=1e-12)


@pytest.mark.parametrize("pad_mode", ["reflect", "constant", "replicate", "circular"])
def test_stft_pad_modes(pad_mode):
    _check(lambda a: torch.stft(a, 8, 3, pad_mode=pad_mode, return_complex=True),
           lambda a: ember.stft(a, 8, 3, pad_mode=pad_mode, return_complex=True), X)


@pytest.mark.parametrize("kwargs", [
    {"normalized": True}, {"return_complex": False}, {"onesided": False},
    {"center": False, "align_to_window": True}])
def test_stft_options_with_short_window(kwargs):
    kwargs = {"return_complex": True, **kwargs}
    _check(lambda a, w: torch.stft(a, 8, 2, 6, w, **kwargs),
           lambda a, w: ember.stft(a, 8, 2, 6, w, **kwargs), X, W)


def test_stft_complex_input_is_two_sided():
    _check(lambda a: torch.stft(a[0], 8, 2, return_complex=True),
           lambda a: ember.stft(a[0], 8, 2, return_complex=True), XC)


@pytest.mark.parametrize("spectrum,kwargs", [
    (S, {}), (S, {"length": 30}), (S, {"length": 50}), (S, {"normalized": True}),
    (S, {"center": False}), (SC, {}), (SC, {"return_complex": True})])
def test_istft_matches_torch(spectrum, kwargs):
    _check(lambda s: torch.istft(s, 8, 2, **kwargs),
           lambda s: ember.istft(s, 8, 2, **kwargs), spectrum)


def test_istft_with_window_inverts_stft():
    _check(lambda s, w: torch.istft(s, 8, 2, 6, w), lambda s, w: ember.istft(s, 8, 2, 6, w),
           S, W)
    x = ember.tensor(X)
    w = ember.tensor(W)
    back = ember.istft(ember.stft(x, 8, 2, 6, w, return_complex=True), 8, 2, 6, w,
                       length=40)
    np.testing.assert_allclose(back.numpy(), X, atol=1e-12)


@pytest.mark.parametrize("call,match", [
    (lambda: ember.stft(ember.tensor(X), 8, 2), "return_complex"),
    (lambda: ember.stft(ember.tensor(X), 80, center=False, return_complex=True), "n_fft"),
    (lambda: ember.stft(ember.tensor(X), 8, 0, return_complex=True), "hop_length"),
    (lambda: ember.stft(ember.tensor(XC), 8, onesided=True, return_complex=True),
     "onesided"),
    (lambda: ember.istft(ember.tensor(S), 8, 9, center=False), "overlap add"),
    (lambda: ember.istft(ember.tensor(S), 8, 2, return_complex=True), "onesided"),
    (lambda: ember.istft(ember.tensor(S[:, :4]), 8, 2), "frequency dimension"),
    (lambda: ember.istft(ember.zeros(5, 3), 8, 2), "complex-valued input"),
])
def test_bad_arguments_raise_runtime_error(call, match):
    with pytest.raises(RuntimeError, match=match):
        call()


def test_compiled_stft_and_istft_equal_eager():
    x = ember.tensor(X.astype(np.float32))
    spec = ember.compile(lambda t: ember.stft(t, 8, 2, return_complex=True).abs())
    np.testing.assert_allclose(spec(x).numpy(),
                               ember.stft(x, 8, 2, return_complex=True).abs().numpy(),
                               rtol=1e-6)
    inverse = ember.compile(lambda s: ember.istft(s, 8, 2))
    np.testing.assert_allclose(inverse(ember.stft(x, 8, 2, return_complex=True)).numpy(),
                               X, atol=1e-5)
