"""The int8 GEMM epilogue's requantization (roundeven(fma(bias_term, factor, float32(acc))
* mult) + zero point, ir/quantized.py requant_columns) equals the NumPy reference's bit for
bit on every tile shape (VNNI, AVX2): on exact ties, on values a few float32 steps from
them, and spread out; per-tensor weights (factor != 1) and per-channel ones (factor 1)."""
from __future__ import annotations

import numpy as np
import pytest

from ember.codegen.llvm import qgemm as Q
from ember.codegen.llvm.target import Isa, supported_isas
from ember.ir.quantized import RequantColumns, requantize_sums

pytestmark = pytest.mark.skipif(Q.active_config() is None, reason="no AVX2 / AVX-512 here")


def tiles():
    cfg = Q.active_config()
    out = {Q.tile_for(cfg, n) for n in (16, 32, 4096)}
    if Isa.AVX2 in supported_isas():        # the 8-lane tile too, where the CPU has it
        out.add(Q.AVX2)
    return sorted(out, key=lambda t: t.name)


def kernel_and_reference(tile, a, w, cols: RequantColumns, zero_point: int, relu: bool):
    """The fused GEMM's uint8 result for a @ w.T (x zero point 0) and the reference's."""
    packed = Q.PackedWeight(w, tile)
    gather = Q.linear_gather(a, w.shape[1] // 4)
    lo = zero_point if relu else 0
    got = Q.run(gather, packed, 0, cols.mult, cols.bias_term,
                (cols.factor, float(zero_point), float(lo), 255.0), True, threads=1)
    acc = a.astype(np.int64) @ w.astype(np.int64).T
    return np.asarray(got), requantize_sums(acc, cols, zero_point, lo, 255, 1)


@pytest.mark.parametrize("relu", [False, True])
def test_epilogue_on_exact_ties(relu):
    """mult 1/2 and an odd zero point: every odd sum is a tie, rounded to even before the
    zero point is added."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 128, (37, 16)).astype(np.uint8)
    w = rng.integers(-3, 4, (40, 16)).astype(np.int8)
    cols = RequantColumns(np.full(40, 0.5, np.float32),
                          (np.arange(40) % 3).astype(np.float32), 1.0)
    for tile in tiles():
        got, want = kernel_and_reference(tile, a, w, cols, 77, relu)
        np.testing.assert_array_equal(got, want, err_msg=tile.name)
        assert (want % 2 == 1).mean() > 0.4          # ties went to even + 77: odd results


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("per_tensor", [False, True])
def test_epilogue_near_ties_and_spread(seed, per_tensor):
    rng = np.random.default_rng(seed)
    n, k = 96, 32
    a = rng.integers(0, 128, (61, k)).astype(np.uint8)
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    mult = rng.uniform(2e-4, 3e-3, n).astype(np.float32)
    factor = float(np.float32(rng.uniform(100, 3000))) if per_tensor else 1.0
    bias = rng.normal(0, 0.3 if per_tensor else 300, n).astype(np.float32)
    # nudge each column's bias so that row 0 lands within a few float32 steps of a tie
    acc0 = (a[0].astype(np.int64) @ w.astype(np.int64).T).astype(np.float64)
    target = (np.floor((acc0 + bias.astype(np.float64) * factor) * mult) + 0.5) / mult
    bias = ((target - acc0) / factor).astype(np.float32)
    for step in (-2, 0, 3):
        b = bias.copy()
        for _ in range(abs(step)):
            b = np.nextafter(b, np.float32(np.inf if step > 0 else -np.inf))
        cols = RequantColumns(mult, b, factor)
        for tile in tiles():
            got, want = kernel_and_reference(tile, a, w, cols, int(rng.integers(0, 256)), False)
            np.testing.assert_array_equal(got, want, err_msg=f"{tile.name} step {step}")
