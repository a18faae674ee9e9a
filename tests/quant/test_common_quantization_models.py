"""PyTorch's quantization test models (torch.testing._internal.common_quantization) run
through ember.ao against torch.ao, as a user porting torch's test_quantize_fx.py /
test_quantize_eager_ptq.py / test_quantize_eager_qat.py would (`torch` -> `ember` in the
model source).

Each case is a model class and a flow torch's tests run on it (eager PTQ / QAT,
quantize_dynamic, fuse_modules, FX PTQ / reference / QAT / dynamic, fuse_fx);
`common_quantization_twins.py` beside this file says how the twins are built and
compared (outputs within one quantization step, converted module types and repr,
state_dict keys). Cases that do not pass yet are listed with their first reason in
`common_quantization_expected_failures.txt`; they run as strict xfails, so a case that
starts failing, or one listed that starts passing, fails here.
`python tools/quantinfo.py` prints the whole table.

To stay fast on CI, the test runs each model's first case (its most common flow);
EMBER_QSUITE_ALL=1 runs every case, as the tool does.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common_quantization_twins as twins  # noqa: E402

EXPECTED_FILE = Path(__file__).with_name("common_quantization_expected_failures.txt")


def read_expected(path: Path) -> dict:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                cid, _, why = line.partition(" ")
                out[cid] = why.strip()
    return out


EXPECTED = read_expected(EXPECTED_FILE)


def _selected() -> dict:
    cases = twins.cases_by_id()
    if os.environ.get("EMBER_QSUITE_ALL"):
        return cases
    first = {}
    for cid, case in cases.items():
        first.setdefault(case.model, cid)
    return {cid: cases[cid] for cid in first.values()}


def _params():
    out = []
    for cid, case in _selected().items():
        marks = []
        if case.skip:
            marks = [pytest.mark.skip(reason=case.skip)]
        elif cid in EXPECTED:
            marks = [pytest.mark.xfail(reason=EXPECTED[cid][:200], strict=True)]
        out.append(pytest.param(case, marks=marks, id=cid))
    return out


@pytest.mark.parametrize("case", _params())
def test_common_quantization_model(case):
    fails = twins.run_case(case)
    assert not fails, f"{twins.case_id(case)}: " + "\n".join(fails[:5])


def test_every_model_class_has_a_case():
    """A class added to common_quantization (other than helpers that are no model) gets
    a case here, so the table keeps covering the whole zoo."""
    covered = {c.model for c in twins.CASES}
    helpers = {"DummyObserver"}
    missing = [c.__name__ for c in twins.model_classes()
               if c.__name__ not in covered | helpers]
    assert not missing, f"no case for {missing}"
