"""Count and relaxed-choice families: Multinomial, NegativeBinomial and
OneHotCategoricalStraightThrough (torch.distributions' formulas on ember ops)."""
from __future__ import annotations

import math

from .. import Size
from . import constraints
from .continuous import Gamma
from .discrete import (Binomial, Categorical, OneHotCategorical, _CategoricalParameters,
                       _clamp_probs)
from .distribution import Distribution, broadcast_all


def _ember():
    import ember
    return ember


class _Multinomial(constraints.Constraint):
    """Nonnegative integer vectors summing to at most upper_bound."""
    is_discrete = True
    event_dim = 1

    def __init__(self, upper_bound: int) -> None:
        self.upper_bound = upper_bound

    def check(self, value):
        return (value >= 0).all(dim=-1) & (value.sum(dim=-1) <= self.upper_bound)


class Multinomial(_CategoricalParameters, Distribution):
    """Counts of total_count draws from a Categorical (total_count is one integer)."""
    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}

    def __init__(self, total_count: int = 1, probs=None, logits=None, validate_args=None):
        if not isinstance(total_count, int):
            raise NotImplementedError("inhomogeneous total_count is not supported")
        self.total_count = total_count
        self._categorical = Categorical(probs=probs, logits=logits, validate_args=False)
        self._binomial = Binomial(total_count=total_count, probs=self.probs,
                                  validate_args=False)
        super().__init__(self._categorical.batch_shape,
                         Size([self._categorical._num_events]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        (key, value), = self._params().items()
        return Multinomial(self.total_count, validate_args=False,
                           **{key: value.expand(list(batch_shape) + [value.shape[-1]])})

    @property
    def support(self):
        return _Multinomial(self.total_count)

    @property
    def mean(self):
        return self.probs * self.total_count

    @property
    def variance(self):
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape=Size()):
        ember = _ember()
        sample_shape = Size(sample_shape)
        draws = self._categorical.sample(Size((self.total_count,)) + sample_shape)
        draws = draws.permute(*range(1, draws.dim()), 0)      # the draws last
        counts = ember.zeros(list(self._extended_shape(sample_shape)), dtype=ember.int64)
        counts.scatter_add_(-1, draws, ember.ones_like(draws))
        return counts.to(self.probs.dtype)

    def entropy(self):
        ember = _ember()
        n = ember.tensor(float(self.total_count))
        first = n * self._categorical.entropy() - (n + 1).lgamma()
        support = self._binomial.enumerate_support(expand=False)[1:]
        binomial_probs = self._binomial.log_prob(support).exp()
        second = (binomial_probs * (support + 1).lgamma()).sum([0, -1])
        return first + second

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        # 0 * log(0) counts as 0: an impossible category that was never drawn
        logits = logits.masked_fill((value == 0) & (logits == -math.inf), 0.0)
        log_factorial_n = (value.sum(-1) + 1).lgamma()
        log_factorial_xs = (value + 1).lgamma().sum(-1)
        return log_factorial_n - log_factorial_xs + (logits * value).sum(-1)


class NegativeBinomial(Distribution):
    """Successes before total_count failures, each trial a success with probs."""
    arg_constraints = {"total_count": constraints.greater_than_eq(0),
                       "probs": constraints.half_open_interval(0.0, 1.0),
                       "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, total_count, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            self.total_count, self.probs = broadcast_all(total_count, probs)
            self.total_count = self.total_count.to(self.probs.dtype)
            shape = self.probs.shape
        else:
            self.total_count, self.logits = broadcast_all(total_count, logits)
            self.total_count = self.total_count.to(self.logits.dtype)
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
        return {"total_count": self.total_count, key: self.__dict__[key]}

    @property
    def mean(self):
        return self.total_count * self.logits.exp()

    @property
    def mode(self):
        return ((self.total_count - 1) * self.logits.exp()).floor().clamp(min=0.0)

    @property
    def variance(self):
        return self.mean / (-self.logits).sigmoid()

    def sample(self, sample_shape=Size()):
        from ..frontend.autograd import no_grad
        with no_grad():
            rate = Gamma(self.total_count, (-self.logits).exp(),
                         validate_args=False).sample(sample_shape)
            return _ember().poisson(rate)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logsigmoid = _ember().nn.functional.logsigmoid
        unnormalized = self.total_count * logsigmoid(-self.logits) + \
            value * logsigmoid(self.logits)
        normalization = (-(self.total_count + value).lgamma() + (1.0 + value).lgamma()
                         + self.total_count.lgamma())
        # r = 0 is the point mass at zero
        normalization = normalization.masked_fill(self.total_count + value == 0.0, 0.0)
        return unnormalized - normalization


class OneHotCategoricalStraightThrough(OneHotCategorical):
    """OneHotCategorical whose rsample passes gradients straight through to probs."""
    has_rsample = True

    def rsample(self, sample_shape=Size()):
        samples = self.sample(sample_shape)
        probs = self._categorical.probs
        return samples + (probs - probs.detach())
