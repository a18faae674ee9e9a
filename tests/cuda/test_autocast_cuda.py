"""ember.autocast("cuda") on CUDA tensors: PyTorch's CUDA op policy (float16/bfloat16 GEMMs
and convolutions on the Triton tensor-core kernels, float32 softmax/sums/losses), and
mixed-precision training steps of the built-in models, eager and compiled, with no host
fallback and GradScaler's loss scaling. In CI 'cuda' is emulated (host memory, kernels in
Triton's interpreter, tests/cuda/emulation.py); run_on_gpu.sh runs this file on the GPU
with TRITON_INTERPRET=0."""
import contextlib
import copy
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.frontend import cuda as cuda_api, eager_cuda  # noqa: E402

from test_compile_cuda import EMULATED, device  # noqa: E402,F401 - the CUDA fixture

F = ember.nn.functional
# Triton 3.9's interpreter computes tl.dot of bfloat16 tiles wrongly (tests/codegen/triton/
# test_triton_gemm.py): bfloat16 GEMMs are checked on the GPU only
DTYPES = [ember.float16] + ([] if EMULATED else [ember.bfloat16])


@pytest.fixture
def cuda(device):  # noqa: F811
    eager_cuda._WARNED.clear()
    with pytest.MonkeyPatch.context() as mp:
        if EMULATED:                           # autocast('cuda') asks whether CUDA exists
            mp.setattr(cuda_api, "is_available", lambda: True)
        yield device


@contextlib.contextmanager
def _no_host_fallback():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def test_cuda_policy_on_cuda_tensors(cuda):
    rng = np.random.default_rng(0)
    x = ember.tensor(rng.standard_normal((4, 8)).astype(np.float32)).to(cuda)
    w = ember.tensor(rng.standard_normal((6, 8)).astype(np.float32)).to(cuda)
    on_host = ember.ones(2, 2)
    with ember.autocast("cuda"):
        y = F.linear(x, w)
        assert y.dtype is ember.float16 and y.is_cuda
        assert F.softmax(y, 1).dtype is ember.float32         # float32 through dtype=
        assert y.sum().dtype is ember.float32
        assert F.layer_norm(y, (6,)).dtype is ember.float32
        assert y.exp().dtype is ember.float32
        assert (y.relu() + 1).dtype is ember.float16            # not listed: unchanged
        assert ember.cat([y, x[:, :6]]).dtype is ember.float32  # promoted
        assert (on_host @ on_host).dtype is ember.float32       # CPU tensors: not CUDA's
        with pytest.raises(Exception, match="unsafe to autocast"):
            F.binary_cross_entropy(y.sigmoid(), y.sigmoid())
    want = x.cpu().numpy().astype(np.float64) @ w.cpu().numpy().astype(np.float64).T
    np.testing.assert_allclose(y.float().cpu().numpy(), want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_half_gemm_and_conv_run_on_the_device(cuda, dtype):
    """Eager half-precision linear/conv2d and their gradients: Triton kernels, no host."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    k = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    w = rng.standard_normal((5, 4 * 6 * 6)).astype(np.float32) * 0.1
    results = []
    for dev in ("cpu", cuda):
        xs = ember.tensor(x).to(dev)
        ks = ember.tensor(k).to(dev).requires_grad_()
        ws = ember.tensor(w).to(dev).requires_grad_()
        region = ember.autocast("cuda", dtype=dtype) if dev != "cpu" else \
            ember.autocast("cpu", dtype=dtype)
        with _no_host_fallback() if dev != "cpu" else contextlib.nullcontext(), region:
            h = F.conv2d(xs, ks, padding=1).relu()
            out = F.linear(h.flatten(1), ws)
            assert out.dtype is dtype
            loss = (out.float() * out.float()).sum()
        loss.backward()
        results.append([out.detach().float().cpu().numpy(), ks.grad.cpu().numpy(),
                        ws.grad.cpu().numpy()])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=3e-2, atol=3e-2)


MODELS = {
    "mlp": lambda: (ember.models.mlp(24, (16, 12), num_classes=5),
                    ember.randn(6, 24), ember.randint(0, 5, (6,))),
    "small_cnn": lambda: (ember.models.small_cnn(),
                          ember.randn(2, 1, 12, 12), ember.randint(0, 10, (2,))),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_float16_training_step_with_grad_scaler(cuda, name, compiled):
    """Two SGD steps under autocast('cuda', float16) with loss scaling equal the float32
    CPU steps within float16 tolerance, and no op runs on the host."""
    ember.manual_seed(0)
    ref, x, y = MODELS[name]()
    model = copy.deepcopy(ref).to(cuda)
    loss_fn = ember.nn.CrossEntropyLoss()
    opt = ember.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    opt_ref = ember.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    want = []
    for _ in range(2):
        loss = loss_fn(ref(x), y)
        loss.backward()
        opt_ref.step()
        opt_ref.zero_grad()
        want.append(loss.item())
    got = _mixed_steps(model, loss_fn, opt, x.to(cuda), y.to(cuda), compiled)
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2)
    for p, q in zip(model.parameters(), ref.parameters()):
        assert p.is_cuda and p.dtype is ember.float32
        np.testing.assert_allclose(p.detach().cpu().numpy(), q.detach().numpy(), rtol=2e-2,
                                   atol=2e-2)


def _mixed_steps(model, loss_fn, opt, x, y, compiled: bool) -> list:
    if compiled:                 # the whole step in one plan: float16 forward, no scaler
        step = ember.compile_train_step(model, loss_fn, opt, backend="triton")
        with _no_host_fallback(), ember.autocast("cuda"):
            return [step(x, y).item() for _ in range(2)]
    scaler = ember.amp.GradScaler("cuda", init_scale=2.0 ** 8)
    losses = []
    with _no_host_fallback():
        for _ in range(2):
            with ember.autocast("cuda"):
                loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
            losses.append(loss.item())
    assert scaler.get_scale() == 2.0 ** 8        # no inf: the scale held
    return losses


def test_half_scatter_adds_accumulate_in_float32(cuda):
    """max pooling's and embedding's backward (atomic scatter-adds) on float16 gradients."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float16)
    table = rng.standard_normal((7, 4)).astype(np.float16)
    ids = np.array([[0, 6, 2], [2, 2, 5]])
    results = []
    for dev in ("cpu", cuda):
        xs = ember.tensor(x).to(dev).requires_grad_()
        w = ember.tensor(table).to(dev).requires_grad_()
        with _no_host_fallback() if dev != "cpu" else contextlib.nullcontext():
            pooled = F.max_pool2d(xs, 3, stride=2, padding=1)        # overlapping windows
            rows = F.embedding(ember.tensor(ids).to(dev), w)
            (pooled.float().sum() + (rows.float() * 3).sum()).backward()
        assert xs.grad.dtype is ember.float16 and w.grad.dtype is ember.float16
        results.append([xs.grad.cpu().float().numpy(), w.grad.cpu().float().numpy()])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
