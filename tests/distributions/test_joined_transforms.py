"""CatTransform, StackTransform, CorrCholeskyTransform, PositiveDefiniteTransform and the
constraints they map onto (cat, stack, corr_cholesky, positive_definite, ...), with their
biject_to / transform_to registrations: the same values, inverses, log-determinants,
checks and gradients as torch on the same inputs."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
from tests.distributions.dist_twins import assert_same_results  # noqa: E402


def W(lib, *shape, seed=0):
    return lib.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def _round_trip(t, x):
    y = t(x)
    return [y, t.inv(y), t.log_abs_det_jacobian(x, y), bool(t.codomain.check(y).all()),
            t.bijective, t.domain.event_dim, t.codomain.event_dim]


def _results(lib):
    D = lib.distributions
    T, C = D.transforms, D.constraints
    out = {}
    x = W(lib, 2, 6)
    cat = T.CatTransform([T.ExpTransform(), T.identity_transform, T.SigmoidTransform()],
                         dim=1, lengths=[2, 3, 1])
    out["cat_dim1"] = _round_trip(cat, x) + [cat.event_dim, cat.length]
    cat0 = T.CatTransform([T.ExpTransform(), T.TanhTransform()], dim=0, lengths=[1, 1])
    out["cat_dim0"] = _round_trip(cat0, W(lib, 2, 3, seed=1))
    cat_ev = T.CatTransform([T.IndependentTransform(T.ExpTransform(), 1),
                             T.IndependentTransform(T.AffineTransform(1., 3.), 1)],
                            dim=0, lengths=[2, 1])
    out["cat_event"] = [cat_ev.event_dim, cat_ev.log_abs_det_jacobian(
        W(lib, 3, 4), cat_ev(W(lib, 3, 4)))]
    stack = T.StackTransform([T.ExpTransform(), T.SoftplusTransform(), T.identity_transform],
                             dim=1)
    out["stack"] = _round_trip(stack, W(lib, 4, 3, seed=2))
    v = W(lib, 3, 6, seed=3)
    corr = T.CorrCholeskyTransform()
    out["corr_cholesky"] = _round_trip(corr, v) + [
        corr.forward_shape((5, 10)), corr.inverse_shape((5, 4, 4)),
        corr(v) @ corr(v).mT]
    m = W(lib, 2, 3, 3, seed=4)
    pd = T.PositiveDefiniteTransform()
    y = pd(m)
    out["positive_definite"] = [y, pd.inv(y), bool(C.positive_definite.check(y).all()),
                                pd.bijective]
    lower = lib.tensor([[1., 0.], [0.6, 0.8]])
    out["checks"] = [C.corr_cholesky.check(lower), C.corr_cholesky.check(lower * 1.1),
                     C.corr_cholesky.check(lib.tensor([[1., 0.5], [0.6, 0.8]])),
                     C.positive_semidefinite.check(lib.tensor([[1., 1.], [1., 1.]])),
                     C.symmetric.check(lib.tensor([[1., 2.], [3., 1.]])),
                     C.square.check(lib.zeros(2, 3, 3)),
                     C.cat([C.positive, C.real], 0, [1, 2]).check(lib.tensor([-1., 2., -3.])),
                     C.stack([C.positive, C.unit_interval], 1).check(
                         lib.tensor([[1., 0.5], [-1., 2.]])),
                     C.cat([C.positive, C.real], 0, [1, 2]).event_dim,
                     C.stack([C.positive, C.real_vector], -1).event_dim]
    res = []
    xs = W(lib, 3, 3, seed=5)
    for c in [C.cat([C.positive, C.unit_interval], 1, [2, 1]), C.stack([C.real, C.positive,
                                                                           C.interval(0., 2.)], 0)]:
        for reg in (D.biject_to, D.transform_to):
            t = reg(c)
            y = t(xs)
            res += [y, t.inv(y), t.log_abs_det_jacobian(xs, y), bool(c.check(y).all())]
    for reg in (D.biject_to, D.transform_to):
        t = reg(C.corr_cholesky)
        res += [t(v), t.log_abs_det_jacobian(v, t(v))]
    for c in (C.positive_definite, C.positive_semidefinite):
        res.append(D.transform_to(c)(m))
    out["registry"] = res
    return out


_WANT, _GOT = _results(torch), _results(ember)


@pytest.mark.parametrize("name", sorted(_WANT))
def test_matches_torch(name):
    assert_same_results(_WANT[name], _GOT[name], name)


def _grads(lib):
    T = lib.distributions.transforms
    x = W(lib, 2, 6).requires_grad_()
    y = T.CorrCholeskyTransform()(x)
    (y.sum() + T.CorrCholeskyTransform().log_abs_det_jacobian(x, y).sum()).backward()
    m = W(lib, 3, 3, seed=1).requires_grad_()
    (T.PositiveDefiniteTransform()(m) ** 2).sum().backward()
    z = W(lib, 2, 4, seed=2).requires_grad_()
    cat = T.CatTransform([T.ExpTransform(), T.TanhTransform()], dim=1, lengths=[3, 1])
    (cat(z).sum() + cat.log_abs_det_jacobian(z, cat(z)).sum()).backward()
    return [x.grad, m.grad, z.grad]


def test_gradients_match_torch():
    assert_same_results(_grads(torch), _grads(ember), "grads")


def test_refusals_match_torch():
    for lib in (torch, ember):
        T = lib.distributions.transforms
        with pytest.raises(ValueError, match="flattened lower-diagonal"):
            T.CorrCholeskyTransform().forward_shape((5,))
        with pytest.raises(NotImplementedError):
            lib.distributions.biject_to(lib.distributions.constraints.positive_definite)
    with pytest.raises(ValueError, match="sum of lengths"):
        ember.distributions.transforms.CatTransform(
            [ember.distributions.transforms.ExpTransform()], dim=0, lengths=[2])(ember.ones(3))
