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


_MAX_SLEEP_S = 3600.0


class Watchdog:
    """Holds the deadline of the one blocking operation running on the caller's thread."""

    def __init__(self, on_timeout):
        self._on_timeout = on_timeout    # (work, ran_seconds) -> None; ends the process
        self._current = None             # (work, started, deadline) while a call runs
        self._wake = threading.Event()   # set: stop, or an earlier deadline was armed
        self._wake_at = float("inf")     # when the watchdog wakes by itself next
        # when idle, sleep the shortest timeout armed so far: an operation armed later
        # has a later deadline than that wake-up, so arming needs no wake-up
        self._idle_sleep_s = float("inf")
        self._stopped = False
        self._thread: threading.Thread | None = None

    def arm(self, work, timeout_s: float, started: float | None = None) -> None:
        """Mark `work` as running until at most `timeout_s` from its start.

        `work` may also be a function making the Work, called only if it times out (the
        fast path of a blocking all_reduce makes no Work otherwise); then `started`
        is its start time. Costs an attribute store, plus a wake-up only when this
        deadline comes before the watchdog's next planned wake-up.
        """
        started = work._started if started is None else started
        deadline = started + timeout_s
        if timeout_s < self._idle_sleep_s:
            self._idle_sleep_s = min(max(timeout_s, 0.001), _MAX_SLEEP_S)
        self._current = (work, started, deadline)
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, daemon=True,
                                            name="ember-dist-watchdog")
            self._thread.start()
        elif deadline < self._wake_at:
            self._wake.set()

    def disarm(self) -> None:
        self._current = None

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _watch(self) -> None:
        while not self._stopped:
            current = self._current
            now = time.monotonic()
            if current is None:
                sleep = self._idle_sleep_s
            elif now < current[2]:
                sleep = min(current[2] - now, _MAX_SLEEP_S)
            else:
                work, started, _ = current
                if self._current is current:        # still running past its deadline
                    self._on_timeout(work() if callable(work) else work,
                                     time.monotonic() - started)
                    return
                continue
            self._wake_at = now + sleep
            if self._current is not current:      # armed meanwhile: look again
                continue
            self._wake.wait(sleep)
            self._wake.clear()


def report_and_abort(message: str, abort) -> None:
    """Write `message` to stderr (unbuffered) and end the job with `abort()`."""
    try:
        os.write(2, (message + "\n").encode("utf-8", "replace"))
    finally:
        abort()
