"""PyTorch's own OptimizerInfo database (optim_db) run against ember.optim.

For every entry, each CPU config (with its implementation-flag variants) and parameter
dtype must follow torch's trajectory step by step (parameters, closure loss, state,
param_groups), and resume from torch's and from ember's state_dict as torch resumes
(`tools/optiminfo.py` says how); the [api] record checks param groups, add_param_group,
zero_grad and the hooks, the [errors] record the error inputs. Configs that do not pass
yet are listed, each with its status and reason, in `optiminfo_expected.txt` beside this
file; they run as strict xfails, so one that starts passing fails here until it is taken
off (regenerate with `python tools/optiminfo.py --write-expected <that file>`).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("expecttest", reason="PyTorch's OptimizerInfo database needs expecttest")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import optiminfo  # noqa: E402

EXPECTED = optiminfo.read_expected(Path(__file__).with_name("optiminfo_expected.txt"))
ENTRIES = optiminfo.entries()
_RECORDS: dict[str, dict] = {}


def _records(name: str) -> dict:
    """Every record of one optimizer, computed once for all its test cases."""
    if name not in _RECORDS:
        _RECORDS[name] = {r["key"]: r for r in optiminfo.check_entry(ENTRIES[name])}
    return _RECORDS[name]


def _keys() -> list:
    """(optimizer, record key) for every record check_entry makes, without running it."""
    out = []
    for name, info in sorted(ENTRIES.items()):
        out.append((name, name))                           # "missing" records
        for inp in optiminfo.configs(info):
            for dtype_name in optiminfo.dtypes_for(info):
                out.append((name, f"{name}[{inp.desc}]/{dtype_name}"))
        out += [(name, f"{name} [api]"), (name, f"{name} [errors]")]
    return out


def _params():
    out = []
    for name, key in _keys():
        why = EXPECTED.get(key)
        marks = [pytest.mark.xfail(reason=why[:200], strict=True)] if why else []
        out.append(pytest.param(name, key, marks=marks, id=key))
    return out


@pytest.mark.parametrize("name,key", _params())
def test_optiminfo(name, key):
    records = _records(name)
    if key == name:                                        # the class itself
        assert name not in records, f"{name}: not in ember.optim"
        return
    if name in records:
        pytest.skip(f"{name} is not in ember.optim (its own case fails)")
    record = records[key]
    assert record["status"] == "pass", f"{key}: " + "\n".join(record["failures"][:5])


_SCHEDULER_RECORDS: dict[str, dict] = {}


def _scheduler_params():
    keys = [f"lr_scheduler.{label}" for label, _, _ in optiminfo.SCHEDULERS]
    keys += [f"swa_utils.{label}" for label in optiminfo.SWA_CHECKS]
    out = []
    for key in keys:
        why = EXPECTED.get(key)
        marks = [pytest.mark.xfail(reason=why[:200], strict=True)] if why else []
        out.append(pytest.param(key, marks=marks, id=key))
    return out


@pytest.mark.parametrize("key", _scheduler_params())
def test_lr_schedulers_and_swa_utils(key):
    if not _SCHEDULER_RECORDS:
        _SCHEDULER_RECORDS.update({r["key"]: r for r in optiminfo.check_schedulers()})
    record = _SCHEDULER_RECORDS[key]
    assert record["status"] == "pass", f"{key}: " + "\n".join(record["failures"][:5])


def test_expected_names_real_records():
    keys = {key for _, key in _keys()} | {p.values[0] for p in _scheduler_params()}
    stale = sorted(set(EXPECTED) - keys)
    assert not stale, f"optiminfo_expected.txt names records optim_db lacks: {stale}"
