"""The watchdog of blocking collectives that run on the calling thread.

A synchronous collective (`async_op=False`) whose group's communication thread is idle
runs as MPI's blocking call on the caller's own thread: the two thread hand-offs of the
queued path cost ~20 us, a third of a 256 KiB all-reduce on one host. A blocking MPI
call cannot be interrupted, so its deadline is kept by this watchdog: one daemon thread
per group that *sleeps* (no polling) until the running operation's deadline. Arming it
is an attribute store, no wake-up, so it costs nothing per call.

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


class Watchdog:
    """Holds the deadline of the one blocking operation running on the caller's thread."""

    def __init__(self, on_timeout):
        self._on_timeout = on_timeout    # (work, ran_seconds) -> None; ends the process
        self._current = None             # (work, started, deadline) while a call runs
        self._idle_sleep_s = 60.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def arm(self, work, timeout_s: float, started: float | None = None) -> None:
        """Mark `work` as running until at most `timeout_s` from its start.

        `work` may also be a function making the Work, called only if it times out (the
        fast path of a blocking all_reduce makes no Work otherwise); then `started`
        is its start time.
        """
        if self._thread is None:
            self._start(timeout_s)
        started = work._started if started is None else started
        self._current = (work, started, started + timeout_s)

    def disarm(self) -> None:
        self._current = None

    def stop(self) -> None:
        self._stop.set()

    def _start(self, timeout_s: float) -> None:
        # when idle, sleep one timeout: an operation armed later has a later deadline
        self._idle_sleep_s = max(timeout_s, 0.01)
        self._thread = threading.Thread(target=self._watch, name="ember-dist-watchdog",
                                        daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            current = self._current
            if current is None:
                self._stop.wait(self._idle_sleep_s)
                continue
            work, started, deadline = current
            remaining = deadline - time.monotonic()
            if remaining > 0:
                self._stop.wait(remaining)
            elif self._current is current:
                if callable(work):
                    work = work()
                self._on_timeout(work, time.monotonic() - started)
                return


def report_and_abort(message: str, abort) -> None:
    """Write `message` to stderr (unbuffered) and end the job with `abort()`."""
    try:
        os.write(2, (message + "\n").encode("utf-8", "replace"))
    finally:
        abort()
