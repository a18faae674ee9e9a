"""Discrete distributions: Bernoulli, Binomial, Categorical, OneHotCategorical, Poisson,
Geometric. `probs` and `logits` are interchangeable (give one), as in PyTorch."""
from __future__ import annotations

import numpy as np

from .. import Size
from . import constraints
from .distribution import Distribution, broadcast_all
from .exp_family import ExponentialFamily


def _ember():
    import ember
    return ember


def _probs_or_logits(probs, logits, name: str):
    if (probs is None) == (logits is None):
        raise ValueError(f"{name}: either `probs` or `logits` must be specified, but not "
                         f"both.")


def _clamp_probs(p):
    eps = float(np.finfo(p.dtype.np_dtype).eps)
    return p.clamp(eps, 1 - eps)


class _BinaryParameters(Distribution):
    """Bernoulli-like: a probability per element, held as probs or logits."""

    def _init_parameters(self, probs, logits):
        _probs_or_logits(probs, logits, type(self).__name__)
        if probs is not None:
            (self.probs,) = broadcast_all(probs)
        else:
            (self.logits,) = broadcast_all(logits)
        return self.__dict__.get("probs", self.__dict__.get("logits"))

    def __getattr__(self, name):
        if name == "probs" and "logits" in self.__dict__:
            return self.__dict__["logits"].sigmoid()
        if name == "logits" and "probs" in self.__dict__:
            p = _clamp_probs(self.__dict__["probs"])
            return p.log() - (-p).log1p()
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _params(self):
        key = "probs" if "probs" in self.__dict__ else "logits"
        return {key: self.__dict__[key]}


class Bernoulli(_BinaryParameters, ExponentialFamily):
    _mean_carrier_measure = 0

    @property
    def _natural_params(self):
        return (self.logits,)

    def _log_normalizer(self, x):
        return x.exp().log1p()

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        param = self._init_parameters(probs, logits)
        super().__init__(param.shape, validate_args=validate_args)

    @property
    def mean(self):
        return self.probs

    @property
    def mode(self):
        return (self.probs >= 0.5).to(self.probs.dtype)

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=Size()):
        from ..frontend.autograd import no_grad
        with no_grad():
            p = self.probs.expand(list(self._extended_shape(sample_shape)))
            return _ember().bernoulli(p)

    def log_prob(self, value):
        self._validate_sample(value)
        from ..nn import functional as F
        logits, value = broadcast_all(self.logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none")

    def entropy(self):
        from ..nn import functional as F
        return F.binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none")

    def enumerate_support(self, expand: bool = True):
        em = _ember()
        values = em.arange(2, dtype=self._param_dtype()).reshape([2] + [1] * len(self.batch_shape))
        return values.expand([2] + list(self.batch_shape)) if expand else values

    def _param_dtype(self):
        return next(iter(self._params().values())).dtype


class Binomial(_BinaryParameters):
    arg_constraints = {"total_count": constraints.nonnegative_integer,
                       "probs": constraints.unit_interval, "logits": constraints.real}
    has_enumerate_support = True

    def __init__(self, total_count=1, probs=None, logits=None, validate_args=None):
        param = self._init_parameters(probs, logits)
        self.total_count, param = broadcast_all(total_count, param)
        self.total_count = self.total_count.to(param.dtype)
        key = "probs" if probs is not None else "logits"
        self.__dict__[key] = param
        super().__init__(param.shape, validate_args=validate_args)

    def _params(self):
        return {"total_count": self.total_count, **super()._params()}

    @property
    def support(self):
        return constraints.integer_interval(0, self.total_count)

    @property
    def mean(self):
        return self.total_count * self.probs

    @property
    def mode(self):
        return ((self.total_count + 1) * self.probs).floor().clamp(max=self.total_count)

    @property
    def variance(self):
        return self.total_count * self.probs * (1 - self.probs)

    def enumerate_support(self, expand: bool = True):
        counts = self.total_count.detach().unique()
        if counts.numel() != 1:
            raise NotImplementedError("Inhomogeneous total count not supported by "
                                      "`enumerate_support`.")
        n = int(counts.item())
        values = _ember().arange(n + 1, dtype=self.total_count.dtype).reshape(
            [-1] + [1] * len(self.batch_shape))
        return values.expand([-1] + list(self.batch_shape)) if expand else values

    def entropy(self):
        values = self.enumerate_support(expand=False)
        log_prob = self.log_prob(values)
        return -(log_prob.exp() * log_prob).sum(0)

    def sample(self, sample_shape=Size()):
        shape = list(self._extended_shape(sample_shape))
        return _ember().binomial(self.total_count.detach().expand(shape),
                                 self.probs.detach().expand(shape))

    def log_prob(self, value):
        self._validate_sample(value)
        n, logits = self.total_count, self.logits
        log_binom = (n + 1).lgamma() - (value + 1).lgamma() - (n - value + 1).lgamma()
        # value * logits - n * log(1 + e^logits), written to stay finite for large |logits|
        log_norm = n * logits.clamp(min=0) + n * (-(logits.abs())).exp().log1p()
        return log_binom + value * logits - log_norm


class Categorical(Distribution):
    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        _probs_or_logits(probs, logits, "Categorical")
        if probs is not None:
            if probs.ndim < 1:
                raise ValueError("`probs` parameter must be at least one-dimensional.")
            self.probs = probs / probs.sum(-1, keepdim=True)
            param = self.probs
        else:
            if logits.ndim < 1:
                raise ValueError("`logits` parameter must be at least one-dimensional.")
            self.logits = logits - logits.logsumexp(-1, keepdim=True)
            param = self.logits
        self._num_events = param.shape[-1]
        super().__init__(param.shape[:-1], validate_args=validate_args)

    def __getattr__(self, name):
        if name == "probs" and "logits" in self.__dict__:
            return self.__dict__["logits"].softmax(-1)
        if name == "logits" and "probs" in self.__dict__:
            return _clamp_probs(self.__dict__["probs"]).log()
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _params(self):
        key = "probs" if "probs" in self.__dict__ else "logits"
        return {key: self.__dict__[key]}

    def expand(self, batch_shape, _instance=None):
        (key, value), = self._params().items()
        return type(self)(**{key: value.expand(list(batch_shape) + [self._num_events])},
                          validate_args=False)

    @property
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    @property
    def param_shape(self):
        return self._params()[next(iter(self._params()))].shape

    @property
    def mean(self):
        return _ember().full(list(self.batch_shape), float("nan"), dtype=self.probs.dtype)

    @property
    def mode(self):
        return self.probs.argmax(-1)

    @property
    def variance(self):
        return _ember().full(list(self.batch_shape), float("nan"), dtype=self.probs.dtype)

    def sample(self, sample_shape=Size()):
        em = _ember()
        sample_shape = Size(sample_shape)
        n = int(np.prod(sample_shape)) if len(sample_shape) else 1
        flat = self.probs.detach().reshape([-1, self._num_events])
        draws = em.multinomial(flat, n, True).t()          # [n, batch]
        return draws.reshape(list(self._extended_shape(sample_shape)))

    def log_prob(self, value):
        self._validate_sample(value)
        value = value.long().unsqueeze(-1)
        value, log_pmf = _ember().broadcast_tensors(value, self.logits)
        return log_pmf.gather(-1, value[..., :1]).squeeze(-1)

    def entropy(self):
        logits = self.logits
        floor = float(np.finfo(logits.dtype.np_dtype).min)
        return -(logits.clamp(min=floor) * self.probs).sum(-1)

    def enumerate_support(self, expand: bool = True):
        em = _ember()
        values = em.arange(self._num_events).reshape([-1] + [1] * len(self.batch_shape))
        return values.expand([-1] + list(self.batch_shape)) if expand else values


class _CategoricalParameters:
    """probs, logits and _params read from the Categorical a distribution wraps
    (self._categorical): OneHotCategorical, Multinomial, ExpRelaxedCategorical."""

    @property
    def probs(self):
        return self._categorical.probs

    @property
    def logits(self):
        return self._categorical.logits

    def _params(self):
        return self._categorical._params()


class OneHotCategorical(_CategoricalParameters, Distribution):
    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.simplex        # one-hot vectors lie on the simplex's vertices
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._categorical = Categorical(probs, logits, validate_args=False)
        super().__init__(self._categorical.batch_shape,
                         Size((self._categorical._num_events,)), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        (key, value), = self._params().items()
        return type(self)(**{key: value.expand(list(batch_shape) + [value.shape[-1]])},
                          validate_args=False)

    @property
    def mean(self):
        return self.probs

    @property
    def mode(self):
        from ..nn import functional as F
        return F.one_hot(self.probs.argmax(-1), self.event_shape[0]).to(self.probs.dtype)

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=Size()):
        from ..nn import functional as F
        indices = self._categorical.sample(sample_shape)
        return F.one_hot(indices, self.event_shape[0]).to(self.probs.dtype)

    def log_prob(self, value):
        return self._categorical.log_prob(value.argmax(-1))

    def entropy(self):
        return self._categorical.entropy()

    def enumerate_support(self, expand: bool = True):
        em = _ember()
        n = self.event_shape[0]
        values = em.eye(n, dtype=self.probs.dtype).reshape([n] + [1] * len(self.batch_shape) + [n])
        return values.expand([n] + list(self.batch_shape) + [n]) if expand else values


class Poisson(ExponentialFamily):
    @property
    def _natural_params(self):
        return (self.rate.log(),)

    def _log_normalizer(self, x):
        return x.exp()

    arg_constraints = {"rate": constraints.nonnegative}
    support = constraints.nonnegative_integer

    def __init__(self, rate, validate_args=None):
        (self.rate,) = broadcast_all(rate)
        super().__init__(self.rate.shape, validate_args=validate_args)

    def _params(self):
        return {"rate": self.rate}

    @property
    def mean(self):
        return self.rate

    @property
    def mode(self):
        return self.rate.floor()

    @property
    def variance(self):
        return self.rate

    def sample(self, sample_shape=Size()):
        return _ember().poisson(self.rate.detach().expand(list(self._extended_shape(sample_shape))))

    def log_prob(self, value):
        self._validate_sample(value)
        rate, value = broadcast_all(self.rate, value)
        return _ember().xlogy(value, rate) - rate - (value + 1).lgamma()


class Geometric(_BinaryParameters):
    """The number of failures before the first success."""
    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, probs=None, logits=None, validate_args=None):
        param = self._init_parameters(probs, logits)
        super().__init__(param.shape, validate_args=validate_args)

    @property
    def mean(self):
        return 1.0 / self.probs - 1.0

    @property
    def mode(self):
        return _ember().zeros_like(self.probs)

    @property
    def variance(self):
        return (1.0 / self.probs - 1.0) / self.probs

    def sample(self, sample_shape=Size()):
        from .continuous import _uniform_like
        from ..frontend.autograd import no_grad
        with no_grad():
            tiny = float(np.finfo(self.probs.dtype.np_dtype).tiny)
            u = _uniform_like(self._extended_shape(sample_shape), self.probs).clamp(min=tiny)
            return (u.log() / (-self.probs).log1p()).floor()

    def log_prob(self, value):
        self._validate_sample(value)
        value, probs = broadcast_all(value, self.probs)
        # xlogy: 0 * log(0) is 0 at probs == 1, value == 0 (PyTorch's convention)
        return _ember().xlogy(value, 1 - probs) + probs.log()

    def entropy(self):
        from ..nn import functional as F
        return F.binary_cross_entropy_with_logits(self.logits, self.probs,
                                                  reduction="none") / self.probs
