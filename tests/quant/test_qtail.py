"""A converted classifier's tail, global average pool -> flatten -> quantized Linear ->
dequantize, as one step of the fused forward (ao/quantization/fx/fused_forward.py
pool_linear_dequantize): the graph's forms of the flatten, the same output bytes as the
graph run node by node at one and two threads (first calls included), torch.ao's values,
and the three calls wherever the step's native path does not apply (a hook on the pool or
on the Linear)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.ao.quantization.fx import fused_forward as FF
from ember.codegen.llvm import qelementwise as QE, qgemm_amx as QA
from ember.fx import Interpreter
from ember.ir.graph import OpKind
from ember.runtime import lite_int8 as lite, threads
from tests.quant.quant_twins import converted_twins, output_scale, share_random_weights

pytestmark = pytest.mark.filterwarnings("ignore")
torch.backends.quantized.engine = "x86"

SHAPE = (4, 3, 12, 12)


def classifier(lib, form: str):
    nn = lib.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 32, 3, 1, 1)
            self.c2 = nn.Conv2d(32, 32, 3, 1, 1)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(32, 10)
            self.flatten = nn.Flatten()

        def forward(self, x):
            x = self.avgpool(self.c2(lib.relu(self.c1(x))))
            if form == "flatten":
                x = lib.flatten(x, 1)
            elif form == "module":          # torchvision-style: convert_fx quantizes around it
                x = self.flatten(x)
            elif form == "reshape":         # ember.models.resnet18's
                x = x.reshape([x.shape[0], -1])
            else:
                x = x.view(x.size(0), -1)
            return self.fc(x)
    return Net().eval()


def twins(rng, form: str):
    t_model, e_model = classifier(torch, form), classifier(ember, form)
    share_random_weights(t_model, e_model, rng)
    calib = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(2)]
    return converted_twins(t_model, e_model, calib)


@pytest.fixture
def parallel(monkeypatch):
    """Workers spin however busy the test host is, the small kernels split, and the
    convolutions take AMX tiles where the host has them (whose kernels are deferred)."""
    monkeypatch.setenv("EMBER_QGEMM", "amx")
    monkeypatch.setattr(threads, "_host_is_quiet", lambda: True)
    monkeypatch.setattr(lite, "GEMM_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(lite, "ELEMENTWISE_PARALLEL_MIN", 1)
    monkeypatch.setattr(QE, "GAP_PARALLEL_MIN_BYTES", 0)
    limit = threads._THREAD_LIMIT[0]
    yield
    threads._THREAD_LIMIT[0] = limit


@pytest.fixture
def fallbacks(monkeypatch):
    """The flatten forms' calls pool_linear_dequantize makes off its native path."""
    calls = []
    plain = dict(FF._FLATTENS)
    for how, fn in plain.items():
        monkeypatch.setitem(FF._FLATTENS, how,
                            lambda p, how=how, fn=fn: calls.append(how) or fn(p))
    return calls


@pytest.mark.parametrize("form", ["flatten", "reshape", "view", "module"])
def test_tail_is_one_step(rng, form):
    _, e_q = twins(rng, form)
    graph = FF.fused_graph(e_q)
    calls = [n for n in graph.nodes if n.op in (OpKind.call_function, OpKind.call_method)]
    names = [getattr(n.target, "__name__", n.target) for n in calls]
    assert names.count("pool_linear_dequantize") == 1
    for gone in ("pool_step", "linear_dequantize", "flatten", "reshape", "view", "getattr",
                 "getitem", "size", "quantize_per_tensor"):
        assert gone not in names, names
    # the Flatten module's call and the dequantize before it are gone too (the one left
    # is the functional relu's)
    assert names.count("dequantize") == 1
    assert not [n for n in graph.nodes if n.op == OpKind.call_module and n.target == "flatten"]
    steps = [n for n in calls if n.target in FF.STEPS]
    # the conv before the tail leaves its kernel running (the tail is a step); the tail's
    # result is read at once
    assert [FF.step_overlaps(n) for n in steps[-2:]] == [True, False]


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("form", ["flatten", "reshape", "module"])
def test_tail_equals_graph_and_torch_ao(rng, monkeypatch, parallel, fallbacks, n_threads,
                                        form):
    t_q, e_q = twins(rng, form)     # fresh: the first calls take the Linear's full path
    ember.set_num_threads(n_threads)
    inputs = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(3)]
    ready, plain_ready = [], FF._linear_dequantize_for
    monkeypatch.setattr(FF, "_linear_dequantize_for",
                        lambda args: ready.append(plain_ready(args)) or ready[-1])
    pool = threads.default_pool()
    made, plain_defer = [], pool.defer
    pool.defer = lambda *a: made.append(plain_defer(*a)) or made[-1]
    try:
        with ember.no_grad():
            got = [e_q(ember.tensor(x)).numpy().copy() for x in inputs for _ in range(2)]
    finally:
        del pool.defer
    with ember.no_grad():
        want = [Interpreter(e_q).run(ember.tensor(x)).numpy() for x in inputs for _ in range(2)]
    assert fallbacks == []          # every call pooled natively into the Linear's rows
    # the Linear's first two calls of the geometry make its prepared call; from the third
    # on the step runs it, looked up before the pool's kernel
    assert [r is not None for r in ready] == [False, False] + [True] * 4
    for a, b in zip(got, want):
        assert a.tobytes() == b.tobytes()
    t_out = t_q(torch.from_numpy(inputs[0])).detach().numpy()
    assert np.abs(t_out - got[0]).max() <= 3.01 * output_scale(e_q)
    assert pool._pending is None
    # two threads on an AMX host: the last conv's kernel ran beside the tail's Python
    assert any(made) == (n_threads == 2 and QA.available())


def test_hooked_pool_and_linear_take_the_three_calls(rng, parallel, fallbacks):
    _, e_q = twins(rng, "reshape")
    ember.set_num_threads(2)
    inputs = [ember.tensor(rng.standard_normal(SHAPE).astype(np.float32)) for _ in range(2)]
    with ember.no_grad():
        plain = [e_q(x).numpy().copy() for x in inputs for _ in range(2)]
        pooled, fc_inputs = [], []
        hooks = [e_q.avgpool.register_forward_hook(
                     lambda m, args, out: pooled.append(out.int_repr().numpy().copy())),
                 e_q.fc.register_forward_pre_hook(
                     lambda m, args: fc_inputs.append(args[0].int_repr().numpy().copy()))]
        hooked = [e_q(x).numpy().copy() for x in inputs for _ in range(2)]
        for hook in hooks:
            hook.remove()
    assert fallbacks == ["reshape"] * 4
    for a, b in zip(plain, hooked):
        assert a.tobytes() == b.tobytes()
    assert len(pooled) == len(fc_inputs) == 4
    for p, f in zip(pooled, fc_inputs):
        np.testing.assert_array_equal(p.reshape(f.shape), f)
    # the Linear's hook alone: the pool still native, the Linear called as a module
    fc_inputs[:] = []
    hook = e_q.fc.register_forward_pre_hook(
        lambda m, args: fc_inputs.append(args[0].int_repr().numpy().copy()))
    with ember.no_grad():
        again = e_q(inputs[0]).numpy()
    hook.remove()
    assert again.tobytes() == plain[0].tobytes() and len(fc_inputs) == 1
    np.testing.assert_array_equal(fc_inputs[0], pooled[0].reshape(fc_inputs[0].shape))


def test_global_average_pool_into_given_rows(rng):
    x = rng.integers(0, 256, (3, 5, 7, 32), dtype=np.uint8)
    want = QE.global_avg_pool_nhwc(x, 9)
    out = np.empty((3, 32), np.uint8)
    assert QE.global_avg_pool_nhwc(x, 9, out) is out
    np.testing.assert_array_equal(out, want)
    with pytest.raises(ValueError, match="contiguous uint8"):
        QE.global_avg_pool_nhwc(x, 9, np.empty((3, 31), np.uint8))
