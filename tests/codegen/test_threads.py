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
    """The native hand-off (codegen/llvm/spin.py): after a first queued chunk, workers
    spin and take a native kernel's chunks through their slots (no queue put); Python
    callables still go through the queues (a spinning worker is stopped first); every
    call's result is complete and in worker order either way."""
    from ember.codegen.llvm import spin
    pool = ThreadPool(3)
    spin.install(pool)
    kernel = compile_ir(MARK_IR).function("mark", None, ctypes.c_int64, ctypes.c_int64,
                                          ctypes.c_int64, ctypes.c_void_p)
    from ember.runtime import threads

    made = [0]        # the Python tasks made: chunk 0's, plus one per queued chunk

    class Counted(threads._Task):
        def __init__(self, fn, args):
            made[0] += 1
            super().__init__(fn, args)
    monkeypatch.setattr(threads, "_Task", Counted)
    handed_over = 0
    for i in range(40):
        out = np.zeros(999, np.int64)
        before = made[0]
        pool.parallel_for(kernel, out.size, out.ctypes.data)
        handed_over += made[0] - before == 1
        assert sorted(set(out.tolist())) == [1, 2, 3] and (np.diff(out) >= 0).all()
        if i % 7 == 3:      # a Python chunk between native ones
            seen = {}
            pool.parallel_for(lambda b, e, w: seen.setdefault(w, (b, e)), 9)
            assert sorted(seen) == [0, 1, 2]
    assert handed_over > 0


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
