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
from .exp_family import ExponentialFamily  # noqa: F401
from .more_families import (ContinuousBernoulli, FisherSnedecor,  # noqa: F401
                            GeneralizedPareto, VonMises)
from .matrix import LKJCholesky, Wishart  # noqa: F401
from .kl import kl_divergence, register_kl  # noqa: F401
from .multivariate import Dirichlet, Independent, MultivariateNormal  # noqa: F401
from . import transforms  # noqa: F401
from .transforms import (AbsTransform, AffineTransform, ComposeTransform,  # noqa: F401
                         CumulativeDistributionTransform, ExpTransform, IndependentTransform,
                         LowerCholeskyTransform, PowerTransform, ReshapeTransform,
                         SigmoidTransform, SoftmaxTransform, SoftplusTransform,
                         StickBreakingTransform, TanhTransform, Transform, identity_transform,
                         CatTransform, StackTransform, CorrCholeskyTransform,
                         PositiveDefiniteTransform)
from .transformed import (HalfCauchy, InverseGamma, Kumaraswamy,  # noqa: F401
                          LogisticNormal, MixtureSameFamily, Pareto, RelaxedBernoulli,
                          RelaxedOneHotCategorical, StudentT, TransformedDistribution, Weibull)
from .counts import (Multinomial, NegativeBinomial,  # noqa: F401
                     OneHotCategoricalStraightThrough)
from .multivariate import LowRankMultivariateNormal  # noqa: F401
from . import constraint_registry  # noqa: F401
from .constraint_registry import biject_to, transform_to  # noqa: F401

__all__ = ["Bernoulli", "Beta", "Binomial", "Categorical", "Cauchy", "Chi2", "Dirichlet",
           "Distribution", "Exponential", "Gamma", "Geometric", "Gumbel", "HalfNormal",
           "Independent", "Laplace", "LogNormal", "MultivariateNormal", "Normal",
           "OneHotCategorical", "Poisson", "Uniform", "constraints", "kl_divergence",
           "register_kl", "TransformedDistribution", "HalfCauchy", "LogisticNormal",
           "MixtureSameFamily", "Pareto", "RelaxedBernoulli", "RelaxedOneHotCategorical",
           "StudentT", "Weibull", "transforms", "Transform", "AbsTransform",
           "AffineTransform", "ComposeTransform", "CumulativeDistributionTransform",
           "ExpTransform", "IndependentTransform", "LowerCholeskyTransform", "PowerTransform",
           "ReshapeTransform", "SigmoidTransform", "SoftmaxTransform", "SoftplusTransform",
           "StickBreakingTransform", "TanhTransform", "identity_transform", "InverseGamma",
           "Kumaraswamy", "Multinomial", "NegativeBinomial", "OneHotCategoricalStraightThrough",
           "LowRankMultivariateNormal", "biject_to", "transform_to", "ExponentialFamily",
           "ContinuousBernoulli", "LKJCholesky", "Wishart", "CatTransform", "StackTransform",
           "CorrCholeskyTransform", "PositiveDefiniteTransform", "FisherSnedecor",
           "GeneralizedPareto", "VonMises"]
from . import torch_file_names as _torch_file_names  # noqa: E402

_torch_file_names.register(__import__("sys").modules[__name__])   # .categorical, .normal, ...
