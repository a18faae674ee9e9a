"""torch.nn.functional's softsign, tanhshrink and mish, over their registry ops.

The ops (schemas, kernels, derivatives, lowerings) live in ember/ir/ops/activation.py;
this module only gives them PyTorch's functional names and signatures.
"""
from __future__ import annotations

from ...ir.errors import DTypeError
from ...ir.registry import OPS


def _integral(input) -> bool:
    return not (input.dtype.is_floating_point or input.dtype.is_complex)


def softsign(input):
    """x / (1 + |x|), elementwise. Integer inputs give floats, as PyTorch's composite
    does (the registry op, like aten's kernels, takes only floating and complex)."""
    if input.dtype.name == "bool":  # PyTorch's composite fails in abs for bool
        raise DTypeError("softsign: \"abs\" not implemented for 'Bool'")
    if _integral(input):
        return input / (input.abs() + 1)
    return OPS["softsign"](input)


def tanhshrink(input):
    """x - tanh(x), elementwise; integer inputs give floats, as in PyTorch."""
    if _integral(input):
        return input - input.tanh()
    return OPS["tanhshrink"](input)


def mish(input, inplace: bool = False):
    """x * tanh(softplus(x)), elementwise; `inplace=True` writes the result into input."""
    out = OPS["mish"](input)
    if inplace:
        return input.copy_(out)
    return out
