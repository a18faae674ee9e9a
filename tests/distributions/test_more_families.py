"""Multinomial, NegativeBinomial, OneHotCategoricalStraightThrough,
LowRankMultivariateNormal, Kumaraswamy, InverseGamma and the constraint registry
(biject_to / transform_to onto every registered constraint): the same values, moments,
shapes and round trips as torch on the same parameters."""
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
    D = lib.distributions; C = D.constraints
    out = {}
    m = D.Multinomial(5, probs=lib.tensor([0.2, 0.3, 0.5]))
    cnt = lib.tensor([[1., 2., 2.], [0., 0., 5.]])
    out["multinomial"] = [m.log_prob(cnt), m.mean, m.variance, m.entropy(), m.sample((4,)).shape, m.sample((4,)).sum(-1), m.event_shape,
                          D.Multinomial(3, logits=W(lib, 2, 4)).log_prob(lib.tensor([1., 1., 0., 1.])), D.Multinomial(4, probs=lib.tensor([0., 0.5, 0.5])).log_prob(lib.tensor([0., 2., 2.]))]
    nb = D.NegativeBinomial(W(lib, 3, pos=True) * 2, probs=lib.tensor([0.2, 0.5, 0.7]))
    k = lib.tensor([0., 3., 7.])
    out["negbin"] = [nb.log_prob(k), nb.mean, nb.variance, nb.mode, D.NegativeBinomial(lib.tensor(3.), logits=lib.tensor([0.5, -1.])).log_prob(lib.tensor([2., 0.])), nb.sample((5,)).shape]
    st = D.OneHotCategoricalStraightThrough(logits=W(lib, 2, 3).requires_grad_())
    out["st"] = [st.rsample((4,)).shape, st.has_rsample]
    loc, Wf, d = W(lib, 2, 4), W(lib, 2, 4, 2, seed=1), W(lib, 4, seed=2, pos=True)
    lr = D.LowRankMultivariateNormal(loc, Wf, d)
    x = W(lib, 3, 2, 4, seed=3)
    out["lowrank"] = [lr.log_prob(x), lr.entropy(), lr.variance, lr.covariance_matrix, lr.precision_matrix, lr.scale_tril, lr.batch_shape, lr.event_shape, lr.rsample((5,)).shape,
                      D.MultivariateNormal(loc, lr.covariance_matrix).log_prob(x)]
    ku = D.Kumaraswamy(W(lib, 3, pos=True) + 1, W(lib, 3, seed=1, pos=True) + 1)
    v = lib.tensor([0.2, 0.5, 0.9])
    out["kumaraswamy"] = [ku.log_prob(v), ku.mean, ku.variance, ku.entropy(), ku.mode, ku.cdf(v) if False else 0, ku.rsample((2,)).shape]
    ig = D.InverseGamma(lib.tensor([0.5, 1.5, 3.]), lib.tensor([1., 2., 0.5]))
    out["invgamma"] = [ig.log_prob(v + 0.3), ig.mean, ig.variance, ig.mode, ig.entropy(), ig.sample((3,)).shape]
    xs = W(lib, 2, 3)
    res = []
    for c in [C.real, C.positive, C.nonnegative, C.greater_than(2.), C.less_than(1.), C.unit_interval, C.interval(-1., 3.), C.real_vector, C.independent(C.positive, 1), C.half_open_interval(0., 2.)]:
        for reg in (D.biject_to, D.transform_to):
            t = reg(c); y = t(xs)
            res += [y, t.inv(y), t.log_abs_det_jacobian(xs, y), bool(c.check(y).all())]
    for reg in (D.biject_to, D.transform_to):
        t = reg(C.simplex); y = t(xs); res += [y, bool(C.simplex.check(y).all())]
    t = D.transform_to(C.lower_cholesky); y = t(W(lib, 3, 3)); res += [y, t.inv(y)]
    out["registry"] = res
    return out


_WANT, _GOT = _results(torch), _results(ember)


@pytest.mark.parametrize("name", sorted(_WANT))
def test_matches_torch(name):
    assert_same_results(_WANT[name], _GOT[name], name)


def test_registry_refusals_and_extension_match_torch():
    for lib in (torch, ember):
        D = lib.distributions
        with pytest.raises(NotImplementedError, match="Cannot transform"):
            D.biject_to(D.constraints.lower_cholesky)
        with pytest.raises(NotImplementedError, match="inhomogeneous total_count"):
            D.Multinomial(lib.tensor(3), probs=lib.tensor([0.5, 0.5]))
    registry = ember.distributions.constraint_registry.ConstraintRegistry()
    registry.register(ember.distributions.constraints.positive,
                      lambda constraint: ember.distributions.transforms.SoftplusTransform())
    assert isinstance(registry(ember.distributions.constraints.greater_than(3.0)),
                      ember.distributions.transforms.SoftplusTransform)
