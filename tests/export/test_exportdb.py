"""PyTorch's export database (torch._export.db.examples) run against ember.export, as
`tools/exportdb.py` says: each case's module re-created on ember from the same source
(torch -> ember), exported with the case's inputs and dynamic_shapes, its specs
compared with torch.export's and its values (example inputs, a save/load round trip,
other sizes inside the dynamic range) with torch's eager model; a NOT_SUPPORTED_YET
case must be refused naming the user's line, or come out right.

The (case, check) pairs that do not pass yet are listed with their first reason in
`exportdb_expected.txt` beside this file; a case whose failing checks differ from that
list either way fails here.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="torch.export is the oracle")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import exportdb  # noqa: E402
import opinfo_dbs  # noqa: E402

EXPECTED = opinfo_dbs.read_expected(Path(__file__).with_name("exportdb_expected.txt"))
ENTRIES = exportdb.entries()


@pytest.fixture(autouse=True)
def _quiet_torch_export():
    """torch.export logs the refusals it raises (dynamic_shape_round) at ERROR."""
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_exportdb_case(name):
    opinfo_dbs.assert_as_expected(exportdb.check_entry(ENTRIES[name]), EXPECTED)


def test_expected_failures_name_real_cases():
    opinfo_dbs.assert_no_stale_entries(EXPECTED, ENTRIES)


def test_every_case_is_checked():
    """The database has its 36 cases and each support level is exercised (a torch
    that moved or emptied the database would otherwise pass silently)."""
    assert len(ENTRIES) >= 36
    assert {exportdb.is_supported(c) for c in ENTRIES.values()} == {True, False}
