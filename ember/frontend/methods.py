"""Tensor methods and operators, generated from the registry.

Every op declared `method=True` becomes `Tensor.<name>` calling the op with the
tensor first; operators map to ops (`a + b` -> add). Methods that PyTorch lets
take sizes as varargs (`x.view(2, 3)`) get their arguments packed here, once.
"""
from __future__ import annotations

import warnings

from ..ir.composite import install_methods as install_composites
from ..ir.dtypes import DType
from ..ir.errors import user_stacklevel
from ..ir.meta import contiguous_format
from ..ir.operators import BINARY, UNARY, VARARG_METHODS, pack_sizes as _pack_sizes
from ..ir.registry import OPS
from ..ir.torch_function import NOT_OVERRIDDEN, STATE as _TF_STATE, DispatchFailed, \
    dispatch_public
from .eager_fast import operator_method, operator_operand
from .tensor import Tensor


def _method(op):
    if op.python_name in VARARG_METHODS:
        def method(self, *args, **kwargs):
            if args:
                return op(self, _pack_sizes(args), **kwargs)
            return op(self, **kwargs)
    else:
        def method(self, *args, **kwargs):
            return op(self, *args, **kwargs)
    method.__name__ = op.python_name
    method.__doc__ = op.doc or f"See ember.{op.python_name}."
    METHOD_CODES.add(method.__code__)
    return method


# the code of the generated methods above: __torch_function__ (frontend/torch_function.py)
# reads a caller frame running one of them as a call of that Tensor method
METHOD_CODES: set = set()


def _reciprocal_times(self, other):
    """torch's eager `number / x` is `x.reciprocal() * number` (two roundings, not one):
    ember's eager results match torch's bit for bit. Traced values record the division."""
    return OPS["mul"](OPS["reciprocal"](self), other)


def _binary(op_name, reflected=False, compute=None):
    if reflected:
        def method(self, other):
            if _TF_STATE.on and _TF_STATE.level:     # __torch_function__ (ir/torch_function.py)
                try:
                    result = dispatch_public(method, (self, other), None, True)
                except DispatchFailed:
                    return NotImplemented
                if result is not NOT_OVERRIDDEN:
                    return result
            other = operator_operand(other)
            if other is NotImplemented:
                return NotImplemented
            return compute(self, other) if compute else OPS[op_name](other, self)
    else:
        # seen CPU calls skip schema binding and dispatch (eager_fast.py)
        return operator_method(op_name)
    method.__name__ = op_name
    return method


def _operator_table() -> dict:
    """dunder -> (op name, reflected), from ir.operators' one table."""
    table = {}
    for row in BINARY:
        table[row.dunder] = (row.op_name, False)
        if row.reflected:
            table[row.dunder.replace("__", "__r", 1)] = (row.op_name, True)
        if row.inplace_op:
            table[row.dunder.replace("__", "__i", 1)] = (row.inplace_op, False)
    # Python 2's division names, which PyTorch's Tensor still defines
    table["__div__"], table["__rdiv__"], table["__idiv__"] = \
        table["__truediv__"], table["__rtruediv__"], table["__itruediv__"]
    return table


OPERATORS = _operator_table()
UNARY_OPERATORS = {f"__{fn.__name__}__": name for fn, name in UNARY}


def _tensor_second(op):
    """`x.polygamma(n)` for `polygamma(n, x)`: the tensor is the op's second argument."""
    def method(self, first, *args, **kwargs):
        return op(first, self, *args, **kwargs)
    method.__name__ = op.python_name
    method.__doc__ = op.doc or f"See ember.{op.python_name}."
    return method


def _where_method(op):
    """`x.where(condition, y)` is where(condition, x, y): the tensor is the op's SECOND
    argument (binding it first would select by x's truthiness, silently wrong)."""
    def method(self, condition, other):
        return op(condition, self, other)
    method.__name__ = op.python_name
    method.__doc__ = op.doc or f"See ember.{op.python_name}."
    return method


def _value_keyword(op):
    """torch's Scalar overload `x.scatter_(dim, index, value=1.0)` names the number
    `value`; ember's one schema calls it src (and takes a number there)."""
    def method(self, *args, **kwargs):
        if "value" in kwargs and "src" not in kwargs:
            kwargs["src"] = kwargs.pop("value")
        return op(self, *args, **kwargs)
    method.__name__ = op.python_name
    method.__doc__ = op.doc or f"See ember.{op.python_name}."
    return method


def _view_or_dtype(op):
    """torch's two `view` overloads: x.view(*sizes) and x.view(dtype) (bits reread)."""
    sized = _method(op)

    def method(self, *args, **kwargs):
        if len(args) == 1 and isinstance(args[0], DType) and not kwargs:
            return OPS["view_dtype"](self, args[0])
        if not args and set(kwargs) == {"dtype"}:
            return OPS["view_dtype"](self, kwargs["dtype"])
        return sized(self, *args, **kwargs)
    method.__name__ = "view"
    method.__doc__ = "x.view(*sizes): a view with another shape; x.view(dtype): see view_dtype."
    return method


REORDERED_METHODS = {"polygamma": _tensor_second, "where": _where_method,
                     "scatter": _value_keyword, "scatter_": _value_keyword,
                     "view": _view_or_dtype}


def _contiguous(self, memory_format=contiguous_format):
    """Returns self when already contiguous in `memory_format`, as PyTorch does."""
    if self.is_contiguous(memory_format):
        return self
    return OPS["contiguous"](self, memory_format=memory_format)


def _unary(op_name):
    def method(self):
        return self if op_name is None else OPS[op_name](self)
    method.__name__ = op_name or "positive"
    return method


_TORCH_NAMES = {"__rtruediv__": "__rdiv__", "__pow__": "pow"}


def install(cls=Tensor) -> None:
    """Attach op methods and operators to `cls` (Tensor, and fx's Proxy)."""
    for op in OPS.values():
        if op.method and op.namespace == "":
            setattr(cls, op.python_name, _method(op))
    for dunder, (name, reflected) in OPERATORS.items():
        if name in OPS:
            eager_rdiv = cls is Tensor and name == "div" and reflected
            setattr(cls, dunder, _binary(name, reflected, _reciprocal_times if eager_rdiv else None))
            # torch's names: `Tensor.__eq__.__name__ == "__eq__"` (a few differ)
            getattr(cls, dunder).__name__ = _TORCH_NAMES.get(dunder, dunder)
    for dunder, name in UNARY_OPERATORS.items():
        if name is None or name in OPS:
            setattr(cls, dunder, _unary(name))
            if dunder == "__invert__":
                cls.__invert__.__name__ = dunder
    for name, make in REORDERED_METHODS.items():
        if name in OPS:
            setattr(cls, name, make(OPS[name]))
    cls.contiguous = _contiguous
    cls.__hash__ = lambda self: id(self)
    install_composites(cls)


# --- traced values ------------------------------------------------------------------------------
# Tensor methods that work unchanged on a value being traced into a graph (ir.symbolic's
# SymbolicTensor): they only call ops and read shape/dtype/device. Indexing writes record
# copy_/index_put_ on a view, so `m = ember.zeros(4, 4); m[0:2, 0:2] = 1.0` traces.
TRACED_TENSOR_METHODS = (
    "to", "cpu", "cuda", "type", "type_as", "float", "double", "half", "bfloat16", "int",
    "long", "short", "char", "byte", "bool", "cfloat", "cdouble",
    "new_tensor", "new_zeros", "new_ones", "new_full", "new_empty",
    "__getitem__", "__setitem__",
)


def install_traced(cls) -> None:
    """Give the tracer's value class Tensor's traceable methods, PyTorch's iteration and
    sizes, and errors in Tensor's vocabulary for the rest."""
    for name in TRACED_TENSOR_METHODS:
        setattr(cls, name, Tensor.__dict__[name])
    cls.__iter__ = _iterate_rows
    cls.nelement = lambda self: self.numel()
    cls.element_size = lambda self: self.dtype.itemsize
    cls.is_cuda = property(lambda self: str(self.device).startswith("cuda"))
    cls.__getattr__ = _missing_while_traced


def _iterate_rows(self):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    return (self[i] for i in range(self.shape[0]))


def _missing_while_traced(self, name: str):
    """Attribute lookup that failed on a traced value: name Tensor, never the tracer's class."""
    if name.startswith("_") or not hasattr(Tensor, name):
        raise AttributeError(f"'Tensor' object has no attribute {name!r}")
    from ..ir.errors import at_user_line
    raise AttributeError(
        f"Tensor.{name} is not supported on a tensor computed inside a function being traced "
        f"into a graph (ember.compile){at_user_line()}\n  the same line runs eagerly: call it "
        f"outside the compiled function, or compile the code before and after it separately")


# --- attributes that are views: x.T, x.mT, x.H, x.mH, x.real, x.imag -------------------
def _reverse_dims(self):
    return OPS["permute"](self, list(range(self.ndim - 1, -1, -1)))


# torch warns once per process about x.T off matrices (each of its two warnings)
_T_WARNED: set = set()


def _transpose_all(self):
    """x.T: all dims reversed, with torch's deprecation warnings off matrices."""
    kind = "0-d" if self.ndim == 0 else "not 2-d" if self.ndim != 2 else None
    if kind is None or kind in _T_WARNED:
        return _reverse_dims(self)
    _T_WARNED.add(kind)
    if self.ndim == 0:
        warnings.warn("Tensor.T is deprecated on 0-D tensors. This function is the identity "
                      "in these cases.", UserWarning, stacklevel=user_stacklevel())
    elif self.ndim != 2:
        warnings.warn("The use of `x.T` on tensors of dimension other than 2 to reverse their "
                      "shape is deprecated and it will throw an error in a future release. "
                      "Consider `x.mT` to transpose batches of matrices or "
                      "`x.permute(*range(x.ndim - 1, -1, -1))` to reverse the dimensions of a "
                      "tensor.", UserWarning, stacklevel=user_stacklevel())
    return _reverse_dims(self)


def _matrix_transpose(self):
    if self.ndim < 2:
        raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. "
                           f"Got {self.ndim}-D tensor.")
    return OPS["transpose"](self, -2, -1)


def _conj_if_complex(t):
    return OPS["conj"](t) if t.dtype.is_complex else t


def _hermitian(self):
    if self.ndim not in (0, 2):
        raise RuntimeError(f"tensor.H is only supported on matrices (2-D tensors). Got "
                           f"{self.ndim}-D tensor.")
    return _conj_if_complex(_reverse_dims(self))


def _matrix_hermitian(self):
    if self.ndim < 2:
        raise RuntimeError(f"tensor.mH is only supported on matrices or batches of matrices. "
                           f"Got {self.ndim}-D tensor.")
    return _conj_if_complex(OPS["transpose"](self, -2, -1))


def _real(self):
    """A view of the real part (self itself, for real tensors), as PyTorch."""
    return OPS["real"](self) if self.dtype.is_complex else self


def _imag(self):
    if not self.dtype.is_complex:
        raise RuntimeError("imag is not implemented for tensors with non-complex dtypes.")
    return OPS["imag"](self)


def _set_part(getter):
    def setter(self, value):
        part = getter(self)
        part.copy_(value if isinstance(value, Tensor) else Tensor._from_array(
            __import__("numpy").asarray(value)))
    return setter


def install_attributes(cls=Tensor) -> None:
    """PyTorch's view attributes, on classes whose attribute access is not itself recorded
    (Tensor and the graph builder's symbolic tensors; fx's Proxy records getattr nodes)."""
    cls.T = property(_transpose_all)
    cls.mT = property(_matrix_transpose)
    cls.H = property(_hermitian)
    cls.mH = property(_matrix_hermitian)
    cls.real = property(_real, _set_part(_real))
    cls.imag = property(_imag, _set_part(_imag))
