"""linalg suite, spectral and orthogonal factorizations: eigh/eigvalsh (UPLO), eig/eigvals
(complex output), svd/svdvals (full_matrices), matrix_rank (tol/atol/rtol/hermitian), pinv
(hermitian, rtol, atol), cond (every p), qr (every mode), householder_product, matrix_exp
and matrix_power (negative, 0, batched), against torch.

Eigenvectors and singular vectors are unique only up to a phase per column, so those
cases compare gauge-free quantities (|V|, reconstructions, projectors) rather than V."""
from __future__ import annotations

import numpy as np
import pytest

from tests.linalg.suite_util import (DTYPES, check, check_grad, check_raises, hermitian, rand,
                                     spd, well_conditioned)

ALL = list(DTYPES)


def _distinct_hermitian(rng, *shape, dtype=np.float64):
    """Hermitian matrices with well separated eigenvalues (1, 3, 5, ...)."""
    n = shape[-1]
    q, _ = np.linalg.qr(rand(rng, *shape, dtype=dtype))
    w = np.arange(1, 2 * n, 2, dtype=np.float64)
    return (q * w[..., None, :]) @ np.conj(np.swapaxes(q, -1, -2))


# --- eigh / eigvalsh --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("uplo", ["L", "U"])
def test_eigh_values_and_gauge_free_vectors(rng, dtype, uplo):
    a = _distinct_hermitian(rng, 2, 4, 4, dtype=DTYPES[dtype]).astype(DTYPES[dtype])
    a = a + np.triu(rand(rng, 4, 4, dtype=DTYPES[dtype]), 1) * (uplo == "L")  # ignored half
    a = a.astype(DTYPES[dtype])

    def fn(L, a):
        w, v = L.linalg.eigh(a, UPLO=uplo)
        return w, v.abs()
    check(fn, a, rtol=1e-3 if dtype in ("float32", "complex64") else None)
    check(lambda L, a: L.linalg.eigvalsh(a, UPLO=uplo), a)


@pytest.mark.parametrize("shape", [(0, 0), (0, 3, 3), (1, 1)])
def test_eigh_empty_and_1x1(rng, shape):
    a = hermitian(rng, *shape)
    check(lambda L, a: L.linalg.eigvalsh(a), a)
    check(lambda L, a: L.linalg.eigh(a)[0], a)


def test_eigh_reconstructs_and_vectors_are_orthonormal(rng):
    a = hermitian(rng, 3, 5, 5, dtype=np.complex128)
    check(lambda L, a: (lambda w, v: (v * w.unsqueeze(-2).to(v.dtype)) @ v.mH)(
        *L.linalg.eigh(a)), a)
    check(lambda L, a: (lambda v: v.mH @ v)(L.linalg.eigh(a).eigenvectors), a, atol=1e-12)


# --- eig / eigvals ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("batch", [(), (3,)])
def test_eig_and_eigvals_complex_output(rng, dtype, batch):
    a = rand(rng, *batch, 4, 4, dtype=DTYPES[dtype])
    tol = 1e-3 if dtype in ("float32", "complex64") else 1e-8

    def fn(L, a):
        w, v = L.linalg.eig(a)
        return w, v.abs()
    check(fn, a, rtol=tol, atol=tol)
    check(lambda L, a: L.linalg.eigvals(a), a, rtol=tol, atol=tol)


def test_eig_of_symmetric_and_diagonal(rng):
    check(lambda L, a: L.linalg.eigvals(a), np.diag([3.0, -1.0, 2.0]))
    check(lambda L, a: L.linalg.eigvals(a), np.array([[0.0, -1.0], [1.0, 0.0]]))  # +-i
    check(lambda L, a: L.linalg.eig(a)[0], np.zeros((0, 0)))


# --- svd / svdvals ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 4, 3)])
def test_svd_reduced(rng, dtype, shape):
    a = rand(rng, *shape, dtype=DTYPES[dtype])

    def fn(L, a):
        u, s, vh = L.linalg.svd(a, full_matrices=False)
        return s, u.abs(), vh.abs(), (u * s.unsqueeze(-2).to(u.dtype)) @ vh
    check(fn, a, rtol=1e-3 if dtype in ("float32", "complex64") else None)
    check(lambda L, a: L.linalg.svdvals(a), a)


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (2, 3, 4)])
def test_svd_full_matrices(rng, shape):
    a = rand(rng, *shape)

    def fn(L, a):
        u, s, vh = L.linalg.svd(a)                     # full_matrices=True by default
        m, n = a.shape[-2:]
        k = min(m, n)
        return (u.shape, vh.shape, s, u.mH @ u, vh @ vh.mH,
                (u[..., :k] * s.unsqueeze(-2)) @ vh[..., :k, :])
    check(fn, a, atol=1e-12)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0), (2, 0, 4)])
@pytest.mark.parametrize("full", [False, True])
def test_svd_empty(shape, full):
    a = np.zeros(shape)
    check(lambda L, a: tuple(x.shape for x in L.linalg.svd(a, full_matrices=full)), a)
    check(lambda L, a: L.linalg.svdvals(a), a)


def test_torch_svd_some_and_compute_uv(rng):
    a = rand(rng, 5, 3)
    check(lambda L, a: (lambda u, s, v: (s, (u * s) @ v.mT, u.shape, v.shape))(
        *L.svd(a)), a)
    check(lambda L, a: (lambda u, s, v: (u.shape, s, v.shape))(*L.svd(a, some=False)), a)
    check(lambda L, a: (lambda u, s, v: (u, s, v))(*L.svd(a, compute_uv=False)), a)


# --- matrix_rank ------------------------------------------------------------------------

def _rank2(rng, *batch, n=4, dtype=np.float64):
    return (rand(rng, *batch, n, 2, dtype=dtype) @ rand(rng, *batch, 2, n, dtype=dtype))


@pytest.mark.parametrize("kwargs", [{}, {"atol": 1e-6}, {"rtol": 1e-6}, {"atol": 1.0, "rtol": 0.0},
                                    {"atol": 100.0}, {"rtol": 0.9}, {"tol": 1e-6},
                                    {"hermitian": True}, {"hermitian": True, "atol": 1e-8}])
def test_matrix_rank(rng, kwargs):
    a = _rank2(rng, 3)
    if kwargs.get("hermitian"):
        a = a @ np.swapaxes(a, -1, -2)
    check(lambda L, a: L.linalg.matrix_rank(a, **kwargs), a)


@pytest.mark.parametrize("dtype", ALL)
def test_matrix_rank_dtypes_and_tensor_tolerances(rng, dtype):
    a = _rank2(rng, 2, dtype=DTYPES[dtype]).astype(DTYPES[dtype])
    check(lambda L, a: L.linalg.matrix_rank(a), a)
    check(lambda L, a, t: L.linalg.matrix_rank(a, atol=t), a, np.array([1e-3, 1e3]))


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (2, 0, 0)])
def test_matrix_rank_empty(shape):
    check(lambda L, a: L.linalg.matrix_rank(a), np.zeros(shape))


# --- pinv -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("shape", [(3, 3), (5, 3), (2, 3, 5)])
def test_pinv(rng, dtype, shape):
    check(lambda L, a: L.linalg.pinv(a), rand(rng, *shape, dtype=DTYPES[dtype]),
          rtol=1e-3 if dtype in ("float32", "complex64") else None,
          atol=1e-3 if dtype in ("float32", "complex64") else None)


@pytest.mark.parametrize("kwargs", [{"hermitian": True}, {"rtol": 0.3}, {"atol": 0.5},
                                    {"atol": 0.1, "rtol": 0.2}, {"rcond": 0.3},
                                    {"hermitian": True, "rtol": 0.3}])
def test_pinv_options(rng, kwargs):
    a = hermitian(rng, 2, 4, 4) if kwargs.get("hermitian") else rand(rng, 2, 4, 4)
    fn = (lambda L, a: L.linalg.pinv(a, **kwargs)) if "rcond" not in kwargs else \
        (lambda L, a: L.pinverse(a, rcond=kwargs["rcond"]))
    check(fn, a)


def test_pinv_of_rank_deficient_and_empty(rng):
    check(lambda L, a: L.linalg.pinv(a), _rank2(rng, n=4))
    check(lambda L, a: L.linalg.pinv(a), np.zeros((0, 3)))
    check(lambda L, a: L.linalg.pinv(a), np.zeros((3, 3)))


# --- cond -------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [None, 2, -2, 1, -1, float("inf"), float("-inf"), "fro", "nuc"])
@pytest.mark.parametrize("dtype", ["float64", "complex128", "float32"])
def test_cond(rng, p, dtype):
    a = well_conditioned(rng, 2, 3, 3, dtype=DTYPES[dtype])
    check(lambda L, a: L.linalg.cond(a, p), a,
          rtol=1e-4 if dtype == "float32" else None)


@pytest.mark.parametrize("p", [None, 2, -2])
def test_cond_rectangular_and_singular(rng, p):
    check(lambda L, a: L.linalg.cond(a, p), rand(rng, 4, 2))
    check(lambda L, a: L.linalg.cond(a, p), np.array([[1.0, 2.0], [2.0, 4.0]]))


@pytest.mark.parametrize("p", [1, "fro", float("inf")])
def test_cond_singular_matrix_norm_orders(p):
    check(lambda L, a: L.linalg.cond(a, p), np.array([[1.0, 2.0], [2.0, 4.0]]))


# --- qr ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["reduced", "complete", "r"])
@pytest.mark.parametrize("shape", [(4, 3), (3, 4), (2, 3, 3)])
@pytest.mark.parametrize("dtype", ["float64", "complex128", "float32"])
def test_qr_modes(rng, mode, shape, dtype):
    a = rand(rng, *shape, dtype=DTYPES[dtype])
    out = check(lambda L, a: L.linalg.qr(a, mode=mode), a)
    if mode == "r":
        assert out.Q.shape == (0,)


def test_torch_qr_some(rng):
    a = rand(rng, 5, 3)
    check(lambda L, a: L.qr(a), a)
    check(lambda L, a: L.qr(a, some=False), a)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0)])
def test_qr_empty(shape):
    check(lambda L, a: L.linalg.qr(a), np.zeros(shape))


def test_qr_mode_r_is_not_differentiable(rng):
    # torch refuses to differentiate mode='r' (its derivative needs Q): so does ember
    check_raises(lambda L, a: L.linalg.qr(a.requires_grad_(), mode="r").R.sum().backward(),
                 rand(rng, 4, 3), words=("mode='r'",))


@pytest.mark.parametrize("tol", [1e-6, 0.5, 3.0])
@pytest.mark.parametrize("hermitian", [False, True])
def test_matrix_rank_older_tol_overload(rng, tol, hermitian):
    a = spd(rng, 2, 4, 4) if hermitian else _rank2(rng, 2)
    check(lambda L, a: L.linalg.matrix_rank(a, tol, hermitian), a)
    check(lambda L, a: L.linalg.matrix_rank(a, tol=tol, hermitian=hermitian), a)


def test_matrix_rank_tol_with_atol_is_refused(rng):
    check_raises(lambda L, a: L.linalg.matrix_rank(a, 0.5, atol=0.1), _rank2(rng))


# --- householder_product ----------------------------------------------------------------

@pytest.mark.parametrize("shape,k", [((4, 3), 3), ((4, 3), 2), ((2, 5, 5), 4), ((3, 3), 0)])
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_householder_product(rng, shape, k, dtype):
    a = rand(rng, *shape, dtype=DTYPES[dtype])
    tau = rand(rng, *shape[:-2], k, dtype=DTYPES[dtype]) * 0.5
    check(lambda L, a, t: L.linalg.householder_product(a, t), a, tau)
    check(lambda L, a, t: L.orgqr(a, t), a, tau)


# --- matrix_exp / matrix_power ----------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4), (1, 1), (0, 0), (2, 0, 0)])
def test_matrix_exp(rng, dtype, shape):
    a = rand(rng, *shape, dtype=DTYPES[dtype]) * 0.5
    check(lambda L, a: L.linalg.matrix_exp(a), a)
    check(lambda L, a: L.matrix_exp(a), a)


def test_matrix_exp_large_norm_and_nilpotent(rng):
    check(lambda L, a: L.linalg.matrix_exp(a), rand(rng, 3, 3) * 6, rtol=1e-7)
    check(lambda L, a: L.linalg.matrix_exp(a), np.triu(rand(rng, 4, 4), 1))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, -1, -2, -3])
@pytest.mark.parametrize("dtype", ["float64", "complex128", "float32"])
def test_matrix_power(rng, n, dtype):
    a = well_conditioned(rng, 2, 3, 3, dtype=DTYPES[dtype]) / 3
    check(lambda L, a: L.linalg.matrix_power(a, n), a,
          rtol=1e-3 if dtype == "float32" else None)
    check(lambda L, a: L.matrix_power(a, n), a, rtol=1e-3 if dtype == "float32" else None)


@pytest.mark.parametrize("n", [0, 2, -1])
def test_matrix_power_empty_and_integer(rng, n):
    check(lambda L, a: L.linalg.matrix_power(a, n), np.zeros((0, 0)))
    check(lambda L, a: L.linalg.matrix_power(a, n), np.zeros((2, 0, 0)))
    if n >= 0:
        check(lambda L, a: L.linalg.matrix_power(a, n), np.arange(9).reshape(3, 3))


def test_matrix_power_negative_of_singular_raises():
    check_raises(lambda L, a: L.linalg.matrix_power(a, -1), np.ones((2, 2)),
                 words=("singular",))


# --- gradients --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["eigvalsh", "eigh_w", "eigvals", "svdvals", "svd_s",
                                  "svd_usv", "pinv", "pinv_hermitian", "matrix_exp",
                                  "matrix_power_3", "matrix_power_-2", "cond", "qr",
                                  "householder_product", "eigh_projector",
                                  "eig_w"])
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_gradients_match_torch(rng, name, dtype):
    dt = DTYPES[dtype]
    a, h = rand(rng, 2, 3, 3, dtype=dt), _distinct_hermitian(rng, 2, 3, 3, dtype=dt)
    r = rand(rng, 4, 3, dtype=dt)
    w = well_conditioned(rng, 2, 3, 3, dtype=dt) / 3
    cases = {
        "eigvalsh": (lambda L, h: L.linalg.eigvalsh(h), h),
        "eigh_w": (lambda L, h: L.linalg.eigh(h).eigenvalues, h),
        "eigh_projector": (lambda L, h: (lambda v: v[..., :1] @ v[..., :1].mH)(
            L.linalg.eigh(h).eigenvectors), h),
        "eigvals": (lambda L, a: L.linalg.eigvals(a), a),
        "eig_w": (lambda L, a: L.linalg.eig(a).eigenvalues, a),
        "svdvals": (lambda L, r: L.linalg.svdvals(r), r),
        "svd_s": (lambda L, r: L.linalg.svd(r, full_matrices=False).S, r),
        "svd_usv": (lambda L, r: (lambda u, s, vh: (u * s.unsqueeze(-2).to(u.dtype)) @ vh)(
            *L.linalg.svd(r, full_matrices=False)), r),
        "pinv": (lambda L, r: L.linalg.pinv(r), r),
        "pinv_hermitian": (lambda L, h: L.linalg.pinv(h, hermitian=True), h),
        "matrix_exp": (lambda L, a: L.linalg.matrix_exp(a), a),
        "matrix_power_3": (lambda L, a: L.linalg.matrix_power(a, 3), a),
        "matrix_power_-2": (lambda L, w: L.linalg.matrix_power(w, -2), w),
        "cond": (lambda L, w: L.linalg.cond(w), w),
        "qr": (lambda L, r: L.linalg.qr(r), r),
        "householder_product": (lambda L, r, t: L.linalg.householder_product(r, t), r,
                                rand(rng, 2, dtype=dt) * 0.5),
    }
    fn, *args = cases[name]
    check_grad(fn, *args, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("p", [None, "fro", 1, 2, -2, "nuc", float("inf")])
def test_cond_of_empty_matrices_is_zero(p):
    check(lambda L, a: L.linalg.cond(a, p), np.zeros((0, 0)))
    check(lambda L, a: L.linalg.cond(a, p), np.zeros((2, 0, 0)))


@pytest.mark.parametrize("uplo", ["l", "u"])
def test_eigh_takes_lowercase_uplo(rng, uplo):
    a = _distinct_hermitian(rng, 3, 3) + np.triu(rand(rng, 3, 3), 1)
    check(lambda L, a: L.linalg.eigvalsh(a, UPLO=uplo), a)
    check(lambda L, a: L.linalg.eigh(a, UPLO=uplo).eigenvalues, a)
