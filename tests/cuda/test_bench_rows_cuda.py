"""What benchmarks/cuda.py's rows need, at small shapes: compiled training steps
(`compile_train_step(backend="triton")`) of a transformer encoder layer, the MLP and a
channels-last conv net (BatchNorm, max pool, a residual add) with AdamW, float32 and under
`ember.autocast("cuda")` inside the step, against the same steps in torch on the CPU
(float64 for the float32 steps); Bottleneck ResNets compiled on CUDA; the benchmark's
--smoke end to end.

In CI 'cuda' is emulated (host memory, kernels under Triton's interpreter,
tests/cuda/emulation.py); run_on_gpu.sh runs this file on the GPU with TRITON_INTERPRET=0.
"""
import copy
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.frontend import cuda as cuda_api, eager_cuda  # noqa: E402

from test_compile_cuda import EMULATED, device  # noqa: E402,F401 - the CUDA fixture

nn = ember.nn


@pytest.fixture
def cuda(device):  # noqa: F811
    eager_cuda._WARNED.clear()
    with pytest.MonkeyPatch.context() as mp:
        if EMULATED:                           # autocast('cuda') asks whether CUDA exists
            mp.setattr(cuda_api, "is_available", lambda: True)
        with warnings.catch_warnings():        # a host fallback fails the test
            warnings.simplefilter("error", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            yield device


def _layer(lib):
    return lib.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)


def _mlp(lib):
    return lib.nn.Sequential(lib.nn.Linear(24, 16), lib.nn.ReLU(), lib.nn.Linear(16, 12),
                             lib.nn.ReLU(), lib.nn.Linear(12, 5))


def _conv_net(lib):
    from benchmarks.cuda import _tiny_cnn          # the benchmark's stand-in for resnet18
    return _tiny_cnn(lib)


# name: (module builder, loss name, input shape, target builder); 4-d inputs run
# channels-last, as the benchmark's ResNets
MODELS = {
    "conv_net": (_conv_net, "CrossEntropyLoss", (2, 3, 8, 8),
                 lambda rng: rng.integers(0, 5, 2)),
    "transformer_layer": (_layer, "MSELoss", (2, 8, 16),
                          lambda rng: rng.standard_normal((2, 8, 16)).astype(np.float32)),
    "mlp": (_mlp, "CrossEntropyLoss", (6, 24), lambda rng: rng.integers(0, 5, 6)),
}


def _twins(name):
    """(ember model, torch model) with the same weights; the inputs; the loss names."""
    build, loss, shape, target = MODELS[name]
    ember.manual_seed(0)
    model = build(ember)
    twin = build(torch)
    twin.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy())
                          for k, v in model.state_dict().items()})
    rng = np.random.default_rng(0)
    return model, twin, rng.standard_normal(shape).astype(np.float32), target(rng), loss


def _torch_steps(twin, loss, x, y, steps, dtype=None):
    """`steps` AdamW steps of the torch twin on the CPU: float64, or autocast to `dtype`."""
    if dtype is None:
        twin = twin.double()
        x = torch.from_numpy(x).double()
        y = torch.from_numpy(y).double() if y.dtype.kind == "f" else torch.from_numpy(y)
    else:
        x, y = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.AdamW(twin.parameters(), lr=1e-2)
    loss_fn = getattr(torch.nn, loss)()
    losses = []
    for _ in range(steps):
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            value = loss_fn(twin(x), y)
        value.backward()
        opt.step()
        opt.zero_grad()
        losses.append(value.item())
    return losses


def _compiled_steps(model, loss, x, y, device, steps, dtype=None):
    """`steps` compiled AdamW steps on `device`: float32 as compile_train_step(model, ...),
    or a step function with ember.autocast("cuda", dtype) inside, traced whole."""
    model = copy.deepcopy(model).to(device)
    xs, ys = ember.tensor(x).to(device), ember.tensor(y).to(device)
    if xs.dim() == 4:
        model = model.to(memory_format=ember.channels_last)
        xs = xs.contiguous(memory_format=ember.channels_last)
    opt = ember.optim.AdamW(model.parameters(), lr=1e-2)
    loss_fn = getattr(nn, loss)()
    if dtype is None:
        step = ember.compile_train_step(model, loss_fn, opt, backend="triton")
    else:
        @ember.compile_train_step(backend="triton")
        def step(xs, ys):
            with ember.autocast("cuda", dtype=dtype):
                value = loss_fn(model(xs), ys)
            value.backward()
            opt.step()
            opt.zero_grad()
            return value
    losses = [step(xs, ys).item() for _ in range(steps)]
    assert all(p.is_cuda and p.dtype is ember.float32 for p in model.parameters())
    return model, step, losses


def _comparable(name, value):
    """The parameter's entries whose gradient is not zero in exact arithmetic: attention's
    key bias adds one constant to a query's scores over all keys, which softmax cancels,
    so its gradient is rounding noise that Adam scales to lr-sized steps (in torch too)."""
    if name.endswith("in_proj_bias"):
        d = value.shape[0] // 3
        return np.concatenate([value[:d], value[2 * d:]])
    return value


def _assert_close(model, twin, losses, want, tol):
    np.testing.assert_allclose(losses, want, rtol=tol, atol=tol)
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        np.testing.assert_allclose(_comparable(name, p.detach().cpu().numpy()),
                                   _comparable(name, q.detach().double().numpy()),
                                   rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_adamw_compiled_step_equals_float64_torch(cuda, name):
    model, twin, x, y, loss = _twins(name)
    got, step, losses = _compiled_steps(model, loss, x, y, cuda, steps=3)
    _assert_close(got, twin, losses, _torch_steps(twin, loss, x, y, 3), 2e-4)
    assert step.last.plan.graph is not None     # one CUDA graph per step


# Triton's interpreter computes tl.dot of bfloat16 tiles wrongly (tests/codegen/triton/
# test_triton_gemm.py): under emulation the values are checked in float16, the
# bfloat16 steps only for running on the device
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_autocast_compiled_step_equals_torch_autocast(cuda, name, dtype):
    model, twin, x, y, loss = _twins(name)
    got, step, losses = _compiled_steps(model, loss, x, y, cuda, 2, getattr(ember, dtype))
    assert np.isfinite(losses).all()
    if dtype == "bfloat16" and EMULATED:
        return
    want = _torch_steps(twin, loss, x, y, 2, getattr(torch, dtype))
    _assert_close(got, twin, losses, want, 3e-2)



def _small_bottleneck_net():
    """resnet50's block structure at small widths: a stem, a Bottleneck block keeping its
    width and one with a strided 1x1 downsample, pooling, a classifier."""
    B = ember.models.Bottleneck
    down = nn.Sequential(nn.Conv2d(16, 32, 1, 2, bias=False), nn.BatchNorm2d(32))
    net = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                        B(16, 4), B(16, 8, 2, down), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(32, 5))
    for m in net.modules():                      # BatchNorm statistics that fold-bn must use
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_bottleneck_resnet_on_the_device_compiles_channels_last(cuda):
    """Bottleneck blocks moved to the GPU and channels-last (resnet50's inference row):
    fold-bn and the layout passes keep the weights on the device; equal to CPU eager."""
    ember.manual_seed(0)
    model = _small_bottleneck_net()
    x = ember.randn(2, 3, 12, 12).contiguous(memory_format=ember.channels_last)
    with ember.no_grad():
        want = model(x).numpy()
    on_gpu = copy.deepcopy(model).to(cuda).to(memory_format=ember.channels_last)
    fast = ember.compile(on_gpu, backend="triton")
    with ember.no_grad():
        for _ in range(2):                       # plain run, then capture + replay
            got = fast(x.to(cuda))
            np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-3, atol=1e-4)
    assert all(p.is_cuda for p in on_gpu.parameters())
    assert fast.last[0].graph is not None
    assert not fast.stats.fallbacks



@pytest.mark.cuda
def test_resnet50_on_the_device_equals_cpu_eager(cuda):
    """resnet50 itself (too large to interpret on CI: building its plan alone takes minutes
    there), moved to the GPU and channels-last, compiled; equal to CPU eager."""
    model = ember.models.resnet50(num_classes=5).eval()
    x = ember.randn(2, 3, 64, 64).contiguous(memory_format=ember.channels_last)
    with ember.no_grad():
        want = model(x).numpy()
    on_gpu = model.to(cuda).to(memory_format=ember.channels_last)
    fast = ember.compile(on_gpu, backend="triton")
    with ember.no_grad():
        for _ in range(2):
            got = fast(x.to(cuda))
            np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-3, atol=1e-3)
    assert not fast.stats.fallbacks and all(p.is_cuda for p in on_gpu.parameters())


def test_benchmark_smoke_runs_every_row(cuda, tmp_path, monkeypatch):
    """benchmarks/cuda.py --smoke end to end (ember on the emulated device, torch on the
    CPU): every row runs without a host fallback, its float32 steps as accurate as
    torch's float32 steps against the float64 reference, and --out writes the rows."""
    import json
    from benchmarks import cuda as bench
    import importlib
    timer = importlib.import_module("ember.utils.benchmark.timer")
    if EMULATED:          # the emulated device runs synchronously: the clock need not sync
        monkeypatch.setattr(timer, "_CUDA", [False])
    out = tmp_path / "cuda.json"
    # a row of each kind (the others differ in the model or the precision alone)
    only = ["train_resnet18", "train_transformer_bf16", "train_mlp", "infer_resnet50",
            "cold_resnet18_step"]
    tf32 = ember.backends.cuda.matmul.allow_tf32
    bench.main(["--smoke", "--out", str(out), "--only", ",".join(only)])
    assert ember.backends.cuda.matmul.allow_tf32 == tf32      # the flags it set, restored
    rows = json.loads(out.read_text())["rows"]
    assert list(rows) == [r for r in bench.ROWS if r in only]
    for name, row in rows.items():
        assert "error" not in row, (name, row["error"])
        if name.startswith("cold"):
            assert "skipped" in row                 # fresh processes need a real GPU
            continue
        assert row["torch_over_ember"] > 0 and row["ember_cuda_graph"], name
        assert not row["host_fallbacks"], (name, row["host_fallbacks"])
        if name.endswith("_bf16") and EMULATED:     # the interpreter's bf16 tl.dot
            continue
        mine, torch_err = row["ember_vs_float64"], row["torch_vs_float64"]
        for key in mine:
            if key.endswith("err"):
                assert mine[key] <= max(1e-4, 10 * torch_err[key]), (name, key, mine, torch_err)
