"""One rank of a job that `ember.multiprocessing.spawn` started under mpirun.

    python -m ember.distributed._spawn_worker JOB_DIR

Prepares this process as a multiprocessing spawn child (the parent's sys.path, working
directory, authkey and main module, imported as `__mp_main__` so its
`if __name__ == "__main__":` block does not run again), then calls fn(rank, *args). A
failure writes the traceback to JOB_DIR/error.RANK for the parent and aborts the MPI job
where MPI is initialized, so no other rank waits forever in a collective.
"""
from __future__ import annotations

import os
import pickle
import sys
import traceback
from multiprocessing import spawn as _mp_spawn


def _rank() -> int:
    for key in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        if key in os.environ:
            return int(os.environ[key])
    raise SystemExit("ember.distributed._spawn_worker runs under mpirun "
                     "(started by ember.multiprocessing.spawn)")


def _fail(job_dir: str, rank: int) -> None:
    path = os.path.join(job_dir, f"error.{rank}")
    with open(path + ".tmp", "w") as f:
        f.write(traceback.format_exc())
    os.replace(path + ".tmp", path)            # the parent never reads half a traceback
    sys.stdout.flush()
    sys.stderr.flush()
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
        mpi.COMM_WORLD.Abort(1)
    os._exit(1)                                # MPI_Finalize would wait on the other ranks


def main(job_dir: str) -> None:
    rank = _rank()
    with open(os.path.join(job_dir, f"pid.{rank}"), "w") as f:
        f.write(str(os.getpid()))
    try:
        with open(os.path.join(job_dir, "payload.pkl"), "rb") as f:
            _mp_spawn.prepare(pickle.load(f))
            fn, args = pickle.load(f)        # after prepare: fn may live in __main__
        fn(rank, *args)
    except KeyboardInterrupt:
        os._exit(1)
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            _fail(job_dir, rank)
    except BaseException:                   # noqa: BLE001 - reported to the parent
        _fail(job_dir, rank)


if __name__ == "__main__":
    main(sys.argv[1])
