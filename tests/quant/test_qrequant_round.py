"""The int8 GEMM epilogue's requantization rounds as torch's quantize_per_tensor on values
placed within a few float32 steps of every half-integer (where a float32 shortcut of the
float64 formula could round the other way), for the VNNI and AVX2 tiles."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ember.codegen.llvm import qgemm as Q
from ember.codegen.llvm.target import Isa, supported_isas
from ember.ir import dtypes
from ember.ir.quantized import quantize_array

pytestmark = pytest.mark.skipif(Q.active_config() is None, reason="no AVX2 / AVX-512 here")


def near_half_integers(inv: np.float32, zero_point: int, ulps: int = 6) -> np.ndarray:
    """float32 reals whose real * inv + zero_point lies within `ulps` float32 steps of
    n + 0.5 for every n of the uint8 range and a few past it."""
    centers = ((np.arange(-3, 259) + 0.5 - zero_point) / np.float64(inv)).astype(np.float32)
    steps = np.arange(-ulps, ulps + 1)
    out = centers[:, None].copy()
    out = np.repeat(out, len(steps), axis=1)
    for j, s in enumerate(steps):
        for _ in range(abs(s)):
            out[:, j] = np.nextafter(out[:, j], np.float32(np.inf if s > 0 else -np.inf))
    return out.reshape(-1)


def kernel_requantize(cfg, real: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """The fused GEMM's uint8 output where every accumulator is 0, so each column's real
    value is its bias."""
    n = real.size
    packed = Q.PackedWeight(np.zeros((n, 4), np.int8), cfg)
    gather = Q.linear_gather(np.zeros((7, 4), np.uint8), 1)
    inv = np.float32(1.0) / np.float32(scale)
    out = Q.run(gather, packed, 0, np.ones(n, np.float32), real,
                (float(inv), float(zero_point), 0.0, 255.0), True, threads=1)
    return np.asarray(out)


@pytest.mark.parametrize("seed", range(4))
def test_epilogue_rounds_near_half_integers_as_torch(seed):
    rng = np.random.default_rng(seed)
    cfg = Q.active_config()
    tiles = {Q.tile_for(cfg, n) for n in (16, 32, 4096)}
    if Isa.AVX2 in supported_isas():        # the 8-lane tile too, where the CPU has it
        tiles.add(Q.AVX2)
    for tile in sorted(tiles, key=lambda t: t.name):
        scale = float(np.float32(rng.uniform(0.002, 0.3)))
        zero_point = int(rng.integers(0, 256))
        inv = np.float32(1.0) / np.float32(scale)
        # near half-integers (the float64 formula's vectors) and spread out (float32's)
        spread = ((rng.uniform(-20, 280, 4096) - zero_point) / inv).astype(np.float32)
        real = np.concatenate([near_half_integers(inv, zero_point), spread])
        got = kernel_requantize(tile, real, scale, zero_point)
        want = quantize_array(real, scale, zero_point, dtypes.quint8).int_repr
        oracle = torch.quantize_per_tensor(torch.from_numpy(real), scale, zero_point,
                                           torch.quint8).int_repr().numpy()
        np.testing.assert_array_equal(want, oracle)
        for row in got:
            np.testing.assert_array_equal(row, want, err_msg=tile.name)
