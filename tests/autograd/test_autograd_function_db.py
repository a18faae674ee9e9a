"""PyTorch's autograd_function_db (torch.testing._internal) run against
ember.autograd.Function, as `tools/autograd_function_db.py` says: the database module's
classes re-created on ember from the same source (torch -> ember), each entry checked
against torch's class for values, float64 gradients and second derivatives, forward AD
through the Function's jvp, and ember.func's vjp / jvp / vmap.

The (entry, check) pairs that do not pass yet are listed with their first reason in
`autograd_function_db_expected.txt` beside this file; an entry whose failing checks
differ from that list either way fails here.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("expecttest", reason="PyTorch's OpInfo databases need expecttest")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import autograd_function_db  # noqa: E402
import opinfo_dbs  # noqa: E402

EXPECTED = opinfo_dbs.read_expected(Path(__file__).with_name("autograd_function_db_expected.txt"))
ENTRIES = autograd_function_db.entries()


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_autograd_function_db_entry(name):
    opinfo_dbs.assert_as_expected(autograd_function_db.check_entry(ENTRIES[name]), EXPECTED)


def test_expected_failures_name_real_entries():
    opinfo_dbs.assert_no_stale_entries(EXPECTED, ENTRIES)
