"""One rank of a job started by `ember.distributed.run`: set torchrun's environment, run.

Under `--transport tcp` the launcher starts this module itself, with the environment
already set (_tcp_launch.py). Otherwise mpirun starts this module as `python -m mpi4py -m ember.distributed._worker ...`, so an
exception that escapes the user's script aborts the whole MPI job (mpi4py calls
MPI_Abort) instead of leaving the other ranks hanging in a collective. Before the
abort, one line names the failing rank and the error.

Arguments: `[--module | --no-python] target args...`.
"""
from __future__ import annotations

import os
import runpy
import sys


def _set_rank_environment() -> int:
    """RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE from the MPI job (any MPI library)."""
    from mpi4py import MPI
    world = MPI.COMM_WORLD
    node = world.Split_type(MPI.COMM_TYPE_SHARED)
    env = {"RANK": world.Get_rank(), "WORLD_SIZE": world.Get_size(),
           "LOCAL_RANK": node.Get_rank(), "LOCAL_WORLD_SIZE": node.Get_size()}
    node.Free()
    env["GROUP_RANK"] = env["RANK"] // max(env["LOCAL_WORLD_SIZE"], 1)
    env["ROLE_RANK"], env["ROLE_WORLD_SIZE"] = env["RANK"], env["WORLD_SIZE"]
    for key, value in env.items():
        os.environ[key] = str(value)
    return env["RANK"]


def _run(mode: str, target: str, args: list[str]) -> None:
    if mode == "--no-python":
        import subprocess
        code = subprocess.call([target, *args])
        if code:
            raise SystemExit(code)
        return
    sys.argv = [target, *args]
    if mode == "--module":
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
        runpy.run_path(target, run_name="__main__")


def main(argv: list[str]) -> None:
    mode = argv[0] if argv and argv[0] in ("--module", "--no-python") else "--script"
    rest = argv[1:] if mode != "--script" else argv
    if os.environ.get("EMBER_DIST_TRANSPORT") == "tcp" and "RANK" in os.environ:
        rank = int(os.environ["RANK"])          # set by the launcher's TCP mode
    else:
        rank = _set_rank_environment()
    try:
        _run(mode, rest[0], rest[1:])
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            print(f"ember.distributed.run: rank {rank} exited with code {exit_.code}",
                  file=sys.stderr, flush=True)
        raise
    except BaseException as err:
        print(f"ember.distributed.run: rank {rank} failed with {type(err).__name__}: {err}",
              file=sys.stderr, flush=True)
        raise
    _leave_without_finalize_after_a_failure()


def _leave_without_finalize_after_a_failure() -> None:
    """A survivor of a dead rank (under --ulfm, after shrink_group) skips MPI_Finalize.

    Open MPI 5.0.11's MPI_Finalize sometimes waits forever on the dead process there
    (about one 3-rank job in five on a loaded 2-core box, after every rank had
    finished its script); the script's work is done, so the process ends itself.
    """
    c10d = sys.modules.get("ember.distributed.c10d")
    if c10d is not None and c10d._State.shrunk:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
