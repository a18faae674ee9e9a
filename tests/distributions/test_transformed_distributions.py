"""torch.distributions.transforms, TransformedDistribution and the families built on it
(squashed Gaussians as SAC writes them, HalfCauchy, Pareto, Weibull, LogisticNormal,
the relaxed Bernoulli / categorical), StudentT and MixtureSameFamily (1-d and
Independent components): the same densities, CDFs, moments, shapes and gradients as
torch on the same parameters."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
from tests.distributions.dist_twins import assert_same_results  # noqa: E402


def W(lib, *shape, seed=0, pos=False):
    a = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    if pos: a = np.abs(a) + 0.5
    return lib.tensor(a)
def _results(lib):
    D = lib.distributions; T = D.transforms
    out = {}
    loc, scale = W(lib, 3), W(lib, 3, seed=1, pos=True)
    x = W(lib, 3, seed=2)
    for name, t in [("exp", T.ExpTransform()), ("sig", T.SigmoidTransform()), ("tanh", T.TanhTransform()), ("softplus", T.SoftplusTransform()),
                    ("aff", T.AffineTransform(loc, scale)), ("affs", T.AffineTransform(1.0, -2.0)), ("pow", T.PowerTransform(lib.tensor(2.5))),
                    ("comp", T.ComposeTransform([T.AffineTransform(0.5, 2.0), T.TanhTransform()]))]:
        xin = x.abs() + 0.1 if name == "pow" else x
        y = t(xin)
        out[name] = [y, t.inv(y), t.log_abs_det_jacobian(xin, y), t.inv.log_abs_det_jacobian(y, xin)]
    sb = T.StickBreakingTransform(); y = sb(W(lib, 2, 3)); out["sb"] = [y, sb.inv(y), sb.log_abs_det_jacobian(W(lib, 2, 3), y)]
    sm = T.SoftmaxTransform(); out["sm"] = [sm(W(lib, 2, 3))]
    lc = T.LowerCholeskyTransform(); out["lc"] = [lc(W(lib, 3, 3))]
    # SAC-style squashed Gaussian
    base = D.Normal(loc, scale)
    sq = D.TransformedDistribution(base, [T.TanhTransform(cache_size=1), T.AffineTransform(0., 2.)])
    a = lib.tensor([0.3, -1.2, 1.9])
    out["squash"] = [sq.log_prob(a), sq.batch_shape, sq.event_shape, sq.support.__class__.__name__ if False else 0]
    ln = D.TransformedDistribution(D.Normal(loc, scale), T.ExpTransform())
    out["ln"] = [ln.log_prob(lib.tensor([0.5, 1., 2.])), ln.cdf(lib.tensor([0.5, 1., 2.])), ln.icdf(lib.tensor([0.1, 0.5, 0.9]))]
    neg = D.TransformedDistribution(D.Normal(loc, scale), T.AffineTransform(0., -1.))
    out["neg"] = [neg.cdf(lib.tensor([0.5, 1., 2.])), neg.icdf(lib.tensor([0.2, 0.5, 0.7]))]
    ind = D.TransformedDistribution(D.Normal(lib.zeros(4, 3), lib.ones(4, 3)), T.StickBreakingTransform())
    out["indsb"] = [ind.batch_shape, ind.event_shape, ind.log_prob(lib.tensor([0.1, 0.2, 0.3, 0.4]).expand(4, 4))]
    out["halfcauchy"] = [D.HalfCauchy(scale).log_prob(lib.tensor([0.5, 1., 2.])), D.HalfCauchy(scale).cdf(lib.tensor([0.5, 1., 2.])), D.HalfCauchy(scale).entropy(), D.HalfCauchy(scale).icdf(lib.tensor([0.1, 0.5, 0.9]))]
    out["pareto"] = [D.Pareto(scale, scale + 1).log_prob(scale + 0.3), D.Pareto(scale, scale + 1).mean, D.Pareto(scale, scale + 2).variance, D.Pareto(scale, scale).entropy(), D.Pareto(scale, scale).cdf(scale + 1)]
    wb = D.Weibull(scale, scale + 0.5)
    out["weibull"] = [wb.log_prob(lib.tensor([0.5, 1., 2.])), wb.mean, wb.variance, wb.entropy(), wb.mode, wb.cdf(lib.tensor([0.5, 1., 2.]))]
    st = D.StudentT(scale * 3, loc, scale)
    out["studentt"] = [st.log_prob(x), st.entropy(), st.mean, st.variance, D.StudentT(lib.tensor([0.5, 1.5, 3.])).variance, D.StudentT(lib.tensor([0.5, 1.5, 3.])).mean]
    ln2 = D.LogisticNormal(lib.zeros(2), lib.ones(2))
    out["logisticnormal"] = [ln2.log_prob(lib.tensor([0.2, 0.3, 0.5])), ln2.event_shape, ln2.batch_shape]
    rb = D.RelaxedBernoulli(lib.tensor(0.5), probs=lib.tensor([0.2, 0.7]))
    out["relaxedb"] = [rb.log_prob(lib.tensor([0.3, 0.9])), rb.rsample((5,)).shape]
    rc = D.RelaxedOneHotCategorical(lib.tensor(0.7), logits=W(lib, 2, 4))
    out["relaxedc"] = [rc.log_prob(lib.tensor([0.1, 0.2, 0.3, 0.4]).expand(2, 4)), rc.rsample((3,)).shape, rc.event_shape]
    mix = D.Categorical(logits=W(lib, 3, seed=5))
    comp = D.Normal(W(lib, 3, seed=6), W(lib, 3, seed=7, pos=True))
    gmm = D.MixtureSameFamily(mix, comp)
    pts = lib.tensor([-1., 0., 0.5, 2.])
    out["gmm"] = [gmm.log_prob(pts), gmm.mean, gmm.variance, gmm.cdf(pts), gmm.sample((6,)).shape, gmm.batch_shape]
    comp2 = D.Independent(D.Normal(W(lib, 4, 5, 2, seed=8), W(lib, 4, 5, 2, seed=9, pos=True)), 1)
    gmm2 = D.MixtureSameFamily(D.Categorical(logits=W(lib, 4, 5, seed=10)), comp2)
    out["gmm2"] = [gmm2.log_prob(W(lib, 4, 2, seed=11)), gmm2.mean, gmm2.variance, gmm2.sample((3,)).shape, gmm2.event_shape, gmm2.batch_shape]
    # gradients through a squashed rsample's log_prob
    mu = W(lib, 3).requires_grad_()
    d = D.TransformedDistribution(D.Normal(mu, lib.ones(3)), [T.TanhTransform(cache_size=1)])
    lp = d.log_prob(lib.tensor([0.1, -0.5, 0.8])).sum(); lp.backward()
    out["grad"] = [mu.grad]
    out["eq"] = [T.ExpTransform() == T.ExpTransform(), T.ExpTransform().inv.inv == T.ExpTransform(), T.identity_transform(x), T.ExpTransform().sign, T.AffineTransform(0., -2.).sign, T.ExpTransform().event_dim, T.StickBreakingTransform().event_dim]
    return out


_WANT, _GOT = _results(torch), _results(ember)


@pytest.mark.parametrize("name", sorted(_WANT))
def test_matches_torch(name):
    assert_same_results(_WANT[name], _GOT[name], name)


def test_cached_transform_inverts_its_own_sample_exactly():
    tanh = ember.distributions.transforms.TanhTransform(cache_size=1)
    x = ember.tensor([30.0])           # tanh(30) rounds to 1: atanh would give inf
    assert tanh.inv(tanh(x)) is x


def test_torch_module_paths():
    from ember.distributions.transformed_distribution import TransformedDistribution
    from ember.distributions.mixture_same_family import MixtureSameFamily  # noqa: F401
    from ember.distributions.transforms import TanhTransform  # noqa: F401
    assert TransformedDistribution is ember.distributions.TransformedDistribution
