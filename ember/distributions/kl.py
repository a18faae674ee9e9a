"""kl_divergence(p, q) and register_kl: closed forms by (type(p), type(q)), dispatched to
the most specific registered pair (as PyTorch's), NotImplementedError otherwise."""
from __future__ import annotations

from .continuous import Beta, Exponential, Gamma, Gumbel, Laplace, Normal, Uniform
from .discrete import Bernoulli, Categorical, OneHotCategorical, Poisson
from .exp_family import ExponentialFamily
from .more_families import ContinuousBernoulli
from .multivariate import Dirichlet, Independent, MultivariateNormal
from .transformed import Pareto

_KL_REGISTRY: dict = {}


def register_kl(type_p, type_q):
    """Decorator: `@register_kl(Normal, Normal) def kl(p, q): ...`."""
    def decorator(fn):
        _KL_REGISTRY[type_p, type_q] = fn
        return fn
    return decorator


def _lookup(type_p, type_q):
    matches = [(tp, tq) for (tp, tq) in _KL_REGISTRY
               if issubclass(type_p, tp) and issubclass(type_q, tq)]
    if not matches:
        return None
    # the most specific pair: the smallest distance in each class's method resolution order
    best = min(matches, key=lambda pair: (type_p.__mro__.index(pair[0]),
                                          type_q.__mro__.index(pair[1])))
    return _KL_REGISTRY[best]


def kl_divergence(p, q):
    fn = _lookup(type(p), type(q))
    if fn is None:
        raise NotImplementedError(f"No KL(p || q) is implemented for p of type "
                                  f"{type(p).__name__} and q of type {type(q).__name__}")
    return fn(p, q)


def _ember():
    import ember
    return ember


@register_kl(Normal, Normal)
def _kl_normal_normal(p, q):
    var_ratio = (p.scale / q.scale) ** 2
    t1 = ((p.loc - q.loc) / q.scale) ** 2
    return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p, q):
    from ..nn import functional as F
    t1 = p.probs * (F.softplus(-q.logits) - F.softplus(-p.logits))
    t2 = (1 - p.probs) * (F.softplus(q.logits) - F.softplus(p.logits))
    return t1 + t2


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p, q):
    t = p.probs * (p.logits - q.logits)
    t = t.masked_fill(q.probs == 0, float("inf")).masked_fill(p.probs == 0, 0.0)
    return t.sum(-1)


@register_kl(OneHotCategorical, OneHotCategorical)
def _kl_onehot_onehot(p, q):
    return _kl_categorical_categorical(p._categorical, q._categorical)


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p, q):
    result = ((q.high - q.low) / (p.high - p.low)).log()
    outside = (q.low > p.low) | (q.high < p.high)
    return result.masked_fill(outside, float("inf"))


@register_kl(Exponential, Exponential)
def _kl_exponential_exponential(p, q):
    ratio = q.rate / p.rate
    return ratio - 1 - ratio.log()


@register_kl(Laplace, Laplace)
def _kl_laplace_laplace(p, q):
    scale_ratio = p.scale / q.scale
    loc_abs_diff = (p.loc - q.loc).abs()
    t1 = -scale_ratio.log()
    t2 = loc_abs_diff / q.scale
    t3 = scale_ratio * (-loc_abs_diff / p.scale).exp()
    return t1 + t2 + t3 - 1


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p, q):
    t1 = q.concentration * (p.rate / q.rate).log()
    t2 = q.concentration.lgamma() - p.concentration.lgamma()
    t3 = (p.concentration - q.concentration) * p.concentration.digamma()
    t4 = (q.rate - p.rate) * (p.concentration / p.rate)
    return t1 + t2 + t3 + t4


@register_kl(Beta, Beta)
def _kl_beta_beta(p, q):
    sum_p = p.concentration1 + p.concentration0
    sum_q = q.concentration1 + q.concentration0
    t1 = q.concentration1.lgamma() + q.concentration0.lgamma() + sum_p.lgamma()
    t2 = p.concentration1.lgamma() + p.concentration0.lgamma() + sum_q.lgamma()
    t3 = (p.concentration1 - q.concentration1) * p.concentration1.digamma()
    t4 = (p.concentration0 - q.concentration0) * p.concentration0.digamma()
    t5 = (sum_q - sum_p) * sum_p.digamma()
    return t1 - t2 + t3 + t4 + t5


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet_dirichlet(p, q):
    sum_p = p.concentration.sum(-1)
    sum_q = q.concentration.sum(-1)
    t1 = sum_p.lgamma() - sum_q.lgamma()
    t2 = (p.concentration.lgamma() - q.concentration.lgamma()).sum(-1)
    t3 = p.concentration - q.concentration
    t4 = p.concentration.digamma() - sum_p.digamma().unsqueeze(-1)
    return t1 - t2 + (t3 * t4).sum(-1)


@register_kl(Poisson, Poisson)
def _kl_poisson_poisson(p, q):
    return p.rate * (p.rate.log() - q.rate.log()) - (p.rate - q.rate)


@register_kl(MultivariateNormal, MultivariateNormal)
def _kl_mvn_mvn(p, q):
    em = _ember()
    n = p.event_shape[0]
    Lp, Lq = p._unbroadcasted_scale_tril, q._unbroadcasted_scale_tril
    half_term = Lq.diagonal(dim1=-2, dim2=-1).log().sum(-1) - \
        Lp.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    shape = em.broadcast_shapes(tuple(Lp.shape), tuple(Lq.shape))
    Lp, Lq = Lp.expand(list(shape)), Lq.expand(list(shape))
    trace = (em.linalg.solve_triangular(Lq, Lp, upper=False) ** 2).sum([-2, -1])
    diff = (q.loc - p.loc)
    mshape = em.broadcast_shapes(tuple(diff.shape), tuple(shape[:-1]))
    solved = em.linalg.solve_triangular(Lq.expand(list(mshape) + [n]),
                                        diff.expand(list(mshape)).unsqueeze(-1),
                                        upper=False).squeeze(-1)
    return half_term + 0.5 * (trace + (solved ** 2).sum(-1) - n)


@register_kl(Independent, Independent)
def _kl_independent_independent(p, q):
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise NotImplementedError("KL between Independent distributions with different "
                                  "reinterpreted_batch_ndims")
    result = kl_divergence(p.base_dist, q.base_dist)
    return p._sum_rightmost(result)



@register_kl(ExponentialFamily, ExponentialFamily)
def _kl_exponential_family(p, q):
    """Two members of one family: the Bregman divergence of the log normalizer,
    F(theta_q) - F(theta_p) - <theta_q - theta_p, grad F(theta_p)>."""
    if type(p) is not type(q):
        raise NotImplementedError(f"No KL(p || q) is implemented for p of type "
                                  f"{type(p).__name__} and q of type {type(q).__name__} (the "
                                  f"Bregman form needs one exponential family)")
    from .. import autograd
    p_params = [param.detach().requires_grad_() for param in p._natural_params]
    q_params = q._natural_params
    p_log_norm = p._log_normalizer(*p_params)
    grads = autograd.grad(p_log_norm.sum(), p_params, create_graph=True)
    result = q._log_normalizer(*q_params) - p_log_norm
    for pp, qp, grad in zip(p_params, q_params, grads):
        term = (qp - pp) * grad
        result = result - term.reshape(tuple(term.shape[:result.dim()]) + (-1,)).sum(-1)
    return result


@register_kl(ContinuousBernoulli, ContinuousBernoulli)
def _kl_continuous_bernoulli(p, q):
    return p.mean * (p.logits - q.logits) + p._log_norm() + (-p.probs).log1p() - \
        q._log_norm() - (-q.probs).log1p()


def _continuous_bernoulli_cross_entropy(p, q):
    """-E_p[log q] for q ContinuousBernoulli: linear in p's mean."""
    return -p.mean * q.logits - (-q.probs).log1p() - q._log_norm()


@register_kl(Beta, ContinuousBernoulli)
def _kl_beta_continuous_bernoulli(p, q):
    return -p.entropy() + _continuous_bernoulli_cross_entropy(p, q)


@register_kl(Uniform, ContinuousBernoulli)
def _kl_uniform_continuous_bernoulli(p, q):
    result = -p.entropy() + _continuous_bernoulli_cross_entropy(p, q)
    # infinite unless p's interval lies strictly inside (0, 1), as torch decides it
    outside = (p.high >= q.support.upper_bound) | (p.low <= q.support.lower_bound)
    return _ember().where(outside, _ember().full_like(result, float("inf")), result)


@register_kl(ContinuousBernoulli, Exponential)
def _kl_continuous_bernoulli_exponential(p, q):
    return -p.entropy() - q.rate.log() + q.rate * p.mean


@register_kl(ContinuousBernoulli, Normal)
def _kl_continuous_bernoulli_normal(p, q):
    import math
    log_norm = 0.5 * (math.log(2.0 * math.pi) + (q.loc / q.scale) ** 2) + q.scale.log()
    quadratic = (p.variance + p.mean ** 2 - 2.0 * q.loc * p.mean) / (2.0 * q.scale ** 2)
    return -p.entropy() + log_norm + quadratic


@register_kl(ContinuousBernoulli, Uniform)
def _kl_continuous_bernoulli_uniform(p, q):
    result = -p.entropy() + (q.high - q.low).log()
    outside = (q.low >= p.support.lower_bound) | (q.high <= p.support.upper_bound)
    return _ember().where(outside, _ember().full_like(result, float("inf")), result)


def _infinite_kl(parameter_name):
    """q's support [0, 1] misses mass of p (or p's support misses q's): KL is infinite."""
    def kl(p, q):
        return _ember().full_like(getattr(p, parameter_name), float("inf"))
    return kl


register_kl(ContinuousBernoulli, Pareto)(_infinite_kl("probs"))
for _family, _parameter in ((Exponential, "rate"), (Gamma, "concentration"), (Gumbel, "loc"),
                            (Laplace, "loc"), (Normal, "loc"), (Pareto, "scale")):
    register_kl(_family, ContinuousBernoulli)(_infinite_kl(_parameter))
