"""The graph cache (compiler/graph_cache.py) on the emulated CUDA device: a compile that
finds its graph after the passes on disk skips the passes and builds the same plan (the
same kernels, sources and steps) with the same results; any change of the model's code,
shapes, dtypes, options, switches or ember's code misses; inference weights the passes
folded are checked by value; a damaged entry is ignored with a warning and rewritten;
EMBER_GRAPH_CACHE=0 turns it off."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.compiler import graph_cache  # noqa: E402
from ember.frontend import cudnn_conv  # noqa: E402
from ember.ir.printer import print_graph  # noqa: E402

from test_compile_cuda import EMULATED, device  # noqa: E402,F401 - the emulated CUDA fixture

pytestmark = pytest.mark.skipif(not EMULATED, reason="runs on the emulated device")
nn = ember.nn


@pytest.fixture(autouse=True)
def cache(monkeypatch, tmp_path):
    """A fresh cache directory; the small test graphs are cached too; counts the
    pipelines that ran."""
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("EMBER_GRAPH_CACHE", raising=False)
    monkeypatch.setattr(graph_cache, "MIN_NODES", 0)
    runs = []
    real = graph_cache.run_passes
    monkeypatch.setattr(graph_cache, "run_passes",
                        lambda *a: runs.append(a[1]) or real(*a))
    return tmp_path, runs


def _model(act=nn.ReLU):
    ember.manual_seed(0)
    # 64 * 3 * 3 input columns: the second conv's weight gradient asks wgrad_nchw
    return nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), act(),
                         nn.Conv2d(64, 8, 3, padding=1), nn.BatchNorm2d(8), act(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))


def _batch(n=2, dtype=ember.float32):
    ember.manual_seed(1)
    return ember.randn(n, 3, 4, 4, dtype=dtype), ember.randint(0, 5, (n,))


def _plan_text(plan) -> list:
    """Every step of a plan: its kernel's key and source where it has one, its slots."""
    plan = getattr(plan, "plan", plan)
    out = []
    for step in plan.steps:
        generated = getattr(step.fn, "generated", None)
        code = f"{generated.key()}\n{generated.source}" if generated is not None else \
            type(step.fn).__name__
        out.append((step.name, step.kind, code, step.inputs, step.outputs,
                    repr(step.out_specs)))
    return out


def _train(device, model=None, x=None, y=None, lr=0.05, steps=1, **options):
    model = (model or _model()).to(device)
    x, y = _batch() if x is None else (x, y)
    opt = ember.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    step = ember.compile_train_step(model, nn.CrossEntropyLoss(), opt, backend="triton",
                                    options={"cuda_graphs": False, **options})
    losses = [step(x.to(device), y.to(device)).item() for _ in range(steps)]
    params = [p.detach().cpu().numpy() for p in model.parameters()]
    return step, losses, params


def _entries(tmp_path) -> list:
    folder = tmp_path / "graphs"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_hit_builds_the_plan_of_a_miss_and_of_no_cache(device, cache, monkeypatch):
    tmp_path, runs = cache
    first, losses, params = _train(device)
    assert len(runs) == 1 and len(_entries(tmp_path)) == 1
    hit, losses2, params2 = _train(device)
    assert len(runs) == 1                       # the passes did not run again
    assert print_graph(hit.graph, locs=True) == print_graph(first.graph, locs=True)
    assert _plan_text(hit.last.plan) == _plan_text(first.last.plan)
    monkeypatch.setenv("EMBER_GRAPH_CACHE", "0")       # the switch: no lookup, no entry
    plain, losses3, params3 = _train(device)
    assert len(runs) == 2 and len(_entries(tmp_path)) == 1
    assert print_graph(plain.graph, locs=True) == print_graph(hit.graph, locs=True)
    assert _plan_text(plain.last.plan) == _plan_text(hit.last.plan)
    assert losses == losses2 == losses3
    for a, b, c in zip(params, params2, params3):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


CHANGES = ("batch", "code", "activation", "lr", "dtype", "option", "switch", "ember code")


def test_any_change_misses(device, cache, monkeypatch):
    """Each change compiles (runs the passes) and stores an entry of its own."""
    tmp_path, runs = cache
    _train(device)
    for i, change in enumerate(CHANGES):
        with monkeypatch.context() as mp:
            model, (x, y), lr, options = _model(), _batch(), 0.05, {}
            if change == "batch":
                x, y = _batch(3)
            elif change == "code":                # the same layers, another graph: no bias
                model[8] = nn.Linear(8, 5, bias=False)
            elif change == "activation":
                model = _model(nn.GELU)
            elif change == "lr":                  # the optimizer's constants are in the graph
                lr = 0.01
            elif change == "dtype":
                model, (x, y) = _model().double(), _batch(dtype=ember.float64)
            elif change == "option":
                options = {"recompute": False}
            elif change == "switch":
                mp.setenv("EMBER_TRITON_LITERAL_SIZES", "0")
            else:
                mp.setattr(graph_cache, "code_fingerprint", lambda: "another ember")
            _train(device, model, x, y, lr=lr, **options)
        assert len(runs) == i + 2 and len(_entries(tmp_path)) == i + 2, change


ASKED, FLIP = [], [False]


def wgrad_probe(*args):
    """cudnn_conv.wgrad_wants_nchw, logged, its answer flipped while FLIP[0] is set (as
    an autotune cache that changed would answer)."""
    ASKED.append(args)
    return cudnn_conv.wgrad_wants_nchw(*args) != FLIP[0]


def test_an_option_answering_otherwise_misses(device, cache, monkeypatch):
    """The passes' questions to a callable option (CUDA's wgrad_nchw: the autotune cache
    or a timing answers) are asked again on a hit; another answer runs the passes."""
    tmp_path, runs = cache
    from ember.compiler import compile_cuda
    monkeypatch.setitem(compile_cuda.CudaBackend.pass_defaults, "wgrad_nchw", wgrad_probe)
    FLIP[0] = False
    ASKED.clear()
    _train(device)
    asked = len(ASKED)
    _train(device)
    assert len(runs) == 1 and asked and len(ASKED) == 2 * asked   # asked again on the hit
    FLIP[0] = True
    _train(device)
    assert len(runs) == 2


def test_a_damaged_entry_is_ignored_with_a_warning_and_rewritten(device, cache):
    tmp_path, runs = cache
    _, losses, _ = _train(device)
    (entry,) = _entries(tmp_path)
    good = entry.read_bytes()
    for damage in (b"not a pickle", good[:len(good) // 2]):
        entry.write_bytes(damage)
        with pytest.warns(RuntimeWarning, match="damaged entry of the graph cache"):
            _, again, _ = _train(device)
        assert again == losses and entry.read_bytes() == good
    assert len(runs) == 3


def test_inference_checks_the_folded_weights_by_value(device, cache):
    """Inference folds BatchNorm into the convolutions: the entry carries the folded
    weights, so new weight values must miss (and give the new results)."""
    tmp_path, runs = cache
    model = _model().to(device).eval()
    x = _batch()[0].to(device)

    def infer():
        fast = ember.compile(model, backend="triton")
        with ember.no_grad():
            return fast, fast(x).cpu().numpy(), model(x).cpu().numpy()
    first, got, want = infer()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    second, again, _ = infer()
    assert len(runs) == 1
    np.testing.assert_array_equal(again, got)
    assert _plan_text(second.last[0]) == _plan_text(first.last[0])
    with ember.no_grad():
        model[1].weight.mul_(2.0)
    _, changed, want = infer()
    assert len(runs) == 2
    np.testing.assert_allclose(changed, want, rtol=1e-4, atol=1e-5)
