"""cuDNN as ember's external convolution kernel on a real GPU (skipped without a GPU or
without the cuDNN frontend package): forward (with bias), input gradient and weight
gradient against torch's float64 results for NCHW and channels-last float32 tensors,
strides, padding, dilation and groups (float16 / bfloat16 on cuDNN only behind
cudnn_conv.HALF_PRECISION_ON_CUDNN); the Triton-or-cuDNN choice recorded in the on-disk
autotune cache and read back without timing; a compiled plan with cuDNN steps replayed
as a CUDA graph. float32 runs with TF32 off (IEEE in both), so tolerances are tight."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
from ember.frontend import cudnn_conv  # noqa: E402
from ember.runtime.cuda import cudnn as runtime_cudnn  # noqa: E402

pytestmark = pytest.mark.cuda

CASES = [  # (N, Cin, H, W, Cout, k, conv kwargs)
    (2, 8, 12, 12, 16, 3, dict(stride=1, padding=1)),
    (2, 8, 13, 11, 16, 3, dict(stride=2, padding=1)),
    (2, 16, 9, 9, 8, 1, dict(stride=2, padding=0)),
    (1, 8, 15, 15, 8, 3, dict(stride=1, padding=2, dilation=2)),
    (2, 16, 10, 10, 32, 3, dict(stride=1, padding=1, groups=4)),
    (2, 8, 10, 10, 8, 3, dict(stride=1, padding=1, groups=8)),      # depthwise
    (2, 3, 32, 32, 16, 7, dict(stride=2, padding=3)),               # a resnet stem
]


@pytest.fixture
def cudnn_forced(monkeypatch, tmp_path):
    if not ember.cuda.is_available():
        pytest.skip("no CUDA GPU")
    if not ember.backends.cudnn.is_available():
        pytest.skip(f"cuDNN frontend not available: {runtime_cudnn.unavailable_reason()}")
    monkeypatch.setenv("EMBER_CONV_BACKEND", "cudnn")
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(ember.backends.cudnn, "allow_tf32", False)
    cudnn_conv._memo.clear()
    yield
    cudnn_conv._memo.clear()


def _kinds_built():
    return {spec.kind for spec, _ in runtime_cudnn._plans}


def _inputs(case, seed=0):
    n, cin, h, w, cout, k, kw = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, cin // kw.get("groups", 1), k, k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    return x, wt, b


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_cudnn_conv_forward_and_gradients_match_torch(cudnn_forced, case, channels_last):
    x, w, b = _inputs(case)
    kw = case[-1]
    fmt = ember.channels_last if channels_last else ember.contiguous_format
    xe = ember.tensor(x).cuda().contiguous(memory_format=fmt).requires_grad_()
    we = ember.tensor(w).cuda().contiguous(memory_format=fmt).requires_grad_()
    be = ember.tensor(b).cuda().requires_grad_()
    runtime_cudnn._plans.clear()
    out = ember.nn.functional.conv2d(xe, we, be, **kw)
    g = np.random.default_rng(1).standard_normal(tuple(out.shape)).astype(np.float32)
    out.backward(ember.tensor(g).cuda().contiguous(memory_format=fmt))
    assert _kinds_built() == {"fprop", "dgrad", "wgrad"}

    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.conv2d(xt, wt, bt, **kw)
    ref.backward(torch.tensor(g, dtype=torch.float64))
    tol = dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.detach().cpu().numpy(), ref.detach().numpy(), **tol)
    np.testing.assert_allclose(xe.grad.cpu().numpy(), xt.grad.numpy(), **tol)
    np.testing.assert_allclose(we.grad.cpu().numpy(), wt.grad.numpy(), **tol)
    np.testing.assert_allclose(be.grad.cpu().numpy(), bt.grad.numpy(), **tol)
    assert out.is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_convolutions_follow_the_switch(cudnn_forced, dtype):
    """float16/bfloat16 convolutions go to cuDNN only where HALF_PRECISION_ON_CUDNN is on
    (off until tools/check_cudnn_half.py passes on the GPU: cuDNN once gave wrong values
    here); either way the values match torch's."""
    x, w, _ = _inputs(CASES[0])
    et = getattr(ember, dtype)
    xe = ember.tensor(x).cuda().to(et).contiguous(memory_format=ember.channels_last)
    we = ember.tensor(w).cuda().to(et).contiguous(memory_format=ember.channels_last)
    runtime_cudnn._plans.clear()
    out = ember.nn.functional.conv2d(xe, we, padding=1)
    assert bool(runtime_cudnn._plans) == cudnn_conv.HALF_PRECISION_ON_CUDNN
    assert out.dtype == et
    ref = torch.nn.functional.conv2d(torch.tensor(x).to(getattr(torch, dtype)).double(),
                                     torch.tensor(w).to(getattr(torch, dtype)).double(),
                                     padding=1)
    np.testing.assert_allclose(out.float().cpu().numpy(), ref.numpy(), rtol=2e-2, atol=2e-1)


def test_cudnn_conv_transpose_uses_dgrad(cudnn_forced):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 8, 7, 7)).astype(np.float32)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    runtime_cudnn._plans.clear()
    out = ember.nn.functional.conv_transpose2d(ember.tensor(x).cuda(), ember.tensor(w).cuda(),
                                               stride=2, padding=1, output_padding=1)
    assert "dgrad" in _kinds_built()
    ref = torch.nn.functional.conv_transpose2d(torch.tensor(x).double(), torch.tensor(w).double(),
                                               stride=2, padding=1, output_padding=1)
    np.testing.assert_allclose(out.cpu().numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)


def test_choice_is_recorded_in_the_autotune_cache_and_read_back(cudnn_forced, monkeypatch,
                                                                 tmp_path):
    monkeypatch.setenv("EMBER_CONV_BACKEND", "auto")
    x, w, _ = _inputs(CASES[0])
    xe = ember.tensor(x).cuda().contiguous(memory_format=ember.channels_last)
    we = ember.tensor(w).cuda().contiguous(memory_format=ember.channels_last)
    first = ember.nn.functional.conv2d(xe, we, padding=1).cpu().numpy()
    entries = list((tmp_path / "triton" / "autotune").glob("conv-*.json"))
    assert len(entries) == 1
    record = json.loads(entries[0].read_text())
    assert record["choice"] in ("triton", "cudnn") and "fprop" in record["conv"]
    assert record["choice"] == ("cudnn" if record["cudnn_ms"] < record["triton_ms"] else "triton")
    # a new process (memo cleared) reads the record and times nothing
    cudnn_conv._memo.clear()

    def no_timing(*args):
        raise AssertionError("timed again although the choice is recorded")
    monkeypatch.setattr(cudnn_conv, "_time_both", no_timing)
    again = ember.nn.functional.conv2d(xe, we, padding=1).cpu().numpy()
    np.testing.assert_allclose(again, first, rtol=1e-5, atol=1e-5)
    # and the recorded side is the one that runs
    runtime_cudnn._plans.clear()
    ember.nn.functional.conv2d(xe, we, padding=1)
    assert bool(runtime_cudnn._plans) == (record["choice"] == "cudnn")


def test_enabled_false_never_uses_cudnn(cudnn_forced, monkeypatch):
    monkeypatch.setattr(ember.backends.cudnn, "enabled", False)
    x, w, _ = _inputs(CASES[0])
    runtime_cudnn._plans.clear()
    out = ember.nn.functional.conv2d(ember.tensor(x).cuda(), ember.tensor(w).cuda(), padding=1)
    assert not runtime_cudnn._plans
    ref = torch.nn.functional.conv2d(torch.tensor(x).double(), torch.tensor(w).double(), padding=1)
    np.testing.assert_allclose(out.cpu().numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)


def test_compiled_plan_with_cudnn_steps_replays_as_a_cuda_graph(cudnn_forced):
    from ember.compiler.compile_cuda import CudnnConvStep
    rng = np.random.default_rng(5)
    net = ember.nn.Sequential(ember.nn.Conv2d(3, 16, 3, padding=1), ember.nn.ReLU(),
                              ember.nn.Conv2d(16, 8, 3, stride=2, padding=1, bias=False))
    tnet = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(16, 8, 3, stride=2, padding=1, bias=False))
    tnet.load_state_dict({k: torch.tensor(v.numpy()) for k, v in net.state_dict().items()})
    net = net.cuda().eval()
    fast = ember.compile(net, backend="triton")
    for seed in range(3):
        x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
        out = fast(ember.tensor(x).cuda()).detach()
        with torch.no_grad():
            ref = tnet.double()(torch.tensor(x).double())
        np.testing.assert_allclose(out.cpu().numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)
    plan = fast.last[0]
    steps = [s.fn for s in plan.steps]
    assert any(isinstance(fn, CudnnConvStep) for fn in steps)
    assert plan.graph is not None and plan.graph.launches >= 1


def test_compiled_training_step_leaves_weight_gradients_channels_last_for_cudnn(cudnn_forced,
                                                                             monkeypatch):
    """A channels-last conv net's compiled training step with cuDNN usable: the float32
    weight gradients ember's GEMM would read NCHW (Cin*KH*KW >= 512) keep channels-last
    operands (no NCHW copies in their producers: cudnn_conv.wgrad_wants_nchw), cuDNN runs
    them, and the steps equal ember's eager CPU steps; EMBER_WGRAD_NCHW=always restores the
    copies."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from train_step_checks import assert_sgd_steps_match_eager

    def net():
        return ember.nn.Sequential(
            ember.nn.Conv2d(3, 64, 3, padding=1, bias=False), ember.nn.BatchNorm2d(64),
            ember.nn.ReLU(), ember.nn.Conv2d(64, 64, 3, padding=1, bias=False),
            ember.nn.BatchNorm2d(64), ember.nn.ReLU(), ember.nn.AdaptiveAvgPool2d(1),
            ember.nn.Flatten(), ember.nn.Linear(64, 5)).to(memory_format=ember.channels_last)

    def nchw_operands(step):
        return [any(a.meta["val"].is_contiguous(ember.contiguous_format) for a in n.args[:2])
                for n in step.graph.nodes
                if getattr(n.target, "name", "") == "convolution_backward_weight"]
    ember.manual_seed(0)
    step = assert_sgd_steps_match_eager(net(), (2, 3, 6, 5), device="cuda", backend="triton")
    assert nchw_operands(step) and not any(nchw_operands(step))
    assert "wgrad" in _kinds_built()
    monkeypatch.setenv("EMBER_WGRAD_NCHW", "always")
    step = assert_sgd_steps_match_eager(net(), (2, 3, 6, 5), device="cuda", backend="triton")
    assert any(nchw_operands(step))
