"""Work: the handle of one asynchronous collective or point-to-point operation.

Every operation is issued to the engine as nonblocking requests; `Work.wait` polls
them from the calling thread until they complete or the group's timeout passes. There
is no background watchdog thread: an MPI thread polling in a loop burns a core and
slows the very collectives it watches (measured 6-29x in issue 19). Polling backs off
from a tight spin to 1 ms sleeps, so a long wait costs next to no CPU.

On timeout the error says which rank, which operation (its sequence number in the
group, type and sizes) and how long it ran, in the words of PyTorch's NCCL watchdog.
A timed-out MPI request cannot be cancelled, so the group is unusable afterwards; an
uncaught error under the launcher aborts the whole job (`python -m mpi4py`).
"""
from __future__ import annotations

import time

from ..futures import Future
from .errors import DistBackendError

_SPIN_POLLS = 200          # first polls without sleeping: small collectives finish here
_MIN_SLEEP_S = 20e-6
_MAX_SLEEP_S = 1e-3


class Work:
    """torch.distributed.Work: wait(), is_completed(), is_success(), result(), get_future()."""

    def __init__(self, engine, op_type: str, requests: list, *, seq: int, numel_in: int = 0,
                 numel_out: int = 0, finish=None, outputs=None, statuses=None):
        self._engine = engine
        self._op_type = op_type
        self._requests = requests
        self._seq = seq
        self._numel_in, self._numel_out = numel_in, numel_out
        self._finish = finish           # () -> None: copy staged buffers back, AVG's divide
        self._outputs = outputs or []
        self._started = time.monotonic()
        self._completed = not requests
        self._statuses = statuses       # MPI statuses of a recv, for its source rank
        if self._completed:
            self._run_finish()

    def __repr__(self) -> str:
        return (f"WorkMPI(SeqNum={self._seq}, OpType={self._op_type}, "
                f"NumelIn={self._numel_in}, NumelOut={self._numel_out}, "
                f"Timeout(ms)={int(self._engine.timeout_s * 1000)})")

    def is_completed(self) -> bool:
        """True once the operation finished; never blocks (it drives MPI progress once)."""
        if not self._completed and self._engine.test(self._requests, self._statuses):
            self._mark_completed()
        return self._completed

    def is_success(self) -> bool:
        return self.is_completed()

    def wait(self, timeout=None) -> bool:
        """Block until done; raise DistBackendError naming rank and op past the timeout."""
        if self._completed:
            return True
        limit = self._engine.timeout_s if timeout is None else _seconds(timeout)
        deadline = self._started + limit
        polls, sleep = 0, _MIN_SLEEP_S
        while not self._engine.test(self._requests, self._statuses):
            now = time.monotonic()
            if now > deadline:
                raise self._timeout_error(now)
            polls += 1
            if polls > _SPIN_POLLS:
                time.sleep(sleep)
                sleep = min(sleep * 2, _MAX_SLEEP_S)
        self._mark_completed()
        return True

    def result(self) -> list:
        return list(self._outputs)

    def get_future(self) -> Future:
        """A Future of the output tensors (a list), completed by waiting this work."""
        return Future(waiter=lambda: self.wait() and self.result(),
                      poller=self.is_completed)

    def source_rank(self) -> int:
        """The global rank a recv (from any source) received from."""
        return self._engine.source_of(self._statuses)

    def then_on_completion(self, fn, outputs: list) -> None:
        """Run `fn()` after the engine's own finishing step; `outputs` become result()."""
        previous = self._finish

        def chained():
            if previous is not None:
                previous()
            fn()

        self._outputs = list(outputs)
        if self._completed:
            fn()
        else:
            self._finish = chained

    # --- internals -------------------------------------------------------------------
    def _mark_completed(self) -> None:
        self._completed = True
        self._run_finish()

    def _run_finish(self) -> None:
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()

    def _timeout_error(self, now: float) -> DistBackendError:
        ran_ms = int((now - self._started) * 1000)
        self._engine.mark_broken(self)
        return DistBackendError(
            f"[Rank {self._engine.global_rank}] Watchdog caught collective operation timeout: "
            f"{self!r} ran for {ran_ms} milliseconds before timing out. The other ranks of "
            "the group did not join this operation (one may have hung, died, or called "
            "collectives in a different order); the process group cannot be used further.")


def _seconds(timeout) -> float:
    return timeout.total_seconds() if hasattr(timeout, "total_seconds") else float(timeout)
