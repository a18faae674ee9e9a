"""Kernels with several arguments after `worker` (the int8 add's, max pool's, quantize's
signatures) handed to a spinning worker through codegen/llvm/spin.py's trampolines:
the chunk runs natively on the worker with every argument as given."""
import ctypes

import numpy as np
import pytest

from ember.codegen.llvm import spin
from ember.codegen.llvm.jit import compile_ir
from ember.runtime import threads
from ember.runtime.threads import ThreadPool, _native_chunk_kernel

# fill(begin, end, worker, out, stride, value): out[i * stride] = value + worker, i in range
FILL_IR = """
define void @fill(i64 %begin, i64 %end, i64 %worker, ptr noalias %out, i64 %stride,
                  i64 %value) {
entry:
  %v = add i64 %value, %worker
  br label %head
head:
  %i = phi i64 [%begin, %entry], [%next, %body]
  %more = icmp slt i64 %i, %end
  br i1 %more, label %body, label %exit
body:
  %j = mul i64 %i, %stride
  %p = getelementptr i64, ptr %out, i64 %j
  store i64 %v, ptr %p
  %next = add i64 %i, 1
  br label %head
exit:
  ret void
}
"""
I64, PTR = ctypes.c_int64, ctypes.c_void_p


def _fill():
    return compile_ir(FILL_IR).function("fill", None, I64, I64, I64, PTR, I64, I64)


def test_a_three_argument_kernel_goes_through_its_trampoline():
    kernel = _fill()
    out = np.zeros(4, np.int64)
    native = _native_chunk_kernel(kernel, (out.ctypes.data, 1, 7), spin.trampolines())
    assert native is not None and native[0] == spin.trampolines()[3]
    block = np.ctypeslib.as_array(native[2])
    assert block.tolist() == [ctypes.cast(kernel, PTR).value, out.ctypes.data, 1, 7]
    trampoline = ctypes.CFUNCTYPE(None, I64, I64, I64, PTR)(native[0])
    trampoline(1, 3, 2, native[1])          # the worker's call: fill(1, 3, 2, out, 1, 7)
    assert out.tolist() == [0, 9, 9, 0]


def test_kernels_a_trampoline_cannot_pass_stay_queued():
    kernel = _fill()
    assert _native_chunk_kernel(kernel, (0, 1, 2.0), spin.trampolines()) is None  # a float
    assert _native_chunk_kernel(kernel, (0, 1), spin.trampolines()) is None  # too few
    dbl = compile_ir(FILL_IR.replace("i64 %value)", "double %value)").replace(
        "%v = add i64 %value, %worker", "%v = add i64 %worker, 0")).function(
        "fill", None, I64, I64, I64, PTR, I64, ctypes.c_double)
    assert _native_chunk_kernel(dbl, (0, 1, 2), spin.trampolines()) is None
    assert _native_chunk_kernel(lambda b, e, w, x, y: None, (0, 1),
                                spin.trampolines()) is None


def _spied_spinning_pool(monkeypatch):
    """A two-thread pool with the native hand-off, and the list of (posted function,
    taken by the worker) its posts append to (spin_pair's two-chunk hand-offs too)."""
    monkeypatch.setattr(threads, "_host_is_quiet", lambda: True)
    pool = ThreadPool(2)
    spin.install(pool)
    posted = []
    worker, post, reclaim, wait, stop = pool._spin

    def spy_post(slot, fn, begin, end, w, params):
        ok = post(slot, fn, begin, end, w, params)
        posted.append((fn, ok))
        return ok
    pool._spin = (worker, spy_post, reclaim, wait, stop)
    pair = pool._pair

    def spy_pair(slot, fn, *rest):
        done = pair(slot, fn, *rest)
        posted.append((fn, done >= 0))
        return done
    pool._pair = spy_pair
    return pool, posted


def test_a_spinning_pool_posts_multi_argument_kernels(monkeypatch):
    pool, posted = _spied_spinning_pool(monkeypatch)
    kernel = _fill()
    for i in range(2000):       # until the worker took one (it may be off its core a while)
        out = np.zeros(200, np.int64)
        pool.parallel_for(kernel, 100, out.ctypes.data, 2, 5 + i)
        assert out[::2].tolist() == [5 + i] * 50 + [6 + i] * 50 and not out[1::2].any()
        if i >= 30 and any(ok for _, ok in posted):
            break
    assert posted and all(fn == spin.trampolines()[3] for fn, _ in posted)
    assert any(ok for _, ok in posted)     # the worker spun for some of them


@pytest.mark.skipif(ctypes.c_int32 not in threads._WORD_TYPES,
                    reason="int32 arguments are passed as words on x86-64 only")
def test_a_float_gemm_chunk_goes_to_a_spinning_worker_and_stays_exact(monkeypatch):
    """The float GEMM's row entry (15 arguments after worker, one of them int32) is posted
    through spin_call15, and a GEMM split that way equals the one-thread result."""
    from ember.codegen.llvm import gemm as G
    pool, posted = _spied_spinning_pool(monkeypatch)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((96, 300)).astype(np.float32)
    b = rng.standard_normal((300, 70)).astype(np.float32)
    alone = G.gemm(a, b, threads=1)
    for _ in range(200):          # until the worker took one (it may be off its core)
        np.testing.assert_array_equal(G.gemm(a, b, pool=pool), alone)
        if any(ok for _, ok in posted):
            break
    assert posted and all(fn == spin.trampolines()[15] for fn, _ in posted)
    assert any(ok for _, ok in posted)


def test_a_small_float_gemm_runs_on_the_calling_thread(monkeypatch):
    """Below GEMM_PARALLEL_MIN_MACS no chunk is handed to a worker (the hand-off costs
    more than the half of the work it would save)."""
    from ember.codegen.llvm import gemm as G
    pool = ThreadPool(2)
    split = []
    monkeypatch.setattr(pool, "_run_chunks", lambda *a: split.append(a) or [])
    a = np.ones((64, 128), np.float32)
    b = np.ones((128, 10), np.float32)
    assert 64 * 128 * 10 < G.GEMM_PARALLEL_MIN_MACS
    np.testing.assert_array_equal(G.gemm(a, b, pool=pool), np.full((64, 10), 128, np.float32))
    assert split == []
