"""Training on (emulated) CUDA runs no op on the host: the routes of
ember/frontend/eager_cuda_training.py (convolution backward as convolutions, max pooling
with indices and its scatter, adaptive-average-pool backward, class losses, gathers and
index_add, copy, arange, slice_scatter, copying reshapes, GEMMs on strided operands)
equal the CPU, and a whole training step of the built-in small_cnn, mlp and transformer
classifier, eager and compiled, raises no host-fallback warning and equals the CPU step;
resnet18, mobilenet_v2/v3 and a transformer with dropout at full width take a step with
no op on the host (their kernels are built but not interpreted on CI).
In CI it runs under TRITON_INTERPRET=1 (tests/cuda/emulation.py); run_on_gpu.sh runs the
same tests on the GPU with TRITON_INTERPRET=0."""
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
import ember.vision.models as VM  # noqa: E402
from ember.frontend import eager_cuda, eager_cuda_training  # noqa: E402

from common import check_grads_on_device, check_op_on_device, sample_cases  # noqa: E402
from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture

F = ember.nn.functional
ROUTED = sorted(eager_cuda_training.ROUTES)


@pytest.fixture
def cuda(device):  # noqa: F811
    eager_cuda._WARNED.clear()
    yield device


@contextlib.contextmanager
def _no_host_fallback(on: bool = True):
    """Host fallbacks warn (UserWarning): make them errors. NumPy's RuntimeWarnings from
    the interpreter evaluating masked-off lanes are not about ember."""
    with warnings.catch_warnings():
        if on:
            warnings.simplefilter("error", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.mark.parametrize("op, sample", sample_cases(12, ROUTED))
def test_routed_op_samples_equal_cpu(cuda, op, sample):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # samples outside a route (transposed convs)
        check_op_on_device(op, sample, cuda)  # run on the host and must still be right


@pytest.mark.parametrize("op, sample", sample_cases(2, ["max_pool2d", "adaptive_avg_pool2d",
                                                        "cross_entropy", "nll_loss", "conv2d"]))
def test_training_op_gradients_equal_cpu(cuda, op, sample):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_grads_on_device(op, sample, cuda)


CONVS = [dict(stride=1, padding=1), dict(stride=2, padding=1),
         dict(stride=[2, 3], padding=[0, 2], dilation=[1, 2]),
         dict(stride=1, padding=3, dilation=1), dict(stride=2, padding=0, groups=2)]


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("kw", CONVS, ids=str)
def test_conv2d_backward_runs_on_the_device(cuda, kw, channels_last):
    """Input and weight gradients; channels-last input and weight take the OHWI flipped
    weight and channels-last zero-inserted gradient of convolution_backward_input."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4 // kw.get("groups", 1), 3, 3)).astype(np.float32)
    layout = ember.channels_last if channels_last else ember.contiguous_format
    grads = []
    for dev in ("cpu", cuda):
        xs = ember.tensor(x).to(dev).contiguous(memory_format=layout).requires_grad_(True)
        ws = ember.tensor(w).to(dev).contiguous(memory_format=layout).requires_grad_(True)
        with _no_host_fallback(dev != "cpu"):
            out = F.conv2d(xs, ws, **kw)
            (out * out).sum().backward()
        grads.append((xs.grad.cpu().numpy(), ws.grad.cpu().numpy()))
    for got, want in zip(grads[1], grads[0]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=2, stride=1, dilation=2, ceil_mode=True)],
                         ids=str)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_max_pool_and_its_backward_run_on_the_device(cuda, kw, channels_last):
    """Values, PyTorch's indices and the gradient; channels-last pools are column
    reductions over the window (source.COLUMN_WINDOW: one window element a step)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    x[0, 0, :2, :2] = 1.5                                   # ties: the first one wins
    layout = ember.channels_last if channels_last else ember.contiguous_format
    results = []
    for dev in ("cpu", cuda):
        xs = ember.tensor(x).to(dev).contiguous(memory_format=layout).requires_grad_(True)
        with _no_host_fallback(dev != "cpu"):
            values, indices = F.max_pool2d(xs, return_indices=True, **kw)
            (values * values).sum().backward()
        results.append([values.detach().cpu().numpy(), indices.cpu().numpy(),
                        xs.grad.cpu().numpy()])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_losses_and_pool_backward_run_on_the_device(cuda):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((5, 4)).astype(np.float32)
    target = np.array([0, 3, -100, 1, 1])
    weight = np.abs(rng.standard_normal(4)).astype(np.float32) + 0.5
    feats = rng.standard_normal((2, 3, 4, 6)).astype(np.float32)
    results = []
    for dev in ("cpu", cuda):
        x = ember.tensor(logits).to(dev).requires_grad_(True)
        f = ember.tensor(feats).to(dev).requires_grad_(True)
        t, wt = ember.tensor(target).to(dev), ember.tensor(weight).to(dev)
        with _no_host_fallback(dev != "cpu"):
            losses = [F.cross_entropy(x, t), F.cross_entropy(x, t, wt, label_smoothing=0.1),
                      F.nll_loss(F.log_softmax(x, 1), t, reduction="sum"),
                      F.cross_entropy(x, t, reduction="none")]
            pooled = F.adaptive_avg_pool2d(f, (2, 3))
            (sum(loss.sum() for loss in losses) + (pooled * pooled).sum()).backward()
        results.append([loss.detach().cpu().numpy() for loss in losses] +
                       [x.grad.cpu().numpy(), f.grad.cpu().numpy()])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_embedding_and_index_select_run_on_the_device(cuda):
    rng = np.random.default_rng(4)
    table = rng.standard_normal((7, 5)).astype(np.float32)
    ids = np.array([[0, 6, 2], [2, 2, 5]])
    results = []
    for dev in ("cpu", cuda):
        w = ember.tensor(table).to(dev).requires_grad_(True)
        i = ember.tensor(ids).to(dev)
        with _no_host_fallback(dev != "cpu"):
            rows = F.embedding(i, w, padding_idx=2)
            cols = ember.index_select(w, 1, ember.tensor([4, 0, 4]).to(dev))
            (rows * rows).sum().add(cols.sum()).backward()
        results.append([rows.detach().cpu().numpy(), cols.detach().cpu().numpy(),
                        w.grad.cpu().numpy()])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(IndexError, match="index out of range"):
        F.embedding(ember.tensor([7]).to(cuda), ember.tensor(table).to(cuda))


MODELS = {
    "mlp": lambda: (ember.models.mlp(24, (16, 12), num_classes=5),
                    ember.randn(6, 24), ember.randint(0, 5, (6,))),
    "small_cnn": lambda: (ember.models.small_cnn(),
                          ember.randn(2, 1, 12, 12), ember.randint(0, 10, (2,))),
    "transformer": lambda: (ember.models.transformer_classifier(
        vocab_size=50, d_model=16, nhead=2, num_layers=1, dim_feedforward=32, max_len=8,
        dropout=0.0), ember.randint(0, 50, (2, 8)), ember.randint(0, 2, (2,))),
}


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_step_runs_without_host_fallback(cuda, name, compiled):
    ember.manual_seed(0)
    ref, x, y = MODELS[name]()
    model = copy.deepcopy(ref).to(cuda)
    loss_fn = ember.nn.CrossEntropyLoss()
    sgd = lambda m: ember.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)  # noqa: E731
    opt, opt_ref = sgd(model), sgd(ref)

    def eager_step(m, o, xs, ys):
        loss = loss_fn(m(xs), ys)
        loss.backward()
        o.step()
        o.zero_grad()
        return loss
    want = [eager_step(ref, opt_ref, x, y).item() for _ in range(3)]
    step = ember.compile_train_step(model, loss_fn, opt, backend="triton") if compiled else \
        (lambda xs, ys: eager_step(model, opt, xs, ys))
    with _no_host_fallback():
        got = [step(x.to(cuda), y.to(cuda)).item() for _ in range(3)]
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)
    if compiled:   # embedding checks its indices on the device: no read-back
        # one plan (the momentum buffers exist from step 1): captured at its second call,
        # steps 2 and 3 each replayed as one CUDA graph
        assert len(step.plans) == 1
        assert step.last.plan.graph is not None and step.last.plan.graph.launches == 2
    for p, q in zip(model.parameters(), ref.parameters()):
        assert p.is_cuda
        np.testing.assert_allclose(p.detach().cpu().numpy(), q.detach().numpy(), rtol=2e-4,
                                   atol=2e-4)
    for b, c in zip(model.buffers(), ref.buffers()):
        np.testing.assert_allclose(b.cpu().numpy(), c.numpy(), rtol=2e-4, atol=2e-4)


# the built-in vision models at their real widths and the transformer with dropout: too
# large to interpret every kernel on CI, so there the launches are skipped (the routes,
# plans and generated kernels are all built; only the interpreter's run is left out) and
# the test checks that no op falls back to the host; on a GPU the kernels run
ROUTE_MODELS = {
    "resnet18": lambda: (ember.models.resnet18(num_classes=5), ember.randn(2, 3, 32, 32),
                         ember.randint(0, 5, (2,))),
    "mobilenet_v2": lambda: (VM.mobilenet_v2(num_classes=5),
                             ember.randn(2, 3, 32, 32), ember.randint(0, 5, (2,))),
    "mobilenet_v3_small": lambda: (VM.mobilenet_v3_small(num_classes=5),
                                   ember.randn(2, 3, 32, 32), ember.randint(0, 5, (2,))),
    "transformer_dropout": lambda: (ember.models.transformer_classifier(
        vocab_size=50, d_model=16, nhead=2, num_layers=2, dim_feedforward=32, max_len=8,
        dropout=0.1), ember.randint(0, 50, (2, 8)), ember.randint(0, 2, (2,))),
}


@pytest.fixture
def launch_free(cuda, monkeypatch):
    import test_compile_cuda
    from ember.compiler import compile_cuda
    if test_compile_cuda.EMULATED:
        monkeypatch.setattr(eager_cuda, "launch", lambda generated, tensors, index: None)
        monkeypatch.setattr(compile_cuda, "_launch", lambda kernel, tensors: None)
        monkeypatch.setattr(test_compile_cuda, "_interpreted", lambda kernel, tensors: None)
        monkeypatch.setattr(test_compile_cuda, "interpreted_launch", lambda *args: None)
        # index range checks read a min/max kernel's result back: unlaunched, it is garbage
        monkeypatch.setattr(eager_cuda_training, "_checked_rows",
                            lambda index, size, dim: index.reshape([-1]).contiguous())
    yield cuda


ROUTE_CASES = [(name, compiled) for name in sorted(ROUTE_MODELS) for compiled in (False, True)
               if not (compiled and name == "mobilenet_v2")]   # v3 covers its ops, compiled


@pytest.mark.parametrize("name, compiled", ROUTE_CASES,
                         ids=[f"{n}-{'compiled' if c else 'eager'}" for n, c in ROUTE_CASES])
def test_builtin_model_training_step_runs_no_op_on_the_host(launch_free, name, compiled):
    ember.manual_seed(0)
    model, x, y = ROUTE_MODELS[name]()
    model = model.to(launch_free).train()
    loss_fn = ember.nn.CrossEntropyLoss()
    opt = ember.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def eager_step(xs, ys):
        loss = loss_fn(model(xs), ys)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    step = ember.compile_train_step(model, loss_fn, opt, backend="triton") if compiled else \
        eager_step
    with _no_host_fallback():
        for _ in range(3):
            loss = step(x.to(launch_free), y.to(launch_free))
    assert loss.is_cuda and all(p.is_cuda for p in model.parameters())
    if compiled:   # one CUDA graph per step (dropout draws its mask on the device; the
        # index range check, which reads back, is replaced above)
        assert step.last.plan.graph is not None


TRANSPOSED = [dict(stride=1, padding=1), dict(stride=2, padding=1, output_padding=1),
              dict(stride=[2, 3], padding=[0, 2], dilation=[1, 2], output_padding=[1, 0]),
              dict(stride=2, padding=0, groups=2)]


@pytest.mark.parametrize("kw", TRANSPOSED, ids=str)
def test_conv_transpose2d_and_its_backward_run_on_the_device(cuda, kw):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 5, 6)).astype(np.float32)
    w = rng.standard_normal((4, 6 // kw.get("groups", 1), 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    results = []
    for dev in ("cpu", cuda):
        xs = ember.tensor(x).to(dev).requires_grad_(True)
        ws = ember.tensor(w).to(dev).requires_grad_(True)
        bs = ember.tensor(b).to(dev).requires_grad_(True)
        with _no_host_fallback(dev != "cpu"):
            out = F.conv_transpose2d(xs, ws, bs, **kw)
            (out * out).sum().backward()
        results.append((out.detach().cpu().numpy(), xs.grad.cpu().numpy(),
                        ws.grad.cpu().numpy(), bs.grad.cpu().numpy()))
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64"])
def test_sort_and_argsort_run_on_the_device(cuda, dtype):
    rng = np.random.default_rng(6)
    x = rng.integers(-3, 4, (3, 37)).astype(dtype)          # many ties: stability shows
    if dtype != "int64":
        x[0, [2, 9]] = np.nan
        x[1, 4] = -0.0
    results = []
    for dev in ("cpu", cuda):
        xs = ember.tensor(x).to(dev)
        with _no_host_fallback(dev != "cpu"):
            found = [ember.sort(xs), ember.sort(xs, dim=0, descending=True),
                     ember.sort(xs, descending=True, stable=True),
                     (ember.argsort(xs, dim=1),)]
        results.append([t.cpu().numpy() for group in found for t in group])
    for got, want in zip(results[1], results[0]):
        np.testing.assert_array_equal(got, want)
