"""PyTorch's autocast op lists (torch.testing._internal.autocast_test_lists) run against
ember.autocast, as `tools/autocast_lists.py` says: every AutocastCPUTestLists entry under
bfloat16 and float16 CPU autocast (result dtype as torch's, bitwise equal to ember's own
hand-cast control, values as torch's), and the CUDA lists (AutocastTestLists) as a
policy/dtype table through ember's CUDA policies on CPU tensors.

Cases that do not pass yet are listed with their first reason in
`autocast_lists_expected.txt` beside this file; they run as strict xfails, so a case
that starts failing, or one listed that starts passing, fails here.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("expecttest", reason="PyTorch's test lists need expecttest")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import autocast_lists  # noqa: E402

EXPECTED = autocast_lists.read_expected(Path(__file__).with_name("autocast_lists_expected.txt"))
CASES = autocast_lists.cases()


def _params():
    out = []
    for key in CASES:
        why = EXPECTED.get(key)
        marks = [pytest.mark.xfail(reason=why[:200], strict=True)] if why else []
        out.append(pytest.param(key, marks=marks, id=key))
    return out


@pytest.mark.parametrize("key", _params())
def test_autocast_list_case(key):
    failures = autocast_lists.check(key, CASES[key])
    assert not failures, f"{key}: " + "\n".join(failures)


def test_expected_failures_name_real_cases():
    stale = sorted(set(EXPECTED) - set(CASES))
    assert not stale, f"the expected-failures file names cases the lists lack: {stale}"
