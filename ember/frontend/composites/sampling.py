"""The user-facing random functions over the sampling ops (ir/ops/sampling.py):
`ember.normal` with PyTorch's four overloads, and Tensor.normal_ / random_ whose
argument conventions the registry schema cannot express (random_(to) vs
random_(from, to)). uniform_, cauchy_, exponential_, geometric_, log_normal_ and
bernoulli_ are the ops' generated in-place variants.
"""
from __future__ import annotations

import numbers

from ...ir import dtypes
from ...ir.composite import composite
from ...ir.ops import OPS_NS as ops
from ...ir.ops.rules import is_tensor_like
from ...ir.registry import OPS


@composite(replaces_op=True)
def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, layout=None,
           device=None, requires_grad=False, pin_memory=False, out=None):
    """Normal samples: normal(mean, std) with either a tensor (broadcast), or
    normal(mean: float, std: float, size) for a new tensor of that size."""
    if out is not None:
        raise TypeError("normal(): the out= argument is not supported")
    if not is_tensor_like(mean) and not is_tensor_like(std):
        if size is None:
            raise TypeError("normal() received an invalid combination of arguments: with a "
                            "number mean and std, pass a size")
        size = [int(size)] if isinstance(size, numbers.Integral) else [int(s) for s in size]
        base = ops.full(size, float(mean), dtype=dtype or dtypes.get_default_dtype(),
                        device=device)
        sample = ops.normal(base, float(std), generator=generator)
        return sample.requires_grad_(True) if requires_grad else sample
    if size is not None:
        raise TypeError("normal(): size is only accepted with a number mean and std")
    return ops.normal(mean, std, generator=generator)


@composite(function=False, method=True)
def normal_(self, mean=0.0, std=1.0, *, generator=None):
    """Fill self with Normal(mean, std) samples."""
    return ops.copy_(self, OPS["normal_functional"](self, mean, std, generator=generator))


@composite(function=False, method=True)
def random_(self, *args, generator=None, **kwargs):
    """Fill self with integers uniform in [from, to): random_(to), random_(from, to), or
    random_() for every integer the dtype holds exactly."""
    low, high = 0, None
    if len(args) == 1:
        high = args[0]
    elif len(args) == 2:
        low, high = args
    elif len(args) > 2:
        raise TypeError(f"random_() takes at most 2 positional arguments ({len(args)} given)")
    low = kwargs.pop("from", low)
    high = kwargs.pop("to", high)
    if kwargs:
        raise TypeError(f"random_() got unexpected keyword arguments {sorted(kwargs)}")
    return ops.copy_(self, OPS["random"](self, low, high, generator=generator))
