"""conv2d's weight gradient on CUDA as a split-K implicit GEMM (codegen/triton/conv_wgrad.py):
the partial products over chunks of N*Ho*Wo and their in-order sum equal torch's weight
gradient for NCHW and channels-last operands, strides, padding, dilation and groups, with
one chunk (the GEMM writes dW itself) and with several (workspace + sum kernel).
Under TRITON_INTERPRET=1 on CI (tests/cuda/emulation.py); run_on_gpu.sh runs it on the GPU."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.codegen.triton import conv_wgrad  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402
from ember.ir.dtypes import float32  # noqa: E402
from ember.ir.registry import OPS  # noqa: E402

from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture

# (batch, Cin, H, W, Cout, k, conv kwargs): small enough for the interpreter; with
# K = batch*Ho*Wo = 128 or less one chunk (the GEMM writes dW), K >= 1024 several
CASES = [
    (2, 4, 8, 8, 16, 3, dict(stride=1, padding=1)),
    (4, 3, 16, 16, 16, 3, dict(stride=1, padding=1)),
    (4, 8, 17, 15, 24, 3, dict(stride=2, padding=1)),
    (2, 4, 33, 30, 16, 3, dict(stride=[1, 2], padding=[2, 0], dilation=[2, 1])),
    (4, 12, 16, 16, 8, 1, dict(stride=1, padding=0)),      # 8 x 12: tiles wrap
    (2, 8, 24, 24, 32, 3, dict(stride=1, padding=1, groups=2)),
    # a column tile inside one (kh, kw): scalar shifts, a plain channel range
    (2, 64, 8, 8, 16, 3, dict(stride=2, padding=1)),
    (4, 32, 16, 16, 16, 1, dict(stride=1, padding=0)),
    (2, 64, 9, 9, 32, 3, dict(stride=1, padding=1, groups=2)),
    # conv_wgrad.tiles_for's larger tiles: 128 x 64 (M >= 128), 128 x 256 (M >= 256, N >= 2048)
    (2, 16, 16, 16, 128, 3, dict(stride=1, padding=1)),
    (1, 256, 6, 6, 256, 3, dict(stride=1, padding=1)),
]


def _ember_weight_grad(x, g, w_shape, kw, dev, channels_last):
    xs, gs = ember.tensor(x).to(dev), ember.tensor(g).to(dev)
    if channels_last:
        xs = xs.contiguous(memory_format=ember.channels_last)
        gs = gs.contiguous(memory_format=ember.channels_last)
    pair = (lambda v: [v, v] if isinstance(v, int) else list(v))
    return OPS["convolution_backward_weight"](
        gs, xs, list(w_shape), pair(kw.get("stride", 1)), pair(kw.get("padding", 0)),
        pair(kw.get("dilation", 1)), False, [0, 0], kw.get("groups", 1))


def _torch_weight_grad(x, g, w_shape, kw):
    xt = torch.tensor(x, dtype=torch.float64)
    wt = torch.zeros(w_shape, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.conv2d(xt, wt, **kw)
    out.backward(torch.tensor(g, dtype=torch.float64))
    return wt.grad.numpy()


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[:6]}-{c[6]}")
def test_weight_grad_equals_torch(device, case, channels_last, monkeypatch):  # noqa: F811
    n, cin, h, w, cout, k, kw = case
    rng = np.random.default_rng(hash(str(case)) % 2**32)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    w_shape = (cout, cin // kw.get("groups", 1), k, k)
    ho_wo = torch.nn.functional.conv2d(torch.zeros(1, cin, h, w),
                                       torch.zeros(w_shape), **kw).shape[2:]
    g = rng.standard_normal((n, cout) + tuple(ho_wo)).astype(np.float32)
    launched = []
    real_launch = eager_cuda.launch
    monkeypatch.setattr(eager_cuda, "launch",
                        lambda gen, ts, i: (launched.append(gen.name), real_launch(gen, ts, i)))
    got = _ember_weight_grad(x, g, w_shape, kw, device, channels_last)   # IEEE float32 dots
    assert got.is_cuda and tuple(got.shape) == w_shape
    want = _torch_weight_grad(x, g, w_shape, kw)
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-4, atol=1e-4)
    assert any(name.startswith("conv_weight_grad") for name in launched), launched


@pytest.mark.parametrize("k_total, tiles_mn", [(128, (16, 16)), (200704, (64, 576)),
                                               (802816, (64, 147)), (3136, (512, 4608))])
def test_split_plan_covers_k_in_whole_steps(k_total, tiles_mn):
    m, n = tiles_mn
    problem = conv_wgrad.WeightGradProblem(
        (k_total, n, 1, 1), (n, 1, 1, 1), (k_total, m, 1, 1), (m, 1, 1, 1), (m, n, 1, 1),
        (n, 1, 1, 1), (1, 1), (0, 0), (1, 1), 1, float32, float32)
    split = conv_wgrad.plan(problem)
    assert split.chunk % split.block_k == 0
    assert (split.splits - 1) * split.chunk < k_total <= split.splits * split.chunk
    assert split.splits == 1 or split.chunk // split.block_k >= conv_wgrad.MIN_STEPS
    tiles = -(-m // split.block_m) * -(-n // split.block_n)
    if k_total >= 200704:          # resnet-sized K: the split fills the target grid
        assert tiles * split.splits >= conv_wgrad.TARGET_PROGRAMS


def test_half_precision_channels_last_weight_grad_equals_torch(device):  # noqa: F811
    """16-bit operands stay channels-last (tensor cores read either operand order) and dW
    comes back in their dtype, summed in float32 over 4 chunks of K."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 16, 16, 16)).astype(np.float32)
    g = rng.standard_normal((4, 16, 16, 16)).astype(np.float32)
    xs = ember.tensor(x).to(device).half().contiguous(memory_format=ember.channels_last)
    gs = ember.tensor(g).to(device).half().contiguous(memory_format=ember.channels_last)
    got = OPS["convolution_backward_weight"](gs, xs, [16, 16, 3, 3], [1, 1], [1, 1], [1, 1],
                                             False, [0, 0], 1)
    assert got.dtype == ember.float16
    want = _torch_weight_grad(x.astype(np.float16).astype(np.float32),
                              g.astype(np.float16).astype(np.float32), (16, 16, 3, 3),
                              dict(stride=1, padding=1))
    np.testing.assert_allclose(got.float().cpu().numpy(), want, rtol=2e-2, atol=2e-1)
