"""torch.distributions.ExponentialFamily: densities exp(<t(x), theta> - F(theta) + k(x)).
A family that gives its natural parameters theta, its log normalizer F and the expected
carrier measure E[k(x)] gets entropy, and KL divergence to another member of the same
family, from the Bregman divergence of F, with F's gradient taken by autograd."""
from __future__ import annotations

from .distribution import Distribution


class ExponentialFamily(Distribution):
    @property
    def _natural_params(self) -> tuple:
        raise NotImplementedError(f"{type(self).__name__} does not define its natural "
                                  f"parameters")

    def _log_normalizer(self, *natural_params):
        raise NotImplementedError(f"{type(self).__name__} does not define its log normalizer")

    @property
    def _mean_carrier_measure(self):
        raise NotImplementedError(f"{type(self).__name__} does not define its mean carrier "
                                  f"measure")

    def entropy(self):
        """H = F(theta) - <theta, grad F(theta)> - E[k(x)]."""
        from .. import autograd
        params = [p.detach().requires_grad_() for p in self._natural_params]
        log_norm = self._log_normalizer(*params)
        grads = autograd.grad(log_norm.sum(), params, create_graph=True)
        result = log_norm - self._mean_carrier_measure
        for param, grad in zip(params, grads):
            result = result - (param * grad).reshape(tuple(self._batch_shape) + (-1,)).sum(-1)
        return result
