"""Split-K GEMMs in compiled CUDA training steps: with the split threshold lowered so a
small transformer encoder layer's weight-gradient GEMMs (K = the tokens) split over K,
those GEMMs run as two launches (partial products, then a fixed-order sum that applies
the fused AdamW update or other epilogue), and three AdamW steps equal torch's float64
steps. On CI the kernels run in Triton's interpreter (tests/cuda/emulation.py)."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.codegen.triton import gemm  # noqa: E402
from ember.compiler.compile_cuda import GemmStep  # noqa: E402

from test_bench_rows_cuda import _assert_close, _compiled_steps, _torch_steps, cuda  # noqa: E402,F401
from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture


def _layer(lib):
    return lib.nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)


def test_split_k_weight_gradients_equal_float64_torch(cuda, monkeypatch):
    monkeypatch.setattr(gemm, "MIN_SPLIT_K", 32)       # 128 tokens: up to 4 K ranges
    monkeypatch.setattr(gemm, "MIN_SPLIT_WORK", 0)
    ember.manual_seed(0)
    model, twin = _layer(ember), _layer(torch)
    twin.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy())
                          for k, v in model.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 32, 16)).astype(np.float32)
    y = rng.standard_normal((4, 32, 16)).astype(np.float32)
    got, step, losses = _compiled_steps(model, "MSELoss", x, y, cuda, steps=3)
    _assert_close(got, twin, losses, _torch_steps(twin, "MSELoss", x, y, 3), 2e-4)
    split = [s for s in step.last.plan.steps if isinstance(s.fn, GemmStep) and len(s.fn.parts) == 2]
    assert split, [(s.name, type(s.fn).__name__) for s in step.last.plan.steps]
    assert any(len(s.outputs) > 1 for s in split)       # an update fused into the sum
    assert all(len(s.fn.parts) == 2 and s.fn.parts[0].generated.launch.grid[2] > 1
               for s in split)
    assert step.last.plan.graph is not None             # still one CUDA graph per step


def test_tf32_operands_staged_kmajor_in_a_training_step(cuda, monkeypatch):
    """Under TF32 the weight gradients' operands (and the backward's weights) are copied
    K-major inside their GEMM's step; the step still matches torch's float64 steps
    within TF32's rounding."""
    monkeypatch.setattr(gemm, "MIN_SPLIT_K", 32)
    monkeypatch.setattr(gemm, "MIN_SPLIT_WORK", 0)
    monkeypatch.setattr(gemm, "STAGE_FLOPS_PER_ELEMENT", 1)
    monkeypatch.setattr(ember.backends.cuda.matmul, "allow_tf32", True)
    ember.manual_seed(0)
    model, twin = _layer(ember), _layer(torch)
    twin.load_state_dict({k: torch.from_numpy(v.detach().numpy().copy())
                          for k, v in model.state_dict().items()})
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 32, 16)).astype(np.float32)
    y = rng.standard_normal((4, 32, 16)).astype(np.float32)
    got, step, losses = _compiled_steps(model, "MSELoss", x, y, cuda, steps=2)
    _assert_close(got, twin, losses, _torch_steps(twin, "MSELoss", x, y, 2), 2e-2)
    staged = [s for s in step.last.plan.steps
              if isinstance(s.fn, GemmStep) and s.fn.copies]
    assert staged, [(s.name, type(s.fn).__name__) for s in step.last.plan.steps]
    assert any(len(s.fn.copies) == 2 for s in staged)     # a weight gradient: A and B
    assert step.last.plan.graph is not None
