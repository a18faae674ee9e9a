"""The kernels of a compiled channels-last training step on (emulated) CUDA: float32
weight gradients whose operands they read NCHW get them written by the kernels that
produce them (passes/train_layout.py), so no transpose copy runs; the backward recomputes
BatchNorm's intermediates (passes/recompute.py); the steps equal ember's eager CPU steps.
tools/cuda_step_bytes.py's table of the same step: every kernel's bytes at least the
buffers it touches. On CI the kernels run in Triton's interpreter (tests/cuda/emulation.py)."""
import os
import sys
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember import nn  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402
from ember.runtime.plan import Plan  # noqa: E402

from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture
from train_step_checks import assert_sgd_steps_match_eager  # noqa: E402


def _net():
    # Cin * KH * KW = 576 >= 512: the float32 weight gradient reads NCHW operands
    return nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64),
                         nn.ReLU(inplace=True), nn.Conv2d(64, 64, 3, padding=1, bias=False),
                         nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(64, 5)).to(memory_format=ember.channels_last)


def test_compiled_step_writes_weight_gradient_operands_nchw(device, monkeypatch):  # noqa: F811
    launched, launch, run_step = [], eager_cuda.launch, Plan._run_step
    current = ["?"]

    def spy(generated, tensors, index):
        launched.append((current[0], generated.name))
        return launch(generated, tensors, index)

    def named(self, step, values):
        current[0] = step.name
        return run_step(self, step, values)
    monkeypatch.setattr(eager_cuda, "launch", spy)
    monkeypatch.setattr(Plan, "_run_step", named)
    ember.manual_seed(0)
    step = assert_sgd_steps_match_eager(_net(), (2, 3, 5, 4), device=device,
                                        backend="triton")
    by_weight_grads = [k for step, k in launched if step.startswith("convolution_backward_w")]
    assert "conv_weight_grad" in by_weight_grads          # the Triton weight gradient ran
    assert "layout_copy" not in by_weight_grads           # ... on operands written NCHW
    graph = step.graph
    assert any(getattr(n.target, "name", "") == "contiguous" for g in _groups(graph)
               for n in g.graph.nodes)                     # fused into producing kernels


def _groups(graph):
    from ember.ir.fused import FusedGroup
    return [n.target for n in graph.nodes if isinstance(n.target, FusedGroup)]


def test_byte_table_of_a_step():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    import cuda_step_bytes
    rows = cuda_step_bytes.step_rows("convbn", 12, 2)
    assert rows and all(r["bytes"] >= r["minimum"] > 0 or r["family"] == "memcpy"
                        for r in rows if r["bytes"])
    names = {r["kernel"] for r in rows}
    assert "layout_copy" not in {r["kernel"] for r in rows
                                 if r["step"].startswith("convolution_backward_weight")}
    assert any(n.endswith(("final", "partial0")) or n.startswith("fused") for n in names)


_NCHW_STORE = r'''
import json, re
import ember
from ember.codegen.lowering import lower_group
from ember.codegen.triton import split_reduce
from ember.frontend.eager_cuda import compile_triton
from ember.ir.meta import meta_of
from ember.ir.symbolic import build_graph
F = ember.nn.functional
x = ember.empty(64, 64, 56, 56, memory_format=ember.channels_last)
w = ember.empty(64)
def fn(t, a, b):
    y = F.relu(F.batch_norm(t, None, None, a, b, training=True))
    return y, y.contiguous()
graph, _ = build_graph(fn, [meta_of(v) for v in (x, w, w)])
final = split_reduce.generate_split(lower_group(graph, "bn").kernel).kernels[-1]
types = [t for _, t in final.launch.args]
ptx = compile_triton(final, [t.startswith("*") for t in types], (9, 0)).asm["ptx"]
print(json.dumps(re.findall(r"st\.global[.\w]*", ptx)))
'''


def test_nchw_store_from_a_column_tile_is_vectorized_on_sm90():
    """resnet18 layer1's BatchNorm + ReLU forward, final phase, storing its output both
    channels-last and NCHW (what wgrad-nchw makes it do) compiles for sm_90 with every
    global store 16 bytes wide: Triton moves the NCHW tile through shared memory."""
    import json
    import subprocess
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, "-c", _NCHW_STORE], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    stores = json.loads(run.stdout.strip().splitlines()[-1])
    assert stores and all(s.startswith("st.global.v4") for s in stores), stores


def _weight_grads_by_layout(step):
    """The compiled step's convolution_backward_weight nodes: True for each whose operands
    are NCHW conversions (wgrad-nchw), False where they stayed channels-last."""
    found = []
    for n in step.graph.nodes:
        if getattr(n.target, "name", "") == "convolution_backward_weight":
            found.append(any(getattr(a, "meta", {}).get("val") is not None and
                             a.meta["val"].is_contiguous(ember.contiguous_format)
                             for a in n.args[:2]))
    return found


def test_weight_gradients_left_channels_last_by_the_predicate(device):  # noqa: F811
    """options['wgrad_nchw'] as a predicate (what the CUDA backend passes: cuDNN's
    channels-last weight gradient where it can run): a weight gradient it declines keeps
    channels-last operands, runs ember's route on them (which copies) and the step still
    equals the eager one."""
    asked = []

    def declines(x, g, w, stride, padding, dilation):
        asked.append((tuple(x.shape), tuple(g.shape), tuple(w.shape), stride, padding))
        return False
    ember.manual_seed(0)
    step = assert_sgd_steps_match_eager(_net(), (2, 3, 5, 4), device=device, backend="triton",
                                        options={"wgrad_nchw": declines})
    assert asked and all(w == (64, 64, 3, 3) for _, _, w, _, _ in asked)
    assert asked[0][3] == [1, 1] and asked[0][4] == [1, 1]
    assert _weight_grads_by_layout(step) and not any(_weight_grads_by_layout(step))


def test_wgrad_nchw_predicate_follows_cudnn(monkeypatch):
    """cudnn_conv.wgrad_wants_nchw: NCHW copies where cuDNN cannot run (or
    EMBER_WGRAD_NCHW=always), channels-last operands where it can, unless ember's route
    was already timed the faster for the shape."""
    from ember.frontend import cudnn_conv
    from ember.ir.dtypes import float32
    from ember.ir.meta import TensorMeta, channels_last
    x = TensorMeta((8, 64, 14, 14), float32, "cuda:0", channels_last)
    g = TensorMeta((8, 64, 14, 14), float32, "cuda:0", channels_last)
    w = TensorMeta((64, 64, 3, 3), float32, "cuda:0", channels_last)
    args = (x, g, w, [1, 1], [1, 1], [1, 1])
    monkeypatch.delenv("EMBER_WGRAD_NCHW", raising=False)
    monkeypatch.setattr(cudnn_conv, "usable", lambda: False)
    assert cudnn_conv.wgrad_wants_nchw(*args)
    monkeypatch.setattr(cudnn_conv, "usable", lambda: True)
    specs = []

    def timings(spec, index):
        specs.append((spec, index))
        return found[0]
    monkeypatch.setattr(cudnn_conv, "timings", timings)
    monkeypatch.setattr(cudnn_conv, "_time_wgrad", lambda *a: None)
    found = [None]                      # not timed, nor timeable now: the run chooses
    assert not cudnn_conv.wgrad_wants_nchw(*args)
    spec = specs[0][0]
    assert spec.kind == "wgrad" and spec.x[0] == (8, 64, 14, 14) and spec.w[0] == (64, 64, 3, 3)
    assert spec.x[1] == (12544, 1, 896, 64)               # the channels-last operands
    found[0] = (0.2, 0.1)                                 # cuDNN timed the faster
    assert not cudnn_conv.wgrad_wants_nchw(*args)
    found[0] = (0.1, 0.2)                                 # ember's route timed the faster
    assert cudnn_conv.wgrad_wants_nchw(*args)
    found[0] = None
    monkeypatch.setenv("EMBER_WGRAD_NCHW", "always")
    assert cudnn_conv.wgrad_wants_nchw(*args)
    monkeypatch.setenv("EMBER_WGRAD_NCHW", "auto")
    assert not cudnn_conv.wgrad_wants_nchw(*args)
    half = TensorMeta((8, 64, 14, 14), ember.float64, "cuda:0", channels_last)
    assert cudnn_conv.wgrad_wants_nchw(half, half, w, [1, 1], [1, 1], [1, 1])   # no spec


_PROFILE = """[profile ember compiled] 9 GPU activities/step, GPU busy 1.0 ms/step
    0.3000 ms/step  x 2.0  fused_a_final  [0.100, 0.200]
    0.0500 ms/step  x 1.0  fused_b
    0.0900 ms/step  x 3.0  conv_weight_grad  [0.030, 0.030, 0.030]
    0.0100 ms/step  x 1.0  sm90_xmma_wgrad_indexed_implicit_gemm_f32f32
[profile torch eager] 5 GPU activities/step, GPU busy 1.0 ms/step
    0.5000 ms/step  x 1.0  fused_b
"""


def test_profile_times_join_the_byte_table_by_gpu_name_and_count():
    """tools/cuda_step_bytes.py --profile: the ember section's per-launch times go to the
    launches the GPU names alike (a kernel whose text differs only in its name runs as the
    first one's), in launch order, only where the counts agree."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    import cuda_step_bytes
    measured = cuda_step_bytes.parse_profile(_PROFILE)
    assert measured["fused_a_final"] == pytest.approx([1e-4, 2e-4])
    assert measured["fused_b"] == pytest.approx([5e-5])             # not torch's
    rows = [{"kernel": "fused_a_final", "gpu_name": "fused_a_final"},
            {"kernel": "fused_c_final", "gpu_name": "fused_a_final"},
            {"kernel": "fused_b", "gpu_name": "fused_b"},
            {"kernel": "conv_weight_grad", "gpu_name": "conv_weight_grad"}]
    differ = cuda_step_bytes.attach_measured(rows, measured)
    assert [r.get("meas_s") for r in rows] == pytest.approx([1e-4, 2e-4, 5e-5, None])
    assert differ == ["conv_weight_grad (3 on the GPU, 1 here)"]


def test_wgrad_nchw_predicate_times_the_shape_once(device, monkeypatch, tmp_path):  # noqa: F811
    """Untimed, the predicate times cuDNN on channels-last scratch operands against
    ember's route (both sides stand-ins here: no cuDNN) once per shape, records the choice
    and follows it; the recorded choice answers the next ask without timing."""
    from ember.frontend import cudnn_conv
    from ember.ir.dtypes import float32
    from ember.ir.meta import TensorMeta, channels_last
    x = TensorMeta((2, 64, 6, 5), float32, "cuda:0", channels_last)
    w = TensorMeta((64, 64, 3, 3), float32, "cuda:0", channels_last)
    args = (x, x, w, [1, 1], [1, 1], [1, 1])
    monkeypatch.delenv("EMBER_WGRAD_NCHW", raising=False)
    monkeypatch.setattr(cudnn_conv, "usable", lambda: True)
    monkeypatch.setattr(cudnn_conv, "_memo", {})
    monkeypatch.setattr(cudnn_conv, "_capturing", lambda index: False)
    monkeypatch.setattr(cudnn_conv, "_device", lambda index: "GPU sm90 cudnn91900")
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    timed = []

    def fake_time_both(triton_run, cudnn_run, index, unsupported):
        timed.append(index)
        return (1.0, 2.0) if len(timed) == 1 else (2.0, 1.0)
    monkeypatch.setattr(cudnn_conv, "_time_both", fake_time_both)
    assert cudnn_conv.wgrad_wants_nchw(*args)           # ember's route timed the faster
    assert cudnn_conv.wgrad_wants_nchw(*args) and timed == [0]     # looked up, not timed
    other = TensorMeta((2, 64, 7, 5), float32, "cuda:0", channels_last)
    assert not cudnn_conv.wgrad_wants_nchw(other, other, w, [1, 1], [1, 1], [1, 1])
    assert timed == [0, 0]
