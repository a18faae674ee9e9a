"""ember.distributions against torch.distributions on the same parameters: log_prob,
entropy, moments, cdf/icdf, KL divergences, gradients through log_prob and rsample, sample
shapes and the empirical mean of samples, constraint errors."""
import numpy as np
import pytest
import torch
import torch.distributions as TD

import ember
import ember.distributions as ED

rng = np.random.default_rng(0)
POS = rng.uniform(0.5, 2.0, (3,))
REAL = rng.standard_normal((3,))
PROB = rng.uniform(0.1, 0.9, (3,))
SIMPLEX = rng.dirichlet(np.ones(4), size=2)
SPD = np.array([[2.0, 0.3, 0.1], [0.3, 1.5, 0.2], [0.1, 0.2, 1.0]])


def e(x):
    return ember.tensor(np.asarray(x, dtype=np.float64))


def t(x):
    return torch.tensor(np.asarray(x, dtype=np.float64))


# (name, ember/torch constructor arguments, a value in the support)
CASES = [
    ("Normal", (REAL, POS), REAL + 0.3),
    ("LogNormal", (REAL, POS), POS),
    ("HalfNormal", (POS,), POS),
    ("Uniform", (REAL - 1, REAL + 1), REAL),
    ("Exponential", (POS,), POS),
    ("Laplace", (REAL, POS), REAL - 0.2),
    ("Cauchy", (REAL, POS), REAL),
    ("Gumbel", (REAL, POS), REAL),
    ("Gamma", (POS, POS + 0.5), POS),
    ("Chi2", (POS + 1,), POS),
    ("Beta", (POS, POS + 0.3), PROB),
    ("Bernoulli", (PROB,), np.array([0.0, 1.0, 1.0])),
    ("Binomial", (np.array([5.0, 5.0, 5.0]), PROB), np.array([0.0, 2.0, 5.0])),
    ("Poisson", (POS,), np.array([0.0, 1.0, 3.0])),
    ("Geometric", (PROB,), np.array([0.0, 1.0, 4.0])),
    ("Categorical", (SIMPLEX,), np.array([0.0, 3.0])),
    ("OneHotCategorical", (SIMPLEX,), np.eye(4)[[1, 2]]),
    ("Dirichlet", (POS[:3] + 0.5,), np.array([0.2, 0.3, 0.5])),
]


def _both(name, args):
    return getattr(ED, name)(*map(e, args)), getattr(TD, name)(*map(t, args))


@pytest.mark.parametrize("name, args, value", CASES, ids=[c[0] for c in CASES])
def test_log_prob_entropy_and_moments_match_torch(name, args, value):
    de, dt = _both(name, args)
    assert tuple(de.batch_shape) == tuple(dt.batch_shape)
    assert tuple(de.event_shape) == tuple(dt.event_shape)
    np.testing.assert_allclose(de.log_prob(e(value)).numpy(), dt.log_prob(t(value)).numpy(),
                               rtol=1e-6, atol=1e-8)
    for attribute in ("mean", "variance", "mode"):
        try:
            want = getattr(dt, attribute).numpy()
        except NotImplementedError:
            continue
        np.testing.assert_allclose(getattr(de, attribute).numpy(), want, rtol=1e-6, atol=1e-8)
    try:
        want = dt.entropy().numpy()
    except NotImplementedError:
        return
    np.testing.assert_allclose(de.entropy().numpy(), want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name, args, value", CASES, ids=[c[0] for c in CASES])
def test_sample_shapes_follow_torch(name, args, value):
    de, dt = _both(name, args)
    for shape in ((), (5,), (2, 3)):
        assert tuple(de.sample(shape).shape) == tuple(dt.sample(shape).shape)
    assert tuple(de.expand((4,) + tuple(de.batch_shape)).batch_shape) == \
        tuple(dt.expand((4,) + tuple(dt.batch_shape)).batch_shape)


@pytest.mark.parametrize("name, args", [
    ("Normal", (REAL, POS)), ("Exponential", (POS,)), ("Gamma", (POS + 1, POS)),
    ("Bernoulli", (PROB,)), ("Poisson", (POS,)), ("Beta", (POS + 1, POS + 1)),
    ("Laplace", (REAL, POS)), ("Uniform", (REAL, REAL + 2)),
])
def test_sample_means_converge(name, args):
    ember.manual_seed(0)
    de = getattr(ED, name)(*map(e, args))
    draws = de.sample((20000,)).numpy()
    np.testing.assert_allclose(draws.mean(0), de.mean.numpy(), rtol=0.06, atol=0.03)


def test_cdf_icdf_match_torch():
    x = REAL + 0.1
    for name, args in (("Normal", (REAL, POS)), ("Exponential", (POS,)),
                       ("Uniform", (REAL - 1, REAL + 1)), ("Laplace", (REAL, POS)),
                       ("Cauchy", (REAL, POS))):
        de, dt = _both(name, args)
        v = np.abs(x) if name == "Exponential" else x
        np.testing.assert_allclose(de.cdf(e(v)).numpy(), dt.cdf(t(v)).numpy(), rtol=1e-6)
    de, dt = _both("Normal", (REAL, POS))
    np.testing.assert_allclose(de.icdf(e(PROB)).numpy(), dt.icdf(t(PROB)).numpy(), rtol=1e-6)


def test_multivariate_normal_matches_torch_in_each_parameterization():
    loc = REAL
    value = REAL + np.array([0.2, -0.1, 0.4])
    for key, matrix in (("covariance_matrix", SPD), ("precision_matrix", np.linalg.inv(SPD)),
                        ("scale_tril", np.linalg.cholesky(SPD))):
        de = ED.MultivariateNormal(e(loc), **{key: e(matrix)})
        dt = TD.MultivariateNormal(t(loc), **{key: t(matrix)})
        np.testing.assert_allclose(de.log_prob(e(value)).numpy(), dt.log_prob(t(value)).numpy(),
                                   rtol=1e-6)
        np.testing.assert_allclose(de.entropy().numpy(), dt.entropy().numpy(), rtol=1e-6)
        np.testing.assert_allclose(de.covariance_matrix.numpy(), SPD, rtol=1e-6)
        assert tuple(de.rsample((4,)).shape) == (4, 3)


KL_PAIRS = [
    ("Normal", (REAL, POS), (REAL + 1, POS + 0.2)),
    ("Bernoulli", (PROB,), (PROB[::-1].copy(),)),
    ("Categorical", (SIMPLEX,), (SIMPLEX[::-1].copy(),)),
    ("OneHotCategorical", (SIMPLEX,), (SIMPLEX[::-1].copy(),)),
    ("Exponential", (POS,), (POS + 1,)),
    ("Laplace", (REAL, POS), (REAL - 1, POS + 1)),
    ("Gamma", (POS, POS), (POS + 1, POS + 0.5)),
    ("Beta", (POS, POS + 1), (POS + 1, POS)),
    ("Dirichlet", (POS + 0.5,), (POS[::-1] + 1,)),
    ("Poisson", (POS,), (POS + 1,)),
    ("Uniform", (REAL - 1, REAL + 1), (REAL - 2, REAL + 2)),
]


@pytest.mark.parametrize("name, p_args, q_args", KL_PAIRS, ids=[k[0] for k in KL_PAIRS])
def test_kl_divergence_matches_torch(name, p_args, q_args):
    pe, pt = _both(name, p_args)
    qe, qt = _both(name, q_args)
    np.testing.assert_allclose(ED.kl_divergence(pe, qe).numpy(),
                               TD.kl_divergence(pt, qt).numpy(), rtol=1e-6, atol=1e-9)


def test_kl_of_multivariate_normals_and_independent():
    pe = ED.MultivariateNormal(e(REAL), covariance_matrix=e(SPD))
    qe = ED.MultivariateNormal(e(REAL + 1), scale_tril=e(np.eye(3) * 1.5))
    pt = TD.MultivariateNormal(t(REAL), covariance_matrix=t(SPD))
    qt = TD.MultivariateNormal(t(REAL + 1), scale_tril=t(np.eye(3) * 1.5))
    np.testing.assert_allclose(ED.kl_divergence(pe, qe).numpy(),
                               TD.kl_divergence(pt, qt).numpy(), rtol=1e-6)
    ie = ED.Independent(ED.Normal(e(REAL), e(POS)), 1)
    it = TD.Independent(TD.Normal(t(REAL), t(POS)), 1)
    je = ED.Independent(ED.Normal(e(REAL + 1), e(POS)), 1)
    jt = TD.Independent(TD.Normal(t(REAL + 1), t(POS)), 1)
    np.testing.assert_allclose(ED.kl_divergence(ie, je).numpy(),
                               TD.kl_divergence(it, jt).numpy(), rtol=1e-6)
    assert tuple(ie.event_shape) == (3,) and tuple(ie.batch_shape) == ()
    np.testing.assert_allclose(ie.log_prob(e(REAL)).numpy(), it.log_prob(t(REAL)).numpy())
    with pytest.raises(NotImplementedError, match="No KL"):
        ED.kl_divergence(ED.Normal(e(REAL), e(POS)), ED.Gamma(e(POS), e(POS)))


def test_gradients_through_log_prob_and_rsample_match_torch():
    loc_e, scale_e = e(REAL).requires_grad_(), e(POS).requires_grad_()
    loc_t, scale_t = t(REAL).requires_grad_(), t(POS).requires_grad_()
    ED.Normal(loc_e, scale_e).log_prob(e(REAL + 0.5)).sum().backward()
    TD.Normal(loc_t, scale_t).log_prob(t(REAL + 0.5)).sum().backward()
    np.testing.assert_allclose(loc_e.grad.numpy(), loc_t.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(scale_e.grad.numpy(), scale_t.grad.numpy(), rtol=1e-6)
    scale = e(POS).requires_grad_()
    ED.Normal(e(REAL), scale).rsample((7,)).sum().backward()     # reparameterized
    assert scale.grad is not None and np.isfinite(scale.grad.numpy()).all()
    logits = e(SIMPLEX).requires_grad_()
    ED.Categorical(logits=logits).entropy().sum().backward()
    lt = t(SIMPLEX).requires_grad_()
    TD.Categorical(logits=lt).entropy().sum().backward()
    np.testing.assert_allclose(logits.grad.numpy(), lt.grad.numpy(), rtol=1e-6, atol=1e-9)


def test_invalid_parameters_and_values_raise_like_torch():
    with pytest.raises(ValueError, match="Expected parameter scale"):
        ED.Normal(e([0.0]), e([-1.0]))
    ED.Normal(e([0.0]), e([-1.0]), validate_args=False)          # allowed when asked
    with pytest.raises(ValueError, match="within the support"):
        ED.Exponential(e([1.0])).log_prob(e([-1.0]))
    with pytest.raises(ValueError, match="either `probs` or `logits`"):
        ED.Bernoulli(e([0.5]), e([0.0]))
