"""The glue of channels-last training steps on (emulated) CUDA: copies between NCHW and
channels-last are tiled batched transposes (codegen/triton/layout_copy.py), fills of
channels-last buffers run over memory in order, max pooling's backward scatters into a
channels-last gradient directly, and a strided convolution's input gradient is computed
per output phase without a zero-inserted buffer. Values against torch; which kernels ran
from the launches. Under TRITON_INTERPRET=1 on CI (tests/cuda/emulation.py); run_on_gpu.sh
runs it on the GPU."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402

from sm90_cubins import assert_launchable, compile_for_sm90  # noqa: E402
from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture
from train_step_checks import assert_sgd_steps_match_eager  # noqa: E402

F = ember.nn.functional


@pytest.fixture
def launched(device, monkeypatch):  # noqa: F811 - after the device's (emulated) runtime
    """The names of the kernels launched, and "memset" for each memset (a dense zero
    fill runs as one)."""
    from ember.runtime.cuda import stream
    names = []
    real_launch, real_memset = eager_cuda.launch, stream.memset
    monkeypatch.setattr(eager_cuda, "launch",
                        lambda gen, ts, i: (names.append(gen.name), real_launch(gen, ts, i)))
    monkeypatch.setattr(stream, "memset",
                        lambda *a: (names.append("memset"), real_memset(*a))[1])
    return names


SHAPES = [(2, 5, 7, 9), (3, 70, 9, 8), (1, 3, 65, 2)]      # partial tiles both ways


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "bool"])
def test_layout_changes_are_tiled_transposes(device, launched, shape, dtype):  # noqa: F811
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 10
    ref = torch.tensor(x).to(getattr(torch, dtype))
    xs = ember.tensor(ref.numpy()).to(device)
    target = ember.empty(list(shape), dtype=xs.dtype, device=device,
                         memory_format=ember.channels_last)
    launched.clear()
    to_cl = xs.contiguous(memory_format=ember.channels_last)
    back = to_cl.contiguous()
    cloned = to_cl.clone(memory_format=ember.contiguous_format)
    target.copy_(xs)           # copy_ is the functional copy, then a same-layout copy in
    assert launched.count("layout_copy") == 4, launched
    want_cl = ref.contiguous(memory_format=torch.channels_last)
    assert tuple(to_cl.stride()) == want_cl.stride() == tuple(target.stride())
    for got in (to_cl, back, cloned, target):
        np.testing.assert_array_equal(got.cpu().numpy(), ref.numpy())
    assert tuple(back.stride()) == ref.stride() == tuple(cloned.stride())


def test_channels_last_fill_runs_over_memory(device, launched):  # noqa: F811
    xs = ember.ones(2, 6, 5, 3, device=device).contiguous(memory_format=ember.channels_last)
    filled = ember.full_like(xs, 2.5)
    assert tuple(filled.stride()) == (90, 1, 18, 6)
    np.testing.assert_array_equal(filled.cpu().numpy(), np.full((2, 6, 5, 3), 2.5, np.float32))
    assert "fill" in launched


@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=2), dict(kernel_size=3, stride=1)], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_channels_last_max_pool_backward_scatters_in_place(device, launched, kw,  # noqa: F811
                                                            dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 9, 8)).astype(np.float32)
    g = rng.standard_normal(torch.nn.functional.max_pool2d(torch.tensor(x), **kw).shape)
    xt = torch.tensor(x, dtype=getattr(torch, dtype)).contiguous(
        memory_format=torch.channels_last).requires_grad_(True)
    torch.nn.functional.max_pool2d(xt, **kw).backward(torch.tensor(g, dtype=xt.dtype))
    xs = ember.tensor(xt.detach().numpy()).to(device).contiguous(
        memory_format=ember.channels_last).requires_grad_(True)
    pooled = F.max_pool2d(xs, **kw)
    gs = ember.tensor(g.astype(xt.detach().numpy().dtype)).to(device).contiguous(
        memory_format=ember.channels_last)
    launched.clear()
    pooled.backward(gs)
    assert tuple(xs.grad.stride()) == xt.grad.stride()
    np.testing.assert_allclose(xs.grad.cpu().numpy().astype(np.float32),
                               xt.grad.float().numpy(), rtol=1e-3, atol=1e-3)
    assert any(name.endswith("_cl5") for name in launched), launched
    assert "layout_copy" not in launched, launched     # no NCHW round trip
    assert ("copy_" in launched) == (dtype == "float16"), launched   # only the half cast


def test_new_kernels_compile_to_sm90_cubins():
    results = compile_for_sm90(
        "from ember.codegen.triton.layout_copy import batched_transpose\n"
        "from ember.codegen.triton.scatter import plane_scatter_add\n"
        "from ember.ir.dtypes import float32, float16",
        "batched_transpose(64, 3136, 64, float32), "
        "batched_transpose(8, 3, 50, float16, 'layout_copy_half'), "
        "plane_scatter_add(64 * 64 * 56 * 56, 56 * 56, 112 * 112, float32, 64)")
    assert len(results) == 3
    assert_launchable(results)


# (batch, Cin, H, W, Cout, k, conv kwargs): strided convolutions whose input gradient
# goes by phase; phases no tap reaches (1x1 stride 2, k < stride), dilation, groups,
# padding past the kernel's reach, sizes the stride does not divide
CONV_CASES = [
    (2, 4, 9, 8, 6, 3, dict(stride=2, padding=1)),
    (2, 8, 8, 8, 4, 1, dict(stride=2)),
    (1, 3, 11, 10, 5, 2, dict(stride=3, padding=1)),
    (2, 4, 13, 12, 8, 3, dict(stride=[2, 3], padding=[2, 0], dilation=[2, 1], groups=2)),
    (1, 2, 10, 9, 3, 4, dict(stride=2, padding=3, dilation=2)),
    (2, 3, 16, 16, 4, 7, dict(stride=2, padding=3)),
    (2, 6, 9, 9, 6, 3, dict(stride=2, padding=1, groups=6)),     # depthwise
]


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[:6]}-{c[6]}")
def test_strided_conv_input_gradient_by_phase(device, launched, case,  # noqa: F811
                                              channels_last):
    n, cin, h, w, cout, k, kw = case
    rng = np.random.default_rng(hash(str(case)) % 2**32)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, cin // kw.get("groups", 1), k, k)).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, torch.tensor(wt, dtype=torch.float64), **kw)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(g, dtype=torch.float64))
    layout = ember.channels_last if channels_last else ember.contiguous_format
    xs = ember.tensor(x).to(device).contiguous(memory_format=layout).requires_grad_(True)
    ws = ember.tensor(wt).to(device).contiguous(memory_format=layout)
    ys = F.conv2d(xs, ws, **kw)
    gs = ember.tensor(g).to(device).contiguous(memory_format=layout)
    launched.clear()
    ys.backward(gs)
    np.testing.assert_allclose(xs.grad.cpu().numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    assert tuple(xs.grad.stride()) == tuple(xs.stride())
    # no zero-inserted buffer: a zero fill (kernel or memset) only where a phase has no tap
    zero_filled = "fill" in launched or "memset" in launched
    assert zero_filled == _some_position_untouched(x.shape[2:], k, kw), launched


def _some_position_untouched(size, k, kw):
    """Whether some input position gets no gradient from any output (no tap reaches it)."""
    pair = torch.nn.modules.utils._pair
    stride, padding = pair(kw["stride"]), pair(kw.get("padding", 0))
    dilation = pair(kw.get("dilation", 1))
    for d in range(2):
        reached = {o * stride[d] - padding[d] + kh * dilation[d]
                   for o in range(size[d] + 2 * padding[d]) for kh in range(k)}
        if any(h not in reached for h in range(size[d])):
            return True
    return False


@pytest.mark.parametrize("case", [(2, 4, 5, 6, 3, 3, dict(stride=2, padding=1,
                                                           output_padding=1)),
                                  (1, 6, 4, 4, 4, 4, dict(stride=2, padding=1, groups=2))],
                         ids=str)
def test_strided_conv_transpose_by_phase(device, case):  # noqa: F811
    n, cin, h, w, cout, k, kw = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    wt = rng.standard_normal((cin, cout // kw.get("groups", 1), k, k)).astype(np.float32)
    want = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(wt), **kw)
    got = F.conv_transpose2d(ember.tensor(x).to(device), ember.tensor(wt).to(device), **kw)
    np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=1e-4, atol=1e-4)


def test_compiled_channels_last_step_with_strided_convs_equals_eager_cpu(device,  # noqa: F811
                                                                          monkeypatch):
    """A compiled training step of a channels-last net with strided convolutions and a
    max pool: its input gradients go by phase, the pool's backward scatters in place."""

    from ember.codegen.triton import scatter
    from ember.frontend import eager_cuda_training
    nn = ember.nn
    phases, scatters = [], []
    by_phase, plane = eager_cuda_training._input_gradient_by_phase, scatter.plane_scatter_add
    monkeypatch.setattr(eager_cuda_training, "_input_gradient_by_phase",
                        lambda *a: (phases.append(1), by_phase(*a))[1])
    monkeypatch.setattr(scatter, "plane_scatter_add",
                        lambda *a: (scatters.append(a[-1]), plane(*a))[1])
    ember.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8),
                        nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 16, 3, stride=2,
                                                                    padding=1),
                        nn.ReLU(), nn.Conv2d(16, 16, 1, stride=2), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(16, 5)).to(memory_format=ember.channels_last)
    assert_sgd_steps_match_eager(ref, (4, 3, 17, 16), device=device, buffers=False,
                                 backend="triton")
    assert phases and 8 in scatters, (phases, scatters)


def test_channels_last_float32_weight_gradient_copies_are_transposes(device,  # noqa: F811
                                                                      launched, monkeypatch):
    """The float32 split-K weight gradient reads NCHW operands where Cin*KH*KW >= 512:
    a channels-last input and gradient get there through the tiled transposes (ember's
    route: on a GPU with cuDNN, its first call would time both routes several times)."""
    from ember.frontend import cudnn_conv
    monkeypatch.setattr(cudnn_conv, "usable", lambda: False)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 64, 6, 5)).astype(np.float32)
    wt = rng.standard_normal((8, 64, 3, 3)).astype(np.float32)
    xt = torch.tensor(x, dtype=torch.float64)
    wref = torch.tensor(wt, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wref, padding=1)
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(g, dtype=torch.float64))
    cl = ember.channels_last
    xs = ember.tensor(x).to(device).contiguous(memory_format=cl)
    ws = ember.tensor(wt).to(device).contiguous(memory_format=cl).requires_grad_(True)
    ys = F.conv2d(xs, ws, padding=1)
    gs = ember.tensor(g).to(device).contiguous(memory_format=cl)
    launched.clear()
    ys.backward(gs)
    np.testing.assert_allclose(ws.grad.cpu().numpy(), wref.grad.numpy(), rtol=1e-4, atol=1e-4)
    assert tuple(ws.grad.stride()) == tuple(ws.stride())        # the parameter's layout
    assert launched.count("layout_copy") == 2 and "contiguous" not in launched, launched
