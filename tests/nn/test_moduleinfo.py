"""PyTorch's own ModuleInfo database (module_db) run against ember.nn.

Every entry is mapped by class name to ember.nn (`tools/moduleinfo.py` says how) and,
over the first few ModuleInputs per mode (train, eval) and dtype (float64, float32),
must match torch: repr, state_dict keys, forward outputs, buffers after forward, float64
gradients of inputs and parameters, and torch's exception type on every error input.
Entries that do not pass yet are listed, each with its first reason, in
`moduleinfo_expected_failures.txt` beside this file; they run as strict xfails, so an
entry that starts failing, or one listed that starts passing, fails here.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("expecttest", reason="PyTorch's ModuleInfo database needs expecttest")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import moduleinfo  # noqa: E402

EXPECTED = moduleinfo.read_expected(Path(__file__).with_name("moduleinfo_expected_failures.txt"))
ENTRIES = moduleinfo.entries()


def _params():
    out = []
    for key in ENTRIES:
        why = EXPECTED.get(key)
        marks = [pytest.mark.xfail(reason=why[:200], strict=True)] if why else []
        out.append(pytest.param(key, marks=marks, id=key))
    return out


@pytest.mark.parametrize("key", _params())
def test_moduleinfo_entry(key):
    record = moduleinfo.check_entry(ENTRIES[key], limit=moduleinfo.CI_LIMIT)
    assert record["exists"], f"{key}: not in ember.nn"
    assert not record["failures"], f"{key}: " + "\n".join(record["failures"][:5])


def test_expected_failures_name_real_entries():
    stale = sorted(set(EXPECTED) - set(ENTRIES))
    assert not stale, f"moduleinfo_expected_failures.txt names entries module_db lacks: {stale}"
