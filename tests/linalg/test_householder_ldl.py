"""geqrf, linalg.householder_product, ormqr, linalg.ldl_factor(_ex)/ldl_solve and
svd_lowrank/pca_lowrank against torch: values, float64/complex128 gradients of the
differentiable ones, and the gauge-free parts of the randomized factorizations."""
import numpy as np
import pytest
import torch

import ember

RNG = np.random.default_rng(0)


def _rand(*shape, complex_=False):
    a = RNG.standard_normal(shape)
    return a + 1j * RNG.standard_normal(shape) if complex_ else a


def _grads_match(torch_fn, ember_fn, *arrays):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    es = [ember.tensor(a, requires_grad=True) for a in arrays]
    want, got = torch_fn(*ts), ember_fn(*es)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), atol=1e-12)
    cot = _rand(*want.shape, complex_=want.is_complex())
    tg = torch.autograd.grad((want * torch.tensor(cot).conj()).real.sum(), ts)
    eg = ember.autograd.grad([(got * ember.tensor(cot).conj()).real.sum()], es)
    for g, w in zip(eg, tg):
        np.testing.assert_allclose(g.numpy(), w.numpy(), atol=1e-11)


@pytest.mark.parametrize("complex_", [False, True])
def test_householder_product_of_geqrf_is_qr_q(complex_):
    a = _rand(2, 5, 3, complex_=complex_)
    packed, tau = ember.geqrf(ember.tensor(a))
    want_packed, want_tau = torch.geqrf(torch.tensor(a))
    np.testing.assert_allclose(packed.numpy(), want_packed.numpy(), atol=1e-12)
    np.testing.assert_allclose(tau.numpy(), want_tau.numpy(), atol=1e-12)
    _grads_match(torch.linalg.householder_product, ember.linalg.householder_product,
                 want_packed.numpy(), want_tau.numpy())
    q = ember.linalg.householder_product(packed, tau).numpy()
    np.testing.assert_allclose(q, torch.linalg.qr(torch.tensor(a)).Q.numpy(), atol=1e-12)


@pytest.mark.parametrize("left", [True, False])
@pytest.mark.parametrize("transpose", [True, False])
def test_ormqr_all_sides(left, transpose):
    packed, tau = (t.numpy() for t in torch.geqrf(torch.tensor(_rand(4, 3, complex_=True))))
    other = _rand(*((4, 2) if left else (2, 4)), complex_=True)
    _grads_match(lambda a, t, c: torch.ormqr(a, t, c, left, transpose),
                 lambda a, t, c: ember.ormqr(a, t, c, left, transpose), packed, tau, other)


def test_ldl_factor_then_solve_matches_torch_and_solves():
    a = _rand(2, 4, 4)
    a = a + np.swapaxes(a, -1, -2)
    b = _rand(2, 4, 3)
    LD, piv = ember.linalg.ldl_factor(ember.tensor(a))
    want = torch.linalg.ldl_factor(torch.tensor(a))
    np.testing.assert_allclose(LD.numpy(), want.LD.numpy(), atol=1e-12)
    np.testing.assert_array_equal(piv.numpy(), want.pivots.numpy())
    x = ember.linalg.ldl_solve(LD, piv, ember.tensor(b))
    np.testing.assert_allclose(a @ x.numpy(), b, atol=1e-10)


def test_ldl_factor_singular_raises_and_ex_reports():
    zero = ember.zeros(3, 3, dtype=ember.float64)
    assert ember.linalg.ldl_factor_ex(zero).info.item() == 1
    with pytest.raises(RuntimeError, match="singular"):
        ember.linalg.ldl_factor(zero)


@pytest.mark.parametrize("complex_", [False, True])
def test_svd_lowrank_recovers_low_rank_matrix(complex_):
    a = _rand(2, 6, 2, complex_=complex_) @ _rand(2, 2, 5, complex_=complex_)
    U, S, V = ember.svd_lowrank(ember.tensor(a), q=2)
    want_s = torch.linalg.svdvals(torch.tensor(a))[..., :2]
    np.testing.assert_allclose(S.numpy(), want_s.numpy(), rtol=1e-9)
    back = U.numpy() @ (S.numpy()[..., None] * np.swapaxes(V.numpy(), -1, -2).conj())
    np.testing.assert_allclose(back, a, atol=1e-9)


def test_pca_lowrank_centers_and_differentiates():
    a = _rand(6, 2) @ _rand(2, 4) + 3.0
    x = ember.tensor(a, requires_grad=True)
    U, S, V = ember.pca_lowrank(x, q=2)
    centered = a - a.mean(0)
    np.testing.assert_allclose(S.detach().numpy(), np.linalg.svd(centered)[1][:2], rtol=1e-9)
    S.sum().backward()             # d(sum of singular values) = U V^T on the centred data
    u, s, vh = np.linalg.svd(centered, full_matrices=False)
    grad = u[:, :2] @ vh[:2]
    np.testing.assert_allclose(x.grad.numpy(), grad - grad.mean(0), atol=1e-8)
    with pytest.raises(ValueError, match="q"):
        ember.pca_lowrank(x, q=5)
