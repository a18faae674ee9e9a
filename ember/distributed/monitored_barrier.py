"""monitored_barrier: a barrier that names the ranks that did not arrive.

Every non-zero rank sends a token to rank 0 and waits for its answer; rank 0 waits for
each rank's token until the deadline, and if some never come raises, naming them
("Rank 1 failed to pass monitoredBarrier in 2000 ms"), as PyTorch's gloo backend does.
Put it before a collective that hangs to learn which rank is missing. The tokens are
point-to-point messages on a tag of their own, so they never match user traffic.
"""
from __future__ import annotations

import time

import numpy as np

from ..frontend.tensor import Tensor
from . import c10d
from .errors import DistBackendError

_TAG = 0x7EB0


def _token() -> Tensor:
    return Tensor._adopt(np.zeros(1, np.uint8))


def monitored_barrier(group=None, timeout=None, wait_all_ranks: bool = False) -> None:
    engine = c10d._engine(group, "monitored_barrier")
    if engine is None or engine.size == 1:
        return
    limit_s = engine.timeout_s if timeout is None else timeout.total_seconds()
    if engine.rank != 0:
        engine.send(_token(), 0, _TAG).wait(limit_s)
        try:
            # rank 0 may take the whole timeout to find a missing rank and report it: wait
            # twice as long, so that its report (naming the rank) comes first, not ours
            engine.recv(_token(), 0, _TAG).wait(2 * limit_s + 1)
        except DistBackendError as err:
            raise DistBackendError(
                f"[Rank {engine.global_rank}] monitored_barrier: rank 0 did not confirm the "
                f"barrier within {int(limit_s * 1000)} ms (another rank did not arrive, or "
                "rank 0 is stuck)") from err
        return
    deadline = time.monotonic() + limit_s
    pending = {r: engine.recv(_token(), r, _TAG) for r in range(1, engine.size)}
    missing = []
    for r, work in pending.items():
        try:
            work.wait(deadline - work._started)      # Work counts from its issue time
        except DistBackendError:
            missing.append(engine.global_ranks[r])
            if not wait_all_ranks:
                break
    if missing:
        who = f"Rank {missing[0]}" if len(missing) == 1 else \
            "Ranks " + ", ".join(str(r) for r in missing)
        raise DistBackendError(f"[Rank {engine.global_rank}] {who} failed to pass "
                               f"monitoredBarrier in {int(limit_s * 1000)} ms")
    for w in [engine.send(_token(), r, _TAG) for r in range(1, engine.size)]:
        w.wait(limit_s)
