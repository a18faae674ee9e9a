"""benchmarks/aot.py --cuda --tf32 --smoke end to end without a GPU: every model row packages
a CUDA artifact (cubins replaced by placeholders, as test_aot_cuda_emulated.py does), loads
it through the lite CUDA runtime over a driver that runs each kernel's Triton source under
the interpreter, times it against ember.compile on the emulated device and torch on the
CPU, and must equal ember.compile bit for bit. On a GPU (TRITON_INTERPRET=0) the same
command runs on the real device and cubins; this test is emulated only."""
import importlib
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.codegen.triton import device_compile  # noqa: E402
from ember.frontend import cuda as cuda_api  # noqa: E402
from ember.runtime import lite_cuda  # noqa: E402

from test_aot_cuda_emulated import InterpretingDriver  # noqa: E402
from test_compile_cuda import EMULATED, device  # noqa: E402,F401 - the CUDA fixture

pytestmark = pytest.mark.skipif(not EMULATED, reason="emulated CUDA only (on a GPU run "
                                "`python3 benchmarks/aot.py --cuda --tf32`)")


# the rows this test runs: the MLP (every code path but channels-last) keeps it short; every row
# (the transformer layer, resnet18 channels-last too) under the interpreter takes minutes:
# AOT_SMOKE_MODELS=mlp,small_cnn,transformer,resnet18 (all four passed, 2026-12-07)
SMOKE_MODELS = os.environ.get("AOT_SMOKE_MODELS", "mlp")


class SourceDriver(InterpretingDriver):
    """InterpretingDriver that finds each kernel by its placeholder cubin's bytes (the
    benchmark loads artifacts itself, so the plan is not known beforehand)."""

    def __init__(self, by_cubin: dict):
        super().__init__({"kernels": []}, {})
        self.by_cubin = by_cubin

    def load(self, cubin, name, shared):
        self.kernels.append(self.by_cubin[bytes(cubin)])
        return None, len(self.kernels) - 1


def test_aot_cuda_benchmark_smoke(device, monkeypatch, capsys):  # noqa: F811
    by_cubin = {}

    def placeholder_cubins(jobs, workers=None):
        out = []
        for job in jobs:
            spec = job.kernel.launch
            cubin = b"\x7fELF" + job.key().encode()
            by_cubin[cubin] = job.kernel
            out.append(device_compile.DeviceBinary(cubin, {
                "name": spec.name, "num_warps": spec.num_warps, "num_stages": spec.num_stages,
                "num_ctas": 1, "shared": 0, "global_scratch_size": 0,
                "profile_scratch_size": 0}))
        return out

    from ember.compiler import aot_cuda
    monkeypatch.setattr(device_compile, "compile_many", placeholder_cubins)
    monkeypatch.setattr(aot_cuda, "default_arch", lambda: aot_cuda.parse_arch("sm_90"))
    monkeypatch.setattr(lite_cuda, "Driver", lambda device=0: SourceDriver(by_cubin))
    monkeypatch.setattr(cuda_api, "is_available", lambda: True)
    monkeypatch.setattr(cuda_api, "get_device_name", lambda device=None: "emulated")
    monkeypatch.setattr(cuda_api, "synchronize", lambda device=None: None)   # synchronous
    timer = importlib.import_module("ember.utils.benchmark.timer")
    monkeypatch.setattr(timer, "_CUDA", [False])     # the emulated device runs synchronously
    from benchmarks import aot, aot_cuda as bench
    tf32 = ember.backends.cuda.matmul.allow_tf32
    try:
        seen = aot.main(["--cuda", "--tf32", "--smoke", "--models", SMOKE_MODELS])
    finally:
        ember.backends.cuda.matmul.allow_tf32 = tf32
    assert [r["name"] for r in seen] == SMOKE_MODELS.split(",")
    for r in seen:
        assert "skipped" not in r, r
        assert r["bitwise_equal_to_ember_compile"], r["name"]
        assert set(r["ms"]) == {"artifact replay", "artifact", "ember.compile", "torch"}
        assert all(np.isfinite(v) and v > 0 for v in r["ms"].values())
        assert r["max_abs_diff_vs_torch"] < 5e-2, r      # TF32 on a GPU; float32 here
    assert "ms per call" in capsys.readouterr().out
