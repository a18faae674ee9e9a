"""PyTorch's nn_functional_tests (torch.testing._internal.jit_metaprogramming_utils: the
torch.nn.functional calls PyTorch's test_jit.py scripts) run against
ember.nn.functional, as `tools/nn_functional_tests.py` says: each call with the inputs
PyTorch's test makes, float32 values eager and through ember.compile, and float64
gradients of every differentiable input, against torch.

Entries that do not pass yet are listed with their first reason in
`nn_functional_tests_expected.txt` beside this file; they run as strict xfails, so an
entry that starts failing, or one listed that starts passing, fails here.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("expecttest", reason="PyTorch's test lists need expecttest")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import nn_functional_tests  # noqa: E402

EXPECTED = nn_functional_tests.read_expected(
    Path(__file__).with_name("nn_functional_tests_expected.txt"))
ENTRIES = nn_functional_tests.entries()


def _params():
    out = []
    for key in ENTRIES:
        why = EXPECTED.get(key)
        marks = [pytest.mark.xfail(reason=why[:200], strict=True)] if why else []
        out.append(pytest.param(key, marks=marks, id=key))
    return out


@pytest.mark.parametrize("key", _params())
def test_nn_functional_entry(key):
    record = nn_functional_tests.check_entry(key, ENTRIES[key])
    assert not record["failures"], f"{key}: " + "\n".join(record["failures"])


def test_expected_failures_name_real_entries():
    stale = sorted(set(EXPECTED) - set(ENTRIES))
    assert not stale, f"the expected-failures file names entries the list lacks: {stale}"
