"""ContinuousBernoulli, FisherSnedecor, GeneralizedPareto, VonMises and ExponentialFamily's
Bregman entropy/KL: the same values, moments, shapes and gradients as torch on the same
parameters; samples checked by their moments and support (ember's random stream differs)."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
from tests.distributions.dist_twins import assert_same_results  # noqa: E402


def T(lib, values, grad=False):
    t = lib.tensor(np.asarray(values, dtype=np.float32))
    return t.requires_grad_() if grad else t


def _results(lib):
    D = lib.distributions
    out = {}
    probs = [0.1, 0.4995, 0.5, 0.7, 0.95]
    v = T(lib, [0.2, 0.5, 0.0, 0.9, 1.0])
    for key, cb in (("cb_probs", D.ContinuousBernoulli(probs=T(lib, probs))),
                    ("cb_logits", D.ContinuousBernoulli(logits=T(lib, [-2., 0., 0.001, 1., 3.])))):
        out[key] = [cb.log_prob(v), cb.mean, cb.variance, cb.stddev, cb.entropy(), cb.cdf(v),
                    cb.icdf(T(lib, [0.1, 0.3, 0.5, 0.8, 0.99])), cb.probs, cb.logits,
                    cb.batch_shape, cb.has_rsample, cb.expand((2, 5)).log_prob(v)]
    p, q = D.ContinuousBernoulli(T(lib, probs)), D.ContinuousBernoulli(T(lib, probs[::-1]))
    out["cb_kl"] = [D.kl_divergence(p, q), D.kl_divergence(q, p)]
    others = [D.Beta(T(lib, [2., 1., .5, 3., 1.]), T(lib, [1., 2., .5, 1., 4.])),
              D.Uniform(T(lib, [.1, .2, 0., .3, .05]), T(lib, [.9, .4, .5, 1., .3])),
              D.Exponential(T(lib, [1., 2., .5, 3., 1.])),
              D.Gamma(T(lib, [1., 2., .5, 3., 1.]), T(lib, [1., 1., 2., 2., 3.])),
              D.Gumbel(T(lib, [0.] * 5), T(lib, [1.] * 5)),
              D.Laplace(T(lib, [0.] * 5), T(lib, [1.] * 5)),
              D.Normal(T(lib, [0., 1., -1., .5, 2.]), T(lib, [1., .5, 2., 1., 3.])),
              D.Pareto(T(lib, [1.] * 5), T(lib, [2.] * 5))]
    out["cb_kl_others"] = []
    for other in others:
        for a, b in ((other, p), (p, other)):
            try:
                out["cb_kl_others"].append(D.kl_divergence(a, b))
            except NotImplementedError:
                out["cb_kl_others"].append("NotImplementedError")
    out["cb_kl_uniform_q"] = [D.kl_divergence(p, D.Uniform(T(lib, [-1.] * 5), T(lib, [2.] * 5))),
                              D.kl_divergence(p, D.Uniform(T(lib, [0.] * 5), T(lib, [1.] * 5)))]
    fs = D.FisherSnedecor(T(lib, [1., 3., 5., 10.]), T(lib, [2., 3., 6., 12.]))
    x = T(lib, [0.3, 1.0, 2.5, 0.8])
    out["fisher"] = [fs.log_prob(x), fs.mean, fs.mode, fs.variance, fs.batch_shape,
                     fs.sample((3,)).shape, fs.expand((2, 4)).log_prob(x)]
    gp = D.GeneralizedPareto(T(lib, [0., 1., -1., 0.5]), T(lib, [1., 2., 0.5, 1.]),
                             T(lib, [0.3, 0., -0.4, 0.7]))
    y = T(lib, [0.5, 2.0, -0.9, 3.0])
    u = T(lib, [0.1, 0.5, 0.9, 0.3])
    out["gpareto"] = [gp.log_prob(y), gp.cdf(y), gp.log_cdf(y), gp.log_survival_function(y),
                      gp.icdf(u), gp.mean, gp.variance, gp.mode, gp.entropy(),
                      gp.rsample((2,)).shape, gp.support.upper_bound,
                      gp.expand((3, 4)).entropy()]
    vm = D.VonMises(T(lib, [0., 1., -2., 3.]), T(lib, [0.5, 2., 10., 0.01]))
    a = T(lib, [0.2, -3., 1.5, 0.])
    out["vonmises"] = [vm.log_prob(a), vm.mean, vm.mode, vm.variance,
                       vm.sample((2, 3)).shape, vm.expand((2, 4)).log_prob(a)]
    # ExponentialFamily: Bregman-divergence entropy and same-family KL
    fams = [D.Normal(T(lib, [0., 1.]), T(lib, [1., 2.])),
            D.Exponential(T(lib, [0.5, 2.])), D.Gamma(T(lib, [2., 3.]), T(lib, [1., 0.5])),
            D.Beta(T(lib, [2., 0.5]), T(lib, [3., 1.5])), D.Bernoulli(T(lib, [0.3, 0.8])),
            D.Dirichlet(T(lib, [[1., 2., 3.], [0.5, 0.5, 2.]])),
            D.ContinuousBernoulli(T(lib, [0.2, 0.9]))]
    res = []
    for d in fams:
        try:
            res.append(D.ExponentialFamily.entropy(d))
        except NotImplementedError:     # families without a mean carrier measure
            res.append("NotImplementedError")
        res.append(isinstance(d, D.ExponentialFamily))
        other = d.expand(d.batch_shape)
        res.append(D.kl_divergence(d, other))
    out["expfamily"] = res
    return out


_WANT, _GOT = _results(torch), _results(ember)


@pytest.mark.parametrize("name", sorted(_WANT))
def test_matches_torch(name):
    assert_same_results(_WANT[name], _GOT[name], name)


def _grads(lib):
    D = lib.distributions
    out = []
    p = T(lib, [0.2, 0.6, 0.9], grad=True)
    cb = D.ContinuousBernoulli(probs=p)
    (cb.log_prob(T(lib, [0.1, 0.5, 0.7])).sum() + cb.entropy().sum() +
     cb.icdf(T(lib, [0.3, 0.6, 0.9])).sum()).backward()
    out.append(p.grad)
    d1, d2 = T(lib, [2., 5.], grad=True), T(lib, [3., 8.], grad=True)
    D.FisherSnedecor(d1, d2).log_prob(T(lib, [0.5, 1.5])).sum().backward()
    out += [d1.grad, d2.grad]
    loc, scale, conc = T(lib, [0., 1.], grad=True), T(lib, [1., 2.], grad=True), \
        T(lib, [0.2, -0.3], grad=True)
    gp = D.GeneralizedPareto(loc, scale, conc)
    (gp.log_prob(T(lib, [0.5, 2.])).sum() + gp.icdf(T(lib, [0.2, 0.7])).sum()).backward()
    out += [loc.grad, scale.grad, conc.grad]
    m, k = T(lib, [0.3, -1.], grad=True), T(lib, [2., 0.7], grad=True)
    vm = D.VonMises(m, k)
    (vm.log_prob(T(lib, [0.1, 2.])).sum() + vm.variance.sum()).backward()
    out += [m.grad, k.grad]
    return out


def test_gradients_match_torch():
    assert_same_results(_grads(torch), _grads(ember), "grads")


def test_samples_have_the_right_moments_and_support():
    D = ember.distributions
    ember.manual_seed(0)
    cb = D.ContinuousBernoulli(probs=ember.tensor([0.2, 0.5, 0.85]))
    s = cb.rsample((20000,))
    assert bool(((s >= 0) & (s <= 1)).all())
    np.testing.assert_allclose(s.mean(0).numpy(), cb.mean.numpy(), atol=0.01)
    np.testing.assert_allclose(s.var(0).numpy(), cb.variance.numpy(), atol=0.01)
    fs = D.FisherSnedecor(ember.tensor([5.]), ember.tensor([20.]))
    np.testing.assert_allclose(fs.sample((40000,)).mean().item(), fs.mean.item(), rtol=0.03)
    gp = D.GeneralizedPareto(ember.tensor([1.]), ember.tensor([2.]), ember.tensor([-0.25]))
    g = gp.rsample((20000,))
    assert bool(gp.support.check(g).all())
    np.testing.assert_allclose(g.mean().item(), gp.mean.item(), rtol=0.03)
    np.testing.assert_allclose(g.var().item(), gp.variance.item(), rtol=0.06)
    vm = D.VonMises(ember.tensor([2.5]), ember.tensor([4.]))
    a = vm.sample((20000,))
    assert bool(((a >= -math.pi) & (a < math.pi)).all())
    np.testing.assert_allclose(math.atan2(a.sin().mean().item(), a.cos().mean().item()), 2.5,
                               atol=0.03)
    np.testing.assert_allclose(1 - a.sub(2.5).cos().mean().item(), vm.variance.item(),
                               atol=0.01)
    # sample log-density averages to minus the entropy (torch's VonMises has no entropy)
    np.testing.assert_allclose(-vm.log_prob(a).mean().item(), vm.entropy().item(), atol=0.03)


def test_rsample_gradients_flow():
    D = ember.distributions
    p = ember.tensor([0.3, 0.7]).requires_grad_()
    D.ContinuousBernoulli(p).rsample((4,)).sum().backward()
    assert p.grad is not None and bool((p.grad != 0).all())
    scale = ember.tensor([1.5]).requires_grad_()
    D.GeneralizedPareto(ember.tensor([0.]), scale, ember.tensor([0.1])).rsample((5,)).sum() \
        .backward()
    assert scale.grad is not None and scale.grad.item() > 0


def test_validation_errors_match_torch():
    for lib in (torch, ember):
        D = lib.distributions
        bad = [lambda: D.ContinuousBernoulli(),  # probs outside [0, 1] are clamped, as torch's
               lambda: D.FisherSnedecor(lib.tensor([-1.]), lib.tensor([2.])),
               lambda: D.GeneralizedPareto(0., lib.tensor([-1.]), 0.),
               lambda: D.VonMises(lib.tensor([0.]), lib.tensor([0.])),
               lambda: D.ContinuousBernoulli(lib.tensor([0.3])).log_prob(lib.tensor([1.2])),
               lambda: D.FisherSnedecor(lib.tensor([1.]), lib.tensor([2.])).log_prob(
                   lib.tensor([-1.])),
               lambda: D.GeneralizedPareto(lib.tensor([0.]), lib.tensor([1.]),
                                           lib.tensor([-0.5])).log_prob(lib.tensor([3.]))]
        for make in bad:
            with pytest.raises(ValueError):
                make()
        with pytest.raises(NotImplementedError):
            D.kl_divergence(D.Bernoulli(lib.tensor([.3])), D.ContinuousBernoulli(lib.tensor([.3])))


def test_dependent_support_reads_as_a_constraint_on_the_class_like_torch():
    for lib in (torch, ember):
        D = lib.distributions
        C = D.constraints
        assert C.is_dependent(D.GeneralizedPareto.support)
        assert D.GeneralizedPareto.support.event_dim == 0
        assert not D.GeneralizedPareto.support.is_discrete

        class Shifted(D.Distribution):
            arg_constraints = {}

            def __init__(self, low):
                self.low = low
                super().__init__(validate_args=False)

            @C.dependent_property
            def support(self):
                return C.greater_than(self.low)

        assert C.is_dependent(Shifted.support)
        with pytest.raises(NotImplementedError):
            Shifted.support.event_dim
        assert bool(Shifted(lib.tensor(2.)).support.check(lib.tensor(3.)))
        assert C.dependent(is_discrete=True, event_dim=1).event_dim == 1
