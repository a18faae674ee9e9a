"""Guided claims of the int8 kernels' task loop (codegen/llvm/qgemm.py claim_loop with a
negative chunk word: minus the thread count): every task claimed once, in order, claims
no larger than the fixed chunk and shrinking to one task at the end; and a GEMM split that
way over two threads equals the one-thread result bit for bit."""
import ctypes

import numpy as np
import pytest
from llvmlite import ir

from ember.codegen.llvm import irutil as u
from ember.codegen.llvm import qgemm as Q
from ember.codegen.llvm.jit import compile_ir
from ember.runtime import lite_int8 as lite
from ember.runtime import threads


def _claims_kernel():
    """record(begin, end, worker, params): params = [counter, chunk, total, count, out]:
    each claim's (begin, end) appended to out (count: the claims so far)."""
    module = ir.Module(name="claims_probe")
    fn, b = u.define(module, "record", u.VOID, [("begin", u.I64), ("end", u.I64),
                                                ("worker", u.I64), ("params", u.PTR)],
                     noalias_ptrs=False)
    begin, end, _, params = fn.args
    word = [b.gep(params, [u.i64(i)], source_etype=u.I64) for i in range(5)]
    chunk, total = (b.load(word[i], typ=u.I64) for i in (1, 2))
    out = b.inttoptr(b.load(word[4], typ=u.I64), u.PTR)
    lo, hi, head, done = Q.claim_loop(b, word[0], chunk, begin, end, total)
    slot = b.atomic_rmw("add", word[3], u.i64(1), "monotonic")
    for i, value in enumerate((lo, hi)):
        b.store(value, b.gep(out, [b.add(b.mul(slot, u.i64(2)), u.i64(i))],
                             source_etype=u.I64))
    b.branch(head)
    b.position_at_end(done)
    b.ret_void()
    return compile_ir(module).function("record", None, ctypes.c_int64, ctypes.c_int64,
                                       ctypes.c_int64, ctypes.c_void_p)


@pytest.mark.parametrize("total,runners", [(704, 2), (176, 2), (11, 2), (1, 2), (704, 1),
                                           (1000, 4), (3, 8)])
def test_guided_claims_cover_every_task_once_and_shrink(total, runners):
    record = _claims_kernel()
    out = np.zeros(2 * (total + 1), np.int64)
    params = np.array([0, -runners, total, 0, out.ctypes.data], np.int64)
    for w in range(runners):          # one thread after another: the same claims
        record(w, w + 1, w, params.ctypes.data)
    claims = out[:2 * params[3]].reshape(-1, 2)
    sizes = claims[:, 1] - claims[:, 0]
    assert claims[0, 0] == 0 and claims[-1, 1] == total
    assert (claims[1:, 0] == claims[:-1, 1]).all()          # in order, no gap or overlap
    cap = max(1, total // (runners * lite.CLAIMS_PER_THREAD))
    assert (sizes >= 1).all() and (sizes <= cap).all()
    assert (np.diff(sizes) <= 0).all() and sizes[-1] == 1
    # what is left after each claim: at least twice the threads times the next claim
    left = total - claims[:, 1]
    assert (sizes[1:] <= np.maximum(1, left[:-1] // (2 * runners))).all()


def test_fixed_chunks_are_unchanged():
    record = _claims_kernel()
    out = np.zeros(2 * 50, np.int64)
    params = np.array([0, 44, 176, 0, out.ctypes.data], np.int64)
    record(0, 1, 0, params.ctypes.data)
    claims = out[:2 * params[3]].reshape(-1, 2)
    assert claims.tolist() == [[i, min(i + 44, 176)] for i in range(0, 176, 44)]


@pytest.mark.skipif(Q.active_config() is not Q.VNNI, reason="needs AVX-512 VNNI")
@pytest.mark.parametrize("m,k,n", [(64, 1024, 4096), (64, 4096, 1024), (13, 68, 100)])
def test_guided_two_thread_gemm_equals_one_thread(monkeypatch, m, k, n):
    monkeypatch.setattr(threads, "_host_is_quiet", lambda: True)     # spin on a busy host
    rng = np.random.default_rng(m + n)
    w = rng.integers(-127, 128, (n, k), dtype=np.int8)
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    packed = Q.PackedWeight(w, Q.tile_for(Q.active_config(), n))
    vectors = packed.epilogue_vectors(3, rng.uniform(1e-4, 1e-3, n).astype(np.float32),
                                      rng.standard_normal(n).astype(np.float32))
    run = Q.prepare(Q.linear_gather(a, k // 4), packed, vectors, (10.0, 3.0, 0.0, 255.0),
                    True)
    alone = run.on_one_thread(a).copy()
    for _ in range(5):
        np.testing.assert_array_equal(run(a, 2), alone)
