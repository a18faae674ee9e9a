"""`.item()` while ember.export traces: a value the trace cannot know (torch.export's
unbacked symbol), bounded by the model's `torch._check` calls.

    a = x.item()
    torch._check(a >= 0)        # bounds: a in [0, inf)
    torch._check(a <= 5)        #         a in [0, 5], checked when the program runs
    if a < 6:                   # the bounds decide it: the trace takes this branch
        return y.sin()

A comparison the bounds decide is a plain bool. One they do not decide is a
`ValueCondition`: `torch._check` takes it as a fact (narrowing the bounds and recording
a check the exported program runs on every call, as torch's runtime assertions do),
and anything else that needs its truth (`if`, `and`, `assert`) is refused naming the
user's line. Using the value as a number (a size, arithmetic, an index) is refused
too: ember's graphs carry no data-dependent sizes.

The export sets `recording_items()`; outside it `.item()` of a traced tensor is
refused as before (ir/symbolic.py).
"""
from __future__ import annotations

import contextlib
import math

from .errors import TraceError, format_frame, user_frame

# the checks of the export tracing now ([(value, op, bound, where)]); None: not exporting
_CHECKS: list | None = None

_OPS = {"lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b}
_SYMBOL = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


@contextlib.contextmanager
def recording_items():
    """While active, `.item()` of a traced tensor gives an UnbackedValue; yields the
    list of the checks `torch._check` recorded on such values."""
    global _CHECKS
    previous, _CHECKS = _CHECKS, []
    try:
        yield _CHECKS
    finally:
        _CHECKS = previous


def items_allowed() -> bool:
    return _CHECKS is not None


def _line() -> str:
    frame = user_frame()
    return format_frame(frame).split("\n")[0] if frame is not None else "an unknown line"


class UnbackedValue:
    """The value `.item()` reads from a traced one-element tensor (see the module doc)."""

    def __init__(self, tensor, is_integer: bool):
        self.tensor = tensor
        self.is_integer = is_integer
        self.lo, self.hi = -math.inf, math.inf
        self.where = _line()

    def __repr__(self) -> str:
        return f"<value of .item() at {self.where} in [{self.lo}, {self.hi}]>"

    def decide(self, op: str, bound):
        """True/False when the bounds fix `self <op> bound`, else None."""
        if op in ("eq", "ne"):
            outside = bound < self.lo or bound > self.hi
            if self.lo == self.hi == bound:
                return op == "eq"
            return (op == "ne") if outside else None
        everywhere = [_OPS[op](v, bound) for v in (self.lo, self.hi)]
        return everywhere[0] if everywhere[0] == everywhere[1] else None

    def assume(self, op: str, bound) -> None:
        """Narrow the bounds by the fact `self <op> bound`."""
        step = 1 if self.is_integer else 0
        if op in ("ge", "eq"):
            self.lo = max(self.lo, bound)
        if op == "gt":
            self.lo = max(self.lo, math.floor(bound) + 1 if self.is_integer else bound)
        if op in ("le", "eq"):
            self.hi = min(self.hi, bound)
        if op == "lt":
            self.hi = min(self.hi, math.ceil(bound) - step if self.is_integer else bound)

    def _compare(op):
        def method(self, other):
            if isinstance(other, UnbackedValue) or not isinstance(other, (int, float)):
                return _refuse_use(self, f"a comparison with {type(other).__name__}")
            decided = self.decide(op, other)
            return decided if decided is not None else ValueCondition(self, op, other)
        return method

    __lt__, __le__ = _compare("lt"), _compare("le")
    __gt__, __ge__ = _compare("gt"), _compare("ge")
    __eq__, __ne__ = _compare("eq"), _compare("ne")
    __hash__ = object.__hash__

    def __bool__(self):
        return bool(self != 0)

    def _as_number(what):
        def method(self, *args):
            return _refuse_use(self, what)
        return method

    __int__ = __index__ = _as_number("int()/use as a size or an index")
    __float__ = _as_number("float()")
    __add__ = __radd__ = __sub__ = __rsub__ = _as_number("arithmetic")
    __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _as_number("arithmetic")
    __floordiv__ = __rfloordiv__ = __mod__ = __neg__ = _as_number("arithmetic")


def _refuse_use(value: UnbackedValue, what: str):
    raise TraceError(
        f"ember.export: {what} of the value read with .item() at {value.where}, at "
        f"{_line()}: the value is known only when the program runs, and ember's exported "
        "graphs carry no size or number that depends on tensor data (keep it a tensor, "
        "e.g. x instead of x.item())")


class ValueCondition:
    """`value <op> bound` that the value's bounds do not decide (see the module doc)."""

    def __init__(self, value: UnbackedValue, op: str, bound):
        self.value, self.op, self.bound = value, op, bound

    def text(self) -> str:
        return f".item() {_SYMBOL[self.op]} {self.bound}"

    def __bool__(self):
        raise TraceError(
            f"ember.export: the model branches on {self.text()} (the value read at "
            f"{self.value.where}) at {_line()}, which is not known until the program runs; "
            "bound the value first with torch._check(...) so the branch is decided, as "
            "torch.export asks, or choose with torch.cond")

    def assume(self) -> None:
        """torch._check(condition): the fact narrows the bounds and is checked when the
        exported program runs."""
        self.value.assume(self.op, self.bound)
        if _CHECKS is not None:
            _CHECKS.append((self.value.tensor, self.op, self.bound,
                            f"{self.text()} (torch._check at {_line()})"))


def holds(op: str, value, bound) -> bool:
    return _OPS[op](value, bound)
