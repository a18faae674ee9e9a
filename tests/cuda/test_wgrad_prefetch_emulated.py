"""The wgrad-nchw pass starts compiling every weight gradient's timed Triton route at once.

`cudnn_conv.wgrad_wants_nchw` times cuDNN against ember's route per weight-gradient shape.
Each timing compiled its own Triton kernels first, one shape after another: on an H100
host (16 cores) a cold resnet18 training step spent ~4.7 s compiling ~20 kernels one at
a time there. `prefetch_wgrad_routes` dry-runs every route to be timed (launches recorded,
not made) and hands all their kernels to the compile workers together; the timing then
finds them compiled. Here (emulated CUDA, no workers) the recorded kernels must be exactly
those the timed route launches, and nothing is recorded for shapes already timed.
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import pytest  # noqa: E402

pytest.importorskip("triton")

import ember  # noqa: E402
from ember.frontend import cudnn_conv, eager_cuda  # noqa: E402
from ember.frontend.devices import data_ptr  # noqa: E402
from ember.ir.meta import TensorMeta, channels_last  # noqa: E402
from ember.passes import train_layout  # noqa: E402

from test_compile_cuda import EMULATED, device  # noqa: E402,F401

pytestmark = pytest.mark.skipif(not EMULATED, reason="emulated CUDA only")


def _meta(shape, memory_format=None):
    meta = TensorMeta(tuple(shape), ember.float32, "cuda:0")
    if memory_format is None:
        return meta
    t = ember.empty(shape).to(memory_format=memory_format)
    return TensorMeta(tuple(shape), ember.float32, "cuda:0", strides=tuple(t.stride()))


QUESTIONS = [  # (x, g, w metas, stride, padding, dilation): Cin*KH*KW >= 512, channels-last
    (_meta((2, 64, 6, 6), channels_last), _meta((2, 64, 6, 6), channels_last),
     _meta((64, 64, 3, 3)), [1, 1], [1, 1], [1, 1]),
    (_meta((2, 64, 6, 6), channels_last), _meta((2, 128, 3, 3), channels_last),
     _meta((128, 64, 3, 3)), [2, 2], [1, 1], [1, 1]),
]


@pytest.fixture
def unknown_timings(device, monkeypatch):  # noqa: F811
    """cuDNN counts as usable, no shape is timed yet; compiles started are recorded."""
    monkeypatch.setattr(cudnn_conv, "usable", lambda: True)
    monkeypatch.setattr(cudnn_conv, "timings", lambda spec, index: None)
    monkeypatch.setattr(cudnn_conv, "_capturing", lambda index: False)
    monkeypatch.setattr(cudnn_conv, "spec_for", lambda *args, **kwargs: ("spec",) + args[:1])
    started = []
    monkeypatch.setattr(eager_cuda, "start_compiles",
                        lambda requests, index: started.extend(requests))
    # the emulation's launch interprets every kernel: here it records inside
    # kernels_collected(), as eager_cuda.launch does on a GPU
    interpret = eager_cuda.launch

    def launch(generated, tensors, index):
        if eager_cuda._COLLECTING:
            pointers = [data_ptr(t) if isinstance(t, ember.Tensor) else t for t in tensors]
            eager_cuda._COLLECTING[-1].append(
                (generated, [isinstance(t, ember.Tensor) and eager_cuda.aligned(p)
                             for t, p in zip(tensors, pointers)]))
            return None
        return interpret(generated, tensors, index)
    monkeypatch.setattr(eager_cuda, "launch", launch)
    return started


def _keys(requests):
    return {(generated.key(), tuple(alignment)) for generated, alignment in requests}


def test_prefetch_records_the_kernels_the_timed_route_launches(unknown_timings):
    count = cudnn_conv.prefetch_wgrad_routes(QUESTIONS)
    assert count == len(unknown_timings) > 0
    assert any("weight_grad" in generated.name for generated, _ in unknown_timings)
    launched = []
    for x, g, w, stride, padding, dilation in QUESTIONS:
        with eager_cuda.kernels_collected() as found:
            cudnn_conv._ember_wgrad_route(cudnn_conv._zeros(x, 0), cudnn_conv._zeros(g, 0), w,
                                          stride, padding, dilation, 0)()
        launched += found
    assert _keys(launched) == _keys(unknown_timings)


def test_nothing_is_prefetched_for_shapes_already_timed(unknown_timings, monkeypatch):
    monkeypatch.setattr(cudnn_conv, "timings", lambda spec, index: (1.0, 2.0))
    assert cudnn_conv.prefetch_wgrad_routes(QUESTIONS) == 0 and unknown_timings == []
    monkeypatch.setenv("EMBER_WGRAD_NCHW", "always")      # nothing is timed at all
    monkeypatch.setattr(cudnn_conv, "timings", lambda spec, index: None)
    assert cudnn_conv.prefetch_wgrad_routes(QUESTIONS) == 0 and unknown_timings == []


def test_the_pass_hands_every_question_to_the_prefetch_before_asking():
    """train_layout hands a predicate with a `prefetch` attribute all its questions at
    once, before the first per-node question."""
    from ember.ir.meta import meta_of
    from ember.ir.registry import OPS
    from ember.ir.symbolic import build_graph
    from ember.passes import PassContext, run_passes

    def two_weight_gradients(x, g):
        backward = OPS["convolution_backward_weight"]
        return (backward(g, x, [64, 64, 3, 3], [1, 1], [1, 1], [1, 1], False, [0, 0], 1),
                backward(g * 2, x, [64, 64, 3, 3], [1, 1], [1, 1], [1, 1], False, [0, 0], 1))
    x = ember.randn(2, 64, 5, 5).to(memory_format=channels_last)
    graph, _ = build_graph(two_weight_gradients, [meta_of(x), meta_of(x.clone())])
    events = []

    def wants(*question):
        events.append("ask")
        return True
    wants.prefetch = lambda questions: events.append(("prefetch", len(questions)))
    run_passes(graph, "wgrad-nchw", PassContext(options={"wgrad_nchw": wants}))
    assert events == [("prefetch", 2), "ask", "ask"]
