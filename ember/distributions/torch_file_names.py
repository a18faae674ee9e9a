"""torch.distributions' file names (`torch.distributions.categorical.Categorical`, as
torchaudio's wav2vec2 spells it): one module per family holding ember's class, since
ember groups the families by kind (continuous.py, discrete.py, multivariate.py)."""
from __future__ import annotations

import sys
import types

#: torch's module name for each family ember has (torch: distributions/<name>.py)
_FILES = {"Bernoulli": "bernoulli", "Beta": "beta", "Binomial": "binomial",
          "Categorical": "categorical", "Cauchy": "cauchy", "Chi2": "chi2",
          "Dirichlet": "dirichlet", "Distribution": "distribution",
          "Exponential": "exponential", "Gamma": "gamma", "Geometric": "geometric",
          "Gumbel": "gumbel", "HalfNormal": "half_normal", "Independent": "independent",
          "Laplace": "laplace", "LogNormal": "log_normal",
          "MultivariateNormal": "multivariate_normal", "Normal": "normal",
          "OneHotCategorical": "one_hot_categorical", "Poisson": "poisson",
          "Uniform": "uniform", "TransformedDistribution": "transformed_distribution",
          "HalfCauchy": "half_cauchy", "LogisticNormal": "logistic_normal",
          "MixtureSameFamily": "mixture_same_family", "Pareto": "pareto",
          "RelaxedBernoulli": "relaxed_bernoulli",
          "RelaxedOneHotCategorical": "relaxed_categorical", "StudentT": "studentT",
          "Weibull": "weibull", "InverseGamma": "inverse_gamma", "Kumaraswamy": "kumaraswamy",
          "Multinomial": "multinomial", "NegativeBinomial": "negative_binomial",
          "LowRankMultivariateNormal": "lowrank_multivariate_normal",
          "ExponentialFamily": "exp_family", "ContinuousBernoulli": "continuous_bernoulli",
          "FisherSnedecor": "fishersnedecor", "GeneralizedPareto": "generalized_pareto",
          "VonMises": "von_mises", "Wishart": "wishart", "LKJCholesky": "lkj_cholesky"}


def register(package) -> None:
    for class_name, file_name in _FILES.items():
        full_name = f"{package.__name__}.{file_name}"
        if full_name in sys.modules:       # a real submodule (distribution.py)
            continue
        module = types.ModuleType(full_name, f"torch.distributions.{file_name}")
        setattr(module, class_name, getattr(package, class_name))
        module.__all__ = [class_name]
        sys.modules[full_name] = module
        setattr(package, file_name, module)
