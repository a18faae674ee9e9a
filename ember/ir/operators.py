"""Python's operators and Tensor methods in terms of registry ops: one table that the
eager Tensor's dunder methods, fx's Proxy (which records `operator.add` as torch.fx
does) and the normalize pass (which turns `operator.add` back into the `add` op)
all read, so the three can never disagree.

`BINARY` rows: (the `operator` function, its registry op, the in-place op that
`x op= y` runs on a Tensor or None, whether a reflected form `__r<op>__` exists).
`UNARY` rows: (the `operator` function, its registry op; None for identity).
"""
from __future__ import annotations

import operator
from typing import NamedTuple


class BinaryOperator(NamedTuple):
    fn: object
    op_name: str
    inplace_op: str | None
    reflected: bool

    @property
    def dunder(self) -> str:
        """`__add__` for operator.add, `__and__` for operator.and_."""
        return f"__{self.fn.__name__.rstrip('_')}__"


BINARY = [
    BinaryOperator(operator.add, "add", "add_", True),
    BinaryOperator(operator.sub, "sub", "sub_", True),
    BinaryOperator(operator.mul, "mul", "mul_", True),
    BinaryOperator(operator.truediv, "div", "div_", True),
    BinaryOperator(operator.pow, "pow", "pow_", True),
    BinaryOperator(operator.matmul, "matmul", None, True),
    BinaryOperator(operator.floordiv, "floor_divide", "floor_divide_", True),
    BinaryOperator(operator.mod, "remainder", "remainder_", True),
    BinaryOperator(operator.and_, "bitwise_and", "bitwise_and_", True),
    BinaryOperator(operator.or_, "bitwise_or", "bitwise_or_", True),
    BinaryOperator(operator.xor, "bitwise_xor", "bitwise_xor_", True),
    BinaryOperator(operator.lshift, "bitwise_left_shift", "bitwise_left_shift_", True),
    BinaryOperator(operator.rshift, "bitwise_right_shift", "bitwise_right_shift_", True),
    BinaryOperator(operator.eq, "eq", None, False),
    BinaryOperator(operator.ne, "ne", None, False),
    BinaryOperator(operator.lt, "lt", None, False),
    BinaryOperator(operator.le, "le", None, False),
    BinaryOperator(operator.gt, "gt", None, False),
    BinaryOperator(operator.ge, "ge", None, False),
]

UNARY = [(operator.neg, "neg"), (operator.abs, "abs"), (operator.invert, "bitwise_not"),
         (operator.pos, None)]

# operator function -> registry op name (None: the identity, operator.pos)
OPERATOR_OPS: dict = {row.fn: row.op_name for row in BINARY} | dict(UNARY)

# PyTorch methods whose sizes may come as varargs: x.view(2, 3) == x.view((2, 3))
VARARG_METHODS = frozenset({"view", "reshape", "permute", "expand", "repeat", "tile", "flip"})


def pack_sizes(args) -> list:
    """The varargs of `x.view(2, 3)` or the one sequence of `x.view((2, 3))` as a list."""
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        return list(args[0])
    if len(args) == 1 and hasattr(args[0], "__len__") and not isinstance(args[0], int) \
            and getattr(args[0], "ndim", 1) != 0:     # a 0-d tensor is one size
        return list(args[0])
    return list(args)
