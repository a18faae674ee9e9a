"""Work: the handle of one asynchronous collective or point-to-point operation.

An operation is pending in one of two ways:
- `ThreadOp`: a collective running as a blocking MPI call on the group's communication
  thread (mpi_engine.py). Waiting is `threading.Event.wait` with the deadline: no
  polling at all, and the collective runs at the speed of MPI's tuned blocking
  algorithms while the caller computes (Open MPI's nonblocking collectives are 20-50x
  slower from 1 MiB up, and only progress while someone tests them);
- `Requests`: nonblocking MPI requests (send/recv), tested from the calling thread:
  for the first 50 ms it spins, yielding the core between tests (what a blocking
  MPI_Wait does), then sleeps between tests, backing off to 1 ms. The TCP transport's
  requests are not polled: waiting sleeps on their mailbox (`wait_until`).
There is no watchdog thread polling in the background: it would burn a core and slow
the very collectives it watches (measured 6-29x in issue 19).

On timeout the error says which rank, which operation (its sequence number in the
group, type and sizes) and how long it ran, in the words of PyTorch's NCCL watchdog.
A timed-out MPI operation cannot be cancelled, so the group is unusable afterwards; an
uncaught error under the launcher aborts the whole job (`python -m mpi4py`).
"""
from __future__ import annotations

import os
import threading
import time

from ..futures import Future
from .errors import DistBackendError

_TIGHT_TESTS = 200         # tests before the first clock read or yield (a few us each)
_SPIN_S = 0.05             # spin (yielding) this long before sleeping between tests
_MIN_SLEEP_S = 50e-6
_MAX_SLEEP_S = 1e-3


class ThreadOp:
    """A blocking call running on a communication thread; `event` is set when it returns."""

    def __init__(self):
        self.event = threading.Event()
        self.error: BaseException | None = None

    def done(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(max(seconds, 0.0))


class Finished:
    """A call that already returned on the caller's thread (`error` if it raised)."""

    def __init__(self, error: BaseException | None = None):
        self.error = error

    def done(self) -> bool:
        return True

    def wait(self, seconds: float) -> bool:
        return True


class Requests:
    """Nonblocking MPI requests (and, for a recv, the status that says who sent)."""
    error = None

    def __init__(self, requests: list, test, statuses=None, wait_until=None):
        self.requests = requests
        self._test = test                   # (requests, statuses) -> bool
        self.statuses = statuses
        # (requests, statuses, deadline) -> bool: a transport that can sleep until its
        # requests finish (TCP's mailbox) instead of being polled
        self._wait_until = wait_until

    def done(self) -> bool:
        if self.error is not None:
            return True
        try:
            return self._test(self.requests, self.statuses)
        except Exception as err:     # noqa: BLE001 - Work.wait raises it, naming the op
            self.error = err
            return True

    def wait(self, seconds: float) -> bool:
        if self._wait_until is not None and self.error is None:
            try:
                return self._wait_until(self.requests, self.statuses,
                                        time.monotonic() + max(seconds, 0.0))
            except Exception as err:     # noqa: BLE001 - Work.wait raises it, naming the op
                self.error = err
                return True
        for _ in range(_TIGHT_TESTS):          # small collectives finish within these
            if self.done():
                return True
        now = time.monotonic()
        deadline, spin_until = now + seconds, now + _SPIN_S
        sleep = _MIN_SLEEP_S
        while not self.done():
            now = time.monotonic()
            if now > deadline:
                return False
            if now < spin_until:
                os.sched_yield()
            else:
                time.sleep(sleep)
                sleep = min(sleep * 2, _MAX_SLEEP_S)
        return True


class Work:
    """torch.distributed.Work: wait(), is_completed(), is_success(), result(), get_future()."""

    def __init__(self, engine, op_type: str, pending, *, seq: int, numel_in: int = 0,
                 numel_out: int = 0, finish=None, outputs=None):
        self._engine = engine
        self._op_type = op_type
        self._pending = pending          # ThreadOp | Requests | None (nothing to wait for)
        self._seq = seq
        self._numel_in, self._numel_out = numel_in, numel_out
        self._finish = finish           # () -> None: copy staged buffers back, AVG's divide
        self._outputs = outputs or []
        self._started = time.monotonic()
        self._completed = False
        if pending is None:
            self._mark_completed()

    def __repr__(self) -> str:
        label = getattr(self._engine, "work_label", "WorkMPI")    # WorkTCP on TCP groups
        return (f"{label}(SeqNum={self._seq}, OpType={self._op_type}, "
                f"NumelIn={self._numel_in}, NumelOut={self._numel_out}, "
                f"Timeout(ms)={int(self._engine.timeout_s * 1000)})")

    def is_completed(self) -> bool:
        """True once the operation finished; never blocks."""
        if not self._completed and self._pending.done():
            self._mark_completed()
        return self._completed

    def is_success(self) -> bool:
        return self.is_completed() and self._pending_error() is None

    def wait(self, timeout=None) -> bool:
        """Block until done; raise DistBackendError naming rank and op past the timeout."""
        if not self._completed:
            limit = self._engine.timeout_s if timeout is None else _seconds(timeout)
            remaining = self._started + limit - time.monotonic()
            if not self._pending.wait(remaining):
                raise self._timeout_error(time.monotonic())
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
        return self._engine.source_of(self._pending.statuses)

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
    def _pending_error(self):
        return None if self._pending is None else self._pending.error

    def _mark_completed(self) -> None:
        error = self._pending_error()
        if error is not None:       # stays not-completed: every wait() raises again
            self._engine.mark_broken(self)
            raise DistBackendError(f"[Rank {self._engine.global_rank}] {self!r} failed: "
                                   f"{type(error).__name__}: {error}") from error
        self._completed = True
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()

    def _timeout_error(self, now: float) -> DistBackendError:
        self._engine.mark_broken(self)
        return DistBackendError(self.timeout_message(now - self._started))

    def timeout_message(self, ran_s: float) -> str:
        """PyTorch's NCCL watchdog wording: which rank, which operation, how long."""
        return (f"[Rank {self._engine.global_rank}] Watchdog caught collective operation "
                f"timeout: {self!r} ran for {int(ran_s * 1000)} milliseconds before timing "
                "out. The other ranks of the group did not join this operation (one may have "
                "hung, died, or called collectives in a different order); the process group "
                "cannot be used further.")


def _seconds(timeout) -> float:
    return timeout.total_seconds() if hasattr(timeout, "total_seconds") else float(timeout)
