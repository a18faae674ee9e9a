"""The launcher's TCP mode: start this node's ranks as independent processes, as torchrun.

`python -m ember.distributed.run --transport tcp ...` (and the default for torchrun's
multi-node form, one launcher per host with `--nnodes N --node-rank K`, or where no
mpirun is installed) starts `--nproc-per-node` processes itself, each with torchrun's
environment (RANK = node_rank * nproc + local rank, WORLD_SIZE, LOCAL_RANK, ...,
MASTER_ADDR/MASTER_PORT); their init_process_group meets at MASTER_ADDR:MASTER_PORT
and connects them by TCP (tcp_transport.py). As torchrun does, the first process
that fails ends its siblings (SIGTERM, then SIGKILL after a grace period), and the
launcher exits with its code; ranks on other hosts see their peers' connections
close and fail in turn. A launcher stopped by SIGTERM or Ctrl-C ends its ranks too.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

_POLL_S = 0.05
_GRACE_S = 5.0


def rank_environments(env: dict, nproc: int, nnodes: int, node_rank: int) -> list[dict]:
    """torchrun's per-process variables for this node's ranks."""
    world = nproc * nnodes
    out = []
    for local in range(nproc):
        rank = node_rank * nproc + local
        out.append(dict(env, RANK=str(rank), LOCAL_RANK=str(local), WORLD_SIZE=str(world),
                        LOCAL_WORLD_SIZE=str(nproc), GROUP_RANK=str(node_rank),
                        ROLE_RANK=str(rank), ROLE_WORLD_SIZE=str(world),
                        EMBER_DIST_TRANSPORT="tcp"))
    return out


def launch(worker_args: list[str], env: dict, nproc: int, nnodes: int,
           node_rank: int) -> int:
    """Run this node's ranks of `python -m ember.distributed._worker worker_args`."""
    if not 0 <= node_rank < nnodes:
        raise SystemExit(f"ember.distributed.run: --node-rank {node_rank} must be in "
                         f"[0, {nnodes}) for --nnodes {nnodes}")
    cmd = [sys.executable, "-m", "ember.distributed._worker", *worker_args]
    procs = [subprocess.Popen(cmd, env=e)
             for e in rank_environments(env, nproc, nnodes, node_rank)]
    previous = signal.signal(signal.SIGTERM, _raise_terminated)   # a scheduler's stop
    try:
        return _wait_all(procs)
    except (KeyboardInterrupt, _Terminated) as stop:
        _end(procs)        # and no restart: the launcher itself was asked to stop
        raise SystemExit(143 if isinstance(stop, _Terminated) else 130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Terminated(Exception):
    pass


def _raise_terminated(signum, frame):
    raise _Terminated()


def _wait_all(procs: list[subprocess.Popen]) -> int:
    """0 when every rank finished well; else the first failure's code, the rest ended."""
    while True:
        codes = [p.poll() for p in procs]
        failed = [c for c in codes if c not in (None, 0)]
        if failed:
            _end(procs)
            return failed[0]
        if all(c == 0 for c in codes):
            return 0
        time.sleep(_POLL_S)


def _end(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _GRACE_S
    for p in procs:
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
