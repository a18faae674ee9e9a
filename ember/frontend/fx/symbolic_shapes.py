"""torch.fx.experimental.symbolic_shapes' helpers for code that must work with
concrete and symbolic sizes alike.

ember's eager and traced sizes are Python ints and bools (a dynamic-shape compile's
`TracedSize` is an int too), so these answer as torch's do for concrete values: the
`guard_*` functions return the value after checking its type, the "statically known"
questions answer from it, and nothing has free symbols. An IR `SymDim` (`s0`) is the one
symbolic size: not concrete, with the free symbol `s0`.
"""
from __future__ import annotations

from ...ir.symdim import SymDim


def _check(value, kinds, what: str):
    if not isinstance(value, kinds):
        raise AssertionError(f"Expected {what}, got {type(value)}")
    return value


def is_concrete_int(a) -> bool:
    if isinstance(a, SymDim):
        return False
    _check(a, int, "SymInt or int")
    return True


def is_concrete_float(a) -> bool:
    _check(a, float, "SymFloat or float")
    return True


def is_concrete_bool(a) -> bool:
    _check(a, bool, "SymBool or bool")
    return True


def is_symbolic(a) -> bool:
    return isinstance(a, SymDim)


def guard_int(a) -> int:
    if not isinstance(a, int):
        raise AssertionError(f"Expected int, got {a}")
    return a


def guard_float(a) -> float:
    if not isinstance(a, float):
        raise AssertionError(f"Expected float, got {a}")
    return a


def guard_bool(a) -> bool:
    if not isinstance(a, bool):
        raise AssertionError(f"Expected bool, got {a}")
    return a


def guard_scalar(a):
    if isinstance(a, bool):
        return guard_bool(a)
    if isinstance(a, int):
        return guard_int(a)
    if isinstance(a, float):
        return guard_float(a)
    raise AssertionError(f"unrecognized scalar {a}")


def _known_bool(a) -> bool:
    return _check(a, bool, "bool")


def guard_size_oblivious(expr) -> bool:
    return _known_bool(expr)


def guard_or_false(a) -> bool:
    return _known_bool(a)


def guard_or_true(a) -> bool:
    return _known_bool(a)


def expect_true(a, skip: int = 0) -> bool:
    return _known_bool(a)


def statically_known_true(x) -> bool:
    return _known_bool(x)


def statically_known_false(x) -> bool:
    return not _known_bool(x)


def free_symbols(val) -> set:
    """The symbols `val` (a size, a list of them, or a tensor) depends on."""
    if isinstance(val, SymDim):
        return {"s0"}
    if isinstance(val, (list, tuple)):
        found = set()
        for item in val:
            found |= free_symbols(item)
        return found
    return set()


def has_free_symbols(val) -> bool:
    return bool(free_symbols(val))


def sym_eq(x, y):
    """`x == y`, element by element for lists and tuples of sizes."""
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(sym_eq(a, b) for a, b in zip(x, y))
    if isinstance(x, (int, float, bool, SymDim)) and isinstance(y, (int, float, bool, SymDim)):
        return x == y
    raise AssertionError(f"unexpected sym_eq between {type(x)} {type(y)}")


__all__ = ["is_concrete_int", "is_concrete_float", "is_concrete_bool", "is_symbolic",
           "guard_int", "guard_float", "guard_bool", "guard_scalar", "guard_size_oblivious",
           "guard_or_false", "guard_or_true", "expect_true", "statically_known_true",
           "statically_known_false", "free_symbols", "has_free_symbols", "sym_eq"]
