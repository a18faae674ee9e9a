"""ember.special and the pointwise math families: what the op table cannot check by
itself -- gradients PyTorch refuses, views sharing storage, errors torch raises, the
torch.special namespace's completeness, reflected operators, and compiled kernels
(one fused kernel, NaN/inf edges equal to eager)."""
import numpy as np
import pytest
import torch

import ember
import ember.special


def _pair(*arrays, requires_grad=False):
    e = [ember.tensor(a, requires_grad=requires_grad) for a in arrays]
    t = [torch.tensor(a, requires_grad=requires_grad) for a in arrays]
    return e, t


def test_special_namespace_has_every_torch_special_function():
    names = {n for n in dir(torch.special) if not n.startswith("_") and
             callable(getattr(torch.special, n)) and n not in ("Tensor",)}
    missing = sorted(n for n in names if not hasattr(ember.special, n))
    assert not missing, f"ember.special lacks {missing}"


@pytest.mark.parametrize("name, other_grad", [("igamma", True), ("igammac", True)])
def test_incomplete_gamma_differentiates_other_only(name, other_grad):
    a = np.array([0.5, 2.0, 3.5])
    x = np.array([1.0, 3.0, 0.7])
    (ea, ex), (ta, tx) = _pair(a, x, requires_grad=True)
    ea.requires_grad_(False)
    ta.requires_grad_(False)
    (eg,) = ember.autograd.grad(getattr(ember, name)(ea, ex).sum(), [ex])
    (tg,) = torch.autograd.grad(getattr(torch, name)(ta, tx).sum(), [tx])
    np.testing.assert_allclose(eg.numpy(), tg.numpy(), rtol=1e-10)
    ea.requires_grad_(True)
    with pytest.raises(NotImplementedError, match=f"derivative for '{name}: input'"):
        ember.autograd.grad(getattr(ember, name)(ea, ex).sum(), [ea])


def test_zeta_gradient_in_q_and_not_in_s():
    q = ember.tensor([1.5, 2.0, 4.0], requires_grad=True)
    tq = torch.tensor([1.5, 2.0, 4.0], requires_grad=True)
    (eg,) = ember.autograd.grad(ember.special.zeta(3.0, q).sum(), [q])
    (tg,) = torch.autograd.grad(torch.special.zeta(3.0, tq).sum(), [tq])
    np.testing.assert_allclose(eg.numpy(), tg.numpy(), rtol=1e-6)
    s = ember.tensor([2.0, 3.0], requires_grad=True)
    with pytest.raises(NotImplementedError, match="derivative for 'zeta'"):
        ember.special.zeta(s, 2.0).sum().backward()


@pytest.mark.parametrize("name", ["bessel_j0", "airy_ai", "modified_bessel_k1",
                                  "spherical_bessel_j0"])
def test_undifferentiable_special_functions_return_no_grad_results(name):
    x = ember.tensor([0.5, 1.5], requires_grad=True)
    tx = torch.tensor([0.5, 1.5], requires_grad=True)
    assert getattr(ember.special, name)(x).requires_grad == \
        getattr(torch.special, name)(tx).requires_grad is False


def test_polynomials_take_a_tensor_degree_truncated_like_torch():
    x = np.array([-1.5, -1.0, -0.3, 0.0, 0.7, 1.0, 2.0])
    n = np.array([3.0, -0.5, 2.7, 30.0, 25.0, -2.0, np.nan])
    for name in ("chebyshev_polynomial_t", "chebyshev_polynomial_w",
                 "shifted_chebyshev_polynomial_u", "hermite_polynomial_he",
                 "laguerre_polynomial_l", "legendre_polynomial_p"):
        got = getattr(ember.special, name)(ember.tensor(x), ember.tensor(n)).numpy()
        want = getattr(torch.special, name)(torch.tensor(x), torch.tensor(n)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)
    ints = ember.special.hermite_polynomial_h(ember.tensor([1, 2]), 3)
    assert ints.dtype == ember.float32


def test_view_as_real_and_complex_share_storage():
    z = ember.tensor([1 + 2j, 3 + 4j], dtype=ember.complex64)
    r = ember.view_as_real(z)
    r[1, 0] = 7.0
    assert complex(z[1].item()) == 7 + 4j
    x = ember.zeros(3, 2)
    c = ember.view_as_complex(x)
    x[2, 1] = 5.0
    assert complex(c[2].item()) == 5j
    with pytest.raises(RuntimeError, match="last dimension of size 2"):
        ember.view_as_complex(ember.zeros(3))
    with pytest.raises(RuntimeError, match="only supported for complex"):
        ember.view_as_real(ember.zeros(3))


def test_complex_construction_errors_match_torch():
    with pytest.raises(RuntimeError, match="scalar type Float but got scalar type Double"):
        ember.complex(ember.zeros(2), ember.zeros(2, dtype=ember.float64))
    with pytest.raises(RuntimeError, match="Half, Float or Double"):
        ember.complex(ember.zeros(2, dtype=ember.int64), ember.zeros(2, dtype=ember.int64))
    with pytest.raises(TypeError, match="complex32"):
        ember.complex(ember.zeros(2, dtype=ember.float16), ember.zeros(2, dtype=ember.float16))


@pytest.mark.parametrize("call, error", [
    (lambda: ember.gcd(ember.tensor([1.0]), ember.tensor([2.0])), TypeError),
    (lambda: ember.gcd(ember.tensor([4]), 2), TypeError),
    (lambda: ember.logaddexp(ember.tensor([1.0]), 2.0), TypeError),
    (lambda: ember.logaddexp(ember.tensor([1]), ember.tensor([2])), TypeError),
    (lambda: ember.addcdiv(ember.tensor([1]), ember.tensor([1]), ember.tensor([2])),
     RuntimeError),
    (lambda: ember.addcmul(ember.tensor([True]), ember.tensor([True]), ember.tensor([True])),
     TypeError),
    (lambda: ember.polygamma(-1, ember.tensor([1.0])), RuntimeError),
    (lambda: ember.mvlgamma(ember.tensor([3.0]), 0), RuntimeError),
    (lambda: ember.heaviside(ember.tensor([1.0]), ember.tensor([1])), TypeError),
    (lambda: ember.signbit(ember.tensor([1j])), TypeError),
    (lambda: ember.frexp(ember.tensor([1])), TypeError),
    (lambda: ember.igamma(ember.tensor([1]), ember.tensor([2])), TypeError),
    (lambda: ember.special.bessel_j0(ember.tensor([1.0], dtype=ember.float16)), TypeError),
    (lambda: ember.pow(ember.tensor([2]), -1), RuntimeError),
])
def test_bad_inputs_raise_like_torch(call, error):
    with pytest.raises(error):
        call()


def test_reflected_and_inplace_operators():
    x = ember.tensor([1, 2, 3])
    assert (2 << x).tolist() == [4, 8, 16] and (64 >> x).tolist() == [32, 16, 8]
    assert ember.tensor([2.0]).__rdiv__(1.0).item() == 0.5
    y = ember.tensor([6, 7])
    y &= 3
    y |= 4
    y //= 3
    assert y.tolist() == [2, 2]
    assert (2 ** ember.tensor([-1, 0, 3])).tolist() == [0, 1, 8]     # integer pow, as torch
    np.testing.assert_allclose(ember.tensor([1.0, 2.0]).polygamma(1).numpy(),
                               torch.tensor([1.0, 2.0]).polygamma(1).numpy(), rtol=1e-6)


def _edges():
    return np.array([0.0, -0.0, 0.3, 0.95, -2.0, 1.0, np.inf, -np.inf, np.nan], np.float32)


@pytest.mark.parametrize("fn", [
    lambda a, b: ember.addcmul(a, a, b, value=0.5) + ember.addcdiv(b, a, b + 3, value=2),
    lambda a, b: ember.logaddexp(a, b) + ember.logaddexp2(b, a),
    lambda a, b: ember.logit(a, eps=0.1) + ember.logit(b) + ember.sinc(a),
    lambda a, b: ember.heaviside(a, b) + ember.deg2rad(a) - ember.rad2deg(b),
    lambda a, b: ember.xlogy(a, b) + ember.special.xlog1py(b, a) + ember.special.entr(a),
    lambda a, b: ember.ldexp(a, b) + ember.float_power(b, 2.0),
    lambda a, b: ember.rsub(a, b, alpha=2) + ember.true_divide(a, b + 4) +
    ember.special.expit(a),
], ids=["addc", "logaddexp", "logit_sinc", "heaviside_angles", "xlog", "ldexp_float_power",
        "aliases"])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")    # eager's NumPy on the inf/nan edges
def test_compiled_math_is_one_kernel_equal_to_eager(fn):
    rng = np.random.default_rng(0)
    a = ember.tensor(np.concatenate([_edges(), rng.standard_normal(7).astype(np.float32)]))
    b = ember.tensor(np.concatenate([_edges()[::-1], rng.random(7).astype(np.float32)]))
    compiled = ember.compile(fn)
    got, want = compiled(a, b), fn(a, b)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6,
                               equal_nan=True)
    plan, _, _ = compiled.last
    assert [s.kernel for s in plan.steps] == [True], [s.name for s in plan.steps]
