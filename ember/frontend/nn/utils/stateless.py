"""torch.nn.utils.stateless: functional_call's older home (deprecated in torch for
torch.func.functional_call; the same function here, with torch's FutureWarning)."""
from __future__ import annotations

import warnings

from ...func.functional_call import functional_call as _functional_call

__all__ = ["functional_call"]


def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *,
                    tie_weights: bool = True, strict: bool = False):
    """module(*args, **kwargs) with the named tensors swapped in for the call only."""
    warnings.warn("`torch.nn.utils.stateless.functional_call` is deprecated as of PyTorch 2.0 "
                  "and will be removed in a future version of PyTorch. Please use "
                  "`torch.func.functional_call` instead which is a drop-in replacement.",
                  FutureWarning, stacklevel=2)
    return _functional_call(module, parameter_and_buffer_dicts,
                            () if args is None else args, kwargs,
                            tie_weights=tie_weights, strict=strict)
