"""Tensor methods and operators, generated from the registry.

Every op declared `method=True` becomes `Tensor.<name>` calling the op with the
tensor first; operators map to ops (`a + b` -> add). Methods that PyTorch lets
take sizes as varargs (`x.view(2, 3)`) get their arguments packed here, once.
"""
from __future__ import annotations

from ..ir.meta import contiguous_format
from ..ir.operators import BINARY, UNARY, VARARG_METHODS, pack_sizes as _pack_sizes
from ..ir.registry import OPS
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
    return method


def _binary(op_name, reflected=False):
    def method(self, other):
        op = OPS[op_name]
        return op(other, self) if reflected else op(self, other)
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
    return table


OPERATORS = _operator_table()
UNARY_OPERATORS = {f"__{fn.__name__}__": name for fn, name in UNARY}


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
