"""PyTorch's `out=` keyword for every registry op: `ember.mul(a, b, out=c)`.

The op runs as usual; its result is then written into `out` (a tuple of tensors for
multi-output ops), as PyTorch's out variants do:
- `out` is resized when its shape differs (with PyTorch's UserWarning when it had
  elements), and keeps its own dtype: pointwise ops and reductions may write any dtype
  the result casts to safely, other ops (and amax/amin/max/min) need the result's dtype;
- an `out` that overlaps an input is refused (pointwise ops may write over an input
  with exactly the same geometry, like an in-place op);
- autograd does not flow through `out=`: with an input that requires grad, PyTorch's
  error.
`out` is touched only through the Tensor API (shape, dtype, resize_, copy_), so this
module stays in the IR layer.
"""
from __future__ import annotations

import math
import warnings

from .errors import AutogradError, DTypeError, ShapeError, user_stacklevel

_EXACT_DTYPE_OPS = {"amax", "amin", "max", "min", "aminmax", "complex", "polar", "float_power",
                    "isposinf", "isneginf",
                    # (values, indices) reductions: values in self's dtype
                    "max_dim", "min_dim", "median_dim", "nanmedian_dim", "mode", "kthvalue"}
# non-pointwise ops whose out= takes any dtype the result casts to (torch's cat family)
_CASTING_OUT_OPS = {"cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack",
                    "column_stack", "row_stack", "cumsum", "cumprod"}


# ops whose out= dtype, with no dtype= given, is the dtype they compute in (PyTorch's
# sum/prod/cumsum/cumprod: sum of [0.5, 0.7] into an int64 out is 0, not round(1.2))
_OUT_DTYPE_IS_COMPUTE_DTYPE = {"sum", "prod", "cumsum", "cumprod"}


def out_sets_dtype(op, bound: tuple, out) -> tuple:
    """The bound arguments with dtype= taken from `out` where PyTorch does so."""
    if op.name not in _OUT_DTYPE_IS_COMPUTE_DTYPE or not hasattr(out, "dtype"):
        return bound
    names = [a.name for a in op.schema.args]
    if "dtype" not in names or bound[names.index("dtype")] is not None:
        return bound
    i = names.index("dtype")
    return bound[:i] + (out.dtype,) + bound[i + 1:]


def with_out(fn):
    """`fn` (a composite: PyTorch function written as op calls) taking PyTorch's out=
    as well; the result's dtype must equal out's."""
    import functools
    import inspect
    try:
        if "out" in inspect.signature(fn).parameters:
            return fn
    except (TypeError, ValueError):
        return fn

    @functools.wraps(fn)
    def wrapper(*args, out=None, **kwargs):
        if out is None:
            return fn(*args, **kwargs)
        shim = _Named(fn.__name__)
        check_overlap(shim, (list(args) + list(kwargs.values()),), out)
        return write_out(shim, fn(*args, **kwargs), out)
    return wrapper


class _Named:
    """What write_out/check_overlap read of an op, for a composite function."""
    def __init__(self, name):
        self.name = self.python_name = name

    class schema:  # noqa: N801 - mimics OpDef.schema: one argument holding every input
        tensor_arg_indices = (0,)

    @staticmethod
    def has_tag(tag) -> bool:
        return False


def write_out(op, result, out):
    results = result if isinstance(result, (tuple, list)) else (result,)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if len(outs) != len(results) or not all(hasattr(o, "copy_") for o in outs):
        raise DTypeError(f"{op.python_name}(): argument 'out' must be "
                         f"{'a tuple of ' + str(len(results)) + ' Tensors' if len(results) > 1 else 'Tensor'}")
    if any(getattr(r, "requires_grad", False) for r in results):
        raise AutogradError(f"{op.python_name}(): functions with out=... arguments don't "
                            f"support automatic differentiation, but one of the arguments "
                            f"requires grad.")
    for r, o in zip(results, outs):
        _check_dtype(op, r, o)
    for r, o in zip(results, outs):
        resize_out(o, r.shape)
        o.copy_(r)
    return out


def resize_out(out, shape) -> None:
    """`out` given the result's shape, with PyTorch's warning (naming the user's line)
    when it had elements."""
    if tuple(out.shape) != tuple(shape):
        if out.numel() > 0:
            warnings.warn(f"An output with one or more elements was resized since it had "
                          f"shape {list(out.shape)}, which does not match the required "
                          f"output shape {list(shape)}.", UserWarning,
                          stacklevel=user_stacklevel())
        out.resize_(list(shape))


def _check_dtype(op, result, out) -> None:
    from .dtypes import can_cast
    from .registry import Tag
    loose = (op.has_tag(Tag.POINTWISE) or op.has_tag(Tag.REDUCTION) or
             op.name in _CASTING_OUT_OPS) and op.name not in _EXACT_DTYPE_OPS
    if loose and not can_cast(result.dtype, out.dtype):
        raise DTypeError(f"result type {_torch_name(result.dtype)} can't be cast to the "
                         f"desired output type {_torch_name(out.dtype)}")
    if not loose and result.dtype != out.dtype:
        raise DTypeError(f"Expected out tensor to have dtype {result.dtype.name}, but got "
                         f"{out.dtype.name} instead")


def _torch_name(dt) -> str:
    from .dtypes import _SCALAR_TYPE_NAMES
    return _SCALAR_TYPE_NAMES.get(dt.name, dt.name)


def check_overlap(op, args: tuple, out) -> None:
    """Refuse an `out` sharing memory with an input (exact aliasing allowed for pointwise
    ops, which then behave as their in-place form)."""
    from .registry import Tag
    outs = out if isinstance(out, (tuple, list)) else (out,)
    inputs = []
    for i in op.schema.tensor_arg_indices:
        v = args[i]
        for x in (v if isinstance(v, (list, tuple)) else (v,)):
            inputs.extend(x if isinstance(x, (list, tuple)) else (x,))
    for o in outs:
        if hasattr(o, "stride") and any(st == 0 and n > 1 for n, st in zip(o.shape, o.stride())):
            raise ShapeError("unsupported operation: more than one element of the written-to "
                             "tensor refers to a single memory location. Please clone() the "
                             "tensor before performing the operation.")
        for t in inputs:
            if not hasattr(t, "untyped_storage") or not hasattr(o, "untyped_storage"):
                continue
            if t.untyped_storage() is not o.untyped_storage() or not _overlaps(t, o):
                continue
            same = tuple(t.shape) == tuple(o.shape) and t.stride() == o.stride() and \
                t.storage_offset() == o.storage_offset()
            if not (same and op.has_tag(Tag.POINTWISE)):
                raise ShapeError("unsupported operation: some elements of the input tensor "
                                 "and the written-to tensor refer to a single memory "
                                 "location. Please clone() the tensor before performing "
                                 "the operation.")


def _extent(t):
    start = t.storage_offset()
    if math.prod(t.shape) == 0:
        return start, start
    return start, start + 1 + sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride()))


def _overlaps(a, b) -> bool:
    a0, a1 = _extent(a)
    b0, b1 = _extent(b)
    return a0 < b1 and b0 < a1
