"""torch.multiprocessing: Python's multiprocessing with PyTorch's `spawn` helper. Tensors
passed between processes are pickled (copied); ember does not share tensor memory between
processes, so `share_memory_()` is accepted and leaves the tensor as it is.

`spawn` (start method "spawn", torch's default) starts its processes as one MPI job where
mpi4py and mpirun are installed (ember[distributed]), so that they can call
`ember.distributed.init_process_group(rank=i, world_size=nprocs)` as torch's spawned
processes do: ember.distributed.spawn_job says why and how. Arguments that do not pickle
on their own (a multiprocessing Queue) and EMBER_SPAWN_LAUNCHER=multiprocessing start the
processes with Python's multiprocessing instead, as before."""
from __future__ import annotations

import multiprocessing as _mp
from multiprocessing import *  # noqa: F401,F403 - torch.multiprocessing re-exports it all

__all__ = ["spawn", "start_processes", "ProcessRaisedException", "ProcessExitedException",
           "get_all_sharing_strategies", "get_sharing_strategy", "set_sharing_strategy"]
__all__ += [n for n in dir(_mp) if not n.startswith("_")]

_STRATEGY = ["file_system"]


def get_all_sharing_strategies() -> set:
    return {"file_system", "file_descriptor"}


def get_sharing_strategy() -> str:
    return _STRATEGY[0]


def set_sharing_strategy(strategy: str) -> None:
    if strategy not in get_all_sharing_strategies():
        raise ValueError(f"invalid sharing strategy {strategy!r}")
    _STRATEGY[0] = strategy


class ProcessException(Exception):
    def __init__(self, msg: str, error_index: int, pid: int):
        super().__init__(msg)
        self.error_index, self.pid = error_index, pid


class ProcessRaisedException(ProcessException):
    """A spawned process raised; the message carries its traceback."""


class ProcessExitedException(ProcessException):
    def __init__(self, msg, error_index, pid, exit_code, signal_name=None):
        super().__init__(msg, error_index, pid)
        self.exit_code, self.signal_name = exit_code, signal_name


def _wrap(fn, index, args, errors):
    import traceback
    try:
        fn(index, *args)
    except KeyboardInterrupt:
        pass
    except Exception:
        errors.put((index, traceback.format_exc()))
        raise SystemExit(1)


class ProcessContext:
    def __init__(self, processes, errors):
        self.processes, self.errors = processes, errors

    def pids(self):
        return [p.pid for p in self.processes]

    def join(self, timeout=None) -> bool:
        """True once every process has exited; raises on the first failure."""
        for p in self.processes:
            p.join(timeout)
        if not self.errors.empty():
            index, text = self.errors.get()
            for p in self.processes:
                if p.is_alive():
                    p.terminate()
            raise ProcessRaisedException(f"\n\n-- Process {index} terminated with the following "
                                         f"error:\n{text}", index, self.processes[index].pid)
        for index, p in enumerate(self.processes):
            if p.exitcode not in (0, None):
                raise ProcessExitedException(f"process {index} terminated with exit code "
                                             f"{p.exitcode}", index, p.pid, p.exitcode)
        return all(not p.is_alive() for p in self.processes)


def start_processes(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    context = _start_mpi_job(fn, args, nprocs) if start_method == "spawn" else None
    if context is None:
        context = _start_python_processes(fn, args, nprocs, daemon, start_method)
    if not join:
        return context
    while not context.join():
        pass
    return None


def _start_mpi_job(fn, args, nprocs):
    """The processes as one MPI job (they can form a process group), or None where that
    cannot be done here."""
    from .distributed import spawn_job
    if not spawn_job.mpi_job_possible():
        return None
    payload = spawn_job.payload_bytes(fn, args)
    return None if payload is None else spawn_job.start_mpi_job(payload, nprocs)


def _start_python_processes(fn, args, nprocs, daemon, start_method) -> ProcessContext:
    ctx = _mp.get_context(start_method)
    errors = ctx.SimpleQueue()
    processes = []
    for index in range(nprocs):
        p = ctx.Process(target=_wrap, args=(fn, index, args, errors), daemon=daemon)
        p.start()
        processes.append(p)
    return ProcessContext(processes, errors)


def spawn(fn, args=(), nprocs=1, join=True, daemon=False, start_method="spawn"):
    """fn(i, *args) in `nprocs` new processes (i = 0..nprocs-1), as torch.multiprocessing.spawn."""
    return start_processes(fn, args, nprocs, join, daemon, start_method)
