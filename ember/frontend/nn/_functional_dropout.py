"""Channel-wise and alpha dropouts of ember.nn.functional: dropout1d/2d/3d,
alpha_dropout and feature_alpha_dropout, with PyTorch's arguments and checks.

Masks come from the registry's `native_dropout` (a RANDOM op) applied to a tensor of
ones of the mask's shape — [N, C, 1, ...] for the feature variants, the input's shape
otherwise — so a traced or compiled function draws a fresh mask each call and the
gradient is the mask itself. Alpha dropout keeps a SELU network's zero mean and unit
variance: dropped units take the value -alpha' (alpha' = SELU's scale * alpha), then
an affine map a * x + b restores the moments (Klambauer et al., 2017).
"""
from __future__ import annotations

import math

from ...ir.registry import OPS
from ..tensor import Tensor
from ._functional_common import cast, BadArgument, apply_inplace, maybe_inplace

SELU_NEGATIVE_SATURATION = 1.7580993408473766     # SELU's scale * alpha


def _check_p(p: float) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _mask_shape(input, feature: bool) -> list[int]:
    if not feature:
        return list(input.shape)
    if input.ndim < 2:
        raise BadArgument("Feature dropout requires at least 2 dimensions in the input")
    return list(input.shape[:2]) + [1] * (input.ndim - 2)


def _keep_mask(input, p: float, feature: bool):
    """(kept as 0/1 in the input's dtype, broadcastable to the input)."""
    ones = OPS["full"](_mask_shape(input, feature), 1.0, dtype=input.dtype,
                       device=input.device)
    return cast(OPS["native_dropout"](ones, p, True)[1], input.dtype)


def _dropout(input, p: float, training: bool, inplace: bool, *, feature: bool,
             alpha: bool) -> Tensor:
    _check_p(p)
    if not training or p == 0.0:
        return input
    if feature:
        _mask_shape(input, feature)                 # the >= 2 dims check
    if p == 1.0:
        return maybe_inplace(input, inplace, lambda x: x * 0)
    keep = _keep_mask(input, p, feature)
    if not alpha:
        return maybe_inplace(input, inplace, lambda x: x * (keep * (1.0 / (1.0 - p))))
    sat = SELU_NEGATIVE_SATURATION
    a = 1.0 / math.sqrt((sat * sat * p + 1) * (1 - p))
    shift = (keep - 1 + p) * (sat * a)               # a * (-sat) where dropped, + a*sat*p
    return maybe_inplace(input, inplace, lambda x: x * (keep * a) + shift)


def _unbatched(input, batched_ndim: int, run) -> Tensor:
    """Run `run` on a batch of one when the input lacks the batch dim."""
    if input.ndim == batched_ndim - 1:
        out = run(input.unsqueeze(0))
        return out.squeeze(0)
    return run(input)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, L) or (C, L) input."""
    _check_p(p)
    if input.ndim not in (2, 3):
        raise BadArgument(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D "
                          f"input. Note that dropout1d exists to provide channel-wise dropout "
                          f"on inputs with 1 spatial dimension, a channel dimension, and an "
                          f"optional batch dimension (i.e. 2D or 3D inputs).")
    if inplace and input.ndim == 2:
        return apply_inplace(input, lambda x: dropout1d(x, p, training, False))
    return _unbatched(input, 3, lambda x: _dropout(x, p, training, inplace, feature=True,
                                                   alpha=False))


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Zero whole channels (dim 1) of the input; a 3-D input is taken as (N, C, L), as
    PyTorch does (with a warning there)."""
    return _dropout(input, p, training, inplace, feature=True, alpha=False)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, D, H, W) or unbatched (C, D, H, W) input."""
    if input.ndim == 4 and inplace:
        return apply_inplace(input, lambda x: dropout3d(x, p, training, False))
    if input.ndim == 4:
        return _unbatched(input, 5, lambda x: _dropout(x, p, training, False, feature=True,
                                                       alpha=False))
    return _dropout(input, p, training, inplace, feature=True, alpha=False)


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                  inplace: bool = False) -> Tensor:
    return _dropout(input, p, training, inplace, feature=False, alpha=True)


def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False,
                          inplace: bool = False) -> Tensor:
    return _dropout(input, p, training, inplace, feature=True, alpha=True)


__all__ = ["dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"]
