"""Conv steps that leave their kernel running (ao/quantization/fx/fused_forward.py
conv_step, runtime/threads.py ThreadPool.defer / join): the converted forward's integers
are the serial forward's and the graph's run op by op, at one and two threads, first
calls included; the pool's deferred kernel runs whole and is joined before anything
reads it; a hook on a conv sees its input complete."""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

import ember
from ember.ao.quantization.fx import fused_forward as FF
from ember.codegen.llvm.jit import compile_ir
from ember.fx import Interpreter
from ember.ir.graph import OpKind
from ember.codegen.llvm import qgemm_amx as QA
from ember.runtime import lite_int8 as lite, threads
from ember.runtime.threads import ThreadPool
from tests.codegen.test_threads import MARK_IR
from tests.quant.test_qresidual import converted_twins

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture
def quiet(monkeypatch):
    """Workers spin (and so take deferred chunks) however busy the test host is."""
    monkeypatch.setattr(threads, "_host_is_quiet", lambda: True)


@pytest.fixture
def overlap():
    yield FF.OVERLAP
    FF.OVERLAP[0] = True


@pytest.fixture(scope="module")
def converted():
    """The resnet-style blocks converted (ember's model only), shared by the tests. Its
    layers are small: AMX tiles everywhere (where the host has them) and two threads
    from any size, so that its steps take the paths resnet18's do."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMBER_QGEMM", "amx")
        mp.setattr(lite, "GEMM_PARALLEL_MIN_MACS", 0)
        mp.setattr(lite, "ELEMENTWISE_PARALLEL_MIN", 1)
        yield converted_twins(np.random.default_rng(7), (4, 3, 32, 32))[1]


def _runs(model, inputs, repeat=2):
    with ember.no_grad():
        return [model(x).numpy().copy() for x in inputs for _ in range(repeat)]


@pytest.mark.parametrize("n_threads", [1, 2])
def test_overlapped_forward_equals_serial_and_graph(rng, quiet, overlap, n_threads,
                                                    converted):
    e_q = converted
    inputs = [ember.tensor(rng.standard_normal((4, 3, 32, 32)).astype(np.float32))
              for _ in range(3)]
    pool = threads.default_pool()
    made, plain_defer = [], pool.defer
    pool.defer = lambda *a: made.append(plain_defer(*a)) or made[-1]
    limit = threads._THREAD_LIMIT[0]
    ember.set_num_threads(n_threads)
    try:
        overlap[0] = True
        got = _runs(e_q, inputs)
        overlap[0] = False
        want = _runs(e_q, inputs)
    finally:
        threads._THREAD_LIMIT[0] = limit       # as before (other tests size their pools)
        del pool.defer
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    with ember.no_grad():
        graph = Interpreter(e_q).run(inputs[0]).numpy()
    np.testing.assert_array_equal(got[0], graph)
    if n_threads == 1:
        assert not any(made)        # one thread: nothing is left running
    elif QA.available():
        assert any(made)            # the AMX convolutions and the max pool were deferred
    assert pool._pending is None


def test_fused_graph_joins_before_other_nodes(converted):
    """Conv and pool steps whose every reader is a step overlap (the stem, read by the
    max pool; the max pool; the last pair, read by the classifier tail); the blocks'
    first convs (their functional relu runs on the dequantized value) and the tail (the
    average pool, flatten and fc in one step: its result is read at once) do not, and a
    join precedes the first other node after an overlapping step."""
    graph = FF.fused_graph(converted)
    steps = [n for n in graph.nodes if n.op == OpKind.call_function and n.target in FF.STEPS]
    flags = [FF.step_overlaps(n) for n in steps]
    # stem + max pool, block 0's c1 and pair, block 1's c1, downsample and pair, block 2's
    # c1 and pair, the tail (average pool, flatten, fc)
    # the stem reads the input quantize alone, the max pool reads the stem alone: one
    # conv_pool_step with both (its quantize's arguments)
    assert steps[0].target is FF.conv_pool_step and steps[0].args[3] is not None
    assert steps[-1].target is FF.pool_linear_dequantize     # avgpool, flatten, fc
    assert flags == [True, False, True, False, True, True, False, True, False]
    running = False
    for node in graph.nodes:
        if node in steps:
            running = running or FF.step_overlaps(node)
        elif node.op == OpKind.call_function and node.target is FF.join_deferred:
            running = False
        elif node.op not in (OpKind.get_attr, OpKind.placeholder):
            assert not running, f"{node.name} may read a running kernel's result"


def test_hooked_conv_sees_its_input_complete(rng, quiet, overlap, converted):
    """A forward pre-hook on a conv whose input a deferred step writes: the step settles
    first, so the hook reads the finished values (those of the serial forward)."""
    e_q = converted
    conv = e_q.get_submodule("layers.1.c1")
    seen = []
    hook = conv.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].int_repr().numpy().copy()))
    inputs = [ember.tensor(rng.standard_normal((4, 3, 32, 32)).astype(np.float32))
              for _ in range(2)]
    overlap[0] = True
    got = _runs(e_q, inputs)
    hooked, seen[:] = list(seen), []
    overlap[0] = False
    want = _runs(e_q, inputs)
    hook.remove()
    assert len(hooked) == len(seen) == 4
    for a, b in zip(got + hooked, want + seen):
        np.testing.assert_array_equal(a, b)


def _mark_kernel():
    return compile_ir(MARK_IR).function("mark", None, ctypes.c_int64, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_void_p)


def test_pool_defer_runs_whole_kernel_at_join(quiet):
    """defer: only in an open window (one kernel a window); the kernel's chunks all run
    by join, chunk 0 on the caller, and release is called once; the next parallel_for
    joins first. Refused (nothing run) where the worker is not spinning."""
    from ember.codegen.llvm import spin
    pool = ThreadPool(2)
    spin.install(pool)
    kernel = _mark_kernel()
    out, other = np.zeros(101, np.int64), np.zeros(64, np.int64)
    released = []
    assert not pool.defer(kernel, 2, (out.ctypes.data,), (out,), lambda: released.append(1))
    assert not out.any() and not released          # no window: nothing ran
    deferred = 0
    for _ in range(30):
        out[:] = 0
        pool.parallel_for(kernel, other.size, other.ctypes.data)    # the worker spins
        pool.open_window()
        if pool.defer(kernel, out.size, (out.ctypes.data,), (out,),
                      lambda: released.append(1)):
            deferred += 1
            assert not pool.defer(kernel, out.size, (out.ctypes.data,), (out,), None)
            pool.parallel_for(kernel, other.size, other.ctypes.data)   # joins first
            assert pool._pending is None and len(released) == deferred
            assert set(out[:50].tolist()) <= {1, 2} and set(out[50:].tolist()) <= {1, 2}
            assert out.all()
        else:
            pool.open_window(False)
            assert not out.any()
    assert deferred          # the worker spun at least once
    pool._end_spinning()


def test_pool_steps_overlap_only_the_native_pools(rng):
    """pool_step leaves a kernel running beside its Python only where the native max
    pool or global average pool runs it (channels-last quint8); anything else (ceil
    mode, a contiguous input, a hook) settles first. The values are pool(x)'s."""
    x = ember.tensor(rng.standard_normal((2, 32, 8, 8)).astype(np.float32))
    q = ember.quantize_per_tensor(x, 0.05, 128, ember.quint8)
    q_cl = ember.quantize_per_tensor(x.contiguous(memory_format=ember.channels_last), 0.05,
                                     128, ember.quint8)
    pool, ceil = ember.nn.MaxPool2d(3, 2, 1), ember.nn.MaxPool2d(3, 2, 1, ceil_mode=True)
    gap = ember.nn.AdaptiveAvgPool2d((1, 1))
    assert FF._native_pool(pool, q_cl) and FF._native_pool(gap, q_cl)
    assert not FF._native_pool(ceil, q_cl) and not FF._native_pool(pool, q)
    hook = gap.register_forward_hook(lambda *a: None)
    assert not FF._native_pool(gap, q_cl)
    hook.remove()
    for module in (pool, ceil, gap):
        for value in (q, q_cl):
            got = FF.pool_step(module, value, True)
            FF.join_deferred()          # as the forward does before a reader
            np.testing.assert_array_equal(got.int_repr().numpy(),
                                          module(value).int_repr().numpy())
    assert threads.default_pool()._pending is None
