"""The runtime thread pool: chunking, coverage, parallel native calls, errors."""
import ctypes
import threading

import numpy as np
import pytest

from ember.codegen.llvm.jit import compile_ir
from ember.ir.errors import EmberError
from ember.runtime.threads import ThreadPool, cpu_count, split_range

# mark(begin, end, worker, out): out[i] = worker + 1 for i in [begin, end)
MARK_IR = """
define void @mark(i64 %begin, i64 %end, i64 %worker, ptr noalias %out) {
entry:
  %w1 = add i64 %worker, 1
  br label %head
head:
  %i = phi i64 [%begin, %entry], [%next, %body]
  %more = icmp slt i64 %i, %end
  br i1 %more, label %body, label %exit
body:
  %p = getelementptr i64, ptr %out, i64 %i
  store i64 %w1, ptr %p
  %next = add i64 %i, 1
  br label %head
exit:
  ret void
}
"""


@pytest.mark.parametrize("n,parts,align", [(10, 3, 1), (7, 4, 1), (3, 8, 1), (100, 2, 14),
                                           (13, 2, 16), (1, 1, 1)])
def test_split_range_covers_once(n, parts, align):
    chunks = split_range(n, parts, align)
    assert [i for b, e in chunks for i in range(b, e)] == list(range(n))
    assert len(chunks) <= parts and all(b % align == 0 for b, _ in chunks)


def test_parallel_for_runs_native_kernel_on_every_worker():
    pool = ThreadPool(3)
    kernel = compile_ir(MARK_IR).function("mark", None, ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_void_p)
    out = np.zeros(1000, np.int64)
    pool.parallel_for(kernel, out.size, out.ctypes.data)
    assert (out > 0).all()
    assert sorted(set(out.tolist())) == [1, 2, 3]        # three chunks, three workers
    assert (np.diff(out) >= 0).all()                     # contiguous chunks in order


def test_parallel_for_uses_distinct_threads():
    pool = ThreadPool(2)
    seen = {}
    pool.parallel_for(lambda b, e, w: seen.setdefault(w, threading.get_ident()), 10)
    assert len(set(seen.values())) == 2


def test_max_threads_and_empty_range():
    pool = ThreadPool(2)
    calls = []
    pool.parallel_for(lambda b, e, w: calls.append((b, e, w)), 10, max_threads=1)
    assert calls == [(0, 10, 0)]
    pool.parallel_for(lambda b, e, w: calls.append((b, e, w)), 0)
    assert len(calls) == 1


def test_error_in_a_chunk_reaches_the_caller():
    pool = ThreadPool(2)

    def fail_on_second(begin, end, worker):
        if worker == 1:
            raise ValueError(f"chunk {begin}:{end} failed")
    with pytest.raises(ValueError, match="chunk 5:10 failed"):
        pool.parallel_for(fail_on_second, 10)
    pool.parallel_for(lambda b, e, w: None, 10)          # still usable afterwards


def test_thread_count_from_environment(monkeypatch):
    monkeypatch.setenv("EMBER_NUM_THREADS", "3")
    assert cpu_count() == 3
    monkeypatch.setenv("EMBER_NUM_THREADS", "two")
    with pytest.raises(EmberError, match="EMBER_NUM_THREADS='two'"):
        cpu_count()
    monkeypatch.delenv("EMBER_NUM_THREADS")
    assert cpu_count() >= 1


def test_spinning_workers_run_native_chunks_and_python_tasks(monkeypatch):
    """The native hand-off (codegen/llvm/spin.py) in the pool: native chunks (posted to a
    spinning worker, reclaimed, or queued, as the host's load decides) and Python
    callables (queued; a spinning worker is stopped first) interleaved: every call's
    result is complete and in worker order whichever way each chunk went."""
    from ember.codegen.llvm import spin
    from ember.runtime import threads
    monkeypatch.setattr(threads, "_host_is_quiet", lambda: True)    # spin on a busy host
    pool = ThreadPool(3)
    spin.install(pool)
    kernel = compile_ir(MARK_IR).function("mark", None, ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_void_p)
    for i in range(40):
        out = np.zeros(999, np.int64)
        pool.parallel_for(kernel, out.size, out.ctypes.data)
        assert sorted(set(out.tolist())) == [1, 2, 3] and (np.diff(out) >= 0).all()
        if i % 7 == 3:      # a Python chunk between native ones
            seen = {}
            pool.parallel_for(lambda b, e, w: seen.setdefault(w, (b, e)), 9)
            assert sorted(seen) == [0, 1, 2]


def test_spin_slot_protocol():
    """A spinning worker runs a posted chunk natively; a chunk it has not started is
    reclaimed by the caller (and never run by the worker); stop sends it back."""
    import time
    from ember.codegen.llvm import spin
    _, worker, post, reclaim, wait, stop = spin.functions()
    mem = (ctypes.c_int64 * 16)()
    slot = (ctypes.addressof(mem) + 63) // 64 * 64
    kernel = compile_ir(MARK_IR).function("mark", None, ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_void_p)
    address = ctypes.cast(kernel, ctypes.c_void_p).value
    out = np.zeros(8, np.int64)
    # no worker spinning (state 0): a post is refused
    assert post(slot, address, 0, 4, 1, out.ctypes.data) == 0
    ran, deadline = False, time.monotonic() + 10
    thread = None
    while not ran and time.monotonic() < deadline:
        if thread is None or not thread.is_alive():     # it left: idle or descheduled
            thread = threading.Thread(target=worker, args=(slot, 10 ** 10), daemon=True)
            thread.start()
            time.sleep(0.001)
        if post(slot, address, 0, 4, 1, out.ctypes.data):
            time.sleep(0.0005)              # time to take it
            if reclaim(slot):               # not started yet: ours, the worker skips it
                continue
            while not wait(slot, 10 ** 6):
                pass
            ran = True
    assert ran and out.tolist() == [2, 2, 2, 2, 0, 0, 0, 0]
    stop(slot)
    thread.join(10)
    assert not thread.is_alive() and mem[(slot - ctypes.addressof(mem)) // 8] == 0


def test_spinning_pool_limits_threads_and_nested_calls():
    from ember.codegen.llvm import spin
    pool = ThreadPool(2)
    spin.install(pool)
    kernel = compile_ir(MARK_IR).function("mark", None, ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_void_p)
    out = np.zeros(10, np.int64)
    pool.parallel_for(kernel, out.size, out.ctypes.data)
    out[:] = 0
    pool.parallel_for(kernel, out.size, out.ctypes.data, max_threads=1)
    assert set(out.tolist()) == {1}
    inner = np.zeros(6, np.int64)
    pool.parallel_for(lambda b, e, w: pool.parallel_for(kernel, 6, inner.ctypes.data), 2)
    assert set(inner.tolist()) == {1}          # nested: serial, as worker 0


def test_spin_pair_runs_both_chunks_or_refuses():
    """spin_pair: refused (-1, nothing run) where no worker spins on the slot; else chunk
    0 runs on the caller as worker 0 and chunk 1 on the spinning worker (or on the
    caller, reclaimed, as worker 1 either way)."""
    import time
    from ember.codegen.llvm import spin
    _, worker, _, _, wait, stop = spin.functions()
    pair = spin.pair_function()
    mem = (ctypes.c_int64 * 16)()
    slot = (ctypes.addressof(mem) + 63) // 64 * 64
    kernel = compile_ir(MARK_IR).function("mark", None, ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_void_p)
    address = ctypes.cast(kernel, ctypes.c_void_p).value
    out = np.zeros(8, np.int64)
    assert pair(slot, address, 0, 3, 3, 8, 1, out.ctypes.data, 10 ** 6) == -1
    assert out.tolist() == [0] * 8
    # a worker that finds itself off its core stops spinning (a loaded host): then the
    # pair is refused with nothing run, and a fresh worker is started until one takes it
    deadline, done, thread = time.monotonic() + 60, -1, None
    while done == -1 and time.monotonic() < deadline:
        if thread is None or not thread.is_alive():
            thread = threading.Thread(target=worker, args=(slot, 10 ** 10), daemon=True)
            thread.start()
        while ctypes.c_int64.from_address(slot).value != 1 and thread.is_alive() \
                and time.monotonic() < deadline:
            time.sleep(0.0005)          # until it spins
        done = pair(slot, address, 0, 3, 3, 8, 1, out.ctypes.data, 10 ** 6)
        if done == -1:
            assert out.tolist() == [0] * 8
    while done == 0:
        done = wait(slot, 10 ** 6)
    assert done == 1 and out.tolist() == [1, 1, 1, 2, 2, 2, 2, 2]
    stop(slot)
    thread.join(10)
    assert not thread.is_alive()


def test_two_thread_pool_hands_both_chunks_over_natively(monkeypatch):
    """A two-thread spinning pool runs a native kernel's two chunks through spin_pair
    (direct and through a trampoline), repeated calls with the same arguments included
    (their native lookup kept): every element written once, by its chunk's worker."""
    from ember.codegen.llvm import spin
    from ember.runtime import threads
    monkeypatch.setattr(threads, "_host_is_quiet", lambda: True)
    pool = ThreadPool(2)
    spin.install(pool)
    calls = []
    pair = pool._pair
    pool._pair = lambda *a: calls.append(a[1]) or pair(*a)
    kernel = compile_ir(MARK_IR).function("mark", None, ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_void_p)
    out = np.zeros(101, np.int64)
    for _ in range(30):
        out[:] = 0
        pool.parallel_for(kernel, out.size, out.ctypes.data)
        assert out[:50].tolist() == [1] * 50 and out[50:].tolist() == [2] * 51
    assert calls        # some went through spin_pair (the worker spun at least once)


# spin(begin, end, worker, out): out[worker] += the iterations of a dependent loop of
# (end - begin) * 20000 steps (about a millisecond per 100 elements)
SPIN_IR = """
define void @spin(i64 %begin, i64 %end, i64 %worker, ptr noalias %out) {
entry:
  %n = sub i64 %end, %begin
  %steps = mul i64 %n, 20000
  br label %head
head:
  %i = phi i64 [0, %entry], [%next, %body]
  %acc = phi i64 [0, %entry], [%acc2, %body]
  %more = icmp slt i64 %i, %steps
  br i1 %more, label %body, label %exit
body:
  %mix = mul i64 %acc, 6364136223846793005
  %acc2 = add i64 %mix, %i
  %next = add i64 %i, 1
  br label %head
exit:
  %p = getelementptr i64, ptr %out, i64 %worker
  %old = load i64, ptr %p
  %new = add i64 %old, %acc
  store i64 %new, ptr %p
  ret void
}
"""


@pytest.mark.parametrize("spinning", [True, False])
def test_busy_seconds_count_each_threads_chunks(monkeypatch, spinning):
    """busy_seconds: each thread's time running chunks (the native hand-off's tick words
    where chunks go through it, the Python path's CPU time while profiling), caller
    first: both threads of an even split gain about half the work, and neither more
    than the call's wall time (spinning is not counted)."""
    import time
    from ember.codegen.llvm import spin
    from ember.runtime import threads
    monkeypatch.setattr(threads, "_host_is_quiet", lambda: spinning)
    pool = ThreadPool(2)
    spin.install(pool)
    pool.profiling = True
    kernel = compile_ir(SPIN_IR).function("spin", None, ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_void_p)
    out = np.zeros(2, np.int64)
    pool.parallel_for(kernel, 20, out.ctypes.data)      # warm: the worker spins now
    before, t0 = pool.busy_seconds(), time.perf_counter()
    for _ in range(5):
        pool.parallel_for(kernel, 200, out.ctypes.data)
    wall = time.perf_counter() - t0
    busy = [b - a for a, b in zip(before, pool.busy_seconds())]
    assert len(busy) == 2 and busy[0] > 0
    # queued chunks always reach the worker; a posted one may be reclaimed by the caller
    # where the worker is descheduled (a loaded host)
    assert busy[1] > 0 if not spinning else busy[1] >= 0
    assert sum(busy) <= 2 * wall * 1.05 and max(busy) <= wall * 1.05
    # the caller runs chunk 0 and any chunk it reclaims: at least half of the work
    assert busy[0] >= 0.3 * sum(busy)


def test_a_forked_child_gets_a_pool_of_its_own():
    """fork copies only the calling thread: the child's parallel_for would wait forever
    on the parent's workers; it starts a fresh default pool instead (the DataLoader's
    and MultiProcessTestCase's fork, a Process per rank)."""
    import multiprocessing
    from ember.runtime import threads
    fn = compile_ir(MARK_IR).function("mark", None, ctypes.c_int64, ctypes.c_int64,
                                      ctypes.c_int64, ctypes.c_void_p)
    out = np.zeros(64, np.int64)
    threads.default_pool().parallel_for(fn, 64, out.ctypes.data)   # the parent's workers run
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def child():
        mine = np.zeros(64, np.int64)
        pool = threads.default_pool()
        pool.parallel_for(fn, 64, mine.ctypes.data)
        results.put((pool is not parent_pool, sorted(set(mine.tolist()))))
    parent_pool = threads.default_pool()
    proc = ctx.Process(target=child)
    proc.start()
    try:
        fresh, marks = results.get(timeout=30)
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    assert fresh and marks == list(range(1, parent_pool.n_threads + 1))
