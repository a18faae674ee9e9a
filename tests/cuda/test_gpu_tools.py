"""Developer tools on a real NVIDIA GPU: the profiler times CUDA kernels with CUDA events
(ProfilerActivity.CUDA), and a triton_op's user kernel is compiled to a cubin and
launched by ember's runtime. Marked `cuda`: skipped with the reason where there is no GPU
(CI covers the profiler's aggregation in tests/utils/test_profiler_device_events.py and
triton_op under the interpreter in test_triton_op_emulated.py). Run by run_on_gpu.sh."""
import itertools
import json
import os
import warnings

import numpy as np
import pytest
import torch

import ember
from ember.ir.registry import OPS
from ember.profiler import ProfilerActivity, profile

from conftest import no_gpu_reason

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                                 reason="TRITON_INTERPRET=1 in this process: run "
                                        "tests/cuda/run_on_gpu.sh"),
              pytest.mark.skipif(no_gpu_reason() is not None, reason=str(no_gpu_reason()))]

_ids = itertools.count()


@pytest.fixture(autouse=True)
def quiet_fallbacks():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _kernels(events):
    return [e for e in events if e.device_type == "CUDA"]


def test_profiler_times_eager_cuda_kernels_on_the_gpu(tmp_path):
    a = ember.randn(256, 512).to("cuda")
    b = ember.randn(512, 128).to("cuda")
    ember.relu(a @ b)                                 # compile the kernels first
    ember.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            y = ember.relu(a @ b)
        ember.cuda.synchronize()
    events = prof.events()
    kernels = _kernels(events)
    assert len(kernels) >= 6, [e.name for e in events]
    assert all(k.device_time_total > 0 for k in kernels)
    mm_rows = [e for e in events if e.name in ("aten::matmul", "aten::mm")
               and e.cpu_parent is None]
    assert len(mm_rows) == 3
    for row in mm_rows:                      # the op's CUDA total is its kernels' GPU time
        assert row.device_time_total > 0
        below = [k for k in kernels if _under(k, row)]
        assert below and abs(row.device_time_total - sum(k.device_time_total
                                                           for k in below)) < 1e-6
    # GPU time inside the profile's wall time
    wall_us = (max(e.end_ns for e in events if e.device_type == "CPU") -
               min(e.start_ns for e in events if e.device_type == "CPU")) / 1e3
    assert sum(k.device_time_total for k in kernels) < wall_us * 1.5
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=10)
    assert "Self CUDA" in table and "Self CUDA time total:" in table
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())
    assert any(e.get("cat") == "cuda_kernel" for e in trace["traceEvents"])
    np.testing.assert_allclose(y.cpu().numpy(), np.maximum(a.cpu().numpy() @ b.cpu().numpy(),
                                                           0), rtol=1e-3, atol=1e-3)


def _under(kernel, span) -> bool:
    parent = kernel.cpu_parent
    while parent is not None:
        if parent is span:
            return True
        parent = parent.cpu_parent
    return False


def test_profiler_times_a_compiled_plans_kernels():
    model = ember.models.mlp(64, (32, 16)).eval()
    fast = ember.compile(model, backend="triton", options={"cuda_graphs": False})
    x = ember.randn(8, 64).to("cuda")
    with ember.no_grad():
        fast(x)                              # compiles (weights become device constants)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            fast(x)
            ember.cuda.synchronize()
    kernels = _kernels(prof.events())
    assert kernels and all(k.device_time_total > 0 for k in kernels)
    compiled = [e for e in prof.events() if e.name == "CompiledFunction"]
    assert compiled and compiled[0].device_time_total == pytest.approx(
        sum(k.device_time_total for k in kernels if _under(k, compiled[0])))


def test_triton_op_runs_the_user_kernel_on_the_gpu():
    import triton_op_kernels
    before = set(OPS)
    try:
        op = triton_op_kernels.define(f"gputest::add_mul_{next(_ids)}")
        rng = np.random.default_rng(0)
        x, y = (rng.standard_normal((4, 300)).astype(np.float32) for _ in range(2))
        out = op(ember.tensor(x).to("cuda"), ember.tensor(y).to("cuda"), 0.5)
        np.testing.assert_allclose(out.cpu().numpy(), (x + y) * 0.5, rtol=1e-6)
        fn = ember.compile(lambda a, b: ember.sigmoid(op(a, b, 0.5)), backend="triton",
                           options={"cuda_graphs": False})
        with ember.no_grad():
            got = fn(ember.tensor(x).to("cuda"), ember.tensor(y).to("cuda"))
        want = torch.sigmoid((torch.from_numpy(x) + torch.from_numpy(y)) * 0.5).numpy()
        np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-5, atol=1e-6)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            op(ember.tensor(x).to("cuda"), ember.tensor(y).to("cuda"), 0.5)
            ember.cuda.synchronize()
        assert "add_mul_kernel" in [k.name for k in _kernels(prof.events())]
    finally:
        for name in set(OPS) - before:
            del OPS[name]
