"""Tensor methods and operators, generated from the registry.

Every op declared `method=True` becomes `Tensor.<name>` calling the op with the
tensor first; operators map to ops (`a + b` -> add). Methods that PyTorch lets
take sizes as varargs (`x.view(2, 3)`) get their arguments packed here, once.
"""
from __future__ import annotations

from ..ir.meta import contiguous_format
from ..ir.registry import OPS
from .tensor import Tensor

# PyTorch methods whose first argument may be given as varargs: x.view(2, 3)
VARARG_METHODS = {"view", "reshape", "permute", "expand", "repeat", "tile", "flip"}


def _pack_sizes(args):
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        return list(args[0])
    if len(args) == 1 and hasattr(args[0], "__len__") and not isinstance(args[0], int):
        return list(args[0])
    return list(args)


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
    return method


def _binary(op_name, reflected=False):
    def method(self, other):
        op = OPS[op_name]
        return op(other, self) if reflected else op(self, other)
    method.__name__ = op_name
    return method


OPERATORS = {
    "__add__": ("add", False), "__radd__": ("add", True), "__iadd__": ("add_", False),
    "__sub__": ("sub", False), "__rsub__": ("sub", True), "__isub__": ("sub_", False),
    "__mul__": ("mul", False), "__rmul__": ("mul", True), "__imul__": ("mul_", False),
    "__truediv__": ("div", False), "__rtruediv__": ("div", True), "__itruediv__": ("div_", False),
    "__pow__": ("pow", False), "__rpow__": ("pow", True), "__ipow__": ("pow_", False),
    "__matmul__": ("matmul", False), "__rmatmul__": ("matmul", True),
    "__floordiv__": ("floor_divide", False), "__rfloordiv__": ("floor_divide", True),
    "__mod__": ("remainder", False), "__rmod__": ("remainder", True),
    "__and__": ("bitwise_and", False), "__rand__": ("bitwise_and", True),
    "__or__": ("bitwise_or", False), "__ror__": ("bitwise_or", True),
    "__xor__": ("bitwise_xor", False), "__rxor__": ("bitwise_xor", True),
    "__lshift__": ("bitwise_left_shift", False), "__rshift__": ("bitwise_right_shift", False),
    "__eq__": ("eq", False), "__ne__": ("ne", False), "__lt__": ("lt", False),
    "__le__": ("le", False), "__gt__": ("gt", False), "__ge__": ("ge", False),
}

UNARY_OPERATORS = {"__neg__": "neg", "__abs__": "abs", "__invert__": "bitwise_not",
                   "__pos__": None}


def _contiguous(self, memory_format=contiguous_format):
    """Returns self when already contiguous in `memory_format`, as PyTorch does."""
    if self.is_contiguous(memory_format):
        return self
    return OPS["contiguous"](self, memory_format=memory_format)


def _unary(op_name):
    def method(self):
        return self if op_name is None else OPS[op_name](self)
    return method


def install(cls=Tensor) -> None:
    """Attach op methods and operators to `cls` (Tensor, and fx's Proxy)."""
    for op in OPS.values():
        if op.method and op.namespace == "":
            setattr(cls, op.python_name, _method(op))
    for dunder, (name, reflected) in OPERATORS.items():
        if name in OPS:
            setattr(cls, dunder, _binary(name, reflected))
    for dunder, name in UNARY_OPERATORS.items():
        if name is None or name in OPS:
            setattr(cls, dunder, _unary(name))
    cls.contiguous = _contiguous
    cls.__hash__ = lambda self: id(self)


# --- attributes that are views: x.T, x.mT, x.H, x.mH, x.real, x.imag -------------------
def _transpose_all(self):
    return OPS["permute"](self, list(range(self.ndim - 1, -1, -1)))


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
    return _conj_if_complex(_transpose_all(self))


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
