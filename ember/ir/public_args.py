"""Where PyTorch's public signatures require a Tensor and refuse a Python number.

ember declares one schema per op, with `Tensor` parameters that also take Python
numbers, because its own derivative rules and decompositions pass scalars freely
(`where(r == 0, 1, r)`). PyTorch's public overloads are stricter, and ported code
(and OpInfo's error_inputs) expects their TypeError: `torch.atan2(t, 2)` and
`torch.eq(2, t)` are errors, `torch.eq(t, 2)` is not. This table says, per op, which
tensor parameters a call from user code must fill with a tensor:

- ALL:  every tensor parameter (no Scalar overload at all: atan2, maximum, ...);
- SELF: the first one (a `Tensor, Scalar` overload only: eq, fmod, clamp_min, ...);
- ANY:  at least one (`Scalar, Tensor` overloads too, but not two numbers: pow, ...).

`check_public_call` applies it only to calls made from outside ember (the caller's
module), so ember's internal calls keep passing scalars. Ops absent from the table
accept numbers anywhere, as before.
"""
from __future__ import annotations

import numbers
import sys

ALL, SELF, ANY = "all", "self", "any"

_SPECIAL_POLYS = ("chebyshev_polynomial_t", "chebyshev_polynomial_u", "chebyshev_polynomial_v",
                  "chebyshev_polynomial_w", "hermite_polynomial_h", "hermite_polynomial_he",
                  "laguerre_polynomial_l", "legendre_polynomial_p",
                  "shifted_chebyshev_polynomial_t", "shifted_chebyshev_polynomial_u",
                  "shifted_chebyshev_polynomial_v", "shifted_chebyshev_polynomial_w")

TENSOR_REQUIRED: dict[str, str] = {
    **{name: ALL for name in (
        "atan2", "fmax", "fmin", "hypot", "logical_and", "logical_or", "logical_xor",
        "maximum", "minimum", "logaddexp", "logaddexp2", "nextafter", "igamma", "igammac",
        "heaviside", "gcd", "lcm", "ldexp", "complex", "polar")},
    **{name: SELF for name in (
        "clamp_max", "clamp_min", "copysign", "eq", "ne", "lt", "le", "gt", "ge", "fmod",
        "rsub")},
    **{name: ANY for name in (
        "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift",
        "bitwise_right_shift", "float_power", "pow", "remainder", "xlogy", "special_xlogy",
        "special_xlog1py", "special_zeta") + tuple("special_" + p for p in _SPECIAL_POLYS)},
}


def _is_number(value) -> bool:
    return isinstance(value, numbers.Number)


def _from_user_code(depth: int) -> bool:
    module = sys._getframe(depth + 1).f_globals.get("__name__", "")
    return not (module == "ember" or module.startswith("ember."))


_LIST_ARGS: dict = {}
_NOTHING_TO_CHECK: set = set()             # ops (by identity) with nothing to check


def _tensor_list_indices(op) -> tuple:
    found = _LIST_ARGS.get(op.name)
    if found is None:
        found = _LIST_ARGS[op.name] = tuple(
            i for i, a in enumerate(op.schema.args) if a.type == "Tensor[]")
    return found


def _check_tensor_lists(op, args: tuple) -> None:
    """`cat([t, None])`: PyTorch's TypeError, not a failure deep inside the op."""
    for i in _tensor_list_indices(op):
        values = args[i]
        if hasattr(values, "shape") and hasattr(values, "dtype"):   # one tensor, not a list
            from .schema import SchemaError
            raise SchemaError(f"{op.python_name}(): argument '{op.schema.args[i].name}' "
                              f"(position {i + 1}) must be tuple of Tensors, not Tensor")
        if isinstance(values, (list, tuple)):
            for k, v in enumerate(values):
                if v is None or isinstance(v, str):
                    from .schema import SchemaError
                    raise SchemaError(f"{op.python_name}(): expected Tensor as element {k} in "
                                      f"argument {i}, but got {type(v).__name__}")


def check_public_call(op, args: tuple, depth: int = 1) -> None:
    """Raise PyTorch's TypeError when a user call passes a number where `op` needs a
    tensor. `args` are bound in schema order; `depth` frames up is the caller."""
    if op in _NOTHING_TO_CHECK:             # no tensor-list argument and no rule: most ops
        return
    _check_tensor_lists(op, args)
    rule = TENSOR_REQUIRED.get(op.name)
    if rule is None:
        if not _tensor_list_indices(op):
            _NOTHING_TO_CHECK.add(op)
        return
    indices = op.schema.tensor_arg_indices
    numbers_at = [i for i in indices if _is_number(args[i])]
    if not numbers_at:
        return
    if rule == ANY and len(numbers_at) < len(indices):
        return
    if rule == SELF and numbers_at[0] != indices[0]:
        return
    if not _from_user_code(depth + 1):
        return
    i = numbers_at[0]
    from .schema import SchemaError
    raise SchemaError(f"{op.python_name}(): argument '{op.schema.args[i].name}' (position "
                      f"{i + 1}) must be Tensor, not {type(args[i]).__name__}")
