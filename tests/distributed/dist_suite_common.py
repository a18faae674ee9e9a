"""Shared by the test_dist_suite_*.py files: launch one job that runs a suite script's
cases on every rank (under torch and under ember, see scripts/suite_harness.py), parse
the per-case lines, and give each case its own pytest test.

One job per file keeps the launcher and the torch/ember imports paid once: a suite of
100+ cases costs one job start (about 5 s) plus its cases. Under pytest-xdist the
workers share that one job: the first to need it runs it under a file lock and leaves
its results in the session's shared temporary directory for the others.
"""
from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys

import pytest

from ember.distributed.run import find_mpirun

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")
JOB_TIMEOUT_S = 240        # a hung case ends its job after the harness's 30 s timeout
OUTPUT = "__job_output__"


def missing() -> str | None:
    """Why the suites cannot run here, or None."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'ember[distributed]')"
    if find_mpirun() is None:
        return "no mpirun found (pip install 'ember[distributed]')"
    try:
        import torch.distributed as tdist
    except ImportError:
        return "torch (the oracle) is not installed"
    if not tdist.is_available() or not tdist.is_gloo_available():
        return "this torch has no gloo backend (the oracle)"
    return None


def case_names(script: str) -> list[str]:
    """The cases a suite script registers, by importing it (it runs nothing on import)."""
    sys.path.insert(0, SCRIPTS)
    try:
        harness = importlib.import_module("suite_harness")
        harness.CASES.clear()
        importlib.import_module(script.removesuffix(".py"))
        return [c.name for c in harness.CASES]
    finally:
        sys.path.remove(SCRIPTS)
        for name in ("suite_harness", script.removesuffix(".py")):
            sys.modules.pop(name, None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_suite(script: str, nproc: int) -> dict:
    """Run the job; {case name: {rank: None (passed) or why it failed}}, plus the end of
    the job's output under OUTPUT, for the cases that never reported."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "ember.distributed.run", "--nproc-per-node", str(nproc),
           "--master-port", str(_free_port()), os.path.join(SCRIPTS, script)]
    try:
        job = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=JOB_TIMEOUT_S, errors="replace")
        out, err = job.stdout, job.stderr
    except subprocess.TimeoutExpired as timeout:
        out = (timeout.stdout or b"").decode(errors="replace") if isinstance(
            timeout.stdout, bytes) else (timeout.stdout or "")
        err = f"the job ran past {JOB_TIMEOUT_S} s"
    results: dict = {OUTPUT: (out + err)[-3000:]}
    for line in out.splitlines():
        if not line.startswith("CASE "):
            continue
        _, rank, rest = line.split(" ", 2)
        if rest.endswith(" OK"):
            results.setdefault(rest[:-3], {})[int(rank)] = None
        elif " FAIL " in rest:
            name, why = rest.split(" FAIL ", 1)
            results.setdefault(name, {})[int(rank)] = json.loads(why)
    return results


def shared_results(script: str, nproc: int, tmp_path_factory) -> dict:
    """run_suite's results, run once per pytest session even across xdist workers."""
    try:
        from filelock import FileLock
    except ImportError:
        return run_suite(script, nproc)
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent                      # shared by the session's workers
    path = root / f"dist_suite_{script}.json"
    with FileLock(f"{path}.lock"):
        if path.is_file():
            stored = json.loads(path.read_text())
            return {name: value if name == OUTPUT else {int(r): why for r, why in value.items()}
                    for name, value in stored.items()}
        results = run_suite(script, nproc)
        path.write_text(json.dumps(results))
        return results


def check_case(results: dict, name: str, nproc: int) -> None:
    per_rank = results.get(name, {})
    failed = {r: why for r, why in per_rank.items() if why is not None}
    if failed:
        rank, why = sorted(failed.items())[0]
        pytest.fail(f"{name}: rank {rank} (of {len(failed)} failing): {why}", pytrace=False)
    if len(per_rank) != nproc:
        pytest.fail(f"{name}: only ranks {sorted(per_rank)} of {nproc} reported; the job's "
                    f"output ends:\n{results[OUTPUT]}", pytrace=False)


def parametrize_cases(script: str, expected_failures: dict):
    """pytest.mark.parametrize over the script's cases; those in `expected_failures`
    (name -> reason) are strict xfails."""
    params = []
    for name in case_names(script):
        marks = ()
        if name in expected_failures:
            marks = (pytest.mark.xfail(reason=expected_failures[name], strict=True),)
        params.append(pytest.param(name, id=name, marks=marks))
    return pytest.mark.parametrize("case", params)
