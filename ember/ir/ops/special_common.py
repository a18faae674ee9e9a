"""Shared pieces of the special-function families (gamma.py, bessel.py, special.py,
special_polynomials.py): the `special` namespace declaration, SciPy access, the
"derivative not implemented" error, dtype checks and sample helpers.

Ops in `ember.special` are registry ops named like ATen's (`special_i1e`, Python name
`i1e`) with `namespace="special"`; `ember/special.py` collects them. SciPy's special
functions serve as the reference kernels; scipy is imported on first use so that
`import ember` (and the lite runtime) does not load it.
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, EmberError
from ..registry import Promotion, Tag, defop
from . import samples as S
from .rules import is_tensor_like, pointwise_meta

P = Tag.POINTWISE


class DerivativeNotImplemented(EmberError, NotImplementedError):
    """PyTorch has no formula for this gradient, and ember matches it."""


def scipy_special():
    import scipy.special  # noqa: PLC0415 - loaded on first use only
    return scipy.special


def no_derivative_for(label: str, value):
    """None for an argument that needs no gradient; PyTorch's NotImplementedError when one
    is needed. Graph autograd cannot tell which inputs need gradients (its values carry
    no requires_grad), so there the error is raised whenever the rule runs."""
    if is_tensor_like(value) and getattr(value, "requires_grad", True):
        raise DerivativeNotImplemented(f"the derivative for '{label}' is not implemented.")
    return None


def _kind(dt) -> str:
    return ("Bool" if dt.name == "bool" else "ComplexFloat" if dt.is_complex else
            "Half" if dt.name == "float16" else "BFloat16" if dt.name == "bfloat16" else
            "Float" if dt.is_floating_point else "Long")


def float_meta(kernel: str, *, ints: bool = True, halves: bool = True, n_operands=None,
               promotion: Promotion = Promotion.INT_TO_FLOAT):
    """Pointwise meta for real special functions: integer and bool inputs promote to the
    default float (when `ints`), complex inputs are refused, half types only with `halves`
    (torch's CPU kernels for the Bessel and polynomial families have no half versions)."""
    base = pointwise_meta(promotion, n_operands)

    def rule(*args, **kwargs):
        operands = args if n_operands is None else args[:n_operands]
        for a in operands:
            if not is_tensor_like(a):
                continue
            dt = a.dtype
            bad = dt.is_complex or (not ints and not dt.is_floating_point) or \
                (not halves and dt.name in ("float16", "bfloat16"))
            if bad:
                raise DTypeError(f'"{kernel}" not implemented for \'{_kind(dt)}\' ({dt.name})')
        out = base(*args, **kwargs)
        if not halves and out.dtype.name in ("float16", "bfloat16"):
            raise DTypeError(f'"{kernel}" not implemented for \'{_kind(out.dtype)}\'')
        return out
    return rule


def special_op(schema: str, **fields):
    """Declare `special_<schema>` as ember.special.<name> (torch.special's name)."""
    name = schema.split("(", 1)[0]
    fields.setdefault("torch_ref", f"torch.special.{name}")
    return defop("special_" + schema, namespace="special", python_name=name, **fields)


def sample(*args, grad=True, **kwargs):
    """A Sample; NumPy scalars (what arithmetic on 0-d arrays gives) become 0-d arrays."""
    def array(v):
        return np.asarray(v) if isinstance(v, np.generic) else v
    return S.Sample(tuple(array(a) for a in args), {k: array(v) for k, v in kwargs.items()},
                    grad=grad)


def edge_values(dtype=np.float32):
    return np.array([0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 30.0, -30.0, np.inf, -np.inf, np.nan],
                    dtype)


def real_unary_samples(make=S.randn, *, ints=(-3, 4), edges=True, bools=True):
    """float32 at a few shapes, a float64 one, ints, bools and the edge values."""
    def gen(rng):
        out = [sample(make(rng, 3, 4)), sample(make(rng)), sample(make(rng, 2, 3, 2)),
               sample(make(rng, 5, dtype=np.float64))]
        if ints is not None:
            out.append(sample(S.int_array(rng, 3, 4, low=ints[0], high=ints[1])))
        if bools:
            out.append(sample(S.bool_array(rng, 2, 3)))
        if edges:
            out.append(sample(edge_values(), grad=False))
            out.append(sample(edge_values(np.float64), grad=False))
        return out
    return gen

