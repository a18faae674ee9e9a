"""F._canonical_mask / F._none_or_dtype: the mask helpers of PyTorch's attention code,
which attention modules outside torch call too (torchaudio's WavLM attention)."""
from __future__ import annotations

import warnings

from ...ir.registry import OPS
from ..tensor import Tensor


def _none_or_dtype(input):
    """The dtype of a mask, or None for no mask."""
    if input is None:
        return None
    if isinstance(input, Tensor):
        return input.dtype
    raise RuntimeError("input to _none_or_dtype() must be None or torch.Tensor")


def _canonical_mask(mask, mask_name: str, other_type, other_name: str, target_type,
                    check_other: bool = True):
    """A bool mask (True: not allowed to attend) becomes an additive float mask of
    `target_type` (-inf where True, 0 elsewhere); a float mask is returned as it is."""
    if mask is None:
        return None
    is_bool = mask.dtype.name == "bool"
    if not is_bool and not mask.dtype.is_floating_point:
        raise AssertionError(f"only bool and floating types of {mask_name} are supported")
    if check_other and other_type is not None and mask.dtype != other_type:
        warnings.warn(f"Support for mismatched {mask_name} and {other_name} is deprecated. "
                      f"Use same type for both instead.")
    if not is_bool:
        return mask
    return OPS["where"](mask, OPS["full_like"](mask, float("-inf"), dtype=target_type),
                        OPS["full_like"](mask, 0.0, dtype=target_type))
