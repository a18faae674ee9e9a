"""Gamma, Chi2, Beta (and the families sampled through them: StudentT, FisherSnedecor,
Wishart, InverseGamma) rsample with implicit reparameterization gradients, as torch's:
the per-sample derivative dx/dparameter equals torch's on the same (parameter, sample)
pairs, and averaged over samples it is the derivative of the mean."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
from ember.distributions.continuous import _beta_sample_grads, _standard_gamma_grad  # noqa: E402


def test_standard_gamma_gradient_matches_torch_on_the_same_samples():
    torch.manual_seed(0)
    alpha = torch.tensor([0.05, 0.3, 1., 2.5, 10., 150.], dtype=torch.float64)
    x = torch._standard_gamma(alpha.expand(50, 6).contiguous()).clamp(min=1e-30)
    want = torch._standard_gamma_grad(alpha.expand(50, 6).contiguous(), x).numpy()
    got = _standard_gamma_grad(alpha.expand(50, 6).numpy(), x.numpy())
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-7)   # torch approximates


def test_beta_rsample_gradient_matches_torch_on_the_same_samples():
    torch.manual_seed(0)
    a = torch.tensor([0.5, 2., 3., 0.8], dtype=torch.float64).repeat(20).requires_grad_()
    b = torch.tensor([1.5, 1., 4., 0.3], dtype=torch.float64).repeat(20).requires_grad_()
    x = torch.distributions.Beta(a, b).rsample()
    x.sum().backward()
    d_a, d_b = _beta_sample_grads(a.detach().numpy(), b.detach().numpy(), x.detach().numpy())
    np.testing.assert_allclose(d_a, a.grad.numpy(), rtol=1e-3, atol=1e-8)   # torch approximates
    np.testing.assert_allclose(d_b, b.grad.numpy(), rtol=1e-3, atol=1e-8)   # torch approximates


def test_rsample_gradients_average_to_the_gradient_of_the_mean():
    ember.manual_seed(0)
    n = 20000
    D = ember.distributions
    conc = ember.tensor([0.4, 3.]).requires_grad_()
    rate = ember.tensor([2., 0.5]).requires_grad_()
    D.Gamma(conc, rate).rsample((n,)).sum().backward()
    c, r = conc.detach().numpy(), rate.detach().numpy()
    np.testing.assert_allclose(conc.grad.numpy() / n, 1 / r, rtol=0.03)
    np.testing.assert_allclose(rate.grad.numpy() / n, -c / r ** 2, rtol=0.03)
    a = ember.tensor([0.7, 2.]).requires_grad_()
    b = ember.tensor([1.5, 0.6]).requires_grad_()
    D.Beta(a, b).rsample((n,)).sum().backward()
    an, bn = a.detach().numpy(), b.detach().numpy()
    np.testing.assert_allclose(a.grad.numpy() / n, bn / (an + bn) ** 2, rtol=0.04)
    np.testing.assert_allclose(b.grad.numpy() / n, -an / (an + bn) ** 2, rtol=0.04)
    df = ember.tensor([3.]).requires_grad_()
    D.Chi2(df).rsample((n,)).sum().backward()
    np.testing.assert_allclose(df.grad.item() / n, 1.0, rtol=0.03)     # E = df


def test_families_built_on_gammas_differentiate_in_their_degrees_of_freedom():
    D = ember.distributions
    for make in (lambda df: D.StudentT(df), lambda df: D.FisherSnedecor(df, df + 1),
                 lambda df: D.Wishart(df + 2, covariance_matrix=ember.eye(2)),
                 lambda df: D.InverseGamma(df, ember.tensor([1.]))):
        df = ember.tensor([3.]).requires_grad_()
        dist = make(df)
        assert dist.has_rsample
        dist.rsample((5,)).sum().backward()
        assert df.grad is not None and bool(ember.isfinite(df.grad).all())
    for lib in (torch, ember):
        assert lib.distributions.Gamma(lib.tensor(1.), lib.tensor(1.)).has_rsample
        assert lib.distributions.Beta(lib.tensor(1.), lib.tensor(1.)).has_rsample


def test_dirichlet_rsample_gradient_matches_torch_on_the_same_samples():
    torch.manual_seed(0)
    alpha_t = torch.tensor([[0.5, 2., 1.2], [3., 0.7, 1.]], dtype=torch.float64)
    alpha_t = alpha_t.repeat(10, 1).requires_grad_()
    weights = torch.tensor([1., -2., 0.5], dtype=torch.float64)
    x = torch.distributions.Dirichlet(alpha_t).rsample()
    (x * weights).sum().backward()
    # ember's backward on torch's sample values
    alpha_e = ember.tensor(alpha_t.detach().numpy()).requires_grad_()
    fn = ember.distributions.multivariate._DirichletSample
    fn.apply(alpha_e)     # builds the Function
    x_e = ember.tensor(x.detach().numpy())

    class Ctx:
        saved_tensors = (alpha_e, x_e)
    got = fn._fn.backward(Ctx(), ember.tensor(weights.numpy()).expand([20, 3]))
    np.testing.assert_allclose(got.numpy(), alpha_t.grad.numpy(), rtol=1e-3, atol=1e-7)
    ember.manual_seed(0)
    alpha = ember.tensor([0.5, 2., 1.2]).requires_grad_()
    s = ember.distributions.Dirichlet(alpha).rsample((20000,))
    (s[:, 0]).sum().backward()
    a = alpha.detach().numpy()
    want = (np.eye(3)[0] * a.sum() - a[0]) / a.sum() ** 2      # d E[x0] / d alpha
    np.testing.assert_allclose(alpha.grad.numpy() / 20000, want, atol=0.01)
