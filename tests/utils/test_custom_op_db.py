"""PyTorch's custom_op_db (torch.testing._internal) run against
ember.library, as `tools/custom_op_db.py` says: the database module's
classes re-created on ember from the same source (torch -> ember), each entry checked
against torch's class for values, float64 gradients and second derivatives, forward AD
through the Function's jvp, and ember.func's vjp / jvp / vmap.

The (entry, check) pairs that do not pass yet are listed with their first reason in
`custom_op_db_expected.txt` beside this file; an entry whose failing checks
differ from that list either way fails here.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("expecttest", reason="PyTorch's OpInfo databases need expecttest")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import custom_op_db  # noqa: E402
import opinfo_dbs  # noqa: E402

EXPECTED = opinfo_dbs.read_expected(Path(__file__).with_name("custom_op_db_expected.txt"))
ENTRIES = custom_op_db.entries()


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_custom_op_db_entry(name):
    opinfo_dbs.assert_as_expected(custom_op_db.check_entry(ENTRIES[name]), EXPECTED)


def test_expected_failures_name_real_entries():
    opinfo_dbs.assert_no_stale_entries(EXPECTED, ENTRIES)
