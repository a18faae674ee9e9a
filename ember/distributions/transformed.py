"""torch.distributions.TransformedDistribution and the families PyTorch builds on it
(HalfCauchy, Pareto, Weibull, Kumaraswamy, InverseGamma, LogisticNormal,
RelaxedBernoulli, RelaxedOneHotCategorical), with StudentT and MixtureSameFamily."""
from __future__ import annotations

import math

from .. import Size
from . import constraints
from .continuous import Cauchy, Exponential, Gamma, Normal, Uniform, _uniform_like
from .discrete import Categorical, _CategoricalParameters
from .distribution import Distribution, broadcast_all
from .multivariate import Independent
from .transforms import (AbsTransform, AffineTransform, ComposeTransform, ExpTransform,
                         PowerTransform, SigmoidTransform, StickBreakingTransform, Transform,
                         sum_rightmost)


def _ember():
    import ember
    return ember


class TransformedDistribution(Distribution):
    """Samples of base_distribution pushed through `transforms` in order; log_prob
    pulls a value back and subtracts each log|det J| (the change of variables)."""
    arg_constraints: dict = {}

    def __init__(self, base_distribution, transforms, validate_args=None):
        if isinstance(transforms, Transform):
            self.transforms = [transforms]
        elif isinstance(transforms, list):
            if not all(isinstance(t, Transform) for t in transforms):
                raise ValueError("transforms must be a Transform or a list of Transforms")
            self.transforms = transforms
        else:
            raise ValueError(f"transforms must be a Transform or list, but was {transforms}")
        base_shape = tuple(base_distribution.batch_shape) + tuple(base_distribution.event_shape)
        base_event_dim = len(base_distribution.event_shape)
        chain = ComposeTransform(self.transforms)
        if len(base_shape) < chain.domain.event_dim:
            raise ValueError(f"base_distribution needs to have shape with size at least "
                             f"{chain.domain.event_dim}, but got {base_shape}.")
        forward_shape = tuple(chain.forward_shape(base_shape))
        expanded_base_shape = tuple(chain.inverse_shape(forward_shape))
        if base_shape != expanded_base_shape:
            cut = len(expanded_base_shape) - base_event_dim
            base_distribution = base_distribution.expand(Size(expanded_base_shape[:cut]))
        reinterpreted = chain.domain.event_dim - base_event_dim
        if reinterpreted > 0:
            base_distribution = Independent(base_distribution, reinterpreted)
        self.base_dist = base_distribution
        event_dim = max(chain.codomain.event_dim,
                        base_event_dim + chain.codomain.event_dim - chain.domain.event_dim)
        cut = len(forward_shape) - event_dim
        super().__init__(Size(forward_shape[:cut]), Size(forward_shape[cut:]),
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = tuple(batch_shape)
        base_shape = batch_shape + tuple(self.event_shape)
        for transform in reversed(self.transforms):
            base_shape = tuple(transform.inverse_shape(base_shape))
        cut = len(base_shape) - len(self.base_dist.event_shape)
        new = TransformedDistribution.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.base_dist = self.base_dist.expand(Size(base_shape[:cut]))
        Distribution.__init__(new, Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def support(self):
        if not self.transforms:
            return self.base_dist.support
        support = self.transforms[-1].codomain
        if len(self.event_shape) > support.event_dim:
            support = constraints.independent(support, len(self.event_shape) - support.event_dim)
        return support

    @property
    def has_rsample(self):
        return self.base_dist.has_rsample

    def sample(self, sample_shape=Size()):
        from ..frontend.autograd import no_grad
        with no_grad():
            x = self.base_dist.sample(sample_shape)
            for transform in self.transforms:
                x = transform(x)
            return x

    def rsample(self, sample_shape=Size()):
        x = self.base_dist.rsample(sample_shape)
        for transform in self.transforms:
            x = transform(x)
        return x

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        event_dim = len(self.event_shape)
        log_prob, y = 0.0, value
        for transform in reversed(self.transforms):
            x = transform.inv(y)
            event_dim += transform.domain.event_dim - transform.codomain.event_dim
            log_prob = log_prob - sum_rightmost(transform.log_abs_det_jacobian(x, y),
                                                event_dim - transform.domain.event_dim)
            y = x
        return log_prob + sum_rightmost(self.base_dist.log_prob(y),
                                        event_dim - len(self.base_dist.event_shape))

    def _monotonize_cdf(self, value):
        """A decreasing chain turns the base CDF into 1 - CDF."""
        sign = 1
        for transform in self.transforms:
            sign = sign * transform.sign
        if isinstance(sign, int) and sign == 1:
            return value
        return sign * (value - 0.5) + 0.5

    def cdf(self, value):
        for transform in self.transforms[::-1]:
            value = transform.inv(value)
        if self._validate_args:
            self.base_dist._validate_sample(value)
        return self._monotonize_cdf(self.base_dist.cdf(value))

    def icdf(self, value):
        value = self.base_dist.icdf(self._monotonize_cdf(value))
        for transform in self.transforms:
            value = transform(value)
        return value


class HalfCauchy(TransformedDistribution):
    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, scale, validate_args=None):
        super().__init__(Cauchy(0, scale, validate_args=False), AbsTransform(),
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return HalfCauchy(self.scale.expand(list(batch_shape)), validate_args=False)

    @property
    def scale(self):
        return self.base_dist.scale

    @property
    def mean(self):
        return _ember().full(list(self._extended_shape()), math.inf, dtype=self.scale.dtype)

    @property
    def mode(self):
        return _ember().zeros_like(self.scale)

    @property
    def variance(self):
        return self.base_dist.variance

    def log_prob(self, value):
        value = _ember().as_tensor(value, dtype=self.scale.dtype)
        log_prob = self.base_dist.log_prob(value) + math.log(2)
        return log_prob.masked_fill(value.expand(log_prob.shape) < 0, -math.inf)

    def cdf(self, value):
        return 2 * self.base_dist.cdf(value) - 1

    def icdf(self, prob):
        return self.base_dist.icdf((prob + 1) / 2)

    def entropy(self):
        return self.base_dist.entropy() - math.log(2)


class Pareto(TransformedDistribution):
    """scale * exp(Exponential(alpha)): support [scale, inf)."""
    arg_constraints = {"alpha": constraints.positive, "scale": constraints.positive}
    has_rsample = True

    def __init__(self, scale, alpha, validate_args=None):
        self.scale, self.alpha = broadcast_all(scale, alpha)
        super().__init__(Exponential(self.alpha, validate_args=False),
                         [ExpTransform(), AffineTransform(loc=0, scale=self.scale)],
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        shape = list(batch_shape)
        return Pareto(self.scale.expand(shape), self.alpha.expand(shape), validate_args=False)

    @property
    def support(self):
        return constraints.greater_than_eq(self.scale)

    @property
    def mean(self):
        alpha = self.alpha.clamp(min=1)
        return alpha * self.scale / (alpha - 1)

    @property
    def mode(self):
        return self.scale

    @property
    def variance(self):
        alpha = self.alpha.clamp(min=2)
        return self.scale.pow(2) * alpha / ((alpha - 1).pow(2) * (alpha - 2))

    def entropy(self):
        return (self.scale / self.alpha).log() + (1 + self.alpha.reciprocal())


class Weibull(TransformedDistribution):
    """scale * Exponential(1) ** (1 / concentration)."""
    arg_constraints = {"scale": constraints.positive, "concentration": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, scale, concentration, validate_args=None):
        self.scale, self.concentration = broadcast_all(scale, concentration)
        self.concentration_reciprocal = self.concentration.reciprocal()
        super().__init__(Exponential(_ember().ones_like(self.scale), validate_args=False),
                         [PowerTransform(exponent=self.concentration_reciprocal),
                          AffineTransform(loc=0, scale=self.scale)],
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        shape = list(batch_shape)
        return Weibull(self.scale.expand(shape), self.concentration.expand(shape),
                       validate_args=False)

    @property
    def mean(self):
        return self.scale * (self.concentration_reciprocal + 1).lgamma().exp()

    @property
    def mode(self):
        k = self.concentration
        return self.scale * ((k - 1) / k) ** k.reciprocal()

    @property
    def variance(self):
        return self.scale.pow(2) * ((2 * self.concentration_reciprocal + 1).lgamma().exp()
                                    - (self.concentration_reciprocal + 1).lgamma().exp().pow(2))

    def entropy(self):
        euler = 0.5772156649015329
        return (euler * (1 - self.concentration_reciprocal)
                + (self.scale * self.concentration_reciprocal).log() + 1)


class LogisticNormal(TransformedDistribution):
    """StickBreakingTransform of a Normal: a distribution on the simplex."""
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        base = Normal(loc, scale, validate_args=validate_args)
        if not base.batch_shape:
            base = base.expand(Size([1]))
        super().__init__(base, StickBreakingTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        shape = list(batch_shape) + [self.loc.shape[-1]]
        return LogisticNormal(self.loc.expand(shape), self.scale.expand(shape),
                              validate_args=False)

    @property
    def loc(self):
        return self.base_dist.base_dist.loc

    @property
    def scale(self):
        return self.base_dist.base_dist.scale


def _clamp_probs(probs):
    eps = _ember().finfo(probs.dtype).eps
    return probs.clamp(min=eps, max=1 - eps)


class LogitRelaxedBernoulli(Distribution):
    """The logit of a RelaxedBernoulli sample (Concrete / Gumbel-sigmoid)."""
    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.real
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        self.temperature = temperature
        if probs is not None:
            self.probs, = broadcast_all(probs)
            shape = self.probs.shape
        else:
            self.logits, = broadcast_all(logits)
            shape = self.logits.shape
        super().__init__(Size(shape), validate_args=validate_args)

    def __getattr__(self, name):
        if name == "probs" and "logits" in self.__dict__:
            return self.__dict__["logits"].sigmoid()
        if name == "logits" and "probs" in self.__dict__:
            probs = _clamp_probs(self.__dict__["probs"])
            return probs.log() - (-probs).log1p()
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _params(self):
        key = "probs" if "probs" in self.__dict__ else "logits"
        return {key: self.__dict__[key]}

    def _fixed_arguments(self):
        return {"temperature": self.temperature}

    def rsample(self, sample_shape=Size()):
        shape = self._extended_shape(sample_shape)
        probs = _clamp_probs(self.probs.expand(list(shape)))
        uniforms = _clamp_probs(_uniform_like(tuple(shape), probs))
        return (uniforms.log() - (-uniforms).log1p() + probs.log() - (-probs).log1p()) \
            / self.temperature

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = _ember().broadcast_tensors(self.logits, value)
        diff = logits - value * self.temperature
        return math.log(self.temperature) + diff - 2 * diff.exp().log1p()


class _RelaxedParameters:
    """A relaxed distribution's temperature, logits and probs are its base's."""

    @property
    def temperature(self):
        return self.base_dist.temperature

    @property
    def logits(self):
        return self.base_dist.logits

    @property
    def probs(self):
        return self.base_dist.probs


class RelaxedBernoulli(_RelaxedParameters, TransformedDistribution):
    """A continuous relaxation of Bernoulli on (0, 1), reparameterized."""
    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        super().__init__(LogitRelaxedBernoulli(temperature, probs, logits),
                         SigmoidTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        (key, value), = self.base_dist._params().items()
        return RelaxedBernoulli(self.temperature, validate_args=False,
                                **{key: value.expand(list(batch_shape))})


class ExpRelaxedCategorical(_CategoricalParameters, Distribution):
    """The log of a RelaxedOneHotCategorical sample (Concrete / Gumbel-softmax)."""
    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        self._categorical = Categorical(probs, logits, validate_args=False)
        self.temperature = temperature
        super().__init__(self._categorical.batch_shape,
                         Size([self._categorical._num_events]), validate_args=validate_args)

    def _fixed_arguments(self):
        return {"temperature": self.temperature}

    def expand(self, batch_shape, _instance=None):
        (key, value), = self._params().items()
        return type(self)(self.temperature, validate_args=False,
                          **{key: value.expand(list(batch_shape) + [value.shape[-1]])})

    def rsample(self, sample_shape=Size()):
        shape = self._extended_shape(sample_shape)
        logits = self.logits.expand(list(shape))
        uniforms = _clamp_probs(_uniform_like(tuple(shape), logits))
        gumbels = -((-uniforms.log()).log())
        scores = (logits + gumbels) / self.temperature
        return scores - scores.logsumexp(dim=-1, keepdim=True)

    def log_prob(self, value):
        k = self._categorical._num_events
        if self._validate_args:
            self._validate_sample(value)
        logits, value = _ember().broadcast_tensors(self.logits, value)
        log_scale = (_ember().full_like(_ember().as_tensor(self.temperature,
                                                           dtype=value.dtype), float(k)).lgamma()
                     - _ember().as_tensor(self.temperature, dtype=value.dtype).log()
                     .mul(-(k - 1)))
        score = logits - value.mul(self.temperature)
        score = (score - score.logsumexp(dim=-1, keepdim=True)).sum(-1)
        return score + log_scale


class RelaxedOneHotCategorical(_RelaxedParameters, TransformedDistribution):
    """A continuous relaxation of OneHotCategorical on the simplex, reparameterized."""
    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, temperature, probs=None, logits=None, validate_args=None):
        super().__init__(ExpRelaxedCategorical(temperature, probs, logits,
                                               validate_args=validate_args),
                         ExpTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return RelaxedOneHotCategorical(self.temperature, validate_args=False,
                                        **self._expanded_params(batch_shape))

    def _expanded_params(self, batch_shape):
        (key, value), = self.base_dist._params().items()
        return {key: value.expand(list(batch_shape) + [value.shape[-1]])}


class StudentT(Distribution):
    arg_constraints = {"df": constraints.positive, "loc": constraints.real,
                       "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, df, loc=0.0, scale=1.0, validate_args=None):
        self.df, self.loc, self.scale = broadcast_all(df, loc, scale)
        super().__init__(self.df.shape, validate_args=validate_args)

    def _params(self):
        return {"df": self.df, "loc": self.loc, "scale": self.scale}

    @property
    def mean(self):
        return self.loc.masked_fill(self.df <= 1, math.nan)

    @property
    def mode(self):
        return self.loc

    @property
    def variance(self):
        ember = _ember()
        finite = self.scale.pow(2) * self.df / (self.df - 2)
        m = ember.where(self.df > 2, finite, ember.full_like(finite, math.inf))
        return m.masked_fill(self.df <= 1, math.nan)

    def rsample(self, sample_shape=Size()):
        from .continuous import Chi2
        shape = self._extended_shape(sample_shape)
        ember = _ember()
        normal = ember.randn(*shape, dtype=self.df.dtype) if shape else \
            ember.randn(1, dtype=self.df.dtype).reshape([])
        chi2 = Chi2(self.df.expand(list(shape))).rsample()
        return self.loc + self.scale * normal * (chi2 / self.df).rsqrt()

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        y = (value - self.loc) / self.scale
        z = (self.scale.log() + 0.5 * self.df.log() + 0.5 * math.log(math.pi)
             + (0.5 * self.df).lgamma() - (0.5 * (self.df + 1.)).lgamma())
        return -0.5 * (self.df + 1.) * (y.pow(2) / self.df).log1p() - z

    def entropy(self):
        ember = _ember()
        half = 0.5 * self.df
        log_beta = half.lgamma() + math.lgamma(0.5) - (half + 0.5).lgamma()
        return (self.scale.log() + 0.5 * (self.df + 1) * (ember.digamma(0.5 * (self.df + 1))
                                                         - ember.digamma(half))
                + 0.5 * self.df.log() + log_beta)


class MixtureSameFamily(Distribution):
    """A mixture whose components are one batched distribution: the mixture's
    Categorical picks among the rightmost batch dimension of component_distribution."""
    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, mixture_distribution, component_distribution, validate_args=None):
        self._mixture_distribution = mixture_distribution
        self._component_distribution = component_distribution
        if not isinstance(mixture_distribution, Categorical):
            raise ValueError("The Mixture distribution needs to be an instance of "
                             "torch.distributions.Categorical")
        if not isinstance(component_distribution, Distribution):
            raise ValueError("The Component distribution need to be an instance of "
                             "torch.distributions.Distribution")
        mixture_batch = tuple(mixture_distribution.batch_shape)
        component_batch = tuple(component_distribution.batch_shape)[:-1]
        for size1, size2 in zip(reversed(mixture_batch), reversed(component_batch)):
            if size1 != 1 and size2 != 1 and size1 != size2:
                raise ValueError(f"`mixture_distribution.batch_shape` "
                                 f"({mixture_distribution.batch_shape}) is not compatible "
                                 f"with `component_distribution.batch_shape`"
                                 f"({component_distribution.batch_shape})")
        components = mixture_distribution.logits.shape[-1]
        if components != component_distribution.batch_shape[-1]:
            raise ValueError(f"`mixture_distribution component` ({components}) does not equal "
                             f"`component_distribution.batch_shape[-1]` "
                             f"({component_distribution.batch_shape[-1]})")
        self._num_component = components
        self._event_ndims = len(component_distribution.event_shape)
        super().__init__(Size(component_batch), component_distribution.event_shape,
                         validate_args=validate_args)

    @property
    def mixture_distribution(self):
        return self._mixture_distribution

    @property
    def component_distribution(self):
        return self._component_distribution

    @property
    def support(self):
        return self._component_distribution.support

    def expand(self, batch_shape, _instance=None):
        batch_shape = list(batch_shape)
        return MixtureSameFamily(
            self._mixture_distribution.expand(batch_shape),
            self._component_distribution.expand(batch_shape + [self._num_component]),
            validate_args=False)

    def _pad(self, x):
        return x.unsqueeze(-1 - self._event_ndims)

    def _pad_mixture_dimensions(self, x):
        dist_batch_ndims = len(self.batch_shape)
        cat_batch_ndims = len(self._mixture_distribution.batch_shape)
        pad_ndims = 0 if cat_batch_ndims == 1 else dist_batch_ndims - cat_batch_ndims
        shape = list(x.shape)
        x = x.reshape(shape[:-1] + [1] * pad_ndims + shape[-1:] + [1] * self._event_ndims)
        return x

    @property
    def mean(self):
        probs = self._pad_mixture_dimensions(self._mixture_distribution.probs)
        return (probs * self._component_distribution.mean).sum(-1 - self._event_ndims)

    @property
    def variance(self):
        probs = self._pad_mixture_dimensions(self._mixture_distribution.probs)
        axis = -1 - self._event_ndims
        mean_cond_var = (probs * self._component_distribution.variance).sum(axis)
        var_cond_mean = (probs * (self._component_distribution.mean
                                  - self._pad(self.mean)).pow(2)).sum(axis)
        return mean_cond_var + var_cond_mean

    def cdf(self, x):
        x = self._pad(x)
        cdf_x = self._component_distribution.cdf(x)
        return (cdf_x * self._mixture_distribution.probs).sum(-1)

    def log_prob(self, x):
        if self._validate_args:
            self._validate_sample(x)
        x = self._pad(x)
        log_prob_x = self._component_distribution.log_prob(x)
        log_mix_prob = self._mixture_distribution.logits.log_softmax(-1)
        return (log_prob_x + log_mix_prob).logsumexp(-1)

    def sample(self, sample_shape=Size()):
        from ..frontend.autograd import no_grad
        with no_grad():
            sample_len, batch_len = len(Size(sample_shape)), len(self.batch_shape)
            gather_dim = sample_len + batch_len
            which = self._mixture_distribution.sample(sample_shape)
            components = self._component_distribution.sample(sample_shape)
            index = which.reshape(list(which.shape) + [1] * (self._event_ndims + 1))
            index = index.expand(list(which.shape) + [1]
                                 + list(self.event_shape))
            return components.gather(gather_dim, index).squeeze(gather_dim)

    def __repr__(self) -> str:
        return (f"MixtureSameFamily(\n  {self._mixture_distribution},\n  "
                f"{self._component_distribution})")


_EULER = 0.5772156649015329


def _kumaraswamy_moment(a, b, n: int):
    """E[X^n] of Kumaraswamy(a, b)."""
    arg1 = 1 + n / a
    return b * (arg1.lgamma() + b.lgamma() - (arg1 + b).lgamma()).exp()


class Kumaraswamy(TransformedDistribution):
    """(1 - U^(1/b))^(1/a) for U uniform on (0, 1): a Beta-like law with a closed-form CDF."""
    arg_constraints = {"concentration1": constraints.positive,
                       "concentration0": constraints.positive}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, concentration1, concentration0, validate_args=None):
        ember = _ember()
        self.concentration1, self.concentration0 = broadcast_all(concentration1, concentration0)
        base = Uniform(ember.zeros_like(self.concentration1),
                       ember.ones_like(self.concentration1), validate_args=validate_args)
        super().__init__(base, [PowerTransform(exponent=self.concentration0.reciprocal()),
                                AffineTransform(loc=1.0, scale=-1.0),
                                PowerTransform(exponent=self.concentration1.reciprocal())],
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        shape = list(batch_shape)
        return Kumaraswamy(self.concentration1.expand(shape), self.concentration0.expand(shape),
                           validate_args=False)

    @property
    def mean(self):
        return _kumaraswamy_moment(self.concentration1, self.concentration0, 1)

    @property
    def mode(self):
        a, b = self.concentration1, self.concentration0
        log_mode = b.reciprocal() * (-b).log1p() - (-b * a).log1p()
        return log_mode.masked_fill((b < 1) | (a < 1), math.nan).exp()

    @property
    def variance(self):
        a, b = self.concentration1, self.concentration0
        return _kumaraswamy_moment(a, b, 2) - _kumaraswamy_moment(a, b, 1).pow(2)

    def entropy(self):
        a, b = self.concentration1, self.concentration0
        harmonic = _ember().digamma(b + 1) + _EULER
        return (1 - b.reciprocal()) + (1 - a.reciprocal()) * harmonic - a.log() - b.log()


class InverseGamma(TransformedDistribution):
    """1 / Gamma(concentration, rate)."""
    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.positive
    has_rsample = True

    def __init__(self, concentration, rate, validate_args=None):
        base = Gamma(concentration, rate, validate_args=validate_args)
        neg_one = -base.rate.new_ones(())
        super().__init__(base, PowerTransform(neg_one), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        shape = list(batch_shape)
        return InverseGamma(self.concentration.expand(shape), self.rate.expand(shape),
                            validate_args=False)

    @property
    def concentration(self):
        return self.base_dist.concentration

    @property
    def rate(self):
        return self.base_dist.rate

    @property
    def mean(self):
        ember = _ember()
        result = self.rate / (self.concentration - 1)
        return ember.where(self.concentration > 1, result, ember.full_like(result, math.inf))

    @property
    def mode(self):
        return self.rate / (self.concentration + 1)

    @property
    def variance(self):
        ember = _ember()
        result = self.rate.square() / ((self.concentration - 1).square()
                                       * (self.concentration - 2))
        return ember.where(self.concentration > 2, result, ember.full_like(result, math.inf))

    def entropy(self):
        c = self.concentration
        return c + self.rate.log() + c.lgamma() - (1 + c) * _ember().digamma(c)
