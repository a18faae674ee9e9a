"""PyTorch's own OpInfo database (op_db) as a second test table beside ember's samples.

Every in-scope CPU entry is mapped by name to ember (`tools/opinfo.py` says how) and
must pass every sample in float32/float64/complex64/int64/bool (those torch supports for
it), values and float64 gradients. Entries that do not pass yet are listed, each with its
reason, in `opinfo_expected_failures.txt` beside this file; they run as strict xfails, so
one that starts passing fails here until it is taken off the list.
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


def _param(key):
    if key in EXPECTED:
        return pytest.param(key, marks=pytest.mark.xfail(reason=EXPECTED[key][:200],
                                                         strict=True))
    return key


@pytest.mark.parametrize("key", [_param(k) for k in sorted(ENTRIES)])
def test_opinfo_entry(key):
    record = opinfo.check_entry(ENTRIES[key], limit=6)
    assert record["exists"], f"{key}: not in ember"
    assert not record["failures"], f"{key}: " + "\n".join(record["failures"][:5])


def test_expected_failures_name_real_entries():
    stale = sorted(set(EXPECTED) - set(ENTRIES))
    assert not stale, f"opinfo_expected_failures.txt names entries op_db lacks: {stale}"
