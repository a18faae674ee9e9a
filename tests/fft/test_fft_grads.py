"""ember.fft gradients: against torch's (real and complex inputs, every transform, n / s /
dim / norm), against float64 finite differences (ember.autograd.gradcheck, and torch's
gradcheck on the same functions), second derivatives, and through traced graphs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
import ember.fft as efft
import ember.fx as fx
from ember.ir import graphs_equal, parse, print_graph
from tests.oracle import assert_close

ONE_D = ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft"]
REAL_ONLY = {"rfft", "ihfft"}
ALL = ONE_D + [n + "2" for n in ONE_D] + [n + "n" for n in ONE_D]


def make(rng, shape, complex_):
    x = rng.standard_normal(shape)
    return x + 1j * rng.standard_normal(shape) if complex_ else x


def cases(name):
    """(input shape, kwargs): trims, pads, odd and even signal lengths, every norm."""
    if name[-1] not in "2n":
        return [((2, 6), {}), ((5,), {"n": 8, "norm": "ortho"}),
                ((3, 4), {"n": 3, "dim": 0, "norm": "forward"}), ((2, 7), {"n": 9})]
    out = [((3, 4), {}), ((2, 3, 5), {"s": (4, 3), "norm": "ortho"}),
           ((3, 4, 2), {"s": (2, 5), "dim": (1, 0), "norm": "forward"})]
    if name.endswith("n"):
        out.append(((2, 3, 4), {"s": (3, 5, 7)}))
    return out


def input_kinds(name):
    return [False] if name.rstrip("2n") in REAL_ONLY else [False, True]


def grads_of(module, fn, x, cot):
    """d Re(sum(fn(x) * cot)) / dx in `module` (ember or torch)."""
    out = fn(x)
    loss = (out * cot).sum()
    loss = module.real(loss) if loss.is_complex() else loss
    return module.autograd.grad(loss, [x])[0]


@pytest.mark.parametrize("name", ALL)
def test_gradients_match_torch(name, rng):
    for complex_ in input_kinds(name):
        for shape, kwargs in cases(name):
            x = make(rng, shape, complex_)
            e_fn = lambda t: getattr(efft, name)(t, **kwargs)          # noqa: E731
            t_fn = lambda t: getattr(torch.fft, name)(t, **kwargs)     # noqa: E731
            out = t_fn(torch.from_numpy(x))
            cot = make(rng, tuple(out.shape), out.is_complex())
            e_x = ember.tensor(x, requires_grad=True)
            t_x = torch.tensor(x, requires_grad=True)
            got = grads_of(ember, e_fn, e_x, ember.tensor(cot))
            want = grads_of(torch, t_fn, t_x, torch.from_numpy(cot))
            assert got.dtype is e_x.dtype, f"{name}: gradient dtype {got.dtype}"
            assert_close(got, want, rtol=1e-9, atol=1e-9,
                         what=f"{name} {shape} {kwargs} complex={complex_}")


@pytest.mark.parametrize("name", ["fft", "rfft2", "irfft", "hfftn", "ihfft", "ifft2"])
def test_float32_gradients_keep_the_input_dtype(name, rng):
    complex_ = name.rstrip("2n") not in REAL_ONLY and name.startswith(("irfft", "hfft"))
    x = make(rng, (3, 6), complex_).astype(np.complex64 if complex_ else np.float32)
    e_x = ember.tensor(x, requires_grad=True)
    t_x = torch.tensor(x, requires_grad=True)
    out = getattr(torch.fft, name)(t_x)
    cot = make(rng, tuple(out.shape), out.is_complex()).astype(
        np.complex64 if out.is_complex() else np.float32)
    got = grads_of(ember, getattr(efft, name), e_x, ember.tensor(cot))
    want = grads_of(torch, getattr(torch.fft, name), t_x, torch.from_numpy(cot))
    assert got.dtype is e_x.dtype
    assert_close(got, want, rtol=1e-4, atol=1e-4, what=name)


@pytest.mark.parametrize("name", ALL)
def test_gradcheck_in_float64(name, rng):
    """ember's analytical jacobian against central differences (ember.autograd.gradcheck);
    torch's gradcheck on the same call confirms the case is well posed."""
    shape, kwargs = ((5,), {"n": 6, "norm": "ortho"}) if name[-1] not in "2n" else \
        ((2, 3), {"s": (3, 4), "norm": "ortho"})
    for complex_ in input_kinds(name):
        x = make(rng, shape, complex_)
        assert ember.autograd.gradcheck(lambda t: getattr(efft, name)(t, **kwargs),
                                        (ember.tensor(x, requires_grad=True),))
        assert torch.autograd.gradcheck(lambda t: getattr(torch.fft, name)(t, **kwargs),
                                        (torch.tensor(x, requires_grad=True),))


def test_gradcheck_catches_a_wrong_derivative(rng):
    """The finite-difference check used above can fail: a conj() too many is caught."""
    x = ember.tensor(make(rng, (5,), True), requires_grad=True)

    class WrongFFT(ember.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return efft.fft(t)

        @staticmethod
        def backward(ctx, g):
            return ember.conj(efft.ifft(g, norm="forward"))
    assert not ember.autograd.gradcheck(WrongFFT.apply, (x,), raise_exception=False)


@pytest.mark.parametrize("name", ["fft", "irfft", "rfft", "hfft", "ihfft2", "irfftn"])
def test_second_derivatives_match_torch(name, rng):
    complex_ = name.startswith(("irfft", "hfft"))
    x = make(rng, (3, 5), complex_)

    def double_backward(module, fns, x):
        out = fns(x)
        sq = (out * module.conj(out)) if out.is_complex() else out * out
        loss = module.real(sq.sum()) if out.is_complex() else sq.sum()
        (g,) = module.autograd.grad(loss, [x], create_graph=True)
        gg = g * module.conj(g) if g.is_complex() else g * g
        return module.autograd.grad(module.real(gg.sum()) if g.is_complex() else gg.sum(),
                                    [x])[0]
    got = double_backward(ember, getattr(efft, name), ember.tensor(x, requires_grad=True))
    want = double_backward(torch, getattr(torch.fft, name), torch.tensor(x, requires_grad=True))
    assert_close(got, want, rtol=1e-9, atol=1e-9, what=name)


@pytest.mark.parametrize("name,other", [("fftshift", "ifftshift"), ("ifftshift", "fftshift")])
def test_shift_gradients_are_the_inverse_shift(name, other, rng):
    x = make(rng, (4, 5), True)
    cot = make(rng, (4, 5), True)
    e_x = ember.tensor(x, requires_grad=True)
    got = grads_of(ember, lambda t: getattr(efft, name)(t, dim=(0, 1)), e_x, ember.tensor(cot))
    want = grads_of(torch, lambda t: getattr(torch.fft, name)(t, dim=(0, 1)),
                    torch.tensor(x, requires_grad=True), torch.from_numpy(cot))
    assert_close(got, want, rtol=0, atol=0)
    # torch's convention: d Re(sum(out * cot)) / d out = conj(cot)
    assert_close(got, getattr(np.fft, other)(np.conj(cot), axes=(0, 1)), rtol=0, atol=0)


def spectral_filter(x, w):
    """irfft(rfft(x) * w): a circular convolution with learned frequency weights."""
    return efft.irfft(efft.rfft(x, norm="ortho") * w, n=x.shape[-1], norm="ortho")


def test_transforms_trace_into_the_graph_and_run_there(rng):
    gm = fx.symbolic_trace(spectral_filter)
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert efft.rfft in targets and efft.irfft in targets, targets
    text = print_graph(gm.graph)
    assert "fft_rfft(" in text and graphs_equal(parse(text), gm.graph), text
    x = ember.tensor(make(rng, (2, 8), False))
    w = ember.tensor(make(rng, (5,), True), requires_grad=True)
    assert_close(gm(x, w), spectral_filter(x, w), rtol=1e-12, atol=1e-12)
    (g_graph,) = ember.autograd.grad(gm(x, w).sum(), [w])
    (g_eager,) = ember.autograd.grad(spectral_filter(x, w).sum(), [w])
    assert_close(g_graph, g_eager, rtol=1e-12, atol=1e-12)


def test_complex_python_scalar_gradient_is_conjugated():
    """Building complex weights as re + im * 1j (examples/spectral_fit.py) needs mul's
    gradient to conjugate a Python complex scalar, as torch does."""
    a = ember.tensor(np.ones(3), requires_grad=True)
    t = torch.ones(3, dtype=torch.float64, requires_grad=True)
    (got,) = ember.autograd.grad(ember.imag(a * 1j + 2j * a).sum(), [a])
    (want,) = torch.autograd.grad((t * 1j + 2j * t).imag.sum(), [t])
    assert_close(got, want, rtol=0, atol=0)
