"""CUDA artifacts carry ember.compile's multi-kernel choices: a matmul split over K
(partial products into a workspace, then the fixed-order sum), TF32 operands copied
K-major inside their GEMM's step, and reductions split along their reduced space
(partial phases, then the final). The packaged launch table names the same kernels, in
the same order, as the in-process plan ember.compile(..., backend="triton") launches,
and - run by the lite CUDA runtime over emulated memory with each kernel's Triton
source under the interpreter (test_aot_cuda_emulated.py's InterpretingDriver) - its
results equal the in-process plan's bit for bit."""
import copy
import json
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember import nn  # noqa: E402
from ember.codegen.triton import gemm  # noqa: E402
from ember.compiler.compile_cuda import GemmStep, PlanKernel, SplitPlanKernel  # noqa: E402
from ember.runtime import lite, lite_cuda  # noqa: E402

from test_aot_cuda_emulated import InterpretingDriver, _package  # noqa: E402
from test_compile_cuda import EMULATED, device  # noqa: E402,F401

pytestmark = pytest.mark.skipif(not EMULATED, reason="emulated CUDA only (a GPU runs "
                                "test_aot_cuda_gpu.py with the real cubins)")


class SplitNet(nn.Module):
    """A long-K projection (split over K once the thresholds are lowered), a whole-tensor
    sum of 40960 elements and per-channel means (split reductions)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(1280, 8)

    def forward(self, x):
        h = self.fc(x.reshape(32, 1280)).relu()
        return h, (x * x).sum(), x.mean(dim=(0, 2, 3))


class StagedNet(nn.Module):
    """Under TF32, a product whose A operand is read along a non-contiguous K (x.t()):
    copied K-major inside the GEMM's step."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(ember.randn(64, 16))

    def forward(self, x):
        return (x.t() @ self.w).tanh()


@pytest.fixture
def low_thresholds(monkeypatch):
    monkeypatch.setattr(gemm, "MIN_SPLIT_K", 32)
    monkeypatch.setattr(gemm, "MIN_SPLIT_WORK", 0)
    monkeypatch.setattr(gemm, "STAGE_FLOPS_PER_ELEMENT", 1)


def _in_process_kernels(plan) -> list:
    """The source keys of the kernels the in-process plan launches, in order."""
    keys = []
    for step in plan.steps:
        fn = step.fn
        if isinstance(fn, SplitPlanKernel):
            keys += [p.generated.key() for p in fn.parts]
        elif isinstance(fn, GemmStep):
            keys += [k.generated.key() for k in fn.kernels]
        elif isinstance(fn, PlanKernel):
            keys.append(fn.generated.key())
    return keys


def _check(model, x, tmp_path, monkeypatch, device):  # noqa: F811
    model.eval()
    path = tmp_path / "m.ember"
    sources = _package(model, x, path, monkeypatch)
    # artifacts bake every size in (their launch records carry no sizes); in process the
    # split reductions are shape-generic by default, so compare with the literal plan
    monkeypatch.setenv("EMBER_TRITON_LITERAL_SIZES", "1")
    fast = ember.compile(copy.deepcopy(model).to(device), backend="triton",
                         options={"cuda_graphs": False})
    with ember.no_grad():
        want = fast(ember.tensor(x).to(device))
    want = [w.cpu().numpy() for w in (want if isinstance(want, tuple) else (want,))]
    manifest, members = lite.read_members(path)
    plan = json.loads(members["plan.json"])
    packaged = [plan["kernels"][launch["kernel"]]["source_key"] for launch in plan["launches"]]
    assert packaged == _in_process_kernels(fast.last[0])
    driver = InterpretingDriver(plan, sources)
    run = lite_cuda.CudaLiteModel(path, manifest, members, driver=driver)
    for _ in range(2):                                  # replayed, scratch reused
        got = run(x)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    return fast.last[0], plan, json.loads(members["memory_plan.json"])


def test_split_k_and_split_reductions_packaged_as_in_process(device, tmp_path,  # noqa: F811
                                                           monkeypatch, low_thresholds):
    ember.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((4, 8, 32, 40), dtype=np.float32)
    plan, table, memory = _check(SplitNet(), x, tmp_path, monkeypatch, device)
    split_k = [s for s in plan.steps if isinstance(s.fn, GemmStep) and len(s.fn.parts) == 2]
    reductions = [s for s in plan.steps if isinstance(s.fn, SplitPlanKernel)]
    assert split_k and reductions, [(s.name, type(s.fn).__name__) for s in plan.steps]
    assert memory["scratch_bytes"] > 0
    names = [table["kernels"][launch["kernel"]]["name"] for launch in table["launches"]]
    assert any(n.endswith("final") for n in names), names
    # a split step's launches share its workspace: one arena address for all its parts
    for step in split_k + reductions:
        mine = [launch for launch in table["launches"] if launch["step"] == step.name]
        assert len(mine) == len(step.fn.parts)
        assert len({tuple(launch["args"][-1]) for launch in mine}) == 1


def test_tf32_kmajor_staging_packaged_as_in_process(device, tmp_path, monkeypatch,  # noqa: F811
                                                    low_thresholds):
    monkeypatch.setattr(ember.backends.cuda.matmul, "allow_tf32", True)
    ember.manual_seed(1)
    x = np.random.default_rng(1).standard_normal((64, 24), dtype=np.float32)
    plan, _, memory = _check(StagedNet(), x, tmp_path, monkeypatch, device)
    staged = [s for s in plan.steps if isinstance(s.fn, GemmStep) and s.fn.copies]
    assert staged, [(s.name, type(s.fn).__name__) for s in plan.steps]
    assert memory["scratch_bytes"] > 0
