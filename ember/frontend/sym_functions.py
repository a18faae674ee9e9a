"""torch.sym_int, sym_float, sym_max, ... and the SymInt/SymFloat/SymBool types.

Export-friendly code calls these on sizes so that symbolic sizes stay symbolic. ember's
eager sizes are Python ints, and a dynamic-shape trace's sizes are ints as well
(ir/symdim.py's TracedSize, which `SymInt` names), so each function is its Python meaning
on plain numbers, as torch's are on concrete values."""
from __future__ import annotations

import builtins
import math

from ..ir.symdim import TracedSize as SymInt  # noqa: F401 - torch.SymInt: a traced size
from ..ir.symdim import note_decision


class SymFloat:
    """torch.SymFloat: a symbolic float. ember traces no float symbolically, so no value is
    one (isinstance(x, SymFloat) is False, as in torch for a concrete float)."""


class SymBool:
    """torch.SymBool: a symbolic bool; as with SymFloat, no ember value is one."""


def sym_int(a):
    """An int, truncated toward zero (torch.sym_int(-3.7) == -3)."""
    return math.trunc(a) if isinstance(a, float) else builtins.int(a)


def sym_float(a):
    return builtins.float(a)


def sym_max(a, b):
    """The larger; a float if either is a float (torch.sym_max(2, 3.0) == 3.0). On a
    dynamic size while ember.export traces, the choice is recorded as the user's (export
    refuses it naming the line where it may change with the size: torch keeps Max)."""
    note_decision("sym_max", a, b)
    result = b if a < b else a
    return builtins.float(result) if isinstance(a, float) or isinstance(b, float) else result


def sym_min(a, b):
    note_decision("sym_min", a, b)
    result = b if b < a else a
    return builtins.float(result) if isinstance(a, float) or isinstance(b, float) else result


def sym_not(a):
    return not a


def sym_ite(b, t, f):
    """`t if b else f` for symbolic conditions."""
    return t if b else f


def sym_sum(args):
    return builtins.sum(args)


def sym_sqrt(a):
    return math.sqrt(a)


def sym_constrain_range(size, *, min=None, max=None) -> None:
    """Checks a concrete size lies in [min, max], as torch does (the bound of a symbolic one)."""
    low = -(1 << 63) if min is None else min       # int64's range, torch's default bounds
    high = (1 << 63) - 1 if max is None else max
    if not low <= size <= high:
        raise RuntimeError(f"Invalid value range for {size} between [{low}, {high}].")


def sym_constrain_range_for_size(size, *, min=None, max=None) -> None:
    """A size is non-negative; with bounds, also within them."""
    sym_constrain_range(size, min=0 if min is None else min, max=max)


TOP_LEVEL = {name: value for name, value in globals().items()
             if name.startswith(("sym_", "Sym"))}
