"""The watchdog of blocking collectives that run on the calling thread.

A synchronous collective (`async_op=False`) whose group's communication thread is idle
runs as MPI's blocking call on the caller's own thread: the two thread hand-offs of the
queued path cost ~20 us, a third of a 256 KiB all-reduce on one host. A blocking MPI
call cannot be interrupted, so its deadline is kept by this watchdog: one daemon thread
per group that wakes every tenth of the timeout and samples what the caller runs.

Sampling, not arming: the caller only stores what it runs (the engine's `_seq` and
`_running`, two attribute stores, no clock read, no lock, no wake-up), which keeps a
4 KiB all-reduce within a few percent of mpi4py's own call. An operation seen running
at two samples `timeout` apart has run at least that long (operations on one thread
are sequential and each takes a new sequence number), so the watchdog never fires
early, and fires at most two sampling periods (a fifth of the timeout) late.

If the operation is still running at its deadline, the watchdog reports it on stderr in
the words of PyTorch's NCCL watchdog (rank, op, sequence number, timeout) and aborts the
job, which is what PyTorch does for a timed-out NCCL collective by default
(TORCH_NCCL_ASYNC_ERROR_HANDLING tears the process down): the hung call can never
return, so there is nobody left to raise to. Asynchronous work (`async_op=True`) keeps
raising DistBackendError from `Work.wait()`.
"""
from __future__ import annotations

import os
import threading
import time

_MIN_PERIOD_S = 0.002
_MAX_PERIOD_S = 60.0


class Watchdog:
    """Samples `probe()` every tenth of the shortest timeout it was told of.

    `probe()` says what runs now: None when idle, else `(key, timeout_s)` where `key`
    names one operation (a sequence number never reused). `on_timeout(key, ran_s)` is
    called from the watchdog's thread when one key stayed running `timeout_s`; the
    watchdog ends there unless it returns False (the operation had just returned).
    """

    def __init__(self, probe, on_timeout, timeout_s: float):
        self._probe = probe
        self._on_timeout = on_timeout
        self._period_s = _period(timeout_s)
        self._wake = threading.Event()     # set: stop, or a shorter period was asked for
        self._stopped = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, daemon=True,
                                            name="ember-dist-watchdog")
            self._thread.start()

    def expect(self, timeout_s: float) -> None:
        """An operation with this timeout may run: sample often enough for it."""
        period = _period(timeout_s)
        if period < self._period_s:
            self._period_s = period
            self._wake.set()
        self.start()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _watch(self) -> None:
        seen_key, seen_at = None, 0.0
        while not self._stopped:
            self._wake.wait(self._period_s)
            self._wake.clear()
            if self._stopped:
                return
            running = self._probe()
            now = time.monotonic()
            if running is None or running[0] != seen_key:
                seen_key, seen_at = (None, now) if running is None else (running[0], now)
                continue
            if now - seen_at >= running[1] and self._on_timeout(seen_key, now - seen_at) \
                    is not False:
                return


def _period(timeout_s: float) -> float:
    return min(max(timeout_s / 10.0, _MIN_PERIOD_S), _MAX_PERIOD_S)


def report_and_abort(message: str, abort) -> None:
    """Write `message` to stderr (unbuffered) and end the job with `abort()`."""
    try:
        os.write(2, (message + "\n").encode("utf-8", "replace"))
    finally:
        abort()
