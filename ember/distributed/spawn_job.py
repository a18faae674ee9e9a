"""`ember.multiprocessing.spawn` as one MPI job, so its processes can form a process group.

PyTorch users start distributed training with `mp.spawn(train, args=(world,),
nprocs=world)` and call `dist.init_process_group("gloo", rank=rank, world_size=world)`
in each process. ember's process groups run on MPI, and processes that MPI did not start
cannot join one (Open MPI's singletons have no PMIx server to connect through; MPICH's
refuse to merge: their process ids collide). So spawn starts its processes with mpirun:
every rank runs `ember.distributed._spawn_worker`, which prepares itself as a
multiprocessing spawn child would (the parent's sys.path, working directory and main
module, imported as `__mp_main__`) and calls fn(rank, *args).

The job's payload (preparation data, then fn and args) goes through a pickle file in a
private directory; each rank writes its pid there, and a rank whose fn raises writes its
traceback there before the job is aborted (no rank is left waiting in a collective).
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from multiprocessing import spawn as _mp_spawn

from .run import _is_open_mpi, find_mpirun

PAYLOAD = "payload.pkl"


def mpi_job_possible() -> bool:
    """Can spawn start an MPI job here: mpi4py and mpirun installed, not inside one already,
    and not turned off (EMBER_SPAWN_LAUNCHER=multiprocessing)?"""
    if os.environ.get("EMBER_SPAWN_LAUNCHER", "mpi") == "multiprocessing":
        return False
    if any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")):
        return False                  # a rank of a job cannot start a job of its own
    try:
        import mpi4py  # noqa: F401 - only whether it is installed
    except ImportError:
        return False
    return find_mpirun() is not None


def payload_bytes(fn, args) -> bytes | None:
    """The pickled job, or None where fn/args do not pickle outside a multiprocessing start
    (a multiprocessing Queue in args, a lambda): the caller then starts processes as
    Python's multiprocessing does."""
    data = _mp_spawn.get_preparation_data("ember-spawn")
    # multiprocessing refuses to pickle its authkey outside a process start; the payload
    # file lies in a directory only this user can read, as multiprocessing's pipes do
    data["authkey"] = bytes(data["authkey"])
    try:
        return pickle.dumps(data) + pickle.dumps((fn, tuple(args)))
    except Exception:          # noqa: BLE001 - anything unpicklable: not an MPI job
        return None


def _command(mpirun: str, nprocs: int, job_dir: str) -> list[str]:
    cmd = [mpirun, "-n", str(nprocs)]
    if _is_open_mpi(mpirun):
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
        cmd.append("--oversubscribe")        # more processes than cores (tests, 2-core hosts)
    return cmd + [sys.executable, "-m", "ember.distributed._spawn_worker", job_dir]


def _environment() -> dict:
    env = dict(os.environ)
    # the ranks import ember from wherever this process did (a source checkout included)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


class MpiJobContext:
    """torch.multiprocessing's ProcessContext for processes mpirun started."""

    def __init__(self, popen: subprocess.Popen, job_dir: tempfile.TemporaryDirectory,
                 nprocs: int):
        self._popen, self._dir, self.nprocs = popen, job_dir, nprocs

    def pids(self) -> list[int]:
        """The ranks' process ids (those that have started)."""
        pids = []
        for rank in range(self.nprocs):
            path = os.path.join(self._dir.name, f"pid.{rank}")
            if os.path.exists(path):
                with open(path) as f:
                    pids.append(int(f.read() or 0))
        return pids

    def join(self, timeout: float | None = None) -> bool:
        """True once every process has exited; raises ProcessRaisedException /
        ProcessExitedException as torch's does when one failed."""
        try:
            code = self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        except BaseException:
            self._popen.kill()
            raise
        failure = self._first_failure()
        pids = self.pids()
        self._dir.cleanup()
        from ..multiprocessing import ProcessExitedException, ProcessRaisedException
        if failure is not None:
            rank, text = failure
            pid = pids[rank] if rank < len(pids) else -1
            raise ProcessRaisedException(f"\n\n-- Process {rank} terminated with the following "
                                         f"error:\n{text}", rank, pid)
        if code != 0:
            raise ProcessExitedException(f"process 0 terminated with exit code {code} (the MPI "
                                         "job started by spawn failed)", 0, -1, code)
        return True

    def _first_failure(self) -> tuple[int, str] | None:
        errors = []
        for rank in range(self.nprocs):
            path = os.path.join(self._dir.name, f"error.{rank}")
            if os.path.exists(path):
                with open(path) as f:
                    errors.append((os.path.getmtime(path), rank, f.read()))
        return min(errors)[1:] if errors else None


def start_mpi_job(payload: bytes, nprocs: int) -> MpiJobContext:
    """Start `nprocs` ranks running the pickled job; the context joins them."""
    job_dir = tempfile.TemporaryDirectory(prefix="ember-spawn-")
    with open(os.path.join(job_dir.name, PAYLOAD), "wb") as f:
        f.write(payload)
    popen = subprocess.Popen(_command(find_mpirun(), nprocs, job_dir.name), env=_environment())
    return MpiJobContext(popen, job_dir, nprocs)
