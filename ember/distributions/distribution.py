"""torch.distributions.Distribution: shapes (sample_shape + batch_shape + event_shape),
sampling from ember's generator, argument validation against constraints."""
from __future__ import annotations

import math

from .. import Size
from . import constraints

_VALIDATE_DEFAULT = [True]      # PyTorch validates by default (outside -O)


class Distribution:
    has_rsample = False
    has_enumerate_support = False
    arg_constraints: dict = {}
    support = None

    @staticmethod
    def set_default_validate_args(value: bool) -> None:
        _VALIDATE_DEFAULT[0] = bool(value)

    def __init__(self, batch_shape=Size(), event_shape=Size(), validate_args=None):
        self._batch_shape = Size(batch_shape)
        self._event_shape = Size(event_shape)
        self._validate_args = _VALIDATE_DEFAULT[0] if validate_args is None else validate_args
        if self._validate_args:
            self._check_parameters()

    def _check_parameters(self) -> None:
        for name, constraint in self.arg_constraints.items():
            if constraints.is_dependent(constraint) or name not in self.__dict__ and \
                    not isinstance(getattr(type(self), name, None), property):
                continue
            value = getattr(self, name)
            if not hasattr(value, "shape"):
                continue
            if not bool(constraint.check(value).all()):
                raise ValueError(f"Expected parameter {name} (Tensor of shape "
                                 f"{tuple(value.shape)}) of distribution {self!r} to satisfy "
                                 f"the constraint {constraint!r}, but found invalid values:\n"
                                 f"{value}")

    def _validate_sample(self, value) -> None:
        if not self._validate_args or self.support is None or \
                constraints.is_dependent(self.support):
            return
        if not bool(self.support.check(value).all()):
            raise ValueError(f"Expected value argument ({type(value).__name__} of shape "
                             f"{tuple(value.shape)}) to be within the support "
                             f"({self.support!r}) of the distribution {self!r}, but found "
                             f"invalid values:\n{value}")

    # --- shapes -----------------------------------------------------------------------------
    @property
    def batch_shape(self) -> Size:
        return self._batch_shape

    @property
    def event_shape(self) -> Size:
        return self._event_shape

    def _extended_shape(self, sample_shape=Size()) -> Size:
        return Size(tuple(sample_shape) + tuple(self._batch_shape) + tuple(self._event_shape))

    # --- moments ----------------------------------------------------------------------------
    @property
    def mean(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement mean")

    @property
    def mode(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement mode")

    @property
    def variance(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement variance")

    @property
    def stddev(self):
        return self.variance.sqrt()

    # --- sampling and densities -------------------------------------------------------------
    def sample(self, sample_shape=Size()):
        from ..frontend.autograd import no_grad
        with no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=Size()):
        raise NotImplementedError(f"{type(self).__name__} does not support rsample "
                                  f"(has_rsample is False)")

    def sample_n(self, n: int):
        return self.sample(Size((n,)))

    def log_prob(self, value):
        raise NotImplementedError

    def cdf(self, value):
        raise NotImplementedError

    def icdf(self, value):
        raise NotImplementedError

    def entropy(self):
        raise NotImplementedError

    def perplexity(self):
        return self.entropy().exp()

    def enumerate_support(self, expand: bool = True):
        raise NotImplementedError

    def expand(self, batch_shape, _instance=None):
        """The same distribution with its parameters broadcast to `batch_shape`."""
        batch_shape = Size(batch_shape)
        params = {name: value.expand(list(batch_shape) + list(value.shape)[
            len(self._batch_shape):]) for name, value in self._params().items()}
        return type(self)(**params, **self._fixed_arguments(), validate_args=False)

    def _params(self) -> dict:
        """The tensors that define the distribution, by constructor argument name."""
        raise NotImplementedError(f"{type(self).__name__} does not implement expand")

    def _fixed_arguments(self) -> dict:
        return {}

    def __repr__(self) -> str:
        parts = []
        for name in self.arg_constraints:
            if name in self.__dict__:
                value = self.__dict__[name]
                parts.append(f"{name}: {value if value.numel() == 1 else value.size()}")
        return f"{type(self).__name__}({', '.join(parts)})"


def broadcast_all(*values):
    """Tensors and Python numbers broadcast to one shape, numbers as tensors of the
    tensors' dtype (the default dtype when there is no tensor)."""
    import ember
    tensors = [v for v in values if isinstance(v, ember.Tensor)]
    dtype = tensors[0].dtype if tensors else ember.get_default_dtype()
    as_tensors = [v if isinstance(v, ember.Tensor) else ember.tensor(float(v), dtype=dtype)
                  for v in values]
    return ember.broadcast_tensors(*as_tensors)


LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
