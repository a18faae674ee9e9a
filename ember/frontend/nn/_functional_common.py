"""Helpers shared by ember.nn.functional's activation, distance, dropout and loss modules.

- `apply_inplace`: PyTorch's `inplace=True` for a function written as a composite;
- `BadArgument`: the RuntimeError PyTorch raises for a bad value or shape (ShapeError is
  a ValueError, which `except RuntimeError` in ported code would not catch);
- `cast`: a dtype conversion that also traces;
- `reduce_loss`: 'none' | 'mean' | 'sum' with the legacy size_average/reduce pair.
"""
from __future__ import annotations

from ...ir.errors import EmberError, TraceError
from ..autograd import is_grad_enabled


class BadArgument(EmberError, RuntimeError):
    """An argument value or shape that PyTorch rejects with a RuntimeError."""


def refuse_traced_sparse_gradient(weight, indices, sparse: bool, function: str) -> None:
    """`sparse=True` asks for a sparse COO weight gradient, which only eager autograd
    builds: a compiled graph would give a dense one. Tracing stops here instead, so
    ember.compile breaks the graph and runs this lookup eagerly (with fullgraph=True the
    error names the reason)."""
    traced = any(getattr(t, "is_symbolic", False) for t in (weight, indices))
    if sparse and traced and weight.requires_grad and is_grad_enabled():
        raise TraceError(f"{function}(sparse=True) computes a sparse gradient of its "
                         f"weight, which only runs eagerly")


def cast(x, dtype):
    """x in `dtype` through the registry op, so traced code records it (Tensor.to is
    eager-only)."""
    from ...ir.registry import OPS
    return x if x.dtype == dtype else OPS["convert_element_type"](x, dtype)


def apply_inplace(input, compute):
    """`input.copy_(compute(input))`, keeping autograd right: when the input's history
    is recorded, `compute` reads a clone, so the values its derivative saves are not the
    ones overwritten. copy_ refuses a leaf that requires grad, as PyTorch does."""
    recording = getattr(input, "requires_grad", False) and is_grad_enabled()
    source = input.clone() if recording else input
    return input.copy_(compute(source))


def maybe_inplace(input, inplace: bool, compute):
    if inplace and getattr(input, "is_quantized", False):
        return input._assign_same_qparams(compute(input))   # quantized relu_/hardtanh_
    return apply_inplace(input, compute) if inplace else compute(input)


def check_reduction(reduction: str) -> None:
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def check_broadcast(*tensors) -> None:
    """PyTorch's RuntimeError for operands whose shapes do not broadcast."""
    shapes = [list(t.shape) for t in tensors if hasattr(t, "shape")]
    ndim = max((len(s) for s in shapes), default=0)
    padded = [[1] * (ndim - len(s)) + s for s in shapes]
    for dim in range(ndim):
        sizes = {p[dim] for p in padded} - {1}
        if len(sizes) > 1:
            a, b = sorted(sizes)[:2]
            raise BadArgument(f"The size of tensor a ({a}) must match the size of tensor b "
                              f"({b}) at non-singleton dimension {dim}")


def reduce_loss(loss, reduction: str, size_average=None, reduce=None):
    """Reduce an elementwise loss by name (after PyTorch's legacy-argument mapping)."""
    from ._functional_losses import _legacy_reduction
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    check_reduction(reduction)
    return loss.sum()
