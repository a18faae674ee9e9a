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

import atexit
import ctypes
import functools
import os
import platform
import queue
import threading
import time
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


@functools.lru_cache(maxsize=1024)
def _chunks(n: int, parts: int, align: int) -> tuple:
    """split_range's chunks, kept: a model's layers split the same ranges every call."""
    return tuple(split_range(n, parts, align))


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


# the chunk signature a spinning worker can run natively: kernel(begin, end, worker, params)
_CHUNK_ARGTYPES = (ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)
_SLOT_WORDS = 8          # one cache line per worker (codegen/llvm/spin.py's slot)
# slot words the native hand-off adds kernel ticks to: run by the slot's worker, and by
# the caller in a two-chunk call (spin.py BUSY_WORKER / BUSY_CALLER)
_BUSY_WORKER, _BUSY_CALLER = 6, 7
# how long a worker spins for the next chunk after one, and how long the caller spins
# for a posted chunk before it yields its core, in cycle-counter ticks (about 0.5 ms
# and 0.1 ms at the 2-4 GHz these counters tick at)
SPIN_TICKS = 1_500_000
WAIT_TICKS = 300_000
# workers spin only while the host's 1-minute load average is below its CPU count plus
# this (checked at most every LOAD_CHECK_S): with more runnable threads than cores a
# spinning worker takes time from the others and is itself scheduled late when a chunk
# comes (measured at load 7-9 on 2 cores: a depthwise int8 net 1.2-2.5x slower on 2
# threads with spinning than with the queue alone)
SPIN_LOAD_MARGIN = 0.5
LOAD_CHECK_S = 0.25


def _host_is_quiet() -> bool:
    try:
        return os.getloadavg()[0] < (os.cpu_count() or 1) + SPIN_LOAD_MARGIN
    except OSError:        # no load average on this platform
        return True


# argument types a trampoline passes as one int64 word. On x86-64 every integer argument
# takes a whole register or 8-byte stack slot and an int32 parameter reads the low half;
# elsewhere (Apple's arm64 packs int32 stack arguments into 4 bytes) int32 stays queued
_WORD_TYPES = (ctypes.c_int64, ctypes.c_void_p) + \
    ((ctypes.c_int32,) if platform.machine().lower() in ("x86_64", "amd64") else ())


def _native_chunk_kernel(kernel, args, trampolines: dict):
    """(address, params word, the params block to keep alive) where a spinning worker can
    call the kernel from native code, else None: a ctypes function of the chunk signature
    given one pointer argument directly; one of 2 .. max(trampolines) integer or pointer
    arguments after `worker`, given as ints, through the trampoline for that many (its
    params block: the kernel's address, then the arguments)."""
    proto = type(kernel)
    argtypes = getattr(proto, "_argtypes_", None)
    if argtypes is None or getattr(proto, "_restype_", 0) is not None or \
            not all(isinstance(a, int) for a in args):
        return None
    if argtypes == _CHUNK_ARGTYPES and len(args) == 1:
        return ctypes.cast(kernel, ctypes.c_void_p).value, args[0], None
    trampoline = trampolines.get(len(args))
    if trampoline is None or len(argtypes) != 3 + len(args) or \
            argtypes[:3] != _CHUNK_ARGTYPES[:3] or \
            not all(t in _WORD_TYPES for t in argtypes[3:]):
        return None
    block = (ctypes.c_int64 * (1 + len(args)))(ctypes.cast(kernel, ctypes.c_void_p).value,
                                               *args)
    return trampoline, ctypes.addressof(block), block


class ThreadPool:
    """`n_threads - 1` daemon workers plus the calling thread.

    Workers wait on a queue; once codegen has installed the native hand-off
    (`use_spinning`, codegen/llvm/spin.py), a worker that has run a chunk spins for
    SPIN_TICKS in native code, without the GIL, and a native kernel's next chunk is
    handed to it through its slot instead of the queue (tens of microseconds saved a
    parallel_for: the whole of a small GEMM's gain from a second thread)."""

    def __init__(self, n_threads: int | None = None):
        self.n_threads = n_threads or cpu_count()
        self._spin = None
        self._pair = None
        self._trampolines: dict = {}
        # (kernel, args) -> _native_chunk_kernel's answer: a model calls the same layers
        # with the same kept parameter blocks every step (the lookup cost ~2 us a call)
        self._native_cache: dict = {}
        self._spin_ok, self._next_load_check = True, 0.0
        self._pending: _Deferred | None = None     # defer()'s kernel, until join()
        self._ticks = None                  # the cycle counter the busy words count in
        self._tick_rate: float | None = None
        # busy seconds of chunks run through Python (queued, or chunk 0 beside posted
        # ones), per thread, counted only while `profiling` (tools/qprofile.py)
        self.profiling = False
        self._python_busy = [0.0] * self.n_threads
        # slot words, 64-byte aligned (one cache line per worker; index 0 unused)
        self._slot_memory = (ctypes.c_int64 * (_SLOT_WORDS * (self.n_threads + 1)))()
        base = ctypes.addressof(self._slot_memory)
        self._slots = [(base + 63) // 64 * 64 + 64 * w for w in range(self.n_threads)]
        self._queues = [queue.SimpleQueue() for _ in range(self.n_threads - 1)]
        self._local = threading.local()
        self._calls = threading.Lock()     # one parallel_for at a time: workers' scratch
        self._workers = [threading.Thread(target=self._work, args=(q, self._slots[i + 1]),
                                          daemon=True, name=f"ember-worker-{i + 1}")
                         for i, q in enumerate(self._queues)]
        for t in self._workers:
            t.start()

    def use_spinning(self, worker, post, reclaim, wait, stop, trampolines=None,
                     pair=None, ticks=None) -> None:
        """Install the native hand-off (codegen/llvm/spin.py's compiled functions;
        trampolines: {k: address} of those that pass k arguments on; pair: spin_pair,
        a two-chunk parallel_for in one native call; ticks: the cycle counter its busy
        words count in)."""
        if self._spin is None:
            atexit.register(self._end_spinning)
        self._trampolines = dict(trampolines or {})
        self._native_cache = {}
        self._pair = pair
        self._ticks = ticks
        self._spin = (worker, post, reclaim, wait, stop)

    def busy_seconds(self) -> list[float]:
        """Seconds each thread (caller first, then the workers) has spent running chunks
        so far: the native hand-off's tick counts (kept always) plus, while `profiling`,
        the chunks run through Python. Take differences around a step: a thread's CPU
        time also counts its spinning, this only its kernels."""
        busy = list(self._python_busy)
        rate = self._ticks_per_second()
        if rate:
            for w, slot in enumerate(self._slots[1:], start=1):
                busy[w] += ctypes.c_int64.from_address(slot + 8 * _BUSY_WORKER).value / rate
                busy[0] += ctypes.c_int64.from_address(slot + 8 * _BUSY_CALLER).value / rate
        return busy

    def _ticks_per_second(self) -> float | None:
        """The busy words' tick rate, measured once against perf_counter (~20 ms)."""
        if self._tick_rate is None and self._ticks is not None:
            t0, k0 = time.perf_counter(), self._ticks()
            time.sleep(0.02)
            t1, k1 = time.perf_counter(), self._ticks()
            self._tick_rate = (k1 - k0) / (t1 - t0)
        return self._tick_rate

    def _end_spinning(self) -> None:
        """At exit, before modules (and the compiled code the workers spin in) are torn
        down: no worker spins again, and the spinning ones are sent back to their
        queues (daemon threads keep running native code during interpreter shutdown)."""
        if self._pending is not None:      # an exception left a deferred kernel
            self._join(self._pending)
        spin, self._spin = self._spin, None
        if spin is None:
            return
        deadline = time.monotonic() + 0.05
        for slot in self._slots[1:]:
            spin[4](slot)
            while ctypes.c_int64.from_address(slot).value != 0 and \
                    time.monotonic() < deadline:
                time.sleep(0.0001)

    def _work(self, q: queue.SimpleQueue, slot: int) -> None:
        self._local.inside = True
        worker = self._slots.index(slot)
        while True:
            task = q.get()
            if self.profiling:
                started = time.thread_time()
                task.run()
                self._python_busy[worker] += time.thread_time() - started
            else:
                task.run()
            spin = self._spin
            if spin is not None and self._spin_ok and q.empty():
                spin[0](slot, SPIN_TICKS)      # returns when idle that long, or stopped

    def parallel_for(self, kernel: Callable, n: int, *args, align: int = 1,
                     max_threads: int | None = None) -> None:
        """Run `kernel(begin, end, worker, *args)` over `[0, n)`, one chunk per thread.

        Returns when every chunk has finished; the first error raised by a chunk is
        re-raised here. Called from inside a chunk (a Python callable calling back in),
        it runs serially as worker 0 instead of deadlocking, so kernels that use
        per-worker scratch must not be nested."""
        pending = self._pending
        if pending is not None and pending.owner == threading.get_ident():
            self._join(pending)     # the deferred kernel's results may be this one's input
        nested = getattr(self._local, "inside", False)   # a chunk calling back in
        threads = 1 if nested else min(self.n_threads, max_threads or self.n_threads,
                                       _THREAD_LIMIT[0] or self.n_threads)
        if n <= 0:
            return
        chunks = _chunks(n, threads, align)
        if len(chunks) == 1 and not nested:     # no worker involved: no task, no event
            with self._calls:
                self._local.inside = True       # a call back in from here: serial
                started = time.thread_time() if self.profiling else 0.0
                try:
                    kernel(chunks[0][0], chunks[0][1], 0, *args)
                finally:
                    self._local.inside = False
                    if self.profiling:
                        self._python_busy[0] += time.thread_time() - started
            return
        if nested:
            tasks = [_Task(kernel, (b, e, w, *args)) for w, (b, e) in enumerate(chunks)]
            tasks[0].run()
        else:
            with self._calls:
                tasks = self._run_chunks(kernel, chunks, args)
        for task in tasks:
            if task.error is not None:
                raise task.error

    # --- deferred kernels: the caller's Python glue beside the workers' chunks -------
    def open_window(self, is_open: bool = True) -> None:
        """Let (or stop letting) this thread's next defer() return before its kernel is
        done (fused_forward's conv steps open it around a layer's prepared call)."""
        self._local.window = is_open

    def defer(self, kernel, n: int, args: tuple, keep: tuple,
              release: Callable | None) -> bool:
        """parallel_for(kernel, n, *args) begun and left running: chunks 1.. posted to
        the spinning workers, and this call returns at once; chunk 0 (the caller's share:
        a guided-claims kernel claims what the workers have left) and the wait run at
        join(), which the next parallel_for on this thread makes first, then
        `release()` where given. `keep` holds the arrays the kernel reads and writes alive until
        then (the caching allocator must not hand them out while it runs). Only where
        this thread's window is open (open_window; one kernel a window), the kernel is
        native, workers spin and at least two threads take part; else False and nothing
        ran. Why: at two threads the Python between two convolutions (~0.1 ms a layer
        after a convolution has evicted its code and data from the caches) ran on one
        thread while the other spun; deferred, the worker claims the convolution's
        tiles meanwhile. The caller must not read the kernel's results, nor write what
        it reads, before join()."""
        local = self._local
        if not getattr(local, "window", False) or getattr(local, "inside", False):
            return False
        local.window = False
        spin = self._spin
        threads = min(self.n_threads, n, _THREAD_LIMIT[0] or self.n_threads)
        if spin is None or threads < 2:
            return False
        if self._pending is not None:
            self.join()
        if time.monotonic() > self._next_load_check:
            self._spin_ok = _host_is_quiet()
            self._next_load_check = time.monotonic() + LOAD_CHECK_S
        native = self._native(kernel, args) if self._spin_ok else None
        if native is None:
            return False
        chunks = _chunks(n, threads, 1)
        self._calls.acquire()
        posted = []
        for w, (begin, end) in enumerate(chunks[1:], start=1):
            if not spin[1](self._slots[w], native[0], begin, end, w, native[1]):
                break
            posted.append(w)
        if not posted:
            self._calls.release()
            return False
        # native's trampoline block too: the pool's lookup cache may drop it meanwhile
        self._pending = _Deferred(kernel, args, chunks, posted, (keep, native), release,
                                  threading.get_ident())
        return True

    def join(self) -> None:
        """Finish this thread's deferred kernel, if any (defer)."""
        pending = self._pending
        if pending is not None and pending.owner == threading.get_ident():
            self._join(pending)

    def _join(self, p: _Deferred) -> None:
        self._pending = None
        spin, kernel, args = self._spin, p.kernel, p.args
        started = time.thread_time() if self.profiling else 0.0
        self._local.inside = True
        try:
            for w, (begin, end) in enumerate(p.chunks):
                if w == 0 or w not in p.posted:
                    kernel(begin, end, w, *args)
            for w in p.posted:
                slot = self._slots[w]
                if spin[2](slot):           # not started: run here
                    kernel(*p.chunks[w], w, *args)
                    continue
                while not spin[3](slot, WAIT_TICKS):
                    os.sched_yield()
        finally:
            self._local.inside = False
            if self.profiling:
                self._python_busy[0] += time.thread_time() - started
            if p.release is not None:
                p.release()
            self._calls.release()

    def _native(self, kernel, args):
        """_native_chunk_kernel(kernel, args), kept per (kernel, args) while the same
        pairs come back (a model's layers and their kept parameter blocks)."""
        key = (kernel, args)
        try:
            return self._native_cache[key]
        except KeyError:
            pass
        except TypeError:           # an argument that cannot be a key
            return _native_chunk_kernel(kernel, args, self._trampolines)
        native = _native_chunk_kernel(kernel, args, self._trampolines)
        if len(self._native_cache) >= _NATIVE_CACHE_SIZE:
            self._native_cache.clear()
        self._native_cache[key] = native
        return native

    def _run_chunks(self, kernel, chunks, args) -> list:
        """Chunk w > 0 to worker w (posted to a spinning worker where the kernel is
        native, else queued), chunk 0 here; returns when all are done. The queued
        tasks, chunk 0's included (whose errors the caller re-raises)."""
        spin = self._spin
        if spin is not None and time.monotonic() > self._next_load_check:
            self._spin_ok = _host_is_quiet()
            self._next_load_check = time.monotonic() + LOAD_CHECK_S
        native = self._native(kernel, args) if spin and self._spin_ok else None
        if native is not None and len(chunks) == 2 and self._pair is not None:
            # both chunks in one native call: post, chunk 0, reclaim or wait
            (b0, e0), (b1, e1) = chunks
            slot = self._slots[1]
            done = self._pair(slot, native[0], b0, e0, b1, e1, 1, native[1], WAIT_TICKS)
            if done >= 0:
                while not done:
                    os.sched_yield()
                    done = spin[3](slot, WAIT_TICKS)
                return []
        posted, tasks = [], [_Task(kernel, (*chunks[0], 0, *args))]
        for w, (begin, end) in enumerate(chunks[1:], start=1):
            slot = self._slots[w]
            if native is not None and spin[1](slot, native[0], begin, end, w, native[1]):
                posted.append((w, slot))
                continue
            if spin is not None:
                spin[4](slot)       # a spinning worker goes back to its queue
            tasks.append(_Task(kernel, (begin, end, w, *args)))
            self._queues[w - 1].put(tasks[-1])
        self._local.inside = True       # chunk 0 calling back in runs serially
        started = time.thread_time() if self.profiling else 0.0
        try:
            tasks[0].run()
        finally:
            self._local.inside = False
        reclaimed = [w for w, slot in posted if spin[2](slot)]   # not started: run here
        for w in reclaimed:
            kernel(*chunks[w], w, *args)
        if self.profiling:      # chunk 0 and the reclaimed ones: the caller's CPU time
            self._python_busy[0] += time.thread_time() - started
        for w, slot in posted:
            if w in reclaimed:
                continue
            while not spin[3](slot, WAIT_TICKS):
                os.sched_yield()
        for task in tasks[1:]:
            task.done.wait()
        return tasks


class _Deferred:
    """ThreadPool.defer's kernel between its post and its join."""
    __slots__ = ("kernel", "args", "chunks", "posted", "keep", "release", "owner")

    def __init__(self, kernel, args, chunks, posted, keep, release, owner):
        self.kernel, self.args, self.chunks, self.posted = kernel, args, chunks, posted
        self.keep, self.release, self.owner = keep, release, owner


_NATIVE_CACHE_SIZE = 256
_DEFAULT: ThreadPool | None = None
_THREAD_LIMIT: list[int | None] = [None]    # set_num_threads's cap on every parallel_for
_DEFAULT_LOCK = threading.Lock()


def _forget_pool_after_fork() -> None:
    """In a forked child the pool's worker threads do not exist (fork copies only the
    calling thread), so a parallel_for would wait for them forever: the child starts a
    fresh pool on first use (torch's at-fork handler does the same for its pool), and
    the parent's pool leaves at exit without waiting for its missing workers."""
    global _DEFAULT, _DEFAULT_LOCK
    old, _DEFAULT = _DEFAULT, None
    _DEFAULT_LOCK = threading.Lock()
    if old is not None:
        old._spin, old._pending = None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


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
