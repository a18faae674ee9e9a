"""Generated kernels' vector loads against torch: pooling windows read as whole or
strided (1-4 elements apart) masked vectors, outputs vectorized along a short window,
half-width vectors for rows under a register; and the GEMM packing a K-major operand
by register transposes (against float64 NumPy)."""
import numpy as np
import pytest
import torch

import ember
from ember.codegen.llvm.gemm import gemm, gemm_batched

from llvm_isas import isa_params  # tests/codegen is on sys.path (no package)

POOLS = {
    "max3s2p1": (lambda f: lambda x: f.max_pool2d(x, 3, 2, 1)),
    "max2": (lambda f: lambda x: f.max_pool2d(x, 2)),
    "max3s3_ceil": (lambda f: lambda x: f.max_pool2d(x, 3, 3, ceil_mode=True)),
    "max2s1_dil2": (lambda f: lambda x: f.max_pool2d(x, 2, 1, 0, 2)),
    "avg2": (lambda f: lambda x: f.avg_pool2d(x, 2)),
    "avg3s2p1_nopad": (lambda f: lambda x: f.avg_pool2d(x, 3, 2, 1, count_include_pad=False)),
}


@pytest.mark.parametrize("name", list(POOLS))
@pytest.mark.parametrize("shape,layout", [((3, 20, 29, 30), "nchw"), ((2, 8, 28, 28), "nchw"),
                                          ((2, 37, 15, 13), "nhwc"), ((2, 64, 14, 14), "nhwc")],
                         ids=["nchw_wide", "nchw_28", "nhwc_37", "nhwc_64"])
def test_pooling_matches_torch(name, shape, layout, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 0, 0, :3] = np.nan                       # NaN must win a max window, as in torch
    xe = ember.tensor(x)
    if layout == "nhwc":
        xe = xe.contiguous(memory_format=ember.channels_last)
    compiled = ember.compile(POOLS[name](ember.nn.functional))
    with ember.no_grad():
        got = compiled(xe).numpy()
    want = POOLS[name](torch.nn.functional)(torch.from_numpy(x)).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True)


def _check(got, a, b):
    want = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64) + 1e-30
    assert (np.abs(got - want) / scale).max() < 4e-6 * max(1, a.shape[-1]) ** 0.5


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("m,n,k", [(20, 130, 45), (7, 64, 16), (33, 200, 97), (5, 128, 3)])
def test_gemm_k_major_b(isa, m, n, k, rng):
    """B given as the transpose of an (N, K) array: whole panels go through the
    transposing pack (k in blocks of the vector width, then the rest), the last
    partial panel through the element copies."""
    a = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    got = gemm(a, w.T, isa=isa)
    _check(got, a, w.T)
    assert np.array_equal(got, gemm(a, np.ascontiguousarray(w.T), isa=isa))   # a copy: same bits


def test_batched_scores_with_permuted_keys(rng):
    """Attention's q @ k^T with k a permuted view (batch, head dim, sequence)."""
    q = rng.standard_normal((6, 40, 32)).astype(np.float32)
    keys = rng.standard_normal((40, 6, 32)).astype(np.float32)
    kt = keys.transpose(1, 2, 0)
    out = np.empty((6, 40, 40), np.float32)
    gemm_batched(q, kt, out)
    for i in range(6):
        _check(out[i], q[i], kt[i])
