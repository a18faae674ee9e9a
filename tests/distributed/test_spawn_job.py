"""`ember.multiprocessing.spawn` processes form a process group, as torch's do: the DDP
tutorial's shape (spawn, then init_process_group(rank, world_size) with env:// or tcp://)
runs unchanged, a rank that raises ends the job with ProcessRaisedException naming it
(no rank left hanging), and arguments that cannot be pickled on their own still start
(with Python's multiprocessing, as before)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import ember
import ember.multiprocessing as mp
from ember.distributed import spawn_job

from tests.distributed.test_distributed_jobs import JOB_TIMEOUT_S, ROOT, SCRIPTS, _mpi_missing

pytestmark = pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))
SCRIPT = os.path.join(SCRIPTS, "spawned_ddp.py")


def _run(mode: str, out_dir) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, SCRIPT, mode, str(out_dir)], cwd=str(out_dir),
                          env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)


def _single_process_ddp_weight() -> np.ndarray:
    """What DDP's averaged-gradient step gives: the mean of both ranks' gradients."""
    ember.manual_seed(0)
    model = ember.nn.Sequential(ember.nn.Linear(4, 8), ember.nn.ReLU(), ember.nn.Linear(8, 2))
    for rank in range(2):
        data = np.random.RandomState(rank).randn(5, 4).astype("float32")
        (model(ember.tensor(data)).pow(2).sum() / 2).backward()
    ember.optim.SGD(model.parameters(), lr=0.1).step()
    return model[0].weight.detach().numpy().ravel()


@pytest.mark.parametrize("init", ["env", "tcp"])
def test_spawned_processes_form_a_process_group(init, tmp_path):
    job = _run(init, tmp_path)
    assert job.returncode == 0 and "spawned job done" in job.stdout, job.stderr[-3000:]
    expected = _single_process_ddp_weight()
    for rank in range(2):
        result = np.load(tmp_path / f"rank{rank}.npy")
        np.testing.assert_array_equal(result[:3], [3.0, 3.0, 3.0])      # all_reduce 1 + 2
        np.testing.assert_allclose(result[3:], expected, rtol=1e-5, atol=1e-6)


def test_a_rank_that_raises_ends_the_job_and_is_named(tmp_path):
    job = _run("fail", tmp_path)
    assert "raised index=1 ValueError: rank 1 gives up" in job.stdout, job.stderr[-3000:]


def _put_rank(rank, queue):
    queue.put(rank)


def test_unpicklable_arguments_start_python_processes():
    # a multiprocessing Queue pickles only while a process starts: not an MPI job
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    assert spawn_job.payload_bytes(_put_rank, (queue,)) is None
    mp.spawn(_put_rank, args=(queue,), nprocs=2)
    assert sorted(queue.get() for _ in range(2)) == [0, 1]


def test_the_launcher_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("EMBER_SPAWN_LAUNCHER", "multiprocessing")
    assert not spawn_job.mpi_job_possible()
