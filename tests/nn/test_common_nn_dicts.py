"""PyTorch's older nn test dicts (torch.testing._internal.common_nn: module_tests,
get_new_module_tests(), criterion_tests) run against ember.nn.

Every dict is built through PyTorch's own test classes and checked as `tools/nntests.py`
says: repr, state_dict keys and dtypes, forward outputs, float64 gradients of inputs and
parameters (and double backward where the dict checks it), ember.autograd.gradcheck /
gradgradcheck called as PyTorch's test calls torch's, the dict's reference_fn run on ember,
non-contiguous inputs, save/load, inplace=True, and the float32 forward. A second test
runs PyTorch's own NewModuleTest / CriterionTest code on each dict with `torch` naming
ember (`--native`). Dicts that do not pass yet are listed, each with its first reason, in
`nntests_expected_failures.txt` / `nntests_native_expected_failures.txt` beside this file;
they run as strict xfails, so a dict that starts failing, or one listed that starts
passing, fails here.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("expecttest", reason="PyTorch's common_nn test dicts need expecttest")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import nntests  # noqa: E402

# gradcheck/gradgradcheck in fast mode (one random projection per output and input);
# `python tools/nntests.py` runs them in full
nntests.GRADCHECK_MODE["mode"] = "fast"
EXPECTED = nntests.read_expected(Path(__file__).with_name("nntests_expected_failures.txt"))
EXPECTED_NATIVE = nntests.read_expected(
    Path(__file__).with_name("nntests_native_expected_failures.txt"))
ENTRIES = nntests.entries()


def _params(expected):
    out = []
    for key in ENTRIES:
        why = expected.get(key)
        marks = [pytest.mark.xfail(reason=why[:200], strict=True)] if why else []
        out.append(pytest.param(key, marks=marks, id=key))
    return out


@pytest.mark.parametrize("key", _params(EXPECTED))
def test_common_nn_dict(key):
    """ember against torch on the dict."""
    kind, params = ENTRIES[key]
    record = nntests.check_entry(key, kind, params)
    assert not record["failures"], f"{key}: " + "\n".join(record["failures"][:5])


@pytest.mark.parametrize("key", _params(EXPECTED_NATIVE))
def test_common_nn_dict_native(key):
    """PyTorch's own NewModuleTest / CriterionTest code run with `torch` naming ember."""
    kind, params = ENTRIES[key]
    record = nntests.check_entry(key, kind, params, native=True)
    if record.get("skipped"):
        pytest.skip(record["skipped"])
    assert not record["failures"], f"{key}: " + "\n".join(record["failures"][:5])


@pytest.mark.parametrize("expected", [EXPECTED, EXPECTED_NATIVE])
def test_expected_failures_name_real_entries(expected):
    stale = sorted(set(expected) - set(ENTRIES))
    assert not stale, f"an expected-failures file names dicts common_nn lacks: {stale}"
