"""A fixed pool of threads that runs native kernels over chunks of an outer loop.

    pool = default_pool()
    pool.parallel_for(kernel, n, *args)   # kernel(begin, end, worker, *args) per chunk

`[0, n)` is split into one contiguous chunk per thread (never more chunks than `n`);
chunk `w` runs as `kernel(begin, end, w, *args)` on thread `w`, the caller's own
thread doing chunk 0, so two threads cost one hand-off. `worker` lets a kernel use
per-thread scratch space (packing buffers, accumulators) without locks.

Why Python threads: a ctypes CFUNCTYPE call releases the GIL for the duration of the
native call, so the cores really run in parallel; the Python-side cost is a few tens
of microseconds per call, which kernels worth splitting amortize.

The pool size is the number of CPUs this process may run on (`os.sched_getaffinity`),
or `EMBER_NUM_THREADS`. Imports nothing from ember but errors: it is runtime.
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Callable

from ..ir.errors import EmberError


def cpu_count() -> int:
    """CPUs this process may run on, or `EMBER_NUM_THREADS` when set."""
    forced = os.environ.get("EMBER_NUM_THREADS")
    if forced:
        try:
            n = int(forced)
        except ValueError:
            raise EmberError(f"EMBER_NUM_THREADS={forced!r} is not an integer") from None
        if n < 1:
            raise EmberError(f"EMBER_NUM_THREADS={forced!r} must be >= 1")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # not Linux
        return os.cpu_count() or 1


def split_range(n: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    """`[0, n)` in at most `parts` contiguous, non-empty chunks whose starts are multiples
    of `align` (so a GEMM's row chunks start on a register-block boundary)."""
    blocks = -(-n // align)
    parts = max(1, min(parts, blocks))
    bounds = [min(n, (blocks * i // parts) * align) for i in range(parts + 1)]
    return [(b, e) for b, e in zip(bounds, bounds[1:]) if e > b]


class _Task:
    __slots__ = ("fn", "args", "done", "error")

    def __init__(self, fn, args):
        self.fn, self.args = fn, args
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self):
        try:
            self.fn(*self.args)
        except BaseException as e:      # re-raised on the caller's thread
            self.error = e
        finally:
            self.done.set()


class ThreadPool:
    """`n_threads - 1` daemon workers plus the calling thread."""

    def __init__(self, n_threads: int | None = None):
        self.n_threads = n_threads or cpu_count()
        self._queues = [queue.SimpleQueue() for _ in range(self.n_threads - 1)]
        self._local = threading.local()
        self._calls = threading.Lock()     # one parallel_for at a time: workers' scratch
        self._workers = [threading.Thread(target=self._work, args=(q,), daemon=True,
                                          name=f"ember-worker-{i + 1}")
                         for i, q in enumerate(self._queues)]
        for t in self._workers:
            t.start()

    def _work(self, q: queue.SimpleQueue) -> None:
        self._local.inside = True
        while True:
            q.get().run()

    def parallel_for(self, kernel: Callable, n: int, *args, align: int = 1,
                     max_threads: int | None = None) -> None:
        """Run `kernel(begin, end, worker, *args)` over `[0, n)`, one chunk per thread.

        Returns when every chunk has finished; the first error raised by a chunk is
        re-raised here. Called from inside a chunk (a Python callable calling back in),
        it runs serially as worker 0 instead of deadlocking, so kernels that use
        per-worker scratch must not be nested."""
        nested = getattr(self._local, "inside", False)   # a chunk calling back in
        threads = 1 if nested else min(self.n_threads, max_threads or self.n_threads,
                                       _THREAD_LIMIT[0] or self.n_threads)
        chunks = split_range(n, threads, align)
        if n <= 0:
            return
        if len(chunks) == 1 and not nested:     # no worker involved: no task, no event
            with self._calls:
                kernel(chunks[0][0], chunks[0][1], 0, *args)
            return
        tasks = [_Task(kernel, (b, e, w, *args)) for w, (b, e) in enumerate(chunks)]
        if nested:
            tasks[0].run()
        else:
            with self._calls:
                for q, task in zip(self._queues, tasks[1:]):
                    q.put(task)
                tasks[0].run()
                for task in tasks:
                    task.done.wait()
        for task in tasks:
            if task.error is not None:
                raise task.error


_DEFAULT: ThreadPool | None = None
_THREAD_LIMIT: list[int | None] = [None]    # set_num_threads's cap on every parallel_for
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> ThreadPool:
    """The process-wide pool, started on first use (nothing runs at import time)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = ThreadPool()
        return _DEFAULT


def set_num_threads(n: int) -> None:
    """torch.set_num_threads: run native kernels on at most `n` threads (n >= 1).

    Caps every pool's parallel_for; the pool keeps its workers, so raising the
    limit again later costs nothing. Above the pool size the pool size wins."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads expects a positive integer, but got {n!r}")
    _THREAD_LIMIT[0] = n


def get_num_threads() -> int:
    """torch.get_num_threads: the threads a native kernel may use now."""
    size = _DEFAULT.n_threads if _DEFAULT is not None else cpu_count()
    return min(size, _THREAD_LIMIT[0] or size)
