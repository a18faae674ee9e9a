"""The lowering rules added for artifacts (index_put with one index vector, scatter_add,
copy: codegen/lowering_windows.py) also make Triton kernels of a CUDA plan: run under
Triton's interpreter on emulated CUDA (tests/cuda/emulation.py), results equal the CPU
eager ones. Never run on a GPU here."""
import os

os.environ["TRITON_INTERPRET"] = "1"      # before triton is imported (see emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("triton")

import ember  # noqa: E402

from emulation import emulated_cuda  # noqa: E402


def _updates(x, idx, v, index, src):
    y = x * 2
    y[idx] = v                                  # index_put, a negative index among them
    z = x.clone()
    z[0] = 5.0                                  # in-place updates through views
    z[:, 1] += 1
    w = ember.zeros(3, 5, device=x.device).scatter_add(0, index, src)
    return y + 1, z, w, x.index_put((idx,), v, accumulate=True)


def test_scatter_kernels_on_emulated_cuda():
    args = (ember.randn(5, 3), ember.tensor([0, -2, 1]), ember.randn(3, 3),
            ember.tensor([[0, 1, 2, 0, 0], [2, 0, 0, 1, 2]]), ember.randn(2, 5))
    want = _updates(*args)
    with emulated_cuda():
        compiled = ember.compile(_updates, backend="triton")
        on_device = tuple(a.cuda() for a in args)
        for _ in range(2):
            got = compiled(*on_device)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.cpu().numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
