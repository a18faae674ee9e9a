"""Shared by tests/fx/test_fx_suite2_*.py: run the same code with torch.fx and ember.fx and
compare what a user sees (library names made neutral)."""
from __future__ import annotations

import torch

import ember


def neutral(text) -> str:
    """`text` with either library's name replaced, so generated code and messages compare."""
    return str(text).replace("torch", "LIB").replace("ember", "LIB")


def same(build):
    """build(torch) == build(ember); returns ember's."""
    expected, got = build(torch), build(ember)
    assert got == expected
    return got


def outcome(fn):
    """('ok', value) or (error kinds, first line of the message)."""
    try:
        return ("ok", fn())
    except Exception as e:     # noqa: BLE001 - the kind is what is compared
        kinds = [k.__name__ for k in (TypeError, ValueError, RuntimeError, AttributeError,
                                      AssertionError) if isinstance(e, k)]
        return kinds, neutral(str(e).split("\n")[0])
