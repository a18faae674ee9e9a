"""torch.fft cases of the kind PyTorch's test_spectral_ops.py exercises, re-expressed as
ember tests with torch as the oracle: integer and non-contiguous inputs, round trips, every
norm against its inverse, fftshift/ifftshift, fftfreq/rfftfreq (n, d, dtype), Hermitian
transforms, and gradients of real and complex inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.fft as efft
from tests.oracle import TORCH_DTYPES, as_numpy

NORMS = [None, "backward", "forward", "ortho"]
INVERSE = {"fft": "ifft", "fft2": "ifft2", "fftn": "ifftn", "rfft": "irfft",
           "rfft2": "irfft2", "rfftn": "irfftn", "ihfft": "hfft", "ihfft2": "hfft2",
           "ihfftn": "hfftn"}


def _rand(seed, shape, complex_=False, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if complex_:
        x = x + 1j * rng.standard_normal(shape)
    return np.asarray(x, dtype=dtype)


def _close(got, want, tol=1e-10):
    want = want.detach() if isinstance(want, torch.Tensor) else want
    assert TORCH_DTYPES[got.dtype] == want.dtype, (got.dtype, want.dtype)
    w = want.resolve_conj().resolve_neg().numpy()
    scale = max(1.0, float(np.abs(w).max(initial=0)))
    np.testing.assert_allclose(as_numpy(got), w, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "ihfft", "fft2", "rfftn", "hfft"])
@pytest.mark.parametrize("np_dtype", [np.int64, np.int32, np.bool_])
def test_integer_and_bool_inputs_promote_to_float(name, np_dtype):
    x = (np.arange(12).reshape(3, 4) % 3).astype(np_dtype)
    _close(getattr(efft, name)(ember.tensor(x)), getattr(torch.fft, name)(torch.tensor(x)),
           tol=2e-5)


@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft",
                                  "fft2", "ifftn", "rfft2", "irfftn"])
@pytest.mark.parametrize("layout", ["transposed", "strided", "expanded"])
def test_non_contiguous_inputs(name, layout):
    complex_ = name not in ("rfft", "ihfft", "rfft2")
    base = _rand(1, (6, 8), complex_)

    def view(t):
        if layout == "transposed":
            return t.transpose(0, 1)
        if layout == "strided":
            return t[::2, 1::2]
        return t[:1].expand(4, 8)
    _close(getattr(efft, name)(view(ember.tensor(base))),
           getattr(torch.fft, name)(view(torch.tensor(base))))


@pytest.mark.parametrize("forward", sorted(INVERSE))
@pytest.mark.parametrize("norm", NORMS)
def test_round_trip_with_matching_norm(forward, norm):
    real_in = forward.startswith(("rfft", "ihfft"))
    x = _rand(2, (3, 4, 6), not real_in)
    fwd = getattr(efft, forward)(ember.tensor(x), norm=norm)
    kw = {"s": x.shape[-2:]} if forward.endswith("2") else \
        {"s": x.shape} if forward.endswith("n") else {"n": x.shape[-1]}
    if not real_in:
        kw = {}
    back = getattr(efft, INVERSE[forward])(fwd, norm=norm, **kw)
    np.testing.assert_allclose(as_numpy(back), x, atol=1e-10)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n", [None, 5, 8, 11])
def test_hfft_of_hermitian_half_spectrum(norm, n):
    x = _rand(3, (2, 6), True)
    _close(efft.hfft(ember.tensor(x), n=n, norm=norm),
           torch.fft.hfft(torch.tensor(x), n=n, norm=norm))
    _close(efft.ihfft(ember.tensor(x.real), n=n, norm=norm),
           torch.fft.ihfft(torch.tensor(x.real), n=n, norm=norm))


@pytest.mark.parametrize("name", ["hfft2", "ihfft2", "hfftn", "ihfftn"])
@pytest.mark.parametrize("s", [None, (4, 6), (3, 7)])
def test_hermitian_multi_dim(name, s):
    complex_ = name.startswith("hfft")
    x = _rand(4, (2, 4, 5), complex_)
    _close(getattr(efft, name)(ember.tensor(x), s=s),
           getattr(torch.fft, name)(torch.tensor(x), s=s))


@pytest.mark.parametrize("fn", ["fftshift", "ifftshift"])
@pytest.mark.parametrize("shape,dim", [((7,), None), ((8,), None), ((4, 5), None),
                                       ((4, 5), 0), ((4, 5), -1), ((3, 4, 5), (0, 2)),
                                       ((3, 4, 5), (-1, -2)), ((2, 3, 4), [1])])
def test_fftshift_ifftshift(fn, shape, dim):
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    got = getattr(efft, fn)(ember.tensor(x), dim=dim)
    want = getattr(torch.fft, fn)(torch.tensor(x), dim=dim)
    np.testing.assert_array_equal(as_numpy(got), want.numpy())


@pytest.mark.parametrize("shape", [(5,), (6,), (3, 4), (5, 7)])
def test_fftshift_then_ifftshift_is_identity(shape):
    x = ember.tensor(_rand(5, shape, True))
    np.testing.assert_array_equal(as_numpy(efft.ifftshift(efft.fftshift(x))), as_numpy(x))


@pytest.mark.parametrize("fn", ["fftfreq", "rfftfreq"])
@pytest.mark.parametrize("n", [1, 2, 7, 10])
@pytest.mark.parametrize("d", [1.0, 0.5, 1 / 16000])
def test_fftfreq_values(fn, n, d):
    _close(getattr(efft, fn)(n, d), getattr(torch.fft, fn)(n, d), tol=1e-6)


@pytest.mark.parametrize("fn", ["fftfreq", "rfftfreq"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fftfreq_dtype_and_requires_grad(fn, dtype):
    got = getattr(efft, fn)(9, 0.25, dtype=getattr(ember, dtype), requires_grad=True)
    want = getattr(torch.fft, fn)(9, 0.25, dtype=getattr(torch, dtype), requires_grad=True)
    assert got.requires_grad and got.dtype == getattr(ember, dtype)
    _close(got, want)


@pytest.mark.parametrize("name", ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft"])
@pytest.mark.parametrize("dtype", ["float32", "complex64"])
def test_single_precision_dtypes(name, dtype):
    if dtype == "complex64" and name in ("rfft", "ihfft"):
        pytest.skip("torch rejects complex input to rfft/ihfft")
    x = _rand(6, (3, 10), dtype == "complex64", getattr(np, dtype))
    _close(getattr(efft, name)(ember.tensor(x)), getattr(torch.fft, name)(torch.tensor(x)),
           tol=2e-5)


def _grad_pair(name, x, **kw):
    """ember's and torch's input gradient of Re(sum(f(x) * conj(c))) for a random c."""
    tx = torch.tensor(x, requires_grad=True)
    ex = ember.tensor(x, requires_grad=True)
    want = getattr(torch.fft, name)(tx, **kw)
    got = getattr(efft, name)(ex, **kw)
    c = _rand(7, tuple(want.shape), want.is_complex())
    (want * torch.tensor(c).conj()).real.sum().backward()
    (got * ember.tensor(c).conj()).real.sum().backward()
    return ex.grad, tx.grad


@pytest.mark.parametrize("name,kw", [
    ("fft", {"n": 12, "norm": "ortho"}), ("ifft", {"n": 5}), ("rfft", {"n": 7}),
    ("rfft", {"norm": "forward"}), ("irfft", {"n": 10}), ("irfft", {"n": 9, "norm": "ortho"}),
    ("hfft", {"n": 8}), ("ihfft", {"n": 11}), ("fft2", {"s": (3, 9)}),
    ("ifft2", {"norm": "forward"}), ("rfft2", {}), ("irfft2", {"s": (4, 7)}),
    ("fftn", {"dim": (0, 2)}), ("rfftn", {"s": (2, 4, 6)}), ("irfftn", {"s": (3, 4, 6)}),
    ("hfft2", {}), ("ihfftn", {"s": (4, 6)})])
def test_gradients_match_torch(name, kw):
    complex_ = name not in ("rfft", "ihfft", "rfft2", "rfftn", "ihfftn")
    x = _rand(8, (3, 4, 6), complex_)
    got, want = _grad_pair(name, x, **kw)
    _close(got, want)


@pytest.mark.parametrize("name", ["fft", "fft2", "ifftn"])
def test_gradients_of_real_input_to_complex_transform_are_real(name):
    got, want = _grad_pair(name, _rand(9, (4, 6)))
    assert not got.dtype.is_complex
    _close(got, want)


@pytest.mark.parametrize("call", [
    lambda m: m.fft.fft(m.ones(4), dim=2), lambda m: m.fft.fft(m.ones(4), n=0),
    lambda m: m.fft.fft(m.ones(4), norm="bad"), lambda m: m.fft.rfft(m.ones(4) * 1j),
    lambda m: m.fft.fftn(m.ones(2, 3), s=(2, 2), dim=(0,)),
    lambda m: m.fft.irfft(m.ones(4, dtype=m.complex64), n=-1)])
def test_invalid_arguments_raise_where_torch_raises(call):
    with pytest.raises(Exception):
        call(torch)
    with pytest.raises((RuntimeError, ValueError, IndexError, TypeError)):
        call(ember)
