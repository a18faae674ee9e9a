"""cuDNN is optional: where the frontend package cannot be imported (CI) or its library
does not load, ember.backends.cudnn says so like a torch build without cuDNN, one info
line goes to the `ember.backends.cudnn` logger, and convolutions (forward, input and
weight gradients, compiled plans) keep running ember's Triton kernels. Also: the choice
cache's records, ConvSpec construction from layouts, and torch's `flags()` switch.
Runs on CI (CUDA emulated under the Triton interpreter, tests/cuda/emulation.py)."""
import json
import logging
import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")

import ember  # noqa: E402
from ember.codegen.triton import autotune  # noqa: E402
from ember.frontend import cudnn_conv  # noqa: E402
from ember.runtime.cuda import cudnn as runtime_cudnn  # noqa: E402


# ember.backends.cudnn's switches start each test at PyTorch's defaults (tests/conftest.py)


@pytest.fixture
def no_cudnn(monkeypatch):
    """The frontend package made unimportable, the runtime's probe reset."""
    monkeypatch.setitem(sys.modules, "cudnn", None)           # import cudnn -> ImportError
    monkeypatch.setattr(runtime_cudnn, "_state", {"module": None, "tried": False, "why": None})
    yield


def test_without_the_package_cudnn_is_unavailable_with_one_info_line(no_cudnn, caplog):
    with caplog.at_level(logging.INFO, logger="ember.backends.cudnn"):
        assert ember.backends.cudnn.is_available() is False
        assert ember.backends.cudnn.version() is None
        assert ember.backends.cudnn.is_available() is False
    lines = [r for r in caplog.records if r.name == "ember.backends.cudnn"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert "Triton" in lines[0].getMessage()
    assert not cudnn_conv.usable()
    assert ember.backends.cudnn.is_acceptable(ember.zeros(2)) is False


def test_a_library_that_fails_to_load_is_unavailable(monkeypatch):
    class Broken:
        @staticmethod
        def backend_version():
            raise OSError("libcudnn.so.9: cannot open shared object file")
    monkeypatch.setitem(sys.modules, "cudnn", Broken)
    monkeypatch.setattr(runtime_cudnn, "_state", {"module": None, "tried": False, "why": None})
    assert ember.backends.cudnn.is_available() is False
    assert "libcudnn" in runtime_cudnn.unavailable_reason()


def test_flags_like_torch():
    actual = ember.backends.cudnn
    with actual.flags(enabled=False, benchmark=True, deterministic=True, allow_tf32=False):
        assert (actual.enabled, actual.benchmark, actual.deterministic, actual.allow_tf32) == \
            (False, True, True, False)
        assert not cudnn_conv.usable()
    assert (actual.enabled, actual.benchmark, actual.deterministic, actual.allow_tf32) == \
        (True, False, False, True)
    with actual.flags(enabled=True, fp32_precision="tf32", allow_tf32=False):
        assert actual.allow_tf32 is True
    with pytest.raises(ValueError, match="fp32_precision"):
        with actual.flags(fp32_precision="bf16"):
            pass
    # torch's newer spelling: conv.fp32_precision, one state with allow_tf32
    assert actual.conv.fp32_precision == "tf32"     # torch's at its defaults, as pinned
    try:
        actual.conv.fp32_precision = "ieee"
        assert actual.allow_tf32 is False and actual.conv.fp32_precision == "none"
        actual.allow_tf32 = True
        assert actual.conv.fp32_precision == "tf32"
    finally:
        actual.allow_tf32 = True


def test_allow_tf32_false_keeps_triton_convolutions_ieee(monkeypatch):
    from ember.codegen.triton.gemm import conv_input_precision, input_precision
    from ember.ir.dtypes import float16, float32
    monkeypatch.setattr(ember.backends.cuda.matmul, "allow_tf32", True)
    try:
        assert conv_input_precision(float32) == "tf32"
        monkeypatch.setattr(ember.backends.cudnn, "allow_tf32", False)
        assert conv_input_precision(float32) == "ieee" and input_precision(float32) == "tf32"
        assert conv_input_precision(float16) is None
    finally:
        ember.backends.cuda.matmul.allow_tf32 = False


def test_choice_records_round_trip_and_damaged_entries_are_misses(monkeypatch, tmp_path):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    assert autotune.stored_choice("conv fprop x", "H100") is None
    autotune.record_choice("conv fprop x", "H100", "cudnn", 0.5, 0.25)
    found = autotune.stored_choice("conv fprop x", "H100")
    assert (found["choice"], found["triton_ms"], found["cudnn_ms"]) == ("cudnn", 0.5, 0.25)
    assert autotune.stored_choice("conv fprop x", "A100") is None        # per device
    autotune.record_choice("conv dgrad y", "H100", "triton", 0.1, float("inf"))
    assert autotune.stored_choice("conv dgrad y", "H100")["cudnn_ms"] == float("inf")
    (path,) = [p for p in (tmp_path / "triton" / "autotune").glob("conv-*.json")
               if "fprop" in json.loads(p.read_text())["conv"]]
    path.write_text("{not json")
    with pytest.warns(RuntimeWarning, match="damaged autotune cache entry"):
        assert autotune.stored_choice("conv fprop x", "H100") is None


def test_specs_follow_the_layouts_cudnn_takes():
    f32 = "float32"
    x = ((2, 8, 5, 5), (200, 25, 5, 1), f32)                      # NCHW
    w = ((4, 8, 3, 3), (72, 1, 24, 8), f32)                       # OHWI (channels-last)
    y = ((2, 4, 5, 5), (100, 1, 20, 4), f32)                      # channels-last
    spec = cudnn_conv.spec_for("fprop", x, w, y, (1, 1), (1, 1), (1, 1))
    assert spec.x == ((2, 8, 5, 5), (200, 25, 5, 1)) and spec.w[1] == (72, 1, 24, 8)
    assert spec.y[1] == (100, 1, 20, 4) and not spec.bias
    # size-1 dims get the layout's own strides (ember leaves them arbitrary)
    ones = ((2, 8, 1, 1), (8, 1, 99, 7), f32)
    assert cudnn_conv.spec_for("fprop", ones, w, y, (1, 1), (1, 1), (1, 1)).x[1] == (8, 1, 1, 1)
    # a strided view, mixed dtypes, a bias of the wrong length: not for cuDNN
    view = ((2, 8, 5, 5), (400, 50, 10, 2), f32)
    assert cudnn_conv.spec_for("fprop", view, w, y, (1, 1), (1, 1), (1, 1)) is None
    assert cudnn_conv.spec_for("fprop", x[:2] + ("float16",), w, y, 1, 1, 1) is None
    half = [(t[0], t[1], "float16") for t in (x, w, y)]
    with pytest.MonkeyPatch.context() as mp:      # half precision through cuDNN switched off
        mp.setattr(cudnn_conv, "HALF_PRECISION_ON_CUDNN", False)
        assert cudnn_conv.spec_for("fprop", *half, (1, 1), (1, 1), (1, 1)) is None
    assert cudnn_conv.spec_for("fprop", *half, (1, 1), (1, 1), (1, 1)) is not None
    assert cudnn_conv.spec_for("fprop", x, w, y, (1, 1), (1, 1), (1, 1),
                               bias=((3,), (1,), f32)) is None
    with_bias = cudnn_conv.spec_for("fprop", x, w, y, (1, 1), (1, 1), (1, 1),
                                    bias=((4,), (1,), f32))
    assert with_bias.bias and "+bias" in with_bias.describe()


from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture


def test_convolutions_and_their_gradients_without_cudnn(no_cudnn, device):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    xe = ember.tensor(x).to(device).contiguous(memory_format=ember.channels_last)
    xe.requires_grad_()
    we = ember.tensor(w).to(device).requires_grad_()
    be = ember.tensor(b).to(device).requires_grad_()
    out = ember.nn.functional.conv2d(xe, we, be, stride=2, padding=1, groups=2)
    out.sum().backward()
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    ref = torch.nn.functional.conv2d(xt, wt, bt, stride=2, padding=1, groups=2)
    ref.sum().backward()
    tol = dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.detach().cpu().numpy(), ref.detach().numpy(), **tol)
    np.testing.assert_allclose(xe.grad.cpu().numpy(), xt.grad.numpy(), **tol)
    np.testing.assert_allclose(we.grad.cpu().numpy(), wt.grad.numpy(), **tol)
    assert not runtime_cudnn._plans and not cudnn_conv._memo


def test_compiled_conv_without_cudnn_keeps_triton_steps(no_cudnn, device):
    from ember.compiler.compile_cuda import CudnnConvStep
    net = ember.nn.Sequential(ember.nn.Conv2d(3, 4, 3, padding=1), ember.nn.ReLU())
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    expected = net(ember.tensor(x)).detach().numpy()
    fast = ember.compile(net.to(device).eval(), backend="triton")
    out = fast(ember.tensor(x).to(device))
    np.testing.assert_allclose(out.detach().cpu().numpy(), expected, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(s.fn, CudnnConvStep) for s in fast.last[0].steps)


# --- the decision (frontend/cudnn_conv.py), with the device parts stubbed -------------------
@pytest.fixture
def decision(monkeypatch, tmp_path):
    """cuDNN 'available', the device named, no capture; _time_both counts its calls."""
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("EMBER_CONV_BACKEND", raising=False)
    monkeypatch.setattr(cudnn_conv, "_device", lambda index: "GPU sm90 cudnn91900")
    monkeypatch.setattr(cudnn_conv, "_capturing", lambda index: False)
    monkeypatch.setattr(cudnn_conv, "_memo", {})
    timed = []

    def fake_time_both(triton_run, cudnn_run, index, unsupported):
        timed.append(1)
        return state["times"]
    state = {"times": (0.5, 0.2), "timed": timed}
    monkeypatch.setattr(cudnn_conv, "_time_both", fake_time_both)
    yield state


def _spec(**kw):
    x = ((2, 8, 5, 5), (200, 25, 5, 1), "float32")
    w = ((4, 8, 3, 3), (72, 9, 3, 1), "float32")
    y = ((2, 4, 5, 5), (100, 25, 5, 1), "float32")
    return cudnn_conv.spec_for(kw.pop("kind", "fprop"), x, w, y, (1, 1), (1, 1), (1, 1))


def test_the_faster_side_is_timed_once_recorded_and_read_back(decision, tmp_path):
    spec = _spec()
    assert cudnn_conv.prefers_cudnn(spec, 0, None, None) is True
    assert cudnn_conv.prefers_cudnn(spec, 0, None, None) is True      # memo: not timed again
    assert len(decision["timed"]) == 1
    cudnn_conv._memo.clear()                                          # a new process
    assert cudnn_conv.timings(spec, 0) == (0.5, 0.2) and len(decision["timed"]) == 1
    (entry,) = (tmp_path / "triton" / "autotune").glob("conv-*.json")
    assert json.loads(entry.read_text())["choice"] == "cudnn"
    # another shape where Triton wins
    decision["times"] = (0.1, 0.3)
    assert cudnn_conv.prefers_cudnn(_spec(kind="wgrad"), 0, None, None) is False


def test_flags_are_part_of_the_shape_key(decision, monkeypatch):
    base = _spec()
    monkeypatch.setattr(ember.backends.cudnn, "deterministic", True)
    strict = _spec()
    assert strict != base and strict.deterministic and "deterministic" in strict.describe()
    monkeypatch.setattr(ember.backends.cudnn, "benchmark", True)
    assert _spec().benchmark == ember.backends.cudnn.benchmark_limit
    monkeypatch.setattr(ember.backends.cudnn, "benchmark_limit", 0)     # torch: every plan
    assert _spec().benchmark == runtime_cudnn.ALL_PLANS
    monkeypatch.setattr(ember.backends.cudnn, "benchmark_limit", 3)
    assert _spec().benchmark == 3
    monkeypatch.setattr(ember.backends.cuda.matmul, "allow_tf32", True)
    try:
        assert _spec().tf32
        monkeypatch.setattr(ember.backends.cudnn, "allow_tf32", False)
        assert not _spec().tf32
    finally:
        ember.backends.cuda.matmul.allow_tf32 = False


def test_inside_a_capture_nothing_is_timed_and_triton_runs(decision, monkeypatch):
    monkeypatch.setattr(cudnn_conv, "_capturing", lambda index: True)
    assert cudnn_conv.prefers_cudnn(_spec(), 0, None, None) is False
    assert not decision["timed"] and not cudnn_conv._memo


def test_a_shape_cudnn_refuses_goes_to_triton(decision, monkeypatch):
    decision["times"] = (0.0, float("inf"))                # what _time_both says on refusal
    assert cudnn_conv.prefers_cudnn(_spec(), 0, None, None) is False


def test_compiled_conv_anchor_takes_cudnn_only_where_it_wins(decision, monkeypatch):
    """CudaBackend._cudnn_spec on a conv problem: cuDNN where its recorded time wins;
    with an epilogue only when it also pays for the epilogue's extra pass."""
    from ember.codegen.triton.gemm import ConvProblem
    from ember.compiler.compile_cuda import EPILOGUE_GBPS, CudaBackend
    monkeypatch.setattr(cudnn_conv, "usable", lambda: True)
    problem = ConvProblem((2, 8, 5, 5), (200, 25, 5, 1), (4, 8, 3, 3), (72, 9, 3, 1),
                          (100, 25, 5, 1), (1, 1), (1, 1))
    backend = CudaBackend()
    spec = _spec()
    extra = 2 * 2 * 4 * 5 * 5 * 4 / (EPILOGUE_GBPS * 1e6)      # read + write the result
    cudnn_conv._memo[(spec, 0)] = (0.5, 0.2)
    assert backend._cudnn_spec(problem, None, epilogue=False) == spec
    assert backend._cudnn_spec(problem, None, epilogue=True) == spec
    cudnn_conv._memo[(spec, 0)] = (0.2 + extra / 2, 0.2)
    assert backend._cudnn_spec(problem, None, epilogue=False) == spec
    assert backend._cudnn_spec(problem, None, epilogue=True) is None
    cudnn_conv._memo[(spec, 0)] = (0.1, 0.2)
    assert backend._cudnn_spec(problem, None, epilogue=False) is None


def test_engine_filters_and_benchmark_selection_with_a_stand_in_frontend(monkeypatch):
    """What runtime/cuda/cudnn.py asks of the frontend (a stand-in records it; the real one
    runs on the GPU in test_cudnn_conv_cuda.py): PyTorch's engine filters per flag, the
    direction's node with the output's layout, and benchmark mode selecting the plan
    that timed fastest."""
    from unittest import mock
    import dataclasses
    fake = mock.MagicMock()
    fake.backend_version.return_value = 91900
    graph = fake.pygraph.return_value
    graph.get_workspace_size.return_value = 0
    graph.get_execution_plan_count.return_value = 3
    graph.get_workspace_size_plan_at_index.return_value = 0
    monkeypatch.setitem(sys.modules, "cudnn", fake)
    monkeypatch.setattr(runtime_cudnn, "_state", {"module": None, "tried": False, "why": None})
    monkeypatch.setattr(runtime_cudnn, "_handle", lambda index: "handle")
    monkeypatch.setattr(runtime_cudnn, "_plans", {})
    times = iter([3.0, 1.0, 2.0])

    class Event:
        def __init__(self, *args, **kwargs):
            pass

        def record(self, stream):
            pass

        def synchronize(self):
            pass

        def elapsed_time(self, end):
            return next(times)

    class Stream:
        handle = 7

        def synchronize(self):
            pass
    monkeypatch.setattr("ember.runtime.cuda.stream.Event", Event)
    monkeypatch.setattr("ember.runtime.cuda.stream.current_stream", lambda index: Stream())
    x = ((2, 8, 5, 5), (200, 25, 5, 1), "float32")
    w = ((4, 8, 3, 3), (72, 9, 3, 1), "float32")
    y = ((2, 4, 5, 5), (100, 1, 20, 4), "float32")
    spec = cudnn_conv.spec_for("dgrad", x, w, y, (1, 1), (1, 1), (1, 1))
    spec = dataclasses.replace(spec, tf32=False, deterministic=True, benchmark=10)
    runtime_cudnn.conv_plan(spec, 0, (1, 2, 3))
    note = fake.numerical_note
    graph.deselect_numeric_notes.assert_called_once_with(
        [note.DOWN_CONVERT_INPUTS, note.TENSOR_CORE, note.NONDETERMINISTIC])
    assert graph.conv_dgrad.call_args.kwargs["padding"] == [1, 1]
    made = graph.conv_dgrad.return_value.set_output.return_value.set_dim
    made.assert_called_once_with([2, 8, 5, 5])
    made.return_value.set_stride.assert_called_once_with([200, 25, 5, 1])
    graph.select_plan.assert_called_once_with(1)          # 1.0 ms: the fastest of three
    # TF32 allowed, not deterministic, no benchmark: only the down-conversion filter
    graph.reset_mock()
    runtime_cudnn.conv_plan(dataclasses.replace(spec, tf32=True, deterministic=False,
                                                benchmark=0), 0, (1, 2, 3))
    graph.deselect_numeric_notes.assert_called_once_with([note.DOWN_CONVERT_INPUTS])
    graph.select_plan.assert_not_called()


def _stand_in_frontend(monkeypatch):
    """A recording stand-in for the cuDNN frontend package: each graph.tensor / conv /
    bias call returns its own tensor object, so the variant pack's roles can be read."""
    from unittest import mock
    fake = mock.MagicMock()
    fake.backend_version.return_value = 91900
    graph = fake.pygraph.return_value
    graph.get_workspace_size.return_value = 0

    def made(kind):
        def make(*args, **kwargs):
            t = mock.MagicMock(name=kwargs.get("name", kind))
            # the chained setters return the tensor itself, as the frontend's do
            for setter in ("set_output", "set_dim", "set_stride", "set_data_type"):
                getattr(t, setter).return_value = t
            return t
        return make
    for op in ("tensor", "conv_fprop", "conv_dgrad", "conv_wgrad", "bias", "add", "relu"):
        getattr(graph, op).side_effect = made(op)
    monkeypatch.setitem(sys.modules, "cudnn", fake)
    monkeypatch.setattr(runtime_cudnn, "_state", {"module": None, "tried": False, "why": None})
    monkeypatch.setattr(runtime_cudnn, "_handle", lambda index: "handle")
    monkeypatch.setattr(runtime_cudnn, "_plans", {})
    monkeypatch.setattr(runtime_cudnn, "_failed", {})
    return fake, graph


@pytest.mark.parametrize("dtype, io", [("float16", "HALF"), ("bfloat16", "BFLOAT16")])
def test_half_precision_graphs_type_every_tensor_and_compute_in_float(monkeypatch, dtype, io):
    """The graph ember builds for a float16 / bfloat16 convolution, as NVIDIA's samples and
    torch build it: io in the half type, intermediate and compute float32 (the graph's and
    each node's), every tensor typed, the bias in the io type added to a float32 conv
    result, tensor cores kept, and each pointer in its role."""
    fake, graph = _stand_in_frontend(monkeypatch)
    monkeypatch.setattr(cudnn_conv, "HALF_PRECISION_ON_CUDNN", True)
    dt = fake.data_type
    x = ((2, 8, 5, 5), (200, 1, 40, 8), dtype)                    # channels-last
    w = ((16, 8, 3, 3), (72, 1, 24, 8), dtype)
    y = ((2, 16, 5, 5), (400, 1, 80, 16), dtype)
    b = ((16,), (1,), dtype)
    geometry = ((1, 1), (1, 1), (1, 1))
    for kind in ("fprop", "dgrad", "wgrad"):
        graph.reset_mock()
        spec = cudnn_conv.spec_for(kind, x, w, y, *geometry,
                                   bias=b if kind == "fprop" else None)
        assert spec is not None and spec.dtype == dtype
        plan = runtime_cudnn.conv_plan(spec, 0)
        kwargs = fake.pygraph.call_args.kwargs
        assert kwargs["io_data_type"] is getattr(dt, io)
        assert kwargs["intermediate_data_type"] is dt.FLOAT
        assert kwargs["compute_data_type"] is dt.FLOAT
        assert all(c.kwargs["data_type"] is getattr(dt, io)
                   for c in graph.tensor.call_args_list)
        node = getattr(graph, f"conv_{kind}")
        assert node.call_args.kwargs["compute_data_type"] is dt.FLOAT
        graph.deselect_numeric_notes.assert_called_once_with(
            [fake.numerical_note.DOWN_CONVERT_INPUTS])
        plan.run((10, 20, 30, 40)[:len(plan.tensors)], 7)
        pack = graph.execute.call_args.args[0]
        names = {t._mock_name: p for t, p in pack.items()}     # tensor (node) name: pointer
        if kind == "fprop":
            assert names == {"x": 10, "w": 20, "bias": 30, "b": 40}
            assert graph.bias.call_args.kwargs["compute_data_type"] is dt.FLOAT
            conv_out = graph.bias.call_args.kwargs["input"]
            conv_out.set_data_type.assert_called_once_with(dt.FLOAT)   # float32 virtual
            out = plan.tensors[2]
        elif kind == "dgrad":
            assert names == {"dgrad": 10, "w": 20, "dy": 30}
            out = plan.tensors[0]
        else:
            assert names == {"x": 10, "wgrad": 20, "dy": 30}
            out = plan.tensors[1]
        out.set_output.assert_called_once_with(True)
        out.set_data_type.assert_called_with(getattr(dt, io))          # the output in io
        fake.set_stream.assert_called_with("handle", 7)


def test_forward_epilogues_are_pointwise_nodes_in_float32(monkeypatch):
    """bias + residual add + relu after the convolution, as cuDNN pointwise nodes of the
    same graph: every intermediate a float32 virtual tensor, the residual typed and laid
    out as the output, y the last node's result in the io type, pointers x, w, y, b, z."""
    fake, graph = _stand_in_frontend(monkeypatch)
    monkeypatch.setattr(cudnn_conv, "HALF_PRECISION_ON_CUDNN", True)
    dt = fake.data_type
    x = ((2, 8, 5, 5), (200, 1, 40, 8), "float16")
    w = ((16, 8, 3, 3), (72, 1, 24, 8), "float16")
    y = ((2, 16, 5, 5), (400, 1, 80, 16), "float16")
    spec = cudnn_conv.spec_for("fprop", x, w, y, (1, 1), (1, 1), (1, 1),
                               bias=((16,), (1,), "float16"), epilogue="add_relu")
    assert "+bias +add_relu" in spec.describe()
    plan = runtime_cudnn.conv_plan(spec, 0)
    conv = graph.conv_fprop.call_args
    biased = graph.bias.call_args.kwargs
    added = graph.add.call_args.kwargs
    relu = graph.relu.call_args.kwargs
    assert biased["input"]._mock_name == "fprop" and added["a"]._mock_name == "bias"
    assert relu["input"]._mock_name == "residual"
    for node in (biased, added, relu):
        assert node["compute_data_type"] is dt.FLOAT
    for virtual in (biased["input"], added["a"], relu["input"]):
        virtual.set_data_type.assert_called_once_with(dt.FLOAT)
    z = added["b"]
    (z_call,) = [c for c in graph.tensor.call_args_list if c.kwargs["name"] == "z"]
    assert z_call.kwargs["dim"] == [2, 16, 5, 5] and z_call.kwargs["stride"] == [400, 1, 80, 16]
    assert z_call.kwargs["data_type"] is dt.HALF and conv.kwargs["name"] == "fprop"
    plan.run((10, 20, 30, 40, 50), 7)
    pack = graph.execute.call_args.args[0]
    assert {t._mock_name: p for t, p in pack.items()} == \
        {"x": 10, "w": 20, "relu": 30, "b": 40, "z": 50}
    plan.tensors[2].set_data_type.assert_called_with(dt.HALF)
    with pytest.raises(ValueError, match="epilogue"):
        cudnn_conv.spec_for("dgrad", x, w, y, (1, 1), (1, 1), (1, 1), epilogue="relu")
    with pytest.raises(ValueError, match="epilogue"):
        cudnn_conv.spec_for("fprop", x, w, y, (1, 1), (1, 1), (1, 1), epilogue="gelu")
