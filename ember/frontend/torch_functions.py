"""Top-level functions whose PyTorch call form differs from their registry op's schema:
einsum's varargs and sublist forms, tensordot's `dims`. Each one normalizes its arguments
and calls the op, so tracing, autograd and compile see the op itself.
"""
from __future__ import annotations

from ..ir.errors import ShapeError
from ..ir.registry import OPS


# --- einsum ---------------------------------------------------------------------------
def _sublist_letter(label) -> str:
    if label is Ellipsis:
        return "..."
    if not isinstance(label, int) or not 0 <= label < 52:
        raise ShapeError(f"einsum(): subscript in subscript list is not within the valid "
                         f"range [0, 52), got {label!r}")
    return chr(ord("A") + label) if label < 26 else chr(ord("a") + label - 26)


def _sublist_equation(args) -> tuple[str, list]:
    """einsum(op1, sublist1, op2, sublist2, ..., [sublist_out]) as (equation, operands)."""
    operands, terms = list(args[0::2]), list(args[1::2])
    out = None
    if len(operands) > len(terms):            # a trailing output sublist is not an operand
        out = operands.pop()
    lhs = ",".join("".join(_sublist_letter(x) for x in term) for term in terms)
    if out is None:
        return lhs, operands
    return lhs + "->" + "".join(_sublist_letter(x) for x in out), operands


def einsum(*args):
    """torch.einsum: einsum(equation, *operands), einsum(equation, [operands]) or the
    sublist form einsum(op1, [0, 1], op2, [1, 2], [0, 2])."""
    if not args:
        raise TypeError("einsum(): must specify the equation string and at least one operand, "
                        "or at least one operand and its subscripts list")
    if isinstance(args[0], str):
        equation, operands = args[0], list(args[1:])
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = list(operands[0])
    else:
        equation, operands = _sublist_equation(args)
    return OPS["einsum"](equation, operands)


# --- tensordot ------------------------------------------------------------------------
def _as_ints(value) -> list[int]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return [int(v) for v in value] if isinstance(value, (list, tuple)) else [int(value)]


def _tensordot_dims(a, b, dims):
    if hasattr(dims, "ndim") and dims.ndim == 0:
        dims = int(dims.item())
    if isinstance(dims, int):
        if dims < 0:
            raise ShapeError(f"tensordot expects dims >= 0, but got dims={dims}")
        if dims > min(a.ndim, b.ndim):
            raise ShapeError(f"tensordot expects dims < ndim_a or ndim_b, but got dims={dims}")
        return list(range(a.ndim - dims, a.ndim)), list(range(dims))
    if hasattr(dims, "tolist"):
        dims = dims.tolist()
    if not isinstance(dims, (list, tuple)) or len(dims) != 2:
        raise ShapeError("tensordot expects dims to be a pair of dimension lists, an int or "
                         "a tensor")
    return _as_ints(dims[0]), _as_ints(dims[1])


def tensordot(a, b, dims=2, out=None):
    """torch.tensordot: dims is an int (the last `dims` dims of a with the first of b), a
    pair of dim lists, or a tensor holding either."""
    dims_a, dims_b = _tensordot_dims(a, b, dims)
    if out is not None:             # the registry op writes out= (ir/out_arg.py)
        return OPS["tensordot"](a, b, dims_a, dims_b, out=out)
    return OPS["tensordot"](a, b, dims_a, dims_b)


# --- where ----------------------------------------------------------------------------
_NOT_GIVEN = object()


def where(condition, input=_NOT_GIVEN, other=_NOT_GIVEN, *, out=None):
    """torch.where(condition, input, other): elementwise choice (the registry op), and
    torch.where(condition) alone: the indices of the nonzero elements, one tensor per
    dimension (nonzero(condition, as_tuple=True); data-dependent, so it runs eagerly)."""
    given = (input is not _NOT_GIVEN, other is not _NOT_GIVEN)
    if given == (False, False) and out is None:
        from .. import nonzero          # the Python wrapper that has as_tuple
        return nonzero(condition, as_tuple=True)
    if given != (True, True):
        raise TypeError("where() received an invalid combination of arguments: expected "
                        "(Tensor condition) or (Tensor condition, Tensor input, Tensor "
                        "other); input and other are given together")
    if out is not None:
        return OPS["where"](condition, input, other, out=out)
    return OPS["where"](condition, input, other)


# --- _assert_async, _shape_as_tensor ---------------------------------------------------
def _assert_async(tensor, assert_msg: str | None = None) -> None:
    """torch._assert_async: a one-element tensor must be nonzero. On a GPU torch checks
    it asynchronously; ember checks it when called (as torch does on the CPU)."""
    if tensor.numel() != 1:
        raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
    if not bool(tensor.item()):
        raise RuntimeError(assert_msg if assert_msg is not None else
                           "Expected Tensor with single nonzero value, but got zero")


def _shape_as_tensor(input):
    """torch._shape_as_tensor: the shape as a 1-d int64 tensor."""
    from .. import tensor as make_tensor
    from ..ir import dtypes
    return make_tensor(list(input.shape), dtype=dtypes.int64)
