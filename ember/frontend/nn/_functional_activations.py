"""Activations of ember.nn.functional beyond relu/gelu/silu: PyTorch's names and signatures.

Float-only activations that have a registry op (hardswish, mish, selu, ...) call it;
the rest are composites of ember ops (where, sigmoid, softmax, ...), so autograd,
tracing, compile and vmap need nothing extra. `inplace=True` (and the `F.elu_` style
names) write the result into the input with an op-level `copy_`, after computing it
from a clone when autograd records, so the derivative sees the old values as in
PyTorch.
"""
from __future__ import annotations

from ...ir import autocast
from ...ir.errors import TraceError
from ...ir.registry import OPS
from ..tensor import Tensor
from ._functional_common import BadArgument, maybe_inplace as _maybe_inplace


def _float_op(name: str):
    return OPS[name]


# --- registry-backed (float) activations ----------------------------------------------
def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_inplace(input, inplace, _float_op("hardswish"))


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_inplace(input, inplace, _float_op("hardsigmoid"))


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_inplace(input, inplace, _float_op("selu"))


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    if alpha == 0:
        raise BadArgument("ZeroDivisionError: alpha cannot be 0 for CELU")
    return _maybe_inplace(input, inplace, lambda x: OPS["celu"](x, alpha))


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    return _maybe_inplace(input, inplace, _float_op("mish"))


def logsigmoid(input: Tensor) -> Tensor:
    return OPS["log_sigmoid"](input)


def selu_(input: Tensor) -> Tensor:
    return selu(input, inplace=True)


def celu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    return celu(input, alpha, inplace=True)


# --- composites, every dtype torch takes ----------------------------------------------
def softsign(input: Tensor) -> Tensor:
    """x / (1 + |x|); ints divide to float and complex works, as PyTorch's composite."""
    return input / (input.abs() + 1)


def tanhshrink(input: Tensor) -> Tensor:
    return input - input.tanh()


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
            dtype=None) -> Tensor:
    from .functional import softmax
    return softmax(-input, dim, dtype=dtype)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    if input.ndim == 0:
        raise BadArgument("glu does not support scalars because halving size must be even")
    size = input.shape[dim]
    if size % 2:
        raise BadArgument(f"Halving dimension must be even, but dimension "
                         f"{dim % input.ndim} is size {size}")
    first, gate = input.chunk(2, dim)
    return first * gate.sigmoid()


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """max(0, x) + weight * min(0, x), one slope per channel (dim 1) or one for all."""
    if weight.ndim > 1:
        raise BadArgument(f"prelu: Expected `weight` to be a scalar or 1D tensor, but got: "
                         f"ndim = {weight.ndim}")
    count = weight.numel()
    if count != 1:
        channels = input.shape[1] if input.ndim >= 2 else 1
        if input.ndim == 0 or count != channels:
            raise BadArgument(f"Mismatch of parameter numbers and input channel size. Found "
                             f"parameter numbers = {count} and channel size = {channels}.")
        weight = weight.reshape([channels] + [1] * (input.ndim - 2))
    elif weight.ndim == 1 and input.ndim == 0:
        weight = weight.reshape([])
    with autocast.as_one_op("prelu", input, weight) as (input, weight):
        return OPS["where"](input > 0, input, weight * input)


def threshold(input: Tensor, threshold: float, value: float,
              inplace: bool = False) -> Tensor:
    """value where input <= threshold, else input (in the input's dtype; NaN is kept, as
    PyTorch's test is `x <= threshold`)."""
    def compute(x):
        return OPS["where"](x <= threshold, OPS["full_like"](x, value), x)
    return _maybe_inplace(input, inplace, compute)


_threshold = threshold


def threshold_(input: Tensor, threshold: float, value: float) -> Tensor:
    return _threshold(input, threshold, value, inplace=True)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    if lambd < 0:
        raise BadArgument(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    zero = input * 0        # as PyTorch: -0.0 for small negatives, NaN stays NaN
    where = OPS["where"]
    return where(input > lambd, input - lambd, where(input < -lambd, input + lambd, zero))


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    drop = OPS["logical_and"](input >= -lambd, input <= lambd)    # NaN is kept, as torch
    return OPS["where"](drop, OPS["zeros_like"](input), input)


def rrelu(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3,
          training: bool = False, inplace: bool = False) -> Tensor:
    """Randomized leaky ReLU: in training each non-positive element gets a slope drawn
    uniformly from [lower, upper); in eval the slope is their mean."""
    if not input.dtype.is_floating_point:
        raise BadArgument(f"rrelu: \"rrelu_with_noise\" not implemented for "
                         f"'{input.dtype.name}'")
    if lower > upper:
        raise BadArgument(f"Lower bound should be less than or equal to the upper bound, "
                         f"got lower={lower}, upper={upper}")
    if not training:
        slope = (lower + upper) / 2
        return _maybe_inplace(input, inplace, lambda x: OPS["leaky_relu"](x, slope))
    noise = _uniform_noise(input, lower, upper)
    return _maybe_inplace(input, inplace,
                          lambda x: OPS["where"](x > 0, x, x * noise))


def _uniform_noise(input, lower, upper):
    if not isinstance(input, Tensor):
        raise TraceError("rrelu with training=True draws its slopes eagerly and cannot be "
                         "traced or compiled; call it with training=False there")
    from ..factories import rand
    return rand(*input.shape, dtype=input.dtype) * (upper - lower) + lower


def rrelu_(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3,
           training: bool = False) -> Tensor:
    return rrelu(input, lower, upper, training, inplace=True)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    from .functional import elu
    return elu(input, alpha, inplace=True)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    from .functional import leaky_relu
    return leaky_relu(input, negative_slope, inplace=True)


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    from .functional import hardtanh
    return hardtanh(input, min_val, max_val, inplace=True)


def relu_(input: Tensor) -> Tensor:
    return OPS["relu_"](input)


def gumbel_softmax(logits: Tensor, tau: float = 1.0, hard: bool = False, eps: float = 1e-10,
                   dim: int = -1) -> Tensor:
    """Samples of the Gumbel-softmax distribution: softmax((logits + g) / tau) with
    g = -log(Exponential(1)). hard=True returns one-hot samples whose gradient is the soft
    sample's (the straight-through estimator)."""
    gumbels = -logits.new_empty(list(logits.shape)).exponential_().log()
    soft = ((logits + gumbels) / tau).softmax(dim)
    if not hard:
        return soft
    index = soft.argmax(dim, keepdim=True)
    one_hot = logits.new_zeros(list(logits.shape)).scatter(dim, index, 1.0)
    return one_hot - soft.detach() + soft


__all__ = ["gumbel_softmax", "hardswish", "hardsigmoid", "selu", "celu", "mish", "logsigmoid",
           "selu_", "celu_", "softsign", "tanhshrink", "softmin", "glu", "prelu", "threshold",
           "threshold_", "softshrink", "hardshrink", "rrelu", "rrelu_", "elu_",
           "leaky_relu_", "hardtanh_", "relu_"]
