"""PyTorch's own OpInfo database (op_db) as a second test table beside ember's samples.

Every in-scope CPU entry is mapped by name to ember (`tools/opinfo.py` says how) and
must pass its samples in float32/float64/complex64/int64/bool (those torch supports for
it), values and float64 gradients (the first six samples of each); and every one of its
error_inputs must raise torch's exception type. Entries that do not pass yet are listed,
each with its reason, in
`opinfo_expected_failures.txt` beside this file (`name [errors]` for the error inputs);
they run as strict xfails, so one that starts passing fails here until it is taken off.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("expecttest", reason="PyTorch's OpInfo database needs expecttest")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import opinfo  # noqa: E402

EXPECTED = opinfo.read_expected(Path(__file__).with_name("opinfo_expected_failures.txt"))
ENTRIES = {k: v for k, v in opinfo.entries().items() if opinfo.in_scope(v.name)}
_RECORDS: dict[str, dict] = {}


def _record(key):
    """One check per entry, shared by the values and the error-inputs test."""
    if key not in _RECORDS:
        # every error input (making them is most of their cost), six samples per dtype
        _RECORDS[key] = opinfo.check_entry(ENTRIES[key], limit=6, error_limit=10_000)
    return _RECORDS[key]


def _params(suffix=""):
    out = []
    for key in sorted(ENTRIES):
        why = EXPECTED.get(key + suffix)
        marks = [pytest.mark.xfail(reason=why[:200], strict=True)] if why else []
        out.append(pytest.param(key, marks=marks, id=key))
    return out


@pytest.mark.parametrize("key", _params())
def test_opinfo_entry(key):
    record = _record(key)
    assert record["exists"], f"{key}: not in ember"
    assert not record["failures"], f"{key}: " + "\n".join(record["failures"][:5])


@pytest.mark.parametrize("key", _params(" [errors]"))
def test_opinfo_error_inputs(key):
    record = _record(key)
    if not record["exists"]:
        pytest.skip(f"{key} is not in ember (see test_opinfo_entry)")
    assert not record["error_failures"], f"{key}: " + "\n".join(record["error_failures"][:5])


def test_expected_failures_name_real_entries():
    names = {k.removesuffix(" [errors]") for k in EXPECTED}
    stale = sorted(names - set(ENTRIES))
    assert not stale, f"opinfo_expected_failures.txt names entries op_db lacks: {stale}"
