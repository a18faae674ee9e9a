"""Continuous univariate distributions: Normal, LogNormal, HalfNormal, Uniform, Exponential,
Laplace, Cauchy, Gumbel, Gamma, Chi2, Beta. Reparameterized sampling (rsample) wherever
PyTorch has it through a location-scale or inverse-CDF transform of a base sample; Gamma and
Beta samples differentiate implicitly (dx/dparameter = -dCDF/dparameter / density), as
PyTorch's."""
from __future__ import annotations

import math

import numpy as np

from .. import Size
from . import constraints
from .distribution import LOG_SQRT_2PI, Distribution, broadcast_all
from .exp_family import ExponentialFamily


def _ember():
    import ember
    return ember


def _uniform_like(shape, like, low=0.0, high=1.0):
    """Uniform samples in [low, high), clamped away from the ends where a log follows."""
    em = _ember()
    u = em.rand(*shape, dtype=like.dtype, device=like.device) if shape else \
        em.rand(1, dtype=like.dtype, device=like.device).reshape([])
    return low + (high - low) * u


class _LocationScale(Distribution):
    """A family given by a location and a positive scale on the real line (Normal, Laplace,
    Cauchy, Gumbel): the shared parameters, shapes and mode."""
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def _params(self):
        return {"loc": self.loc, "scale": self.scale}

    @property
    def mode(self):
        return self.loc


class Normal(_LocationScale, ExponentialFamily):
    _mean_carrier_measure = 0

    @property
    def _natural_params(self):
        return (self.loc / self.scale ** 2, -0.5 / self.scale ** 2)

    def _log_normalizer(self, x, y):
        return -0.25 * x ** 2 / y + 0.5 * (-math.pi / y).log()

    @property
    def mean(self):
        return self.loc

    @property
    def stddev(self):
        return self.scale

    @property
    def variance(self):
        return self.scale ** 2

    def rsample(self, sample_shape=Size()):
        shape = self._extended_shape(sample_shape)
        eps = _ember().randn(*shape, dtype=self.loc.dtype) if shape else \
            _ember().randn(1, dtype=self.loc.dtype).reshape([])
        return self.loc + eps * self.scale

    def log_prob(self, value):
        self._validate_sample(value)
        return -((value - self.loc) ** 2) / (2 * self.variance) - self.scale.log() - LOG_SQRT_2PI

    def cdf(self, value):
        return 0.5 * (1 + ((value - self.loc) / (self.scale * math.sqrt(2))).erf())

    def icdf(self, value):
        return self.loc + self.scale * (2 * value - 1).erfinv() * math.sqrt(2)

    def entropy(self):
        return 0.5 + LOG_SQRT_2PI + self.scale.log()


class LogNormal(Distribution):
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.base_dist = Normal(loc, scale, validate_args=validate_args)
        self.loc, self.scale = self.base_dist.loc, self.base_dist.scale
        super().__init__(self.base_dist.batch_shape, validate_args=validate_args)

    def _params(self):
        return {"loc": self.loc, "scale": self.scale}

    @property
    def mean(self):
        return (self.loc + self.scale ** 2 / 2).exp()

    @property
    def mode(self):
        return (self.loc - self.scale ** 2).exp()

    @property
    def variance(self):
        s2 = self.scale ** 2
        return s2.expm1() * (2 * self.loc + s2).exp()

    def rsample(self, sample_shape=Size()):
        return self.base_dist.rsample(sample_shape).exp()

    def log_prob(self, value):
        self._validate_sample(value)
        log_value = value.log()
        return self.base_dist.log_prob(log_value) - log_value

    def entropy(self):
        return self.base_dist.entropy() + self.loc


class HalfNormal(Distribution):
    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, scale, validate_args=None):
        self.base_dist = Normal(0, scale, validate_args=False)
        self.scale = self.base_dist.scale
        super().__init__(self.scale.shape, validate_args=validate_args)

    def _params(self):
        return {"scale": self.scale}

    @property
    def mean(self):
        return self.scale * math.sqrt(2 / math.pi)

    @property
    def mode(self):
        return _ember().zeros_like(self.scale)

    @property
    def variance(self):
        return self.scale ** 2 * (1 - 2 / math.pi)

    def rsample(self, sample_shape=Size()):
        return self.base_dist.rsample(sample_shape).abs()

    def log_prob(self, value):
        self._validate_sample(value)
        return self.base_dist.log_prob(value) + math.log(2)

    def entropy(self):
        return self.base_dist.entropy() - math.log(2)


class Uniform(Distribution):
    arg_constraints = {"low": constraints.dependent, "high": constraints.dependent}
    has_rsample = True

    def __init__(self, low, high, validate_args=None):
        self.low, self.high = broadcast_all(low, high)
        if (validate_args is None or validate_args) and not bool((self.low < self.high).all()):
            raise ValueError(f"Expected parameter low (Tensor of shape {tuple(self.low.shape)}) "
                             f"of distribution Uniform to be less than high")
        super().__init__(self.low.shape, validate_args=validate_args)

    @property
    def support(self):
        return constraints.interval(self.low, self.high)

    def _params(self):
        return {"low": self.low, "high": self.high}

    @property
    def mean(self):
        return (self.high + self.low) / 2

    @property
    def mode(self):
        return _ember().full_like(self.high, float("nan"))

    @property
    def variance(self):
        return (self.high - self.low) ** 2 / 12

    def rsample(self, sample_shape=Size()):
        u = _uniform_like(self._extended_shape(sample_shape), self.low)
        return self.low + u * (self.high - self.low)

    def log_prob(self, value):
        self._validate_sample(value)
        inside = ((self.low <= value) & (value < self.high)).to(self.low.dtype)
        return inside.log() - (self.high - self.low).log()

    def cdf(self, value):
        return ((value - self.low) / (self.high - self.low)).clamp(0, 1)

    def icdf(self, value):
        return value * (self.high - self.low) + self.low

    def entropy(self):
        return (self.high - self.low).log()


class Exponential(ExponentialFamily):
    _mean_carrier_measure = 0

    @property
    def _natural_params(self):
        return (-self.rate,)

    def _log_normalizer(self, x):
        return -(-x).log()

    arg_constraints = {"rate": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, rate, validate_args=None):
        (self.rate,) = broadcast_all(rate)
        super().__init__(self.rate.shape, validate_args=validate_args)

    def _params(self):
        return {"rate": self.rate}

    @property
    def mean(self):
        return self.rate.reciprocal()

    @property
    def mode(self):
        return _ember().zeros_like(self.rate)

    @property
    def variance(self):
        return self.rate ** -2

    def rsample(self, sample_shape=Size()):
        u = _uniform_like(self._extended_shape(sample_shape), self.rate)
        return -(-u).log1p() / self.rate

    def log_prob(self, value):
        self._validate_sample(value)
        return self.rate.log() - self.rate * value

    def cdf(self, value):
        return 1 - (-self.rate * value).exp()

    def icdf(self, value):
        return -(-value).log1p() / self.rate

    def entropy(self):
        return 1.0 - self.rate.log()


class Laplace(_LocationScale):
    @property
    def mean(self):
        return self.loc

    @property
    def variance(self):
        return 2 * self.scale ** 2

    def rsample(self, sample_shape=Size()):
        eps = float(np.finfo(self.loc.dtype.np_dtype).eps)
        u = _uniform_like(self._extended_shape(sample_shape), self.loc, -1 + eps, 1.0)
        return self.loc - self.scale * u.sign() * (-u.abs()).log1p()

    def log_prob(self, value):
        self._validate_sample(value)
        return -(2 * self.scale).log() - (value - self.loc).abs() / self.scale

    def cdf(self, value):
        z = value - self.loc
        return 0.5 - 0.5 * z.sign() * (-(z.abs() / self.scale)).expm1()

    def entropy(self):
        return 1 + (2 * self.scale).log()


class Cauchy(_LocationScale):
    @property
    def mean(self):
        return _ember().full_like(self.loc, float("nan"))

    @property
    def variance(self):
        return _ember().full_like(self.loc, float("inf"))

    def rsample(self, sample_shape=Size()):
        u = _uniform_like(self._extended_shape(sample_shape), self.loc)
        return self.loc + self.scale * (math.pi * (u - 0.5)).tan()

    def log_prob(self, value):
        self._validate_sample(value)
        return -math.log(math.pi) - self.scale.log() - \
            (((value - self.loc) / self.scale) ** 2).log1p()

    def cdf(self, value):
        return ((value - self.loc) / self.scale).atan() / math.pi + 0.5

    def icdf(self, value):
        return (math.pi * (value - 0.5)).tan() * self.scale + self.loc

    def entropy(self):
        return math.log(4 * math.pi) + self.scale.log()


class Gumbel(_LocationScale):
    @property
    def mean(self):
        return self.loc + self.scale * np.euler_gamma

    @property
    def variance(self):
        return (math.pi ** 2 / 6) * self.scale ** 2

    def rsample(self, sample_shape=Size()):
        tiny = float(np.finfo(self.loc.dtype.np_dtype).tiny)
        u = _uniform_like(self._extended_shape(sample_shape), self.loc).clamp(tiny, 1 - 1e-7)
        return self.loc - self.scale * (-(u.log())).log()

    def log_prob(self, value):
        self._validate_sample(value)
        z = (value - self.loc) / self.scale
        return -(z + (-z).exp()) - self.scale.log()

    def entropy(self):
        return self.scale.log() + (1 + np.euler_gamma)


def _numpy_sample(fn, shape, like):
    """A sample drawn with NumPy from ember's generator (distributions without a
    reparameterization here), as an ember tensor of `like`'s dtype."""
    from ..frontend.random import numpy_rng
    em = _ember()
    values = fn(numpy_rng(None), tuple(shape))
    return em.tensor(np.asarray(values).astype(like.dtype.np_dtype), device=like.device)


def _standard_gamma_grad(alpha, x):
    """d x / d alpha for x ~ Gamma(alpha, 1) held at its CDF value (implicit
    reparameterization): -(dP(alpha, x) / d alpha) / density(x), float64 NumPy arrays. The
    alpha-derivative of the regularized incomplete gamma P is a central difference."""
    from scipy import special
    step = 1e-5 * alpha
    d_cdf = (special.gammainc(alpha + step, x) - special.gammainc(alpha - step, x)) / \
        (2 * step)
    log_density = (alpha - 1) * np.log(x) - x - special.gammaln(alpha)
    return -d_cdf / np.exp(log_density)


def _standard_gamma_class():
    em = _ember()

    class StandardGamma(em.autograd.Function):
        """Gamma(alpha, 1) samples whose gradient in alpha is the implicit one (torch's
        rsample gradient for Gamma, Chi2, Beta, Dirichlet and the families built on them)."""

        @staticmethod
        def forward(ctx, alpha):
            a = alpha.detach().numpy()
            x = _numpy_sample(lambda rng, s: rng.standard_gamma(a, size=s), alpha.shape, alpha)
            x = x.clamp(min=float(np.finfo(a.dtype).tiny))
            ctx.save_for_backward(alpha, x)
            return x

        @staticmethod
        def backward(ctx, grad):
            alpha, x = ctx.saved_tensors
            dx = _standard_gamma_grad(alpha.detach().numpy().astype(np.float64),
                                      x.detach().numpy().astype(np.float64))
            return grad * em.tensor(dx.astype(alpha.dtype.np_dtype))

    return StandardGamma


class _LazyFunction:
    """The autograd Function built on first use (ember's package root is not importable
    while this module loads)."""

    def __init__(self, build):
        self._build, self._fn = build, None

    def apply(self, *args):
        if self._fn is None:
            self._fn = self._build()
        return self._fn.apply(*args)


_StandardGamma = _LazyFunction(_standard_gamma_class)


class Gamma(ExponentialFamily):
    has_rsample = True
    _mean_carrier_measure = 0

    @property
    def _natural_params(self):
        return (self.concentration - 1, -self.rate)

    def _log_normalizer(self, x, y):
        return (x + 1).lgamma() + (x + 1) * (-1 / y).log()

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative

    def __init__(self, concentration, rate, validate_args=None):
        self.concentration, self.rate = broadcast_all(concentration, rate)
        super().__init__(self.rate.shape, validate_args=validate_args)

    def _params(self):
        return {"concentration": self.concentration, "rate": self.rate}

    @property
    def mean(self):
        return self.concentration / self.rate

    @property
    def mode(self):
        return ((self.concentration - 1) / self.rate).clamp(min=0)

    @property
    def variance(self):
        return self.concentration / self.rate ** 2

    def rsample(self, sample_shape=Size()):
        shape = list(self._extended_shape(sample_shape))
        standard = _StandardGamma.apply(self.concentration.expand(shape))
        tiny = float(np.finfo(self.rate.dtype.np_dtype).tiny)
        return (standard / self.rate.expand(shape)).clamp(min=tiny)

    def log_prob(self, value):
        self._validate_sample(value)
        em = _ember()
        return em.xlogy(self.concentration, self.rate) + \
            em.xlogy(self.concentration - 1, value) - self.rate * value - \
            self.concentration.lgamma()

    def entropy(self):
        c = self.concentration
        return c - self.rate.log() + c.lgamma() + (1.0 - c) * c.digamma()


class Chi2(Gamma):
    arg_constraints = {"df": constraints.positive}

    def __init__(self, df, validate_args=None):
        (df,) = broadcast_all(df)
        super().__init__(0.5 * df, _ember().full_like(df, 0.5), validate_args=validate_args)

    def _params(self):
        return {"df": self.df}

    @property
    def df(self):
        return self.concentration * 2


def _beta_sample_grads(a, b, x):
    """(d x / d a, d x / d b) for x ~ Beta(a, b) held at its CDF value, float64 NumPy
    arrays: minus the parameter derivatives (central differences) of the regularized
    incomplete beta function over the density."""
    from scipy import special
    density = np.exp(special.xlogy(a - 1, x) + special.xlog1py(b - 1, -x) -
                     special.betaln(a, b))
    step_a, step_b = 1e-5 * a, 1e-5 * b
    d_a = (special.betainc(a + step_a, b, x) - special.betainc(a - step_a, b, x)) / \
        (2 * step_a)
    d_b = (special.betainc(a, b + step_b, x) - special.betainc(a, b - step_b, x)) / \
        (2 * step_b)
    return -d_a / density, -d_b / density


def _beta_sample_class():
    em = _ember()

    class BetaSample(em.autograd.Function):
        """Beta(a, b) samples with implicit reparameterization gradients (torch's)."""

        @staticmethod
        def forward(ctx, a, b):
            an, bn = a.detach().numpy(), b.detach().numpy()
            x = _numpy_sample(lambda rng, s: rng.beta(an, bn, size=s), a.shape, a)
            ctx.save_for_backward(a, b, x)
            return x

        @staticmethod
        def backward(ctx, grad):
            a, b, x = ctx.saved_tensors
            as64 = [t.detach().numpy().astype(np.float64) for t in (a, b, x)]
            d_a, d_b = _beta_sample_grads(*as64)
            dtype = a.dtype.np_dtype
            return grad * em.tensor(d_a.astype(dtype)), grad * em.tensor(d_b.astype(dtype))

    return BetaSample


_BetaSample = _LazyFunction(_beta_sample_class)


class Beta(ExponentialFamily):
    has_rsample = True
    @property
    def _natural_params(self):
        return (self.concentration1, self.concentration0)

    def _log_normalizer(self, x, y):
        return x.lgamma() + y.lgamma() - (x + y).lgamma()

    arg_constraints = {"concentration1": constraints.positive,
                       "concentration0": constraints.positive}
    support = constraints.unit_interval

    def __init__(self, concentration1, concentration0, validate_args=None):
        self.concentration1, self.concentration0 = broadcast_all(concentration1, concentration0)
        super().__init__(self.concentration1.shape, validate_args=validate_args)

    def _params(self):
        return {"concentration1": self.concentration1, "concentration0": self.concentration0}

    @property
    def mean(self):
        return self.concentration1 / (self.concentration1 + self.concentration0)

    @property
    def mode(self):
        from .multivariate import Dirichlet
        pair = _ember().stack([self.concentration1, self.concentration0], -1)
        return Dirichlet(pair, validate_args=False).mode[..., 0]

    @property
    def variance(self):
        total = self.concentration1 + self.concentration0
        return self.concentration1 * self.concentration0 / (total ** 2 * (total + 1))

    def rsample(self, sample_shape=Size()):
        shape = list(self._extended_shape(sample_shape))
        return _BetaSample.apply(self.concentration1.expand(shape),
                                 self.concentration0.expand(shape))

    def log_prob(self, value):
        self._validate_sample(value)
        em = _ember()
        a, b = self.concentration1, self.concentration0
        return em.xlogy(a - 1, value) + em.xlogy(b - 1, 1 - value) + (a + b).lgamma() - \
            a.lgamma() - b.lgamma()

    def entropy(self):
        a, b = self.concentration1, self.concentration0
        total = a + b
        return a.lgamma() + b.lgamma() - total.lgamma() - (a - 1) * a.digamma() - \
            (b - 1) * b.digamma() + (total - 2) * total.digamma()
