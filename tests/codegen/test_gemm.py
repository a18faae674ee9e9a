"""float32 GEMM against float64 NumPy: shapes that break every block size, strides, beta."""
import numpy as np
import pytest

from ember.codegen.llvm.gemm import CONFIGS, gemm
from ember.codegen.llvm.target import Isa
from ember.ir.errors import DTypeError, ShapeError

from llvm_isas import isa_params  # tests/codegen is on sys.path (no package)

SHAPES = [(1, 1, 1), (2, 3, 5), (13, 17, 19), (14, 32, 7), (15, 33, 257), (1, 97, 300),
          (97, 1, 64), (300, 5, 3), (3, 600, 2), (29, 531, 41), (170, 70, 520)]


def _check(got, a, b, extra=None):
    want = a.astype(np.float64) @ b.astype(np.float64)
    if extra is not None:
        want += extra
    # float32 sums of k products: error grows like sqrt(k) * eps * |a||b|
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64) + 1e-30
    err = np.abs(got - want) / scale
    assert err.max() < 4e-6 * max(1, a.shape[1]) ** 0.5, err.max()


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("m,n,k", SHAPES, ids=lambda s: str(s))
def test_gemm_shapes(isa, m, n, k, rng):
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    _check(gemm(a, b, isa=isa), a, b)


@pytest.mark.parametrize("isa", isa_params(Isa.AVX512, Isa.AVX2))
def test_gemm_256(isa, rng):
    a, b = rng.standard_normal((2, 256, 256)).astype(np.float32)
    _check(gemm(a, b, isa=isa), a, b)


@pytest.mark.parametrize("isa", isa_params())
def test_b_given_k_major_and_strided_a(isa, rng):
    w = rng.standard_normal((37, 45)).astype(np.float32)        # (N, K), like Linear.weight
    a_big = rng.standard_normal((60, 90)).astype(np.float32)
    a = a_big[::3, ::2]                                          # (20, 45), both strides odd
    _check(gemm(a, w.T, isa=isa), a, w.T)
    _check(gemm(a_big[:, :45].T.copy().T, w.T, isa=isa), a_big[:, :45], w.T)


@pytest.mark.parametrize("isa", isa_params())
@pytest.mark.parametrize("beta", [0.0, 1.0, -0.5])
def test_beta_and_out_views(isa, beta, rng):
    a = rng.standard_normal((23, 40)).astype(np.float32)
    b = rng.standard_normal((40, 35)).astype(np.float32)
    big = rng.standard_normal((30, 50)).astype(np.float32)
    before = big.copy()
    out = big[3:26, 5:40]                                        # row stride 50, not 35
    gemm(a, b, out, beta=beta, isa=isa)
    _check(out, a, b, beta * before[3:26, 5:40].astype(np.float64))
    outside = np.ones(big.shape, bool)
    outside[3:26, 5:40] = False
    np.testing.assert_array_equal(big[outside], before[outside])   # nothing else written


def test_beta_zero_ignores_nan_in_out(rng):
    a = rng.standard_normal((16, 8)).astype(np.float32)
    b = rng.standard_normal((8, 40)).astype(np.float32)
    out = np.full((16, 40), np.nan, np.float32)
    _check(gemm(a, b, out), a, b)


def test_column_strided_out_and_empty_k(rng):
    a = rng.standard_normal((9, 6)).astype(np.float32)
    b = rng.standard_normal((6, 4)).astype(np.float32)
    out = np.zeros((4, 9), np.float32).T                         # column stride != 1
    _check(gemm(a, b, out), a, b)
    empty = gemm(np.zeros((3, 0), np.float32), np.zeros((0, 5), np.float32))
    np.testing.assert_array_equal(empty, np.zeros((3, 5)))


def test_out_aliasing_an_input(rng):
    a = rng.standard_normal((20, 20)).astype(np.float32)
    b = rng.standard_normal((20, 20)).astype(np.float32)
    a0 = a.copy()
    gemm(a, b, a, beta=1.0)                                      # a = a @ b + a
    _check(a, a0, b, a0.astype(np.float64))


def test_threads_split_columns_when_rows_are_few(rng):
    a = rng.standard_normal((2, 64)).astype(np.float32)
    b = rng.standard_normal((64, 1000)).astype(np.float32)
    _check(gemm(a, b), a, b)
    _check(gemm(a, b, threads=1), a, b)


def test_configs_fill_registers():
    for cfg in CONFIGS.values():
        assert cfg.nr % cfg.lanes == 0 and cfg.mc % cfg.mr == 0 and cfg.nc % cfg.nr == 0
    assert CONFIGS[Isa.AVX512].mr * CONFIGS[Isa.AVX512].nr // 16 <= 30   # of 32 zmm
    assert CONFIGS[Isa.AVX2].mr * CONFIGS[Isa.AVX2].nr // 8 <= 13        # of 16 ymm


def test_bad_inputs_are_named():
    a = np.zeros((3, 4), np.float32)
    with pytest.raises(ShapeError, match=r"a.shape\[1\] must equal b.shape\[0\], got \(3, 4\) "
                                         r"and \(5, 2\)"):
        gemm(a, np.zeros((5, 2), np.float32))
    with pytest.raises(DTypeError, match="b must be a float32 numpy array, got float64"):
        gemm(a, np.zeros((4, 2)))
    with pytest.raises(ShapeError, match=r"out must have shape \(3, 2\)"):
        gemm(a, np.zeros((4, 2), np.float32), np.zeros((2, 3), np.float32))
    with pytest.raises(ShapeError, match="must be 2-D"):
        gemm(a, np.zeros(4, np.float32))


@pytest.mark.parametrize("batch,m,n,k", [(5, 7, 9, 11), (1, 3, 4, 5), (4, 64, 32, 40)])
def test_gemm_batched(batch, m, n, k, rng):
    """Per-matrix GEMMs split over the batch; operands may be transposed/broadcast views."""
    from ember.codegen.llvm.gemm import gemm_batched
    a = rng.standard_normal((batch, k, m)).astype(np.float32).transpose(0, 2, 1)
    b = np.broadcast_to(rng.standard_normal((k, n)).astype(np.float32), (batch, k, n))
    out = np.full((batch, m, n), np.nan, np.float32)
    gemm_batched(a, b, out)
    want = np.einsum("bmk,bkn->bmn", a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("isa", isa_params(Isa.AVX512, Isa.AVX2))
@pytest.mark.parametrize("n", [5, 16, 20, 32])
def test_narrow_tiles(isa, n, rng):
    """Few columns take the narrow, tall register tiles (edges in M and N included)."""
    from ember.codegen.llvm.gemm import tile_for
    a = rng.standard_normal((50, 70)).astype(np.float32)
    b = rng.standard_normal((70, n)).astype(np.float32)
    assert tile_for(isa, n)[1] < CONFIGS[isa].nr or isa is Isa.AVX2
    _check(gemm(a, b, isa=isa), a, b)


@pytest.mark.parametrize("m,n,k", [(1, 10, 784), (50, 70, 300), (7, 300, 40), (13, 32, 5)])
def test_prepacked_b(m, n, k, rng):
    """A weight packed once (panels over all of K) gives the same product, by rows and
    by columns (m small), with beta 1, and after the source array changes."""
    from ember.codegen.llvm.gemm import prepack_b
    a = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)          # a Linear weight (N, K)
    packed = prepack_b(w.T)
    want = a.astype(np.float64) @ w.T.astype(np.float64)
    w[...] = 0                                                  # packing copied it
    np.testing.assert_allclose(gemm(a, packed), want, rtol=1e-4, atol=1e-4)
    out = np.ones((m, n), np.float32)
    gemm(a, packed, out, beta=1.0)
    np.testing.assert_allclose(out, want + 1, rtol=1e-4, atol=1e-4)
