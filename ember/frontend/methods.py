"""Tensor methods and operators, generated from the registry.

Every op declared `method=True` becomes `Tensor.<name>` calling the op with the
tensor first; operators map to ops (`a + b` -> add). Methods that PyTorch lets
take sizes as varargs (`x.view(2, 3)`) get their arguments packed here, once.
"""
from __future__ import annotations

from ..ir.composite import install_methods as install_composites
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
    "__rlshift__": ("bitwise_left_shift", True), "__rrshift__": ("bitwise_right_shift", True),
    "__ilshift__": ("bitwise_left_shift_", False), "__irshift__": ("bitwise_right_shift_", False),
    "__iand__": ("bitwise_and_", False), "__ior__": ("bitwise_or_", False),
    "__ixor__": ("bitwise_xor_", False), "__ifloordiv__": ("floor_divide_", False),
    "__imod__": ("remainder_", False),
    # Python 2 names PyTorch still defines
    "__div__": ("div", False), "__rdiv__": ("div", True), "__idiv__": ("div_", False),
    "__eq__": ("eq", False), "__ne__": ("ne", False), "__lt__": ("lt", False),
    "__le__": ("le", False), "__gt__": ("gt", False), "__ge__": ("ge", False),
}

UNARY_OPERATORS = {"__neg__": "neg", "__abs__": "abs", "__invert__": "bitwise_not",
                   "__pos__": None}


def _tensor_second(op):
    """`x.polygamma(n)` for `polygamma(n, x)`: the tensor is the op's second argument."""
    def method(self, first, *args, **kwargs):
        return op(first, self, *args, **kwargs)
    method.__name__ = op.python_name
    method.__doc__ = op.doc or f"See ember.{op.python_name}."
    return method


REORDERED_METHODS = {"polygamma": _tensor_second}


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
