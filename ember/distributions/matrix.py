"""Distributions over matrices: Wishart (positive definite matrices, the conjugate prior of
a Gaussian precision) and LKJCholesky (Cholesky factors of correlation matrices)."""
from __future__ import annotations

import math
import warnings

from .. import Size
from . import constraints
from .continuous import Beta, Chi2
from .distribution import Distribution, broadcast_all
from .exp_family import ExponentialFamily
from .multivariate import _precision_to_scale_tril

_LOG_2 = math.log(2.0)


def _ember():
    import ember
    return ember


def _mvdigamma(x, p: int):
    """sum_{i<p} digamma(x - i / 2), the derivative of mvlgamma."""
    em = _ember()
    offsets = em.arange(p, dtype=x.dtype) / 2
    return (x.unsqueeze(-1) - offsets).digamma().sum(-1)


class Wishart(ExponentialFamily):
    """W(df, Sigma): the sum of df outer products of N(0, Sigma) vectors, for real df >
    p - 1; given by exactly one of covariance_matrix, precision_matrix, scale_tril.
    rsample uses the Bartlett decomposition (chi-squared diagonal, normal lower part)."""
    arg_constraints = {"covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite,
                       "scale_tril": constraints.lower_cholesky,
                       "df": constraints.greater_than(0)}
    support = constraints.positive_definite
    has_rsample = True
    _mean_carrier_measure = 0

    def __init__(self, df, covariance_matrix=None, precision_matrix=None, scale_tril=None,
                 validate_args=None):
        em = _ember()
        given = [(n, v) for n, v in (("covariance_matrix", covariance_matrix),
                                     ("precision_matrix", precision_matrix),
                                     ("scale_tril", scale_tril)) if v is not None]
        if len(given) != 1:
            raise AssertionError("Exactly one of covariance_matrix or precision_matrix or "
                                 "scale_tril may be specified.")
        name, param = given[0]
        if param.dim() < 2:
            raise ValueError("scale_tril must be at least two-dimensional, with optional "
                             "leading batch dimensions")
        if isinstance(df, em.Tensor):
            batch_shape = em.broadcast_shapes(tuple(param.shape[:-2]), tuple(df.shape))
            self.df = df.expand(list(batch_shape))
        else:
            batch_shape = tuple(param.shape[:-2])
            self.df = em.tensor(float(df), dtype=param.dtype)
        p = param.shape[-1]
        if bool((self.df <= p - 1).any()):
            raise ValueError(f"Value of df={df} expected to be greater than ndim - 1 = "
                             f"{p - 1}.")
        if bool((self.df < p).any()):
            warnings.warn("Low df values detected. Singular samples are highly likely to "
                          "occur for ndim - 1 < df < ndim.", stacklevel=2)
        self._given = name
        setattr(self, name, param.expand(list(batch_shape) + [-1, -1]))
        self.arg_constraints = dict(self.arg_constraints, df=constraints.greater_than(p - 1))
        super().__init__(batch_shape, param.shape[-2:], validate_args=validate_args)
        if name == "scale_tril":
            self._unbroadcasted_scale_tril = param
        elif name == "covariance_matrix":
            self._unbroadcasted_scale_tril = em.linalg.cholesky(param)
        else:
            self._unbroadcasted_scale_tril = _precision_to_scale_tril(param)

    def _params(self):
        return {"df": self.df, self._given: self.__dict__[self._given]}

    def expand(self, batch_shape, _instance=None):
        shape = list(Size(batch_shape))
        params = {"df": self.df.expand(shape),
                  self._given: self.__dict__[self._given].expand(shape + [-1, -1])}
        return Wishart(**params, validate_args=False)

    def __getattr__(self, name):
        if name not in ("scale_tril", "covariance_matrix", "precision_matrix") or \
                "_unbroadcasted_scale_tril" not in self.__dict__:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        em = _ember()
        tril = self._unbroadcasted_scale_tril
        shape = list(self._batch_shape) + list(self._event_shape)
        if name == "scale_tril":
            return tril.expand(shape)
        if name == "covariance_matrix":
            return (tril @ tril.mT).expand(shape)
        eye = em.eye(self._event_shape[-1], dtype=tril.dtype)
        return em.cholesky_solve(eye, tril).expand(shape)

    def _df_matrix(self):
        return self.df.reshape(tuple(self._batch_shape) + (1, 1))

    @property
    def mean(self):
        return self._df_matrix() * self.covariance_matrix

    @property
    def mode(self):
        em = _ember()
        factor = self.df - self._event_shape[-1] - 1
        factor = em.where(factor > 0, factor, em.full_like(factor, math.nan))
        return factor.reshape(tuple(self._batch_shape) + (1, 1)) * self.covariance_matrix

    @property
    def variance(self):
        cov = self.covariance_matrix
        diag = cov.diagonal(dim1=-2, dim2=-1)
        return self._df_matrix() * (cov ** 2 + diag.unsqueeze(-1) * diag.unsqueeze(-2))

    def rsample(self, sample_shape=Size()):
        """Bartlett: A = L B with sqrt(chi2(df - i)) on B's diagonal and N(0, 1) below it."""
        em = _ember()
        p = self._event_shape[-1]
        tril = self._unbroadcasted_scale_tril
        batch = tuple(Size(sample_shape)) + tuple(self._batch_shape)
        dfs = self.df.unsqueeze(-1) - em.arange(p, dtype=tril.dtype)
        chi2 = Chi2(dfs.expand(list(batch) + [p])).rsample()
        eps = em.finfo(tril.dtype).eps
        diag = chi2.sqrt().clamp(min=eps).diag_embed()
        below = em.randn(*batch, p, p, dtype=tril.dtype).tril(-1)
        chol = tril @ (diag + below)
        return chol @ chol.mT

    def log_prob(self, value):
        self._validate_sample(value)
        em = _ember()
        nu, p = self.df, self._event_shape[-1]
        tril = self._unbroadcasted_scale_tril
        log_det_scale = tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        trace = em.cholesky_solve(value, tril).diagonal(dim1=-2, dim2=-1).sum(-1)
        return -nu * (p * _LOG_2 / 2 + log_det_scale) - em.mvlgamma(nu / 2, p=p) + \
            (nu - p - 1) / 2 * em.linalg.slogdet(value)[1] - trace / 2

    def entropy(self):
        em = _ember()
        nu, p = self.df, self._event_shape[-1]
        log_det_scale = self._unbroadcasted_scale_tril.diagonal(dim1=-2, dim2=-1).log() \
            .sum(-1)
        return (p + 1) * (p * _LOG_2 / 2 + log_det_scale) + em.mvlgamma(nu / 2, p=p) - \
            (nu - p - 1) / 2 * _mvdigamma(nu / 2, p) + nu * p / 2

    @property
    def _natural_params(self):
        p = self._event_shape[-1]
        return -self.precision_matrix / 2, (self.df - p - 1) / 2

    def _log_normalizer(self, x, y):
        em = _ember()
        p = self._event_shape[-1]
        return (y + (p + 1) / 2) * (-em.linalg.slogdet(-2 * x)[1] + _LOG_2 * p) + \
            em.mvlgamma(y + (p + 1) / 2, p=p)


class LKJCholesky(Distribution):
    """The LKJ distribution over correlation matrices, given by their lower Cholesky factor:
    density proportional to det(C)^(concentration - 1). Sampled by the onion method."""
    arg_constraints = {"concentration": constraints.positive}
    support = constraints.corr_cholesky

    def __init__(self, dim: int, concentration=1.0, validate_args=None):
        if dim < 2:
            raise ValueError(f"Expected dim to be an integer greater than or equal to 2. "
                             f"Found dim={dim}.")
        em = _ember()
        self.dim = dim
        (self.concentration,) = broadcast_all(concentration)
        batch_shape = self.concentration.shape
        # the squared norm of row i's off-diagonal part is Beta(i / 2, c + (dim - 2 - i) / 2)
        marginal = self.concentration + 0.5 * (self.dim - 2)
        offset = em.cat([em.zeros(1, dtype=marginal.dtype),
                         em.arange(dim - 1, dtype=marginal.dtype)])
        self._beta = Beta(offset + 0.5, marginal.unsqueeze(-1) - 0.5 * offset,
                          validate_args=False)
        super().__init__(batch_shape, Size((dim, dim)), validate_args=validate_args)

    def _params(self):
        return {"concentration": self.concentration}

    def _fixed_arguments(self):
        return {"dim": self.dim}

    def expand(self, batch_shape, _instance=None):
        return LKJCholesky(self.dim, self.concentration.expand(list(Size(batch_shape))),
                           validate_args=False)

    def sample(self, sample_shape=Size()):
        em = _ember()
        y = self._beta.sample(sample_shape).unsqueeze(-1)
        shape = self._extended_shape(sample_shape)
        normal = em.randn(*shape, dtype=y.dtype).tril(-1)
        norm = (normal ** 2).sum(-1, keepdim=True).sqrt()
        first_row = (em.arange(self.dim) == 0).unsqueeze(-1)   # all zeros: no direction
        direction = em.where(first_row, em.zeros_like(normal),
                             normal / em.where(first_row, em.ones_like(norm), norm))
        w = y.sqrt() * direction
        tiny = em.finfo(w.dtype).tiny
        diag = (1 - (w ** 2).sum(-1)).clamp(min=tiny).sqrt()
        return w + diag.diag_embed()

    def log_prob(self, value):
        self._validate_sample(value)
        em = _ember()
        diag = value.diagonal(dim1=-1, dim2=-2)[..., 1:]
        order = em.arange(2, self.dim + 1, dtype=diag.dtype)
        order = 2 * (self.concentration - 1).unsqueeze(-1) + self.dim - order
        unnormalized = (order * diag.log()).sum(-1)
        dm1 = self.dim - 1
        alpha = self.concentration + 0.5 * dm1
        normalizer = 0.5 * dm1 * math.log(math.pi) + em.mvlgamma(alpha - 0.5, p=dm1) - \
            alpha.lgamma() * dm1
        return unnormalized - normalizer
