"""ember.masked: torch.masked's reductions and normalizations with a `mask=` argument.

Each function is a composite of ember ops (so it differentiates, traces and compiles like
any other composite): masked-out elements are replaced by the operation's identity (0 for
sum, 1 for prod, -inf for amax/softmax, ...) with `where`, then the plain operation runs.
Masked-out elements therefore get zero gradient. Results on strided tensors, dtypes and
the values of fully masked-out slices follow torch.masked (nan for mean/median/var/std).
MaskedTensor (maskedtensor.py) carries a mask with its data through ember's ops.
"""
from ._ops import (amax, amin, argmax, argmin, cumprod, cumsum, log_softmax,  # noqa: F401
                   logaddexp, logsumexp, mean, median, norm, normalize, prod, softmax,
                   softmin, std, sum, var)
from .maskedtensor import (MaskedTensor, as_masked_tensor, is_masked_tensor,  # noqa: F401
                           masked_tensor)

__all__ = ["amax", "amin", "argmax", "argmin", "cumprod", "cumsum", "log_softmax",
           "logaddexp", "logsumexp", "mean", "median", "norm", "normalize", "prod",
           "softmax", "softmin", "std", "sum", "var", "MaskedTensor", "masked_tensor",
           "as_masked_tensor", "is_masked_tensor"]
