"""Univariate families with special-function densities: ContinuousBernoulli (the [0, 1]
relaxation of Bernoulli), FisherSnedecor (F), GeneralizedPareto and VonMises (circular).
Each follows torch's numerics: ContinuousBernoulli switches to a Taylor expansion near
probs = 1/2 where its closed forms divide by zero; GeneralizedPareto treats a concentration
close to 0 as the exponential limit."""
from __future__ import annotations

import math

import numpy as np

from .. import Size
from . import constraints
from .continuous import Gamma, _numpy_sample, _uniform_like
from .discrete import _clamp_probs, _probs_or_logits
from .distribution import Distribution, broadcast_all
from .exp_family import ExponentialFamily


def _ember():
    import ember
    return ember


def _where(cond, a, b):
    return _ember().where(cond, a, b)


class ContinuousBernoulli(ExponentialFamily):
    """p(x) = C(probs) probs^x (1-probs)^(1-x) on [0, 1]; `lims` is the band around 1/2
    where the normalizer, mean and variance use their Taylor expansions."""
    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True
    _mean_carrier_measure = 0

    def __init__(self, probs=None, logits=None, lims=(0.499, 0.501), validate_args=None):
        _probs_or_logits(probs, logits, "ContinuousBernoulli")
        if probs is not None:
            (probs,) = broadcast_all(probs)
            self.probs = _clamp_probs(probs)      # torch clamps before validating
            param = self.probs
        else:
            (self.logits,) = broadcast_all(logits)
            param = self.logits
        self._lims = tuple(lims)
        super().__init__(param.shape, validate_args=validate_args)

    def __getattr__(self, name):
        if name == "probs" and "logits" in self.__dict__:
            return _clamp_probs(self.__dict__["logits"].sigmoid())
        if name == "logits" and "probs" in self.__dict__:
            p = _clamp_probs(self.__dict__["probs"])
            return p.log() - (-p).log1p()
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _params(self):
        key = "probs" if "probs" in self.__dict__ else "logits"
        return {key: self.__dict__[key]}

    def _fixed_arguments(self):
        return {"lims": self._lims}

    def _outside_unstable_region(self):
        p = self.probs
        return (p <= self._lims[0]) | (p > self._lims[1])

    def _cut_probs(self):
        return _where(self._outside_unstable_region(), self.probs,
                      _ember().full_like(self.probs, self._lims[0]))

    def _log_norm(self):
        """log C(probs), the log of the normalizing constant."""
        cut = self._cut_probs()
        below = _where(cut <= 0.5, cut, _ember().zeros_like(cut))
        above = _where(cut >= 0.5, cut, _ember().ones_like(cut))
        exact = ((-cut).log1p() - cut.log()).abs().log() - _where(
            cut <= 0.5, (-2.0 * below).log1p(), (2.0 * above - 1.0).log())
        x = (self.probs - 0.5) ** 2
        taylor = math.log(2.0) + (4.0 / 3.0 + 104.0 / 45.0 * x) * x
        return _where(self._outside_unstable_region(), exact, taylor)

    @property
    def mean(self):
        cut = self._cut_probs()
        exact = cut / (2.0 * cut - 1.0) + 1.0 / ((-cut).log1p() - cut.log())
        x = self.probs - 0.5
        taylor = 0.5 + (1.0 / 3.0 + 16.0 / 45.0 * x ** 2) * x
        return _where(self._outside_unstable_region(), exact, taylor)

    @property
    def variance(self):
        cut = self._cut_probs()
        exact = cut * (cut - 1.0) / (1.0 - 2.0 * cut) ** 2 + \
            1.0 / ((-cut).log1p() - cut.log()) ** 2
        x = (self.probs - 0.5) ** 2
        taylor = 1.0 / 12.0 - (1.0 / 15.0 - 128.0 / 945.0 * x) * x
        return _where(self._outside_unstable_region(), exact, taylor)

    def rsample(self, sample_shape=Size()):
        u = _uniform_like(self._extended_shape(sample_shape), self.probs)
        return self.icdf(u)

    def log_prob(self, value):
        self._validate_sample(value)
        from ..nn import functional as F
        logits, value = broadcast_all(self.logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none") + \
            self._log_norm()

    def cdf(self, value):
        self._validate_sample(value)
        cut = self._cut_probs()
        exact = (cut ** value * (1.0 - cut) ** (1.0 - value) + cut - 1.0) / (2.0 * cut - 1.0)
        inside = _where(self._outside_unstable_region(), exact, value)
        em = _ember()
        return _where(value <= 0.0, em.zeros_like(inside),
                      _where(value >= 1.0, em.ones_like(inside), inside))

    def icdf(self, value):
        cut = self._cut_probs()
        exact = ((-cut + value * (2.0 * cut - 1.0)).log1p() - (-cut).log1p()) / \
            (cut.log() - (-cut).log1p())
        return _where(self._outside_unstable_region(), exact, value)

    def entropy(self):
        log_p0, log_p1 = (-self.probs).log1p(), self.probs.log()
        return self.mean * (log_p0 - log_p1) - self._log_norm() - log_p0

    @property
    def _natural_params(self):
        return (self.logits,)

    def _log_normalizer(self, x):
        """log of the normalizer as a function of the natural parameter (the logit)."""
        low, high = self._lims[0] - 0.5, self._lims[1] - 0.5
        outside = (x <= low) | (x > high)
        cut = _where(outside, x, _ember().full_like(x, low))
        exact = (cut.exp() - 1.0).abs().log() - cut.abs().log()
        taylor = 0.5 * x + x ** 2 / 24.0 - x ** 4 / 2880.0
        return _where(outside, exact, taylor)


class FisherSnedecor(Distribution):
    """The F distribution: (X1 / df1) / (X2 / df2) for chi-squared X1, X2."""
    arg_constraints = {"df1": constraints.positive, "df2": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, df1, df2, validate_args=None):
        self.df1, self.df2 = broadcast_all(df1, df2)
        super().__init__(self.df1.shape, validate_args=validate_args)

    def _params(self):
        return {"df1": self.df1, "df2": self.df2}

    @property
    def mean(self):
        df2 = self.df2
        return _where(df2 > 2, df2 / (df2 - 2), _ember().full_like(df2, math.nan))

    @property
    def mode(self):
        df1, df2 = self.df1, self.df2
        mode = (df1 - 2) / df1 * df2 / (df2 + 2)
        return _where(df1 > 2, mode, _ember().full_like(mode, math.nan))

    @property
    def variance(self):
        df1, df2 = self.df1, self.df2
        var = 2 * df2 ** 2 * (df1 + df2 - 2) / (df1 * (df2 - 2) ** 2 * (df2 - 4))
        return _where(df2 > 4, var, _ember().full_like(var, math.nan))

    def rsample(self, sample_shape=Size()):
        shape = list(self._extended_shape(sample_shape))
        tiny = float(np.finfo(self.df1.dtype.np_dtype).tiny)
        x1 = Gamma(self.df1.expand(shape) * 0.5, self.df1.expand(shape)).rsample()
        x2 = Gamma(self.df2.expand(shape) * 0.5, self.df2.expand(shape)).rsample()
        return (x1 / x2.clamp(min=tiny)).clamp(min=tiny)

    def log_prob(self, value):
        self._validate_sample(value)
        h1, h2 = self.df1 * 0.5, self.df2 * 0.5
        return (h1 + h2).lgamma() - h1.lgamma() - h2.lgamma() + h1 * self.df1.log() + \
            h2 * self.df2.log() + (h1 - 1) * value.log() - \
            (h1 + h2) * (self.df2 + self.df1 * value).log()


class GeneralizedPareto(Distribution):
    """Peaks over a threshold: support [loc, inf) for concentration >= 0 and
    [loc, loc - scale / concentration] below 0; concentration ~ 0 is Exponential."""
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive,
                       "concentration": constraints.real}
    has_rsample = True

    def __init__(self, loc, scale, concentration, validate_args=None):
        self.loc, self.scale, self.concentration = broadcast_all(loc, scale, concentration)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def _params(self):
        return {"loc": self.loc, "scale": self.scale, "concentration": self.concentration}

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        upper = _where(self.concentration < 0, self.loc - self.scale / self.concentration,
                       _ember().full_like(self.loc, math.inf))
        return constraints.interval(self.loc, upper)

    def _near_zero_and_safe(self):
        c = self.concentration
        near_zero = _ember().isclose(c, _ember().zeros_like(c))
        return near_zero, _where(near_zero, _ember().ones_like(c), c)

    def rsample(self, sample_shape=Size()):
        return self.icdf(_uniform_like(self._extended_shape(sample_shape), self.loc))

    def log_prob(self, value):
        self._validate_sample(value)
        z = (value - self.loc) / self.scale
        near_zero, c = self._near_zero_and_safe()
        y = 1 / c + _ember().ones_like(z)
        nonzero = _where(y == 0, y, y * (c * z).log1p())
        return -self.scale.log() - _where(near_zero, z, nonzero)

    def log_survival_function(self, value):
        self._validate_sample(value)
        z = (value - self.loc) / self.scale
        near_zero, c = self._near_zero_and_safe()
        return _where(near_zero, -z, -(c * z).log1p() / c)

    def log_cdf(self, value):
        return (-self.log_survival_function(value).exp()).log1p()

    def cdf(self, value):
        return self.log_cdf(value).exp()

    def icdf(self, value):
        near_zero, c = self._near_zero_and_safe()
        log_u = (-value).log1p()
        return _where(near_zero, self.loc - self.scale * log_u,
                      self.loc + self.scale / c * (-c * log_u).expm1())

    @property
    def mean(self):
        c = self.concentration
        valid = c < 1
        safe = _where(valid, c, _ember().full_like(c, 0.5))
        return _where(valid, self.loc + self.scale / (1 - safe), _ember().full_like(c, math.nan))

    @property
    def variance(self):
        c = self.concentration
        valid = c < 0.5
        safe = _where(valid, c, _ember().full_like(c, 0.25))
        var = self.scale ** 2 / ((1 - safe) ** 2 * (1 - 2 * safe))
        return _where(valid, var, _ember().full_like(c, math.nan))

    @property
    def mode(self):
        return self.loc

    def entropy(self):
        return (self.scale.log() + self.concentration + 1).expand(list(self._batch_shape))


def _log_bessel_i(order: int, x):
    """log I_order(x) for x > 0 through the exponentially scaled Bessel function."""
    special = _ember().special
    scaled = special.i0e(x) if order == 0 else special.i1e(x)
    return scaled.log() + x


class VonMises(Distribution):
    """The circular normal on [-pi, pi): density exp(concentration cos(x - loc)) /
    (2 pi I0(concentration)). Samples carry no gradient (torch's neither)."""
    arg_constraints = {"loc": constraints.real, "concentration": constraints.positive}
    support = constraints.real
    has_rsample = False

    def __init__(self, loc, concentration, validate_args=None):
        self.loc, self.concentration = broadcast_all(loc, concentration)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def _params(self):
        return {"loc": self.loc, "concentration": self.concentration}

    def log_prob(self, value):
        self._validate_sample(value)
        return self.concentration * (value - self.loc).cos() - math.log(2 * math.pi) - \
            _log_bessel_i(0, self.concentration)

    def sample(self, sample_shape=Size()):
        shape = self._extended_shape(sample_shape)
        loc = self.loc.detach().expand(list(shape)).numpy().astype(np.float64)
        kappa = self.concentration.detach().expand(list(shape)).numpy().astype(np.float64)
        x = _numpy_sample(lambda rng, s: rng.vonmises(loc, kappa, size=s), shape, self.loc)
        return (x + math.pi) % (2 * math.pi) - math.pi

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        k = self.concentration
        return 1 - (_log_bessel_i(1, k) - _log_bessel_i(0, k)).exp()

    def entropy(self):
        k = self.concentration
        ratio = (_log_bessel_i(1, k) - _log_bessel_i(0, k)).exp()
        return -k * ratio + math.log(2 * math.pi) + _log_bessel_i(0, k)
