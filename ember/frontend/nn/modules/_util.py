"""Helpers shared by the layers: fresh parameters, torch's default init, input-shape
checks."""
from __future__ import annotations

import math
import sys

from ....ir import dtypes
from ....ir.errors import EmberError, ShapeError
from ...factories import empty
from ...tensor import Tensor
from ..parameter import Parameter


class ArgumentError(EmberError, ValueError, AssertionError):
    """A layer argument PyTorch rejects with an assert (Embedding's padding_idx, a
    pretrained weight's shape): catchable as the AssertionError PyTorch raises and as
    the ValueError it is."""


class ShapeAssertion(ShapeError, AssertionError):
    """A shape PyTorch checks with an assert (MultiheadAttention's embedding size): an
    AssertionError as there, and ember's ShapeError (ValueError, RuntimeError)."""


def new_param(*shape, dtype=None) -> Parameter:
    """An uninitialized Parameter; the layer's reset_parameters fills it."""
    return Parameter(empty(*shape, dtype=dtype or dtypes.get_default_dtype()))


def weight_and_bias(module, weight_shape: tuple, bias_size: int, bias: bool, dtype) -> None:
    """Give `module` a `weight` of `weight_shape` and a `bias` of `bias_size` (or a None
    'bias' parameter, as torch registers it), then run its reset_parameters."""
    module.weight = new_param(*weight_shape, dtype=dtype)
    if bias:
        module.bias = new_param(bias_size, dtype=dtype)
    else:
        module.register_parameter("bias", None)
    module.reset_parameters()


def kaiming_init(weight, bias, fan_in: int, init_empty_fan: bool) -> None:
    """torch's Linear/Conv default: kaiming-uniform(a=sqrt(5)) weight, bias uniform in
    +-1/sqrt(fan_in). With fan_in 0, Linear still draws its bias in [0, 0]
    (`init_empty_fan`), conv leaves it; both kept so the random stream matches torch's."""
    from .. import init
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is None:
        return
    if fan_in > 0:
        init.uniform_(bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
    elif init_empty_fan:
        init.uniform_(bias, 0, 0)


def check_ndim(module, input, allowed: tuple[int, ...], what: str) -> None:
    if input.ndim not in allowed:
        raise ShapeError(f"{module!r}: expected {what} input, got shape {list(input.shape)}")


def check_channels(module, input, channels: int, dim: int, what: str) -> None:
    if input.ndim <= dim or input.shape[dim] != channels:
        raise ShapeError(f"{module!r}: expected input with {channels} {what} at dimension "
                         f"{dim}, got {list(input.shape)}")


def ntuple(v, n: int) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


def checkable(input) -> bool:
    """Whether a layer's Python-level input check can run: not while torch.fx-style
    symbolic tracing passes a Proxy (the op call records, and the op's own shape rule
    checks when the graph runs; torch's layers have no such checks to trip over)."""
    if type(input) is Tensor:
        return True
    if isinstance(input, Tensor):       # a subclass overriding __torch_function__ sees
        from ....ir.torch_function import overrides     # only the op, as in torch
        return not overrides(type(input))
    # no Proxy exists before ember.fx is imported: importing it here (~0.05-0.15 s, the
    # whole fx package) made every compiled training step's first call pay for it, as
    # ember's own trace passes its symbolic values through the layers' checks
    proxy = sys.modules.get(__package__.rsplit(".", 2)[0] + ".fx.proxy")
    return proxy is None or not isinstance(input, proxy.Proxy)
