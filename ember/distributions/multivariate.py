"""Distributions over vectors (MultivariateNormal, Dirichlet) and Independent, which
reinterprets batch dimensions as event dimensions."""
from __future__ import annotations

import math

import numpy as np

from .. import Size
from . import constraints
from .distribution import Distribution
from .continuous import _LazyFunction
from .exp_family import ExponentialFamily


def _ember():
    import ember
    return ember


class MultivariateNormal(Distribution):
    arg_constraints = {"loc": constraints.real_vector,
                       "covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite,
                       "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, covariance_matrix=None, precision_matrix=None, scale_tril=None,
                 validate_args=None):
        em = _ember()
        given = [m for m in (covariance_matrix, precision_matrix, scale_tril) if m is not None]
        if len(given) != 1:
            raise ValueError("Exactly one of covariance_matrix or precision_matrix or "
                             "scale_tril may be specified.")
        if loc.ndim < 1:
            raise ValueError("loc must be at least one-dimensional.")
        matrix = given[0]
        if matrix.ndim < 2:
            raise ValueError("covariance_matrix, precision_matrix or scale_tril must be at "
                             "least two-dimensional, with optional leading batch dimensions")
        batch = em.broadcast_shapes(tuple(matrix.shape[:-2]), tuple(loc.shape[:-1]))
        n = loc.shape[-1]
        self.loc = loc.expand(list(batch) + [n])
        if scale_tril is not None:
            self.scale_tril = scale_tril.expand(list(batch) + [n, n])
            self._unbroadcasted_scale_tril = scale_tril
        elif covariance_matrix is not None:
            self.covariance_matrix = covariance_matrix.expand(list(batch) + [n, n])
            self._unbroadcasted_scale_tril = em.linalg.cholesky(covariance_matrix)
        else:
            self.precision_matrix = precision_matrix.expand(list(batch) + [n, n])
            self._unbroadcasted_scale_tril = _precision_to_scale_tril(precision_matrix)
        super().__init__(Size(batch), Size((n,)), validate_args=validate_args)

    def _params(self):
        for key in ("scale_tril", "covariance_matrix", "precision_matrix"):
            if key in self.__dict__:
                return {"loc": self.loc, key: self.__dict__[key]}

    def expand(self, batch_shape, _instance=None):
        n = self.event_shape[0]
        params = self._params()
        key = [k for k in params if k != "loc"][0]
        return type(self)(self.loc.expand(list(batch_shape) + [n]),
                          **{key: params[key].expand(list(batch_shape) + [n, n])},
                          validate_args=False)

    def __getattr__(self, name):
        d = self.__dict__
        if "_unbroadcasted_scale_tril" not in d:
            raise AttributeError(name)
        L = d["_unbroadcasted_scale_tril"]
        shape = list(d["loc"].shape) + [d["loc"].shape[-1]]
        if name == "scale_tril":
            return L.expand(shape)
        if name == "covariance_matrix":
            return (L @ L.transpose(-1, -2)).expand(shape)
        if name == "precision_matrix":
            return _ember().cholesky_inverse(L).expand(shape)
        raise AttributeError(f"'MultivariateNormal' object has no attribute '{name}'")

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        L = self._unbroadcasted_scale_tril
        return (L ** 2).sum(-1).expand(list(self.loc.shape))

    def rsample(self, sample_shape=Size()):
        shape = self._extended_shape(sample_shape)
        eps = _ember().randn(*shape, dtype=self.loc.dtype)
        return self.loc + (self._unbroadcasted_scale_tril @ eps.unsqueeze(-1)).squeeze(-1)

    def _half_log_det(self):
        return self._unbroadcasted_scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)

    def log_prob(self, value):
        self._validate_sample(value)
        diff = value - self.loc
        L = self._unbroadcasted_scale_tril
        shape = _ember().broadcast_shapes(tuple(diff.shape), tuple(L.shape[:-1]))
        L = L.expand(list(shape) + [shape[-1]])
        solved = _ember().linalg.solve_triangular(L, diff.expand(list(shape)).unsqueeze(-1),
                                                  upper=False).squeeze(-1)
        mahalanobis = (solved ** 2).sum(-1)
        n = self.event_shape[0]
        return -0.5 * (n * math.log(2 * math.pi) + mahalanobis) - self._half_log_det()

    def entropy(self):
        n = self.event_shape[0]
        h = 0.5 * n * (1.0 + math.log(2 * math.pi)) + self._half_log_det()
        return h.expand(list(self.batch_shape)) if len(self.batch_shape) else h


def _precision_to_scale_tril(P):
    """The Cholesky factor of P^{-1}, through the flipped Cholesky factor of P."""
    em = _ember()
    Lf = em.linalg.cholesky(P.flip((-2, -1)))
    L_inv = Lf.flip((-2, -1)).transpose(-2, -1)
    eye = em.eye(P.shape[-1], dtype=P.dtype).expand(list(L_inv.shape))
    return em.linalg.solve_triangular(L_inv, eye, upper=False)


def _dirichlet_sample_class():
    em = _ember()

    class DirichletSample(em.autograd.Function):
        """Dirichlet samples (normalized gammas) with torch's implicit gradient: each
        component's derivative from its Beta(alpha_i, total - alpha_i) marginal, projected
        so the sample stays on the simplex."""

        @staticmethod
        def forward(ctx, alpha):
            from ..frontend.random import numpy_rng
            c = alpha.detach().numpy()
            g = numpy_rng(None).gamma(c)
            tiny = np.finfo(c.dtype).tiny
            values = np.clip(g / g.sum(-1, keepdims=True), tiny, 1 - np.finfo(c.dtype).eps)
            x = em.tensor(values.astype(c.dtype))
            ctx.save_for_backward(alpha, x)
            return x

        @staticmethod
        def backward(ctx, grad):
            from .continuous import _beta_sample_grads
            alpha, x = ctx.saved_tensors
            a = alpha.detach().numpy().astype(np.float64)
            xn = x.detach().numpy().astype(np.float64)
            total = a.sum(-1, keepdims=True)
            marginal = _beta_sample_grads(a, total - a, xn)[0] / (1 - xn)
            g = grad.detach().numpy().astype(np.float64)
            projected = g - (xn * g).sum(-1, keepdims=True)
            return em.tensor((marginal * projected).astype(alpha.dtype.np_dtype))

    return DirichletSample


_DirichletSample = _LazyFunction(_dirichlet_sample_class)


class Dirichlet(ExponentialFamily):
    @property
    def _natural_params(self):
        return (self.concentration,)

    def _log_normalizer(self, x):
        return x.lgamma().sum(-1) - x.sum(-1).lgamma()

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex

    def __init__(self, concentration, validate_args=None):
        if concentration.ndim < 1:
            raise ValueError("`concentration` parameter must be at least one-dimensional.")
        self.concentration = concentration
        super().__init__(concentration.shape[:-1], concentration.shape[-1:],
                         validate_args=validate_args)

    def _params(self):
        return {"concentration": self.concentration}

    def expand(self, batch_shape, _instance=None):
        return Dirichlet(self.concentration.expand(list(batch_shape) +
                                                   [self.event_shape[0]]), validate_args=False)

    @property
    def mean(self):
        return self.concentration / self.concentration.sum(-1, keepdim=True)

    @property
    def mode(self):
        """(c - 1)+ normalized; where every concentration is below 1 the density peaks at
        the vertex of the largest one (PyTorch's convention)."""
        from ..nn import functional as F
        c = (self.concentration - 1).clamp(min=0)
        interior = c / c.sum(-1, keepdim=True)
        # PyTorch takes the argmax of the (all-NaN) interior there: the first vertex
        vertex = F.one_hot(interior.argmax(-1), self.event_shape[0]).to(c.dtype)
        at_vertex = (self.concentration < 1).all(-1, keepdim=True)
        return vertex.where(at_vertex, interior)

    @property
    def variance(self):
        total = self.concentration.sum(-1, keepdim=True)
        return self.concentration * (total - self.concentration) / (total ** 2 * (total + 1))

    has_rsample = True

    def rsample(self, sample_shape=Size()):
        shape = self._extended_shape(sample_shape)
        return _DirichletSample.apply(self.concentration.expand(list(shape)))

    def log_prob(self, value):
        self._validate_sample(value)
        em = _ember()
        c = self.concentration
        return em.xlogy(c - 1.0, value).sum(-1) + c.sum(-1).lgamma() - c.lgamma().sum(-1)

    def entropy(self):
        c = self.concentration
        k = c.shape[-1]
        total = c.sum(-1)
        return c.lgamma().sum(-1) - total.lgamma() - (k - total) * total.digamma() - \
            ((c - 1.0) * c.digamma()).sum(-1)


class Independent(Distribution):
    """`base` with its rightmost `reinterpreted_batch_ndims` batch dimensions counted as
    event dimensions: log_prob sums over them."""

    arg_constraints: dict = {}

    def __init__(self, base_distribution, reinterpreted_batch_ndims: int, validate_args=None):
        batch = tuple(base_distribution.batch_shape)
        if reinterpreted_batch_ndims > len(batch):
            raise ValueError(f"Expected reinterpreted_batch_ndims <= len(base_distribution."
                             f"batch_shape), actual {reinterpreted_batch_ndims} vs {len(batch)}")
        self.base_dist = base_distribution
        self.reinterpreted_batch_ndims = reinterpreted_batch_ndims
        split = len(batch) - reinterpreted_batch_ndims
        super().__init__(Size(batch[:split]),
                         Size(batch[split:] + tuple(base_distribution.event_shape)),
                         validate_args=False)

    @property
    def has_rsample(self):
        return self.base_dist.has_rsample

    @property
    def support(self):
        return constraints.independent(self.base_dist.support, self.reinterpreted_batch_ndims) \
            if self.base_dist.support is not None and \
            not isinstance(self.base_dist.support, property) else None

    def expand(self, batch_shape, _instance=None):
        extra = list(self.event_shape)[:self.reinterpreted_batch_ndims]
        return Independent(self.base_dist.expand(list(batch_shape) + extra),
                           self.reinterpreted_batch_ndims)

    @property
    def mean(self):
        return self.base_dist.mean

    @property
    def mode(self):
        return self.base_dist.mode

    @property
    def variance(self):
        return self.base_dist.variance

    def sample(self, sample_shape=Size()):
        return self.base_dist.sample(sample_shape)

    def rsample(self, sample_shape=Size()):
        return self.base_dist.rsample(sample_shape)

    def _sum_rightmost(self, value):
        return value.sum(list(range(-self.reinterpreted_batch_ndims, 0))) \
            if self.reinterpreted_batch_ndims else value

    def log_prob(self, value):
        return self._sum_rightmost(self.base_dist.log_prob(value))

    def entropy(self):
        return self._sum_rightmost(self.base_dist.entropy())

    def __repr__(self):
        return f"Independent({self.base_dist!r}, {self.reinterpreted_batch_ndims})"


def _batch_mv(matrix, vector):
    return (matrix @ vector.unsqueeze(-1)).squeeze(-1)


def _mahalanobis_of_tril(tril, x):
    """|tril^-1 x|^2 for lower-triangular tril, batched."""
    from ..linalg import solve_triangular
    return solve_triangular(tril, x.unsqueeze(-1), upper=False).squeeze(-1).pow(2).sum(-1)


class LowRankMultivariateNormal(Distribution):
    """A multivariate normal with covariance cov_factor @ cov_factor.T + diag(cov_diag);
    log_prob and entropy use the m x m capacitance matrix (Woodbury identity and the
    matrix determinant lemma), never the n x n covariance."""
    arg_constraints = {"loc": constraints.real_vector,
                       "cov_factor": constraints.independent(constraints.real, 2),
                       "cov_diag": constraints.independent(constraints.positive, 1)}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc, cov_factor, cov_diag, validate_args=None):
        em = _ember()
        if loc.dim() < 1:
            raise ValueError("loc must be at least one-dimensional.")
        n = loc.shape[-1]
        if cov_factor.dim() < 2:
            raise ValueError("cov_factor must be at least two-dimensional, with optional "
                             "leading batch dimensions")
        if cov_factor.shape[-2] != n:
            raise ValueError(f"cov_factor must be a batch of matrices with shape {n} x m")
        if cov_diag.shape[-1:] != loc.shape[-1:]:
            raise ValueError(f"cov_diag must be a batch of vectors with shape {tuple(loc.shape[-1:])}")
        batch = tuple(em.broadcast_shapes(tuple(loc.shape[:-1]), tuple(cov_factor.shape[:-2]),
                                          tuple(cov_diag.shape[:-1])))
        self.loc = loc.expand(list(batch) + [n])
        self.cov_factor = cov_factor.expand(list(batch) + list(cov_factor.shape[-2:]))
        self.cov_diag = cov_diag.expand(list(batch) + [n])
        self._capacitance_tril = self._capacitance(self.cov_factor, self.cov_diag)
        super().__init__(Size(batch), Size([n]), validate_args=validate_args)

    @staticmethod
    def _capacitance(W, D):
        """cholesky(I + W^T D^-1 W)."""
        em = _ember()
        m = W.shape[-1]
        K = (W.mT / D.unsqueeze(-2)) @ W + em.eye(m, dtype=W.dtype)
        return em.linalg.cholesky(K)

    def _params(self):
        return {"loc": self.loc, "cov_factor": self.cov_factor, "cov_diag": self.cov_diag}

    def expand(self, batch_shape, _instance=None):
        batch = list(batch_shape)
        n, m = self.cov_factor.shape[-2:]
        return LowRankMultivariateNormal(self.loc.expand(batch + [n]),
                                         self.cov_factor.expand(batch + [n, m]),
                                         self.cov_diag.expand(batch + [n]),
                                         validate_args=False)

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        return self.cov_factor.pow(2).sum(-1) + self.cov_diag

    @property
    def covariance_matrix(self):
        return self.cov_factor @ self.cov_factor.mT + self.cov_diag.diag_embed()

    @property
    def precision_matrix(self):
        em = _ember()
        Wt_Dinv = self.cov_factor.mT / self.cov_diag.unsqueeze(-2)
        A = em.linalg.solve_triangular(self._capacitance_tril, Wt_Dinv, upper=False)
        return self.cov_diag.reciprocal().diag_embed() - A.mT @ A

    @property
    def scale_tril(self):
        return _ember().linalg.cholesky(self.covariance_matrix)

    def rsample(self, sample_shape=Size()):
        em = _ember()
        shape = list(self._extended_shape(sample_shape))
        eps_W = em.randn(*(shape[:-1] + [self.cov_factor.shape[-1]]), dtype=self.loc.dtype)
        eps_D = em.randn(*shape, dtype=self.loc.dtype)
        return self.loc + _batch_mv(self.cov_factor, eps_W) + self.cov_diag.sqrt() * eps_D

    def _log_det(self):
        return 2 * self._capacitance_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1) + \
            self.cov_diag.log().sum(-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        diff = value - self.loc
        Wt_Dinv = self.cov_factor.mT / self.cov_diag.unsqueeze(-2)
        mahalanobis = (diff.pow(2) / self.cov_diag).sum(-1) - \
            _mahalanobis_of_tril(self._capacitance_tril, _batch_mv(Wt_Dinv, diff))
        n = self.event_shape[0]
        return -0.5 * (n * math.log(2 * math.pi) + self._log_det() + mahalanobis)

    def entropy(self):
        n = self.event_shape[0]
        entropy = 0.5 * (n * (1.0 + math.log(2 * math.pi)) + self._log_det())
        return entropy.expand(list(self.batch_shape)) if len(self.batch_shape) else entropy
