"""The int8 GEMM's last row tile: when at most tail_rows(cfg) rows are left it runs the
narrower tile (codegen/llvm/qgemm.py _emit_tail), else the full one over padding rows.
Every row count around the tile sizes, against exact integer arithmetic."""
import numpy as np
import pytest

from ember.codegen.llvm import qgemm as Q
from ember.codegen.llvm.target import Isa, supported_isas
from ember.ir.quantized import fma_float32

CONFIGS = [Q.VNNI, Q.VNNI_N32, Q.VNNI_N16] if Q.has_vnni() else []
CONFIGS += [Q.AVX2] if Isa.AVX2 in supported_isas() else []


@pytest.mark.skipif(not CONFIGS, reason="no int8 GEMM kernel for this CPU")
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_every_last_tile_height(cfg):
    rng = np.random.default_rng(cfg.mr)
    k, n = 36, 70
    w = rng.integers(-127, 128, (n, k)).astype(np.int8)
    packed = Q.PackedWeight(w, cfg)
    mult = rng.uniform(1e-4, 1e-3, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    assert 0 < Q.tail_rows(cfg) < cfg.mr
    for m in list(range(1, 2 * cfg.mr + 2)) + [64]:
        a = rng.integers(0, 128 if cfg is Q.AVX2 else 256, (m, k)).astype(np.uint8)
        out = Q.run(Q.linear_gather(a, k // 4), packed, 3, mult, bias,
                    (0.0, 0.0, -np.inf, np.inf), False)
        acc = a.astype(np.int64) @ w.astype(np.int64).T - 3 * w.astype(np.int64).sum(1)
        want = fma_float32(acc.astype(np.float32), mult, bias)     # the float epilogue's fma
        np.testing.assert_array_equal(out, want, err_msg=f"m={m}")
