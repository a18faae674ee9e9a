"""Multi-process tests: the launcher starts 2 or 4 ranks on localhost (oversubscribed on
a 2-core box) running the scripts in scripts/; each rank asserts against numpy or a
single-process run. Every job is bounded by a subprocess timeout; skipped with a
printed reason where mpirun or mpi4py is missing.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ember.distributed.run import find_mpirun

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")
JOB_TIMEOUT_S = 150        # far above a healthy run (5-30 s on a loaded 2-core box)


def _mpi_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'ember[distributed]')"
    if find_mpirun() is None:
        return "no mpirun found (pip install 'ember[distributed]')"
    return None


pytestmark = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))


def launch(nproc: int, script: str, *args: str,
           launcher_flags: tuple = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "ember.distributed.run", "--nproc-per-node", str(nproc),
           *launcher_flags, os.path.join(SCRIPTS, script), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=JOB_TIMEOUT_S, errors="replace")


def assert_ok(job: subprocess.CompletedProcess, nproc: int, marker: str) -> None:
    output = job.stdout + job.stderr
    assert job.returncode == 0, output[-4000:]
    for rank in range(nproc):
        assert f"rank {rank}" in output and marker in output, output[-4000:]


@pytest.mark.parametrize("nproc", [2, 4])
def test_collectives_match_numpy(nproc):
    job = launch(nproc, "collectives.py")
    assert_ok(job, nproc, "collectives OK")
    assert job.stdout.count("collectives OK") == nproc


@pytest.mark.parametrize("nproc", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_ddp_hooks_and_zero_match_single_process_training(nproc):
    job = launch(nproc, "ddp_train.py")
    assert_ok(job, nproc, "OK")
    for what in ("DDP OK", "ember.compile(DDP(model)) OK", "gradient_as_bucket_view OK", "fp16_compress_hook OK",
                 "bf16_compress_hook OK", "powerSGD_hook at full rank OK",
                 "powerSGD_hook at rank 1 OK", "find_unused_parameters OK", "no_sync accumulation OK",
                 "unfinished reduction error OK",
                 "join (divide_by_initial_world_size=True) OK",
                 "join (divide_by_initial_world_size=False) OK",
                 "ZeroRedundancyOptimizer(Adam) OK",
                 "ZeRO consolidate_state_dict/load_state_dict OK", "DistributedSampler OK"):
        assert job.stdout.count(what) == nproc, (what, job.stdout[-3000:])


def test_raising_rank_ends_the_job_and_is_named():
    job = launch(2, "failures.py", "raise")
    assert job.returncode != 0
    assert "rank 1 failed with ValueError: deliberate failure" in job.stderr, job.stderr[-3000:]
    assert "unexpectedly finished" not in job.stdout


def test_hung_collective_times_out_naming_rank_and_op():
    start = time.monotonic()
    job = launch(2, "failures.py", "hang")
    assert job.returncode != 0
    assert "[Rank 0] Watchdog caught collective operation timeout" in job.stderr, \
        job.stderr[-3000:]
    assert "OpType=ALLREDUCE" in job.stderr and "Timeout(ms)=2000" in job.stderr
    # the hung rank sleeps 120 s: only the timeout's abort can end the job sooner
    assert time.monotonic() - start < 100


def test_monitored_barrier_names_the_missing_rank():
    job = launch(3, "failures.py", "monitored")
    assert job.returncode != 0
    assert "[Rank 0] Rank 1 failed to pass monitoredBarrier in 2000 ms" in job.stderr, \
        job.stderr[-3000:]


def test_killed_rank_ends_the_job():
    start = time.monotonic()
    job = launch(2, "failures.py", "kill")
    assert job.returncode != 0
    assert "rank 1" in job.stderr and "signal 9" in job.stderr, job.stderr[-3000:]
    assert time.monotonic() - start < 100


@pytest.mark.parametrize("nproc", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_pipeline_stages_equal_the_unsplit_model(nproc):
    job = launch(nproc, "pipeline.py")
    assert_ok(job, nproc, "equals the unsplit model")
    for schedule in ("ScheduleGPipe", "Schedule1F1B"):
        assert job.stdout.count(f"{schedule} equals the unsplit model") == nproc, job.stdout
        assert job.stdout.count(f"{schedule} (pipeline() split) equals the unsplit model") \
            == nproc, job.stdout


def _ulfm_missing() -> str | None:
    from mpi4py import MPI
    from ember.distributed.run import _is_open_mpi
    if not hasattr(MPI.Comm, "Shrink"):
        return "this mpi4py has no ULFM calls (Comm.Shrink)"
    if not _is_open_mpi(find_mpirun()):
        return "ULFM needs Open MPI's mpirun (--with-ft ulfm)"
    return None


def test_ulfm_survivors_of_a_dead_rank_shrink_the_group_and_go_on():
    if _ulfm_missing():
        pytest.skip(_ulfm_missing())
    try:
        job = launch(3, "ulfm_shrink.py", launcher_flags=("--ulfm",))
    except subprocess.TimeoutExpired as err:     # show how far each rank got
        pytest.fail(f"the --ulfm job timed out; its output:\n{err.stdout}\n{err.stderr}")
    output = job.stdout + job.stderr
    for rank in (0, 1):
        assert f"rank {rank}: the collective failed: [Rank {rank}] WorkMPI(" in output, \
            output[-3000:]
        assert f"rank {rank}: shrunk to 2 ranks, all_reduce gives 3.0" in output, \
            output[-3000:]
        assert f"rank {rank}: destroyed the group" in output, output[-3000:]
