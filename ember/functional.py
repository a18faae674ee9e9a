"""torch.functional: the functions PyTorch defines in Python at the top level, under the
module name some code imports them from (`from torch.functional import F`)."""
from __future__ import annotations

import ember as _ember

__all__ = ["atleast_1d", "atleast_2d", "atleast_3d", "block_diag", "broadcast_shapes",
           "broadcast_tensors", "cartesian_prod", "cdist", "chain_matmul", "einsum", "lu",
           "meshgrid", "norm", "split", "stft", "istft", "tensordot", "unique",
           "unique_consecutive", "unravel_index"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(_ember, name)
    raise AttributeError(f"module 'ember.functional' has no attribute '{name}'")
