"""`ember._assert`: an assertion that tracing records as a call (torch._assert).

A plain `assert` needs a concrete bool, so it cannot appear in a symbolically
traced program; `ember._assert(cond, msg)` can: ember.fx records it as a
call_function node, and running the graph checks the condition then.
"""
from __future__ import annotations

from ..ir.graph import has_side_effect


@has_side_effect        # dead-code elimination keeps the check (torch._assert is marked too)
def _assert(condition, message: str) -> None:
    """Raise AssertionError(message) unless `condition` is true (a bool, or a
    one-element tensor, as torch._assert)."""
    if not bool(condition):
        raise AssertionError(message)


_assert.__module__ = "ember"


# --- torch._check and its family ----------------------------------------------------------
# Runtime checks with torch's exception types. In torch they also teach export's symbolic
# shapes facts about unbacked values; ember traces no unbacked value (a .item() inside a
# trace is refused naming the line), so each is its check on the concrete value.
_DEFAULT_MESSAGE = "Expected cond to be True, but got False."


def _check_with(error_type, cond, message) -> None:
    """torch._check_with: raise `error_type(message())` unless `cond` is true. While
    ember.export traces, a condition on a value read with .item() is taken as a fact
    (ir/unbacked.py: it bounds the value and the exported program checks it)."""
    from ..ir.unbacked import ValueCondition
    if isinstance(cond, ValueCondition):
        cond.assume()
        return
    if not isinstance(cond, bool) and not hasattr(cond, "__bool__"):
        raise TypeError(f"cond must be a bool, but got {type(cond)}")
    if bool(cond):
        return
    text = _DEFAULT_MESSAGE if message is None else message()
    if not isinstance(text, str):
        raise TypeError(f"message must return a str, got {type(text).__name__}")
    raise error_type(text)


def _check(cond, message=None) -> None:
    """torch._check: RuntimeError unless `cond`; `message` is a callable giving the text."""
    _check_with(RuntimeError, cond, message)


def _check_index(cond, message=None) -> None:
    _check_with(IndexError, cond, message)


def _check_value(cond, message=None) -> None:
    _check_with(ValueError, cond, message)


def _check_type(cond, message=None) -> None:
    _check_with(TypeError, cond, message)


def _check_not_implemented(cond, message=None) -> None:
    _check_with(NotImplementedError, cond, message)


def _check_is_size(i, message=None, *, max=None) -> None:  # noqa: A002 - torch's name
    """torch._check_is_size: `i` is a size (>= 0), and <= max when given."""
    from ..ir.unbacked import UnbackedValue
    if isinstance(i, UnbackedValue) and i.decide("ge", 0) is None:
        (i >= 0).assume()
    _check(i >= 0, message)
    if max is not None:
        _check(i <= max, message)


def _check_tensor_all_with(error_type, cond, message=None) -> None:
    """Every element of the bool tensor `cond` is true."""
    if getattr(cond, "dtype", None) is None or cond.dtype.name != "bool":
        raise TypeError(f"cond must be a tensor with dtype bool, got {cond!r}")
    _check_with(error_type, bool(cond.all()), message)


def _check_tensor_all(cond, message=None) -> None:
    _check_tensor_all_with(RuntimeError, cond, message)


def _constrain_as_size(symbol, min=None, max=None) -> None:  # noqa: A002 - torch's names
    """torch._constrain_as_size: `symbol` is a size within [min, max]."""
    from .sym_functions import sym_constrain_range_for_size
    sym_constrain_range_for_size(symbol, min=min, max=max)


CHECKS = {name: value for name, value in list(globals().items())
          if name.startswith("_check") or name == "_constrain_as_size"}
for _fn in CHECKS.values():
    _fn.__module__ = "ember"
