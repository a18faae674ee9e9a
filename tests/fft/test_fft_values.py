"""ember.fft values and dtypes against torch.fft and numpy.fft: every function, over
n / s / dim / norm, batched, real and complex inputs, odd and even lengths."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

import ember
import ember.fft as efft
from tests.oracle import TORCH_DTYPES, as_numpy, assert_close

NORMS = [None, "backward", "ortho", "forward"]
ONE_D = ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft"]
TWO_D = [name + "2" for name in ONE_D]
N_D = [name + "n" for name in ONE_D]
REAL_ONLY = {"rfft", "ihfft"}           # torch rejects complex input to these


def make(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    return np.asarray(x, dtype)


def input_dtypes(name):
    real = [np.float32, np.float64]
    return real if name.rstrip("2n") in REAL_ONLY else real + [np.complex64, np.complex128]


def check_against_torch(name, x, **kwargs):
    got = getattr(efft, name)(ember.tensor(x), **kwargs)
    want = getattr(torch.fft, name)(torch.from_numpy(x), **kwargs)
    assert TORCH_DTYPES[got.dtype] == want.dtype, f"{name}{kwargs}: {got.dtype} vs {want.dtype}"
    tol = 1e-10 if x.dtype in (np.float64, np.complex128) else 2e-5
    scale = max(1.0, float(np.abs(as_numpy(want)).max(initial=0)))
    assert_close(got, want, rtol=tol, atol=tol * scale, what=f"{name} {x.shape} {kwargs}")
    return got


@pytest.mark.parametrize("name", ONE_D)
@pytest.mark.parametrize("norm", NORMS)
def test_1d_transforms_match_torch(name, norm, rng):
    for dtype in input_dtypes(name):
        for shape, n, dim in [((8,), None, -1), ((7,), None, 0), ((3, 5), 8, -1),
                              ((3, 6), 4, 0), ((2, 3, 5), 3, 1), ((4, 9), 12, 1)]:
            check_against_torch(name, make(rng, shape, dtype), n=n, dim=dim, norm=norm)


@pytest.mark.parametrize("name", TWO_D + N_D)
@pytest.mark.parametrize("norm", NORMS)
def test_multi_dim_transforms_match_torch(name, norm, rng):
    nd = name.endswith("n")
    cases = [((4, 6), {}), ((3, 5, 7), {}), ((2, 4, 5), {"s": (3, 6)}),
             ((2, 4, 5), {"dim": (0, 2)}), ((3, 4, 5), {"s": (6, 3), "dim": (2, 0)}),
             ((3, 4, 5), {"s": (-1, 7), "dim": (0, 1)})]
    if nd:
        cases += [((3, 4, 5), {"s": (5,)}), ((2, 3, 4), {"dim": (1,)}),
                  ((2, 3, 4), {"s": (4, 4, 3)})]
    for dtype in input_dtypes(name):
        for shape, kwargs in cases:
            check_against_torch(name, make(rng, shape, dtype), norm=norm, **kwargs)


NUMPY_PAIRS = [("fft", np.fft.fft), ("ifft", np.fft.ifft), ("rfft", np.fft.rfft),
               ("irfft", np.fft.irfft), ("hfft", np.fft.hfft), ("ihfft", np.fft.ihfft)]


@pytest.mark.parametrize("name,np_fn", NUMPY_PAIRS)
@settings(deadline=None, max_examples=15)
@given(length=st.integers(1, 9), n=st.one_of(st.none(), st.integers(2, 10)),
       batch=st.integers(1, 3), norm=st.sampled_from(["backward", "ortho", "forward"]),
       seed=st.integers(0, 2**16))
def test_1d_transforms_match_numpy(name, np_fn, length, n, batch, norm, seed):
    rng = np.random.default_rng(seed)
    if name in ("irfft", "hfft") and n is None and length == 1:
        n = 2                                      # the default 2 * (1 - 1) is empty
    dtype = np.float64 if name in REAL_ONLY else np.complex128
    x = make(rng, (batch, length), dtype)
    got = getattr(efft, name)(ember.tensor(x), n=n, dim=1, norm=norm)
    assert_close(got, np_fn(x, n=n, axis=1, norm=norm), rtol=1e-10, atol=1e-10,
                 what=f"{name} n={n} norm={norm}")


def test_nd_transforms_match_numpy(rng):
    x = make(rng, (3, 4, 5), np.complex128)
    r = make(rng, (3, 4, 5), np.float64)
    assert_close(efft.fftn(ember.tensor(x), s=(5, 3), dim=(0, 2)),
                 np.fft.fftn(x, s=(5, 3), axes=(0, 2)), rtol=1e-10, atol=1e-10)
    assert_close(efft.ifft2(ember.tensor(x), norm="ortho"),
                 np.fft.ifft2(x, norm="ortho"), rtol=1e-10, atol=1e-10)
    assert_close(efft.rfftn(ember.tensor(r)), np.fft.rfftn(r), rtol=1e-10, atol=1e-10)
    assert_close(efft.irfftn(ember.tensor(x), s=(4, 7), dim=(1, 2)),
                 np.fft.irfftn(x, s=(4, 7), axes=(1, 2)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["fft", "rfft", "fft2", "irfftn", "hfft", "ihfftn"])
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.bool_])
def test_integer_inputs_are_promoted_to_the_default_float(name, dtype, rng):
    x = (rng.integers(-4, 5, size=(3, 4)) if dtype is not np.bool_
         else rng.random((3, 4)) > 0.5).astype(dtype)
    got = check_against_torch(name, x)
    assert got.dtype in (ember.complex64, ember.float32)


def test_default_dtype_float64_promotes_integers_to_complex128():
    previous = ember.get_default_dtype()
    ember.set_default_dtype(ember.float64)
    try:
        assert efft.fft(ember.tensor(np.arange(4))).dtype is ember.complex128
    finally:
        ember.set_default_dtype(previous)


@pytest.mark.parametrize("name,dtype,want", [
    ("fft", np.float32, ember.complex64), ("fft", np.float64, ember.complex128),
    ("ifft", np.complex64, ember.complex64), ("rfft", np.float64, ember.complex128),
    ("irfft", np.complex64, ember.float32), ("irfft", np.float64, ember.float64),
    ("hfft", np.complex128, ember.float64), ("ihfft", np.float32, ember.complex64)])
def test_result_dtypes(name, dtype, want, rng):
    assert getattr(efft, name)(ember.tensor(make(rng, (6,), dtype))).dtype is want


def test_fftn_over_no_dims_returns_the_input_as_complex(rng):
    x = make(rng, (2, 3), np.float32)
    check_against_torch("fftn", x, dim=())
    check_against_torch("fftn", np.asarray(1.5, np.float32))


def test_non_contiguous_input(rng):
    x = make(rng, (6, 8), np.complex64)
    got = efft.fft(ember.tensor(x)[:, ::2], dim=0)
    assert_close(got, np.fft.fft(x[:, ::2], axis=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["fftshift", "ifftshift"])
def test_shifts_match_torch_and_numpy(name, rng):
    for shape, dim in [((5,), None), ((4, 5), None), ((4, 5), 1), ((3, 4, 5), (0, -1)),
                       ((6, 3), [0])]:
        for dtype in (np.float32, np.complex128, np.int64):
            x = make(rng, shape, dtype) if dtype is not np.int64 else \
                rng.integers(0, 9, size=shape)
            got = check_against_torch(name, x, dim=dim)
            assert_close(got, getattr(np.fft, name)(x, axes=dim), rtol=0, atol=0)


def test_shifts_invert_each_other(rng):
    x = ember.tensor(make(rng, (5, 6), np.float64))
    assert_close(efft.ifftshift(efft.fftshift(x)), x, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["fftfreq", "rfftfreq"])
def test_frequencies_match_torch(name):
    for n, d in [(1, 1.0), (8, 1.0), (7, 0.5), (10, 0.01)]:
        got = getattr(efft, name)(n, d)
        want = getattr(torch.fft, name)(n, d)
        assert got.dtype is ember.float32 and tuple(got.shape) == tuple(want.shape)
        assert_close(got, want, rtol=1e-6, atol=0)
    got = getattr(efft, name)(6, d=0.25, dtype=ember.float64)
    assert got.dtype is ember.float64
    assert_close(got, getattr(np.fft, name)(6, 0.25), rtol=1e-15, atol=0)


def test_round_trips(rng):
    x = ember.tensor(make(rng, (3, 7), np.float64))
    assert_close(efft.irfft(efft.rfft(x), n=7), x, rtol=1e-12, atol=1e-12)
    assert_close(efft.ifft(efft.fft(x, norm="ortho"), norm="ortho").numpy().real, x,
                 rtol=1e-12, atol=1e-12)
    assert_close(efft.irfftn(efft.rfftn(x), s=(3, 7)), x, rtol=1e-12, atol=1e-12)


def test_ember_namespace_and_ops_are_registry_ops():
    from ember.ir.registry import OPS, Tag
    assert ember.fft is efft
    names = {op.python_name for op in OPS.values() if op.namespace == "fft"}
    assert set(efft.__all__) == names
    assert all(OPS[f"fft_{n}"].has_tag(Tag.FFT) for n in names)
