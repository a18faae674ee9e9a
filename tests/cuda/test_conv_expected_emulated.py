"""A compile takes a convolution choice whose winner is expected untimed; later calls tune it.

On the H100 cuDNN's channels-last TF32 weight gradient beat ember's route (NCHW copies,
split-K GEMM, partial sums) at every resnet18 layer, yet a cold training step compiled that
route's kernels only to time them and lose. Inside a compile (`cudnn_conv.expecting`,
opened by CudaBackend.compiling) such a choice with nothing recorded is now cuDNN untimed:
the wgrad-nchw pass's question times nothing and prefetches nothing, and the step's dry
run records none of the route's kernels. Between later calls (`tune_expected`) the route's
kernels compile in the workers, then both sides are timed and the winner is recorded in the
autotune cache, where a later process's compile finds it. Emulated CUDA: the timing itself
is replaced (GPU time does not exist here); what is checked is which side is asked, what
is compiled, and what is recorded.
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import pytest  # noqa: E402

pytest.importorskip("triton")

import ember  # noqa: E402
from ember.codegen.triton import autotune  # noqa: E402
from ember.frontend import cudnn_conv, eager_cuda  # noqa: E402
from ember.frontend.devices import data_ptr  # noqa: E402
from ember.ir.meta import TensorMeta, channels_last  # noqa: E402

from test_compile_cuda import EMULATED, device  # noqa: E402,F401

pytestmark = pytest.mark.skipif(not EMULATED, reason="emulated CUDA only")


def _meta(shape, memory_format=None):
    if memory_format is None:
        return TensorMeta(tuple(shape), ember.float32, "cuda:0")
    t = ember.empty(shape).to(memory_format=memory_format)
    return TensorMeta(tuple(shape), ember.float32, "cuda:0", strides=tuple(t.stride()))


# (x, g, w metas, stride, padding, dilation): a layer1-like and a strided weight gradient
QUESTIONS = [
    (_meta((2, 64, 6, 6), channels_last), _meta((2, 64, 6, 6), channels_last),
     _meta((64, 64, 3, 3)), [1, 1], [1, 1], [1, 1]),
    (_meta((2, 64, 6, 6), channels_last), _meta((2, 128, 3, 3), channels_last),
     _meta((128, 64, 3, 3)), [2, 2], [1, 1], [1, 1]),
]


@pytest.fixture
def choosing(device, monkeypatch, tmp_path):  # noqa: F811
    """cuDNN usable (outside ember's own routes), TF32 on, an empty autotune cache, nothing
    timed in this process; timings are recorded instead of measured, compiles started are
    recorded."""
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("EMBER_CONV_EXPECTED", raising=False)
    monkeypatch.delenv("EMBER_CONV_BACKEND", raising=False)
    monkeypatch.delenv("EMBER_WGRAD_NCHW", raising=False)
    monkeypatch.setattr(cudnn_conv, "usable", lambda: not cudnn_conv._TRITON_ONLY[0])
    monkeypatch.setattr(cudnn_conv, "_tf32", lambda dtype: dtype == "float32")
    monkeypatch.setattr(cudnn_conv, "_capturing", lambda index: False)
    monkeypatch.setattr(cudnn_conv, "_device", lambda index: "emulated sm90 cudnn0")
    monkeypatch.setattr(cudnn_conv, "_memo", {})
    monkeypatch.setattr(cudnn_conv, "_UNTUNED", {})
    state = {"timed": [], "started": [], "answer": (0.5, 1.0)}     # Triton "wins" timings

    def time_both(triton_run, cudnn_run, index, unsupported):
        state["timed"].append(triton_run)
        return state["answer"]
    monkeypatch.setattr(cudnn_conv, "_time_both", time_both)
    monkeypatch.setattr(eager_cuda, "start_compiles",
                        lambda requests, index: state["started"].extend(requests))
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
    return state


def _spec(question):
    x, g, w, stride, padding, dilation = question
    return cudnn_conv.spec_for("wgrad", *[cudnn_conv._meta_parts(m) for m in (x, w, g)],
                               stride, padding, dilation)


def _keys(requests):
    return {(generated.key(), tuple(alignment)) for generated, alignment in requests}


def test_a_compile_takes_cudnn_untimed_for_a_channels_last_weight_gradient(choosing):
    with cudnn_conv.expecting():
        assert cudnn_conv.prefetch_wgrad_routes(QUESTIONS) == 0
        assert [cudnn_conv.wgrad_wants_nchw(*q) for q in QUESTIONS] == [False, False]
    assert choosing["timed"] == [] and choosing["started"] == []
    assert set(cudnn_conv._UNTUNED) == {(_spec(q), 0) for q in QUESTIONS}
    assert autotune.stored_choice(_spec(QUESTIONS[0]).describe(), "emulated sm90 cudnn0") \
        is None                                      # nothing measured is recorded


def test_outside_a_compile_or_switched_off_the_choice_is_timed(choosing, monkeypatch):
    assert cudnn_conv.wgrad_wants_nchw(*QUESTIONS[0]) is True      # Triton timed faster
    monkeypatch.setenv("EMBER_CONV_EXPECTED", "0")
    with cudnn_conv.expecting():
        assert cudnn_conv.wgrad_wants_nchw(*QUESTIONS[1]) is True
    assert len(choosing["timed"]) == 2 and cudnn_conv._UNTUNED == {}


def test_only_the_measured_case_is_expected(choosing, monkeypatch):
    """NCHW operands, IEEE float32 and deterministic mode are timed as before."""
    x, g, w, *geometry = QUESTIONS[0]
    nchw = (_meta(x.shape), _meta(g.shape), w, *geometry)
    with cudnn_conv.expecting():
        assert cudnn_conv.wgrad_wants_nchw(*nchw) is True
        monkeypatch.setattr(cudnn_conv, "_tf32", lambda dtype: False)
        assert cudnn_conv.wgrad_wants_nchw(*QUESTIONS[0]) is True
    assert len(choosing["timed"]) == 2 and cudnn_conv._UNTUNED == {}


def test_later_calls_compile_the_loser_then_time_and_record_it(choosing, monkeypatch):
    with cudnn_conv.expecting():
        for question in QUESTIONS:
            cudnn_conv.wgrad_wants_nchw(*question)
    assert cudnn_conv.tune_expected(0) == "started"
    expected = []
    for x, g, w, stride, padding, dilation in QUESTIONS:
        expected += cudnn_conv._route_kernels(x, g, w, stride, padding, dilation, 0)
    assert choosing["timed"] == [] and _keys(choosing["started"]) == _keys(expected)
    assert any("weight_grad" in generated.name for generated, _ in choosing["started"])
    monkeypatch.setattr(eager_cuda, "compiles_running", lambda requests, index: 1)
    assert cudnn_conv.tune_expected(0) == "waiting" and choosing["timed"] == []
    monkeypatch.setattr(eager_cuda, "compiles_running", lambda requests, index: 0)
    choosing["answer"] = (0.5, 1.0)                  # here ember's route turns out faster
    assert cudnn_conv.tune_expected(0) == "timed" and len(choosing["timed"]) == 1
    assert cudnn_conv.tune_expected(0) == "timed" and len(choosing["timed"]) == 2
    assert cudnn_conv.tune_expected(0) == "" and cudnn_conv.untuned() == 0
    for question in QUESTIONS:
        stored = autotune.stored_choice(_spec(question).describe(), "emulated sm90 cudnn0")
        assert stored["choice"] == "triton" and stored["triton_ms"] == 0.5
    # a later process's compile reads the tuned choice: NCHW operands for ember's route
    monkeypatch.setattr(cudnn_conv, "_memo", {})
    with cudnn_conv.expecting():
        assert cudnn_conv.wgrad_wants_nchw(*QUESTIONS[0]) is True
    assert len(choosing["timed"]) == 2 and cudnn_conv._UNTUNED == {}


def test_the_dry_run_records_no_route_that_cudnn_replaces(choosing, monkeypatch):
    """The step's dry run (cuDNN not asked, ember's routes recorded for the timings) skips
    ember's weight-gradient route where the call will run cuDNN untimed."""
    from ember.runtime.cuda import cudnn
    monkeypatch.setattr(cudnn, "library", lambda: object())
    x, g, w, stride, padding, dilation = QUESTIONS[0]
    xt = ember.empty(x.shape, device="cuda").to(memory_format=channels_last)
    gt = ember.empty(g.shape, device="cuda").to(memory_format=channels_last)
    ran = []

    def dry_backward():
        cudnn_conv._TRITON_ONLY[0] += 1
        try:
            with cudnn_conv.specs_wanted() as wanted:
                out = cudnn_conv.backward("wgrad", gt, xt, w, (stride, padding, dilation), 0,
                                          lambda: ran.append(1) or ember.empty(w.shape))
        finally:
            cudnn_conv._TRITON_ONLY[0] -= 1
        return out, wanted
    out, wanted = dry_backward()               # nothing known: the timing needs the route
    assert ran == [1] and wanted == [_spec(QUESTIONS[0])]
    with cudnn_conv.expecting():
        out, wanted = dry_backward()
    assert ran == [1] and wanted == [_spec(QUESTIONS[0])]
    assert tuple(out.shape) == tuple(w.shape) and out.is_cuda


def test_a_compiled_step_tunes_between_its_calls(device, monkeypatch):  # noqa: F811
    """Each call of a compiled training step first lets the backend tune what a compile
    left untimed (CudaBackend.between_calls), before anything of the call runs."""
    seen = []
    monkeypatch.setattr(cudnn_conv, "_UNTUNED", {("spec", 0): None})
    monkeypatch.setattr(cudnn_conv, "tune_expected", lambda index: seen.append(index))
    model = ember.nn.Linear(4, 2).to(device)
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    step = ember.compile_train_step(model, ember.nn.MSELoss(), opt, backend="triton")
    x, y = ember.randn(3, 4).to(device), ember.randn(3, 2).to(device)
    step(x, y)
    step(x, y)
    assert seen == [0, 0]
