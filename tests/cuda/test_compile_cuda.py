"""ember.compile(..., backend="triton"): compiled plans on CUDA equal CPU eager.

Without a GPU (CI) the plans run under tests/cuda/emulation.py: 'cuda:0' lives in host
memory, each plan kernel runs under Triton's interpreter, and CUDA-graph capture is
emulated by recording the plan's launches and copies and replaying the recording (what
the driver does with a captured stream). Tests marked `cuda` run the real thing: cubins
launched with cuLaunchKernel and replayed through cuGraphLaunch."""
import ctypes
import os
import warnings

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
import ember.nn.functional as F  # noqa: E402
from ember.compiler import compile_cuda  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402
from ember.runtime.cuda import graph as cuda_graph, stream as S  # noqa: E402

from emulation import emulated_cuda, interpreted_launch  # noqa: E402

EMULATED = os.environ.get("TRITON_INTERPRET") == "1"


def _memmove(dst, src, nbytes, stream):
    ctypes.memmove(dst, src, nbytes)


def _memset(dst, byte, nbytes, stream):
    ctypes.memset(dst, byte, nbytes)


def _interpreted(kernel, tensors):
    interpreted_launch(kernel.generated, tensors, 0)


class RecordingGraph:
    """Capture as the driver does it: launches, copies and memsets are recorded, not
    executed; `launch` replays them in order on the same addresses."""
    captures = 0

    def __init__(self, recorded, result):
        self.recorded, self.result, self.launches = recorded, result, 0

    @classmethod
    def capture(cls, work, device=0):
        recorded = []
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(compile_cuda, "_launch",
                       lambda k, ts: recorded.append((_interpreted, (k, list(ts)))))
            mp.setattr(eager_cuda, "launch",                    # eager steps' kernels
                       lambda g, ts, i: recorded.append((interpreted_launch, (g, list(ts), i))))
            mp.setattr(S, "copy_device_to_device",
                       lambda *a: recorded.append((_memmove, a)))
            mp.setattr(S, "memset", lambda *a: recorded.append((_memset, a)))
            result = work()
        cls.captures += 1
        return cls(recorded, result)

    @property
    def node_count(self):
        return len(self.recorded)

    def launch(self, stream=None):
        for fn, args in self.recorded:
            fn(*args)
        self.launches += 1


@pytest.fixture
def device():
    """'cuda': emulated in host memory on CI, the GPU where there is one."""
    if not EMULATED:
        if not ember.cuda.is_available():
            pytest.skip("no CUDA GPU")
        yield "cuda"
        return
    with emulated_cuda(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(compile_cuda, "_launch", _interpreted)
        mp.setattr(compile_cuda.CudaBackend, "precompile", False)
        mp.setattr(S, "copy_device_to_device", _memmove)
        mp.setattr(cuda_graph, "CudaGraph", RecordingGraph)
        yield "cuda"


def _close(actual, expected, rtol=1e-4, atol=1e-5):
    actual = actual.cpu().numpy() if actual.is_cuda else actual.numpy()
    np.testing.assert_allclose(actual, expected.numpy(), rtol=rtol, atol=atol)


def _check_model(model, x, device, **options):
    fast = ember.compile(model, backend="triton", options=options)
    with ember.no_grad():
        expected = model(x)
        got = fast(x.to(device))
    assert got.is_cuda
    _close(got, expected)
    return fast


def test_mlp_compiled_equals_eager(device):
    fast = _check_model(ember.models.mlp(64, (32, 16)).eval(), ember.randn(4, 64), device,
                        cuda_graphs=False)
    # every linear (+relu) is one GEMM with its epilogue fused: no separate kernels
    assert fast.stats.externs == 3 and fast.stats.kernels == 0 and not fast.stats.fallbacks


def test_small_cnn_compiled_equals_eager(device):
    fast = _check_model(ember.models.small_cnn().eval(), ember.randn(2, 1, 28, 28), device,
                        cuda_graphs=False)
    assert not fast.stats.fallbacks


def test_ops_and_frozen_weight_layouts(device):
    rng = np.random.default_rng(0)
    w = ember.tensor(rng.standard_normal((24, 16)).astype(np.float32))      # (K, N): row-major
    b = ember.tensor(rng.standard_normal(16).astype(np.float32))

    def fn(x, y):
        h = F.softmax(x @ w, dim=-1)                               # mm with a frozen B
        g = F.gelu(y * 0.5 + b) * ember.sigmoid(y)                 # the elementwise chain
        n = F.layer_norm(h + g, (16,))
        return n.t().reshape(8, 12).sum(0), n.amax(dim=1)
    x = ember.tensor(rng.standard_normal((6, 24)).astype(np.float32))
    y = ember.tensor(rng.standard_normal((6, 16)).astype(np.float32))
    fast = ember.compile(fn, backend="triton", options={"cuda_graphs": False})
    got = fast(x.to(device), y.to(device))
    expected = fn(x, y)
    for g_, e_ in zip(got, expected):
        _close(g_, e_)
    gemm = next(s.fn for s in fast.last[0].steps if s.kernel and s.fn.fixed)
    assert gemm.fixed[1].stride() == (1, 24)          # B stored K-major (repacked at build)


def test_cpu_input_names_both_devices(device):
    fast = ember.compile(ember.models.mlp(8, (4,)).eval(), backend="triton")
    with pytest.raises(ember.ir.errors.DeviceError, match="cpu.*cuda:0|cuda:0.*cpu"):
        fast(ember.randn(2, 8))
    assert not fast.plans                           # refused before anything compiled


def test_graph_replay_fresh_results_each_call(device):
    model = ember.models.mlp(32, (16,)).eval()
    fast = ember.compile(model, backend="triton")
    inputs = [ember.randn(4, 32) for _ in range(4)]
    results = []
    with ember.no_grad():
        for x in inputs:
            results.append(fast(x.to(device)))
    plan = fast.last[0]
    assert plan.graph is not None and plan.graph.launches == 3     # calls 2, 3, 4 replayed
    assert plan.graph.node_count >= 2
    with ember.no_grad():                       # earlier results were not overwritten
        for x, got in zip(inputs, results):
            _close(got, model(x))


def test_graph_off_and_host_steps_run_step_by_step(device):
    model = ember.models.mlp(32, (16,)).eval()
    off = ember.compile(model, backend="triton", options={"cuda_graphs": False})

    def with_inverse(x):                            # linalg_inv runs on the host
        return ember.linalg.inv(x * 2.0) + 1.0
    host = ember.compile(with_inverse, backend="triton")
    x = ember.randn(4, 32)
    square = ember.randn(4, 4) + 4.0 * ember.eye(4)
    with ember.no_grad(), pytest.warns(UserWarning, match="linalg_inv"):
        for _ in range(3):
            _close(off(x.to(device)), model(x))
            _close(host(square.to(device)), with_inverse(square))
    assert off.last[0].graph is None and host.last[0].graph is None
    assert host.stats.fallbacks


def test_graph_records_device_only_eager_steps(device):
    """An op without a generated kernel whose eager CUDA route only launches kernels (sort)
    is recorded with the plan's kernels; results stay fresh and equal eager."""
    def with_sort(x):
        return ember.sort(x * 2.0, dim=-1)[0] + 1.0
    fast = ember.compile(with_sort, backend="triton")
    inputs = [ember.randn(4, 32) for _ in range(4)]
    with ember.no_grad():
        results = [fast(x.to(device)) for x in inputs]
        for x, got in zip(inputs, results):
            _close(got, with_sort(x))
    plan = fast.last[0]
    assert fast.stats.fallbacks                      # sort is an eager step ...
    assert plan.graph is not None and plan.graph.launches == 3      # ... inside the graph


def test_graph_skips_eager_steps_that_upload(device):
    """An eager step that copies host values each call (an op run by the host fallback:
    linalg.inv) keeps its plan off graph replay: a recorded upload would replay the first
    call's values."""
    fast = ember.compile(lambda x: ember.linalg.inv(x * 2.0), backend="triton")
    xs = [ember.eye(4) * (k + 1) for k in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)      # the fallback's warning
        got = [fast(x.to(device)) for x in xs]
    assert fast.last[0].graph is None
    for x, y in zip(xs, got):
        _close(y, ember.linalg.inv(x * 2.0))


def test_graph_auto_skips_copy_bound_plans(device):
    double = ember.compile(lambda x: x * 2.0, backend="triton")     # one step, > 8 MiB copied
    x = ember.randn((1 << 20) + 16)
    for _ in range(3):
        _close(double(x.to(device)), x * 2.0)
    assert double.last[0].graph is None
    forced = ember.compile(lambda x: x * 2.0, backend="triton", options={"cuda_graphs": True})
    for _ in range(2):
        _close(forced(x.to(device)), x * 2.0)
    assert forced.last[0].graph is not None
    with pytest.raises(ember.ir.errors.EmberError, match="cuda_graphs"):
        ember.compile(lambda x: x, backend="triton", options={"cuda_graphs": "yes"})(x.to(device))


# --- on the GPU: built-in models at real sizes, TF32, replay through the driver ----------
BUILTIN = {
    "mlp": lambda: (ember.models.mlp().eval(), ember.randn(16, 784)),
    "small_cnn": lambda: (ember.models.small_cnn().eval(), ember.randn(4, 1, 28, 28)),
    "resnet18": lambda: (ember.models.resnet18(num_classes=10).eval(),
                         ember.randn(2, 3, 32, 32).contiguous(memory_format=ember.channels_last)),
    "transformer": lambda: (ember.models.transformer_classifier().eval(),
                            ember.randint(0, 1000, (2, 16))),
}


@pytest.mark.cuda
@pytest.mark.parametrize("name", list(BUILTIN))
def test_builtin_models_on_gpu(device, name):
    model, x = BUILTIN[name]()
    fast = ember.compile(model, backend="triton")
    with ember.no_grad():
        expected = model(x)
        for _ in range(3):                       # plain run, capture + replay, replay
            got = fast(x.to(device))
            np.testing.assert_allclose(got.cpu().numpy(), expected.numpy(), rtol=1e-3,
                                       atol=1e-4)


@pytest.mark.cuda
def test_tf32_gemm_on_gpu(device):
    a, b = ember.randn(256, 512), ember.randn(512, 128)
    old = ember.backends.cuda.matmul.allow_tf32
    ember.backends.cuda.matmul.allow_tf32 = True
    try:
        fast = ember.compile(lambda x: x @ b, backend="triton")
        got = fast(a.to(device)).cpu().numpy()
    finally:
        ember.backends.cuda.matmul.allow_tf32 = old
    reference = a.numpy().astype(np.float64) @ b.numpy().astype(np.float64)
    np.testing.assert_allclose(got, reference, rtol=2e-2, atol=5e-2)
