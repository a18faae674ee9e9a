"""CUDA artifacts on a real GPU: ember.aot.compile_and_package(..., target="cuda") loaded
by the lite runtime (cuModuleLoadData, cuLaunchKernel, one CUDA graph per call) equals
ember.compile(..., backend="triton") bit for bit, in this process and in a fresh one
where Triton, llvmlite, lark, networkx and ember cannot be imported; an artifact built
for another architecture is refused. The packaged launches are the in-process plan's:
split-K GEMMs, split reductions and cuDNN convolutions (the engine config cuDNN's
heuristics chose, rebuilt at load) where ember.compile chose them. Every test is marked
`cuda` (skipped without a GPU); packaging without a GPU is tests/aot/test_package_cuda.py
and the emulated tests/cuda/test_aot_cuda_*_emulated.py."""
from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest

import ember
from ember import nn
from ember.ir.errors import ArtifactError
from ember.runtime import lite

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                                 reason="TRITON_INTERPRET=1 in this process: run "
                                        "tests/cuda/run_on_gpu.sh")]


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 8 * 8, 10)

    def forward(self, x):
        x = (self.conv1(x)).relu()
        x = (self.conv2(x) + x).relu()
        return self.fc(x.flatten(1))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(64, 128)
        self.norm = nn.LayerNorm(128)
        self.out = nn.Linear(128, 32)

    def forward(self, x):
        h = self.norm(ember.nn.functional.gelu(self.proj(x)))
        return self.out(h).softmax(-1), h.sum(-1)


class SplitNet(nn.Module):
    """A long-K projection of a few rows (split over K on an H100) and a whole-tensor sum
    (a split reduction)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8192, 64)

    def forward(self, x):
        return self.fc(x.reshape(16, 8192)).relu(), (x * x).sum()


class WideConv(nn.Module):
    """resnet18's stem-sized convolutions, where cuDNN may be the faster."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(64, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)

    def forward(self, x):
        return (self.conv2(self.conv1(x).relu()) + x).relu()


def _cases():
    ember.manual_seed(0)
    rng = np.random.default_rng(0)
    return {
        "mlp": (ember.models.mlp(in_features=96, hidden=(128, 64), num_classes=10, seed=3),
                rng.standard_normal((32, 96), dtype=np.float32)),
        "conv": (ConvNet(), rng.standard_normal((4, 3, 8, 8), dtype=np.float32)),
        "encoder": (Encoder(), rng.standard_normal((2, 16, 64), dtype=np.float32)),
        "split": (SplitNet(), rng.standard_normal((16, 2, 64, 64), dtype=np.float32)),
        "wide_conv": (WideConv(), rng.standard_normal((8, 64, 56, 56), dtype=np.float32)),
    }


NAMES = ["mlp", "conv", "encoder", "split", "wide_conv"]


def _in_process(model, x: np.ndarray) -> tuple[list, list]:
    """ember.compile(backend="triton") on the GPU: (results on the host, the launches of
    its plan: each kernel's source key, or ("cudnn", the convolution))."""
    on_gpu = copy.deepcopy(model).to("cuda")
    compiled = ember.compile(on_gpu, backend="triton")
    with ember.no_grad():
        out = compiled(ember.tensor(x).to("cuda"))
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.cpu().numpy() for o in outs], _launch_list(compiled.last[0])


def _launch_list(plan) -> list:
    from ember.compiler.compile_cuda import CudnnConvStep, GemmStep, PlanKernel, \
        SplitPlanKernel
    found = []
    for step in plan.steps:
        fn = step.fn
        if isinstance(fn, CudnnConvStep):
            found.append(("cudnn", fn.spec.describe()))
        elif isinstance(fn, SplitPlanKernel):
            found += [p.generated.key() for p in fn.parts]
        elif isinstance(fn, GemmStep):
            found += [k.generated.key() for k in fn.kernels]
        elif isinstance(fn, PlanKernel):
            found.append(fn.generated.key())
    return found


def _packaged_list(path) -> list:
    import json
    _, members = lite.read_members(path)
    plan = json.loads(members["plan.json"])
    return [("cudnn", plan["cudnn"][launch["cudnn"]]["describe"]) if "cudnn" in launch
            else plan["kernels"][launch["kernel"]]["source_key"] for launch in plan["launches"]]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    root = tmp_path_factory.mktemp("aot_cuda_gpu")
    found = {}
    for name, (model, x) in _cases().items():
        model.eval()
        path = root / f"{name}.ember"
        ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), path,
                                      target="cuda")
        found[name] = (path, x) + _in_process(model, x)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_packaged_launches_are_the_in_process_plans(packaged, name):
    path, _, _, launches = packaged[name]
    assert _packaged_list(path) == launches


@pytest.mark.parametrize("name", NAMES)
def test_artifact_equals_in_process_triton_bit_for_bit(packaged, name):
    path, x, want, _ = packaged[name]
    run = ember.aot.load_package(path)
    for _ in range(2):                                 # capture, then replay
        got = run(x)
        got = got if isinstance(got, (tuple, list)) else (got,)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.numpy(), w)
    major, minor = ember.cuda.get_device_capability()
    assert run.manifest["target"]["capability"] == [major, minor]


@pytest.mark.parametrize("name", ["mlp", "wide_conv"])
def test_fresh_process_without_the_compiler(packaged, tmp_path, name):
    path, x, want, _ = packaged[name]
    np.save(tmp_path / "x.npy", x)
    blocked = ("llvmlite", "lark", "networkx", "triton", "ember") + \
        (("torch",) if name == "mlp" else ())      # the cuDNN frontend may import torch
    script = f"""
import importlib.abc, importlib.util, sys
BLOCKED = {blocked!r}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Blocker())
spec = importlib.util.spec_from_file_location('ember_lite', {lite.__file__!r})
lite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lite)
import numpy as np
model = lite.load_package({str(path)!r})
(y,) = model(np.load({str(tmp_path / 'x.npy')!r}))
np.save({str(tmp_path / 'y.npy')!r}, y)
assert not [m for m in sys.modules if m.split('.')[0] in BLOCKED]
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want[0])


def test_another_architecture_is_refused(tmp_path):
    major, minor = ember.cuda.get_device_capability()
    other = "sm_80" if (major, minor) != (8, 0) else "sm_90"
    model = ember.models.mlp(in_features=16, hidden=(32,), num_classes=4, seed=1).eval()
    path = tmp_path / "other.ember"
    ember.aot.compile_and_package(ember.export(model, (ember.randn(2, 16),)), path,
                                  target="cuda", options={"cuda_arch": other})
    with pytest.raises(ArtifactError, match=f"compiled for CUDA architecture {other}"):
        ember.aot.load_package(path)


@pytest.mark.parametrize("name", ["encoder", "split", "wide_conv"])
def test_tf32_artifact_is_the_in_process_plan(name, tmp_path, monkeypatch):
    """Under TF32 (K-major operand copies, TF32 split-K, TF32 cuDNN engines) as
    benchmarks/aot.py --cuda --tf32 runs: the same launches and bitwise results."""
    monkeypatch.setattr(ember.backends.cuda.matmul, "allow_tf32", True)
    model, x = _cases()[name]
    model.eval()
    path = tmp_path / f"{name}_tf32.ember"
    ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), path,
                                  target="cuda")
    want, launches = _in_process(model, x)
    assert _packaged_list(path) == launches
    got = ember.aot.load_package(path)(x)
    got = got if isinstance(got, (tuple, list)) else (got,)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w)
