"""ember.nn._reduction: torch.nn._reduction's helpers, which loss code written against
PyTorch imports (`from torch.nn import _reduction as _Reduction`) to map a reduction name,
or the deprecated size_average/reduce pair, to a name or to ATen's enum value."""
from __future__ import annotations

import warnings

from ._functional_losses import _legacy_reduction

# ATen's reduction enum (at::Reduction): the integers torch's loss kernels take
_ENUM = {"none": 0, "mean": 1, "sum": 2}


def get_enum(reduction: str) -> int:
    """0 / 1 / 2 for 'none' / 'mean' / 'sum' ('elementwise_mean' is the old 'mean')."""
    if reduction == "elementwise_mean":
        warnings.warn("reduction='elementwise_mean' is deprecated, please use "
                      "reduction='mean' instead.", stacklevel=2)
        reduction = "mean"
    if reduction not in _ENUM:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return _ENUM[reduction]


def legacy_get_string(size_average, reduce, emit_warning: bool = True) -> str:
    """The reduction name the deprecated size_average/reduce pair stands for (None for
    either means True, as PyTorch reads them)."""
    name = _legacy_reduction(True if size_average is None else size_average,
                             True if reduce is None else reduce, "mean")
    if emit_warning:
        warnings.warn(f"size_average and reduce args will be deprecated, please use "
                      f"reduction='{name}' instead.", stacklevel=2)
    return name


def legacy_get_enum(size_average, reduce, emit_warning: bool = True) -> int:
    return get_enum(legacy_get_string(size_average, reduce, emit_warning))
