"""Wishart and LKJCholesky: the same densities, moments, shapes, Bregman entropy/KL and
gradients as torch on the same parameters; samples checked by their moments, support and
(LKJ) by the marginal of a correlation (ember's random stream differs from torch's)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
from tests.distributions.dist_twins import assert_same_results  # noqa: E402

COV = [[2., 0.5, 0.1], [0.5, 1., 0.3], [0.1, 0.3, 1.5]]
X = [[3., 1., 0.2], [1., 2., 0.4], [0.2, 0.4, 2.5]]
CORR_L = [[1., 0., 0.], [0.6, 0.8, 0.], [0., 0.6, 0.8]]


def T(lib, values):
    return lib.tensor(np.asarray(values, dtype=np.float32))


def _results(lib):
    D = lib.distributions
    out = {}
    cov = T(lib, COV)
    for key, w in (("wishart_cov", D.Wishart(T(lib, [4., 7.]), covariance_matrix=cov)),
                   ("wishart_prec", D.Wishart(5., precision_matrix=cov)),
                   ("wishart_tril", D.Wishart(T(lib, [3.5]),
                                              scale_tril=lib.linalg.cholesky(cov)))):
        out[key] = [w.log_prob(T(lib, X)), w.entropy(), w.mean, w.mode, w.variance,
                    w.covariance_matrix, w.precision_matrix, w.scale_tril, w.batch_shape,
                    w.event_shape, w.rsample((2,)).shape, w.expand((2, 2)).log_prob(T(lib, X)),
                    D.ExponentialFamily.entropy(w)]
    p = D.Wishart(T(lib, [4., 6.]), covariance_matrix=cov)
    q = D.Wishart(T(lib, [5., 4.5]), covariance_matrix=cov * 1.5)
    # one batch element at a time: torch's Bregman KL sums the df term over the batch
    out["wishart_kl"] = [D.kl_divergence(D.Wishart(p.df[i:i + 1], covariance_matrix=cov),
                                         D.Wishart(q.df[i:i + 1], covariance_matrix=cov * 1.5))
                         for i in range(2)]
    lkj = D.LKJCholesky(3, T(lib, [0.5, 1., 3.]))
    out["lkj"] = [lkj.log_prob(T(lib, CORR_L)), lkj.batch_shape, lkj.event_shape,
                  lkj.sample((4,)).shape, lkj.expand((2, 3)).log_prob(T(lib, CORR_L)),
                  D.LKJCholesky(2).log_prob(T(lib, [[1., 0.], [0.3, 0.91 ** 0.5]])),
                  lkj.support.event_dim]
    return out


with warnings.catch_warnings():
    warnings.simplefilter("ignore")      # torch warns about singular Bartlett samples
    _WANT, _GOT = _results(torch), _results(ember)


@pytest.mark.parametrize("name", sorted(_WANT))
def test_matches_torch(name):
    assert_same_results(_WANT[name], _GOT[name], name)


def _grads(lib):
    D = lib.distributions
    df = T(lib, [5.]).requires_grad_()
    cov = T(lib, COV).requires_grad_()
    w = D.Wishart(df, covariance_matrix=cov)
    (w.log_prob(T(lib, X)).sum() + w.entropy().sum()).backward()
    conc = T(lib, [0.7, 2.]).requires_grad_()
    D.LKJCholesky(3, conc).log_prob(T(lib, CORR_L)).sum().backward()
    return [df.grad, cov.grad, conc.grad]


def test_gradients_match_torch():
    assert_same_results(_grads(torch), _grads(ember), "grads")


def test_wishart_samples_have_the_right_mean():
    ember.manual_seed(0)
    cov = T(ember, COV)
    w = ember.distributions.Wishart(ember.tensor(6.), covariance_matrix=cov)
    s = w.rsample((8000,))
    assert bool(ember.distributions.constraints.positive_definite.check(s).all())
    np.testing.assert_allclose(s.mean(0).numpy(), w.mean.numpy(), atol=0.25)
    tril = ember.linalg.cholesky(cov).requires_grad_()
    ember.distributions.Wishart(6., scale_tril=tril).rsample((3,)).sum().backward()
    assert tril.grad is not None and bool(ember.isfinite(tril.grad).all())


def test_lkj_samples_are_correlation_factors_with_the_right_marginal():
    ember.manual_seed(0)
    eta, dim = 2.0, 4
    lkj = ember.distributions.LKJCholesky(dim, eta)
    s = lkj.sample((20000,))
    assert bool(ember.distributions.constraints.corr_cholesky.check(s).all())
    corr = s @ s.mT
    # the first correlation r has (r + 1) / 2 ~ Beta(b, b), b = eta - 1 + dim / 2
    b = eta - 1 + dim / 2
    r = corr[:, 1, 0].numpy()
    np.testing.assert_allclose(r.mean(), 0.0, atol=0.02)
    np.testing.assert_allclose(r.var(), 1 / (2 * b + 1), rtol=0.05)
    # every correlation's spread as in torch's sampler (the same onion construction)
    torch.manual_seed(0)
    t = torch.distributions.LKJCholesky(dim, eta).sample((20000,))
    t_corr = (t @ t.mT).numpy()
    np.testing.assert_allclose(corr.numpy().var(0), t_corr.var(0), atol=0.012)


def test_refusals_match_torch():
    for lib in (torch, ember):
        D = lib.distributions
        with pytest.raises(ValueError, match="greater than ndim - 1"):
            D.Wishart(1., covariance_matrix=T(lib, COV))
        with pytest.raises(ValueError, match="greater than or equal to 2"):
            D.LKJCholesky(1)
        with pytest.raises(ValueError):
            D.LKJCholesky(3, T(lib, [-1.]))
        with pytest.raises(ValueError):
            D.LKJCholesky(2).log_prob(T(lib, [[1., 0.], [0.5, 0.5]]))
        with pytest.raises(ValueError):
            D.Wishart(4., covariance_matrix=T(lib, [[1., 2., 0.], [2., 1., 0.], [0., 0., 1.]]))
