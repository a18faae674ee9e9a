"""ember.distributions: torch.distributions' API (Distribution, the common families,
constraints, kl_divergence/register_kl). Samples come from ember's generator, so
`ember.manual_seed` makes them reproducible; log_prob, entropy and rsample are built from
ember ops, so they differentiate and trace like any model code."""
from . import constraints  # noqa: F401
from .continuous import (Beta, Cauchy, Chi2, Exponential, Gamma, Gumbel,  # noqa: F401
                         HalfNormal, Laplace, LogNormal, Normal, Uniform)
from .discrete import (Bernoulli, Binomial, Categorical, Geometric,  # noqa: F401
                       OneHotCategorical, Poisson)
from .distribution import Distribution  # noqa: F401
from .kl import kl_divergence, register_kl  # noqa: F401
from .multivariate import Dirichlet, Independent, MultivariateNormal  # noqa: F401

__all__ = ["Bernoulli", "Beta", "Binomial", "Categorical", "Cauchy", "Chi2", "Dirichlet",
           "Distribution", "Exponential", "Gamma", "Geometric", "Gumbel", "HalfNormal",
           "Independent", "Laplace", "LogNormal", "MultivariateNormal", "Normal",
           "OneHotCategorical", "Poisson", "Uniform", "constraints", "kl_divergence",
           "register_kl"]
from . import torch_file_names as _torch_file_names  # noqa: E402

_torch_file_names.register(__import__("sys").modules[__name__])   # .categorical, .normal, ...
