"""GEMM epilogues that store several values, in compiled CUDA training steps: a Linear +
ReLU forward keeps its activation and the mask its backward reads, a weight gradient's
GEMM applies the AdamW update (parameter and both moments) in its tile store; each such
group is one GEMM launch (no anchor kernel writing the product for a second kernel to
read). The steps equal torch's float64 AdamW steps. On CI the kernels run in Triton's
interpreter (tests/cuda/emulation.py)."""
import os
import sys
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

from test_bench_rows_cuda import (_assert_close, _compiled_steps, _torch_steps,  # noqa: E402
                                  _twins, cuda)  # noqa: F401 - the CUDA fixture
from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture


def _multi_output_gemms(step) -> list:
    return [s for s in step.last.plan.steps
            if s.kind == "extern" and len(s.outputs) > 1 and s.name.startswith("fused")]


@pytest.mark.parametrize("name", ["mlp", "transformer_layer"])
def test_multi_output_epilogues_fuse_into_the_gemm(cuda, name):
    model, twin, x, y, loss = _twins(name)
    got, step, losses = _compiled_steps(model, loss, x, y, cuda, steps=3)
    _assert_close(got, twin, losses, _torch_steps(twin, loss, x, y, 3), 2e-4)
    fused = _multi_output_gemms(step)
    assert fused, [(s.name, s.kind, len(s.outputs)) for s in step.last.plan.steps]
    names = {s.name for s in step.last.plan.steps}
    assert not any(f"{s.name}.anchor" in names for s in fused)


@pytest.mark.parametrize("bf16", [False, True])
def test_transformer_step_table_has_no_gradient_scatter_copies(bf16):
    """tools/cuda_step_bytes.py's transformer row (d512, launches recorded, not run):
    the q/k/v gradients of the packed in-projection fuse into the update (no eager
    slice_scatter copies), and the FFN's Linear + ReLU is one GEMM launch."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    import cuda_step_bytes
    rows = cuda_step_bytes.step_rows("transformer", 0, 1, bf16=bf16)
    assert rows
    assert not [r for r in rows if r["kernel"] == "copy_"]
    assert not [r for r in rows if r["step"].startswith("slice_scatter")]
    assert any(r["kernel"].startswith("mm_epilogue") for r in rows)
