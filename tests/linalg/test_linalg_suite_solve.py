"""linalg suite, solvers and determinants: solve/solve_ex, lstsq (every driver, rcond),
inv/inv_ex, det/slogdet/logdet (singular, negative, batched, 0x0, batch-0), cholesky and
cholesky_ex (upper=, info), solve_triangular, lu/lu_factor/lu_factor_ex/lu_solve,
ldl_factor/ldl_solve, tensorinv/tensorsolve, cholesky_solve/cholesky_inverse, against torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from tests.linalg.suite_util import (DTYPES, check, check_grad, check_raises, rand, spd, triangular,
                                     well_conditioned)

ALL = list(DTYPES)
BATCHES = [(), (2,), (2, 3)]


# --- solve ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("batch", BATCHES)
def test_solve_batched(rng, dtype, batch):
    a = well_conditioned(rng, *batch, 3, 3, dtype=DTYPES[dtype])
    b = rand(rng, *batch, 3, 2, dtype=DTYPES[dtype])
    check(lambda L, a, b: L.linalg.solve(a, b), a, b)


@pytest.mark.parametrize("bshape", [(3,), (2, 3), (4, 3, 1), (1, 3, 2)])
def test_solve_vector_and_broadcast_rhs(rng, bshape):
    a = well_conditioned(rng, 2, 3, 3) if len(bshape) != 1 else well_conditioned(rng, 3, 3)
    if bshape == (4, 3, 1):
        a = well_conditioned(rng, 1, 3, 3)
    check(lambda L, a, b: L.linalg.solve(a, b), a, rand(rng, *bshape))


@pytest.mark.parametrize("batch", [(), (2,)])
def test_solve_left_false(rng, batch):
    a = well_conditioned(rng, *batch, 3, 3)
    b = rand(rng, *batch, 2, 3)
    check(lambda L, a, b: L.linalg.solve(a, b, left=False), a, b)


def test_solve_ex_info_zero_and_singular(rng):
    a = well_conditioned(rng, 2, 3, 3)
    a[1] = 0.0
    out = check(lambda L, a, b: L.linalg.solve_ex(a, b), a[:1], rand(rng, 1, 3, 2))
    assert out.info.shape == (1,)
    r = ember.linalg.solve_ex(ember.tensor(a), ember.tensor(rand(rng, 2, 3, 2)))
    t = torch.linalg.solve_ex(torch.tensor(a), torch.tensor(rand(rng, 2, 3, 2)))
    np.testing.assert_array_equal(r.info.numpy(), t.info.numpy())


def test_solve_empty(rng):
    check(lambda L, a, b: L.linalg.solve(a, b), np.zeros((0, 0)), np.zeros((0, 2)))
    check(lambda L, a, b: L.linalg.solve(a, b), np.zeros((0, 3, 3)), np.zeros((0, 3, 1)))


# --- lstsq ------------------------------------------------------------------------------

@pytest.mark.parametrize("driver", ["gels", "gelsy", "gelsd", "gelss"])
@pytest.mark.parametrize("shape", [(5, 3), (3, 3), (2, 5, 3)])
def test_lstsq_drivers(rng, driver, shape):
    if driver == "gels" and shape[-2] < shape[-1]:
        pytest.skip("gels needs full rank tall input")
    a = rand(rng, *shape)
    b = rand(rng, *shape[:-1], 2)
    check(lambda L, a, b: L.linalg.lstsq(a, b, driver=driver), a, b)


@pytest.mark.parametrize("driver", ["gelsy", "gelsd", "gelss"])
def test_lstsq_wide(rng, driver):
    a, b = rand(rng, 3, 5), rand(rng, 3, 2)
    check(lambda L, a, b: L.linalg.lstsq(a, b, driver=driver), a, b)


@pytest.mark.parametrize("driver", ["gelsy", "gelsd", "gelss"])
@pytest.mark.parametrize("rcond", [1e-6, 1e-3])
def test_lstsq_rcond_rank_deficient(rng, driver, rcond):
    # rank two up to 1e-10: every rcond here cuts the same singular values in any LAPACK
    a = rand(rng, 6, 2) @ rand(rng, 2, 4) + 1e-10 * rand(rng, 6, 4)
    b = rand(rng, 6, 3)

    def fn(L, a, b):
        r = L.linalg.lstsq(a, b, rcond=rcond, driver=driver)
        return r.solution, r.rank, r.singular_values
    out = check(fn, a, b, rtol=1e-6, atol=1e-7)
    assert int(out[1]) == 2


@pytest.mark.parametrize("driver", ["gelsd", "gelss", "gels", "gelsy"])
def test_lstsq_residuals_empty_when_rank_deficient(rng, driver):
    """torch fills residuals only where every matrix has full rank (gelsd, gelss): a
    data-dependent shape, applied eagerly."""
    a = np.stack([rand(rng, 6, 4), rand(rng, 6, 2) @ rand(rng, 2, 4)])
    b = rand(rng, 2, 6, 3)
    check(lambda L, a, b: L.linalg.lstsq(a, b, rcond=1e-6, driver=driver).residuals.shape,
          a, b)
    check(lambda L, a, b: L.linalg.lstsq(a, b, rcond=1e-6, driver=driver).residuals, a[:1],
          b[:1])


def test_traced_lstsq_keeps_the_static_residuals(rng):
    """Under tracing the ranks have no values: the graph keeps the op's shape."""
    import ember.fx
    a, b = rand(rng, 6, 2) @ rand(rng, 2, 4), rand(rng, 6, 3)
    gm = ember.fx.symbolic_trace(lambda a, b: ember.linalg.lstsq(a, b, driver="gelsd")[0])
    out = gm(ember.tensor(a), ember.tensor(b))
    np.testing.assert_allclose(out.numpy(), np.linalg.lstsq(a, b, rcond=None)[0], atol=1e-8)


@pytest.mark.parametrize("dtype", ["float32", "complex64", "complex128"])
def test_lstsq_dtypes(rng, dtype):
    a = rand(rng, 2, 5, 3, dtype=DTYPES[dtype])
    b = rand(rng, 2, 5, 1, dtype=DTYPES[dtype])
    check(lambda L, a, b: L.linalg.lstsq(a, b), a, b, rtol=1e-3, atol=1e-3)


def test_lstsq_broadcasts_batches(rng):
    check(lambda L, a, b: L.linalg.lstsq(a, b, driver="gelsd"), rand(rng, 1, 5, 3),
          rand(rng, 4, 5, 2))


def test_torch_lstsq_vector_rhs(rng):
    # torch.linalg.lstsq takes a 1-D B when A is 2-D? torch rejects it; the suite
    # keeps to the 2-D case and checks the solution's value only
    a, b = rand(rng, 5, 3), rand(rng, 5, 1)
    check(lambda L, a, b: L.linalg.lstsq(a, b).solution, a, b)


# --- inv --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("batch", BATCHES + [(0,)])
def test_inv(rng, dtype, batch):
    check(lambda L, a: L.linalg.inv(a), well_conditioned(rng, *batch, 3, 3,
                                                          dtype=DTYPES[dtype]))


def test_inv_ex_reports_each_singular_matrix(rng):
    a = well_conditioned(rng, 3, 3, 3)
    a[1, :, 2] = 0.0
    a[2, 0] = a[2, 1]
    out = ember.linalg.inv_ex(ember.tensor(a))
    t = torch.linalg.inv_ex(torch.tensor(a))
    np.testing.assert_array_equal(out.info.numpy() != 0, t.info.numpy() != 0)
    check(lambda L, a: L.linalg.inv_ex(a), a[:1])


def test_inv_0x0_and_top_level_inverse(rng):
    check(lambda L, a: L.linalg.inv(a), np.zeros((0, 0)))
    check(lambda L, a: L.inverse(a), well_conditioned(rng, 2, 4, 4))
    check(lambda L, a: a.inverse(), well_conditioned(rng, 4, 4))


# --- det / slogdet / logdet -------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("batch", BATCHES)
def test_det_slogdet(rng, dtype, batch):
    a = rand(rng, *batch, 4, 4, dtype=DTYPES[dtype])
    check(lambda L, a: L.linalg.det(a), a)
    check(lambda L, a: L.linalg.slogdet(a), a)
    check(lambda L, a: L.det(a), a)


@pytest.mark.parametrize("fn", ["det", "slogdet", "logdet"])
@pytest.mark.parametrize("shape", [(0, 0), (0, 3, 3), (2, 0, 0), (3, 1, 1)])
def test_det_family_empty_and_1x1(rng, fn, shape):
    a = np.abs(rand(rng, *shape)) + 0.5
    call = {"det": lambda L, a: L.linalg.det(a), "slogdet": lambda L, a: L.linalg.slogdet(a),
            "logdet": lambda L, a: L.logdet(a)}[fn]
    check(call, a)


@pytest.mark.parametrize("fn", ["det", "slogdet", "logdet"])
def test_det_family_singular(fn):
    a = np.array([[[1.0, 2.0], [2.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
    call = {"det": lambda L, a: L.linalg.det(a), "slogdet": lambda L, a: L.linalg.slogdet(a),
            "logdet": lambda L, a: L.logdet(a)}[fn]
    check(call, a)


def test_det_negative_and_logdet_nan(rng):
    a = np.array([[0.0, 1.0], [1.0, 0.0]])                 # det -1
    check(lambda L, a: L.linalg.det(a), a)
    check(lambda L, a: L.linalg.slogdet(a), a)
    check(lambda L, a: L.logdet(a), a)                      # log of a negative: nan
    check(lambda L, a: L.slogdet(a), a)


def test_det_of_complex_slogdet_sign_is_unit(rng):
    a = rand(rng, 3, 3, dtype=np.complex128)
    out = check(lambda L, a: L.linalg.slogdet(a), a)
    np.testing.assert_allclose(np.abs(out.sign.numpy()), 1.0)


# --- cholesky ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky(rng, dtype, upper):
    a = spd(rng, 2, 3, 3, dtype=DTYPES[dtype])
    check(lambda L, a: L.linalg.cholesky(a, upper=upper), a)
    check(lambda L, a: L.linalg.cholesky_ex(a, upper=upper), a)


@pytest.mark.parametrize("upper", [False, True])
def test_torch_cholesky_upper(rng, upper):
    check(lambda L, a: L.cholesky(a, upper=upper), spd(rng, 4, 4))
    check(lambda L, a: L.cholesky(a, upper), spd(rng, 2, 4, 4))


def test_cholesky_ex_info_names_the_failing_minor():
    a = np.stack([np.eye(3), np.diag([1.0, -1.0, 1.0]), np.diag([1.0, 1.0, 0.0])])
    e = ember.linalg.cholesky_ex(ember.tensor(a))
    t = torch.linalg.cholesky_ex(torch.tensor(a))
    np.testing.assert_array_equal(e.info.numpy(), t.info.numpy())
    assert e.info.dtype == ember.int32


def test_cholesky_empty():
    check(lambda L, a: L.linalg.cholesky(a), np.zeros((0, 0)))
    check(lambda L, a: L.linalg.cholesky_ex(a), np.zeros((2, 0, 0)))


@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_solve_and_inverse(rng, upper):
    a = spd(rng, 2, 3, 3)
    f = np.linalg.cholesky(a)
    if upper:
        f = np.conj(np.swapaxes(f, -1, -2))
    check(lambda L, b, f: L.cholesky_solve(b, f, upper=upper), rand(rng, 2, 3, 2), f)
    check(lambda L, f: L.cholesky_inverse(f[0], upper=upper), f)


# --- solve_triangular / triangular_solve ------------------------------------------------

@pytest.mark.parametrize("upper", [False, True])
@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("unitriangular", [False, True])
def test_solve_triangular(rng, upper, left, unitriangular):
    a = triangular(rng, 2, 3, 3, upper=upper)
    b = rand(rng, 2, 3, 4) if left else rand(rng, 2, 4, 3)
    check(lambda L, a, b: L.linalg.solve_triangular(a, b, upper=upper, left=left,
                                                    unitriangular=unitriangular), a, b)


@pytest.mark.parametrize("dtype", ["float32", "complex64", "complex128"])
def test_solve_triangular_dtypes_and_broadcast(rng, dtype):
    a = triangular(rng, 1, 3, 3, upper=True, dtype=DTYPES[dtype])
    b = rand(rng, 4, 3, 2, dtype=DTYPES[dtype])
    check(lambda L, a, b: L.linalg.solve_triangular(a, b, upper=True), a, b)


# --- LU family --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 3), (3, 5)])
def test_lu_and_lu_factor(rng, dtype, shape):
    a = rand(rng, *shape, dtype=DTYPES[dtype])
    check(lambda L, a: L.linalg.lu(a), a)
    check(lambda L, a: L.linalg.lu_factor(a), a)
    check(lambda L, a: L.linalg.lu_factor_ex(a), a)


def test_lu_pivot_false_and_unpack(rng):
    a = well_conditioned(rng, 2, 3, 3)
    # torch's CPU kernel has no unpivoted LU: ember refuses it the same way
    check_raises(lambda L, a: L.linalg.lu(a, pivot=False), a, words=("pivot",))
    check_raises(lambda L, a: L.linalg.lu_factor_ex(a, pivot=False), a, words=("pivot",))
    check(lambda L, a: L.lu_unpack(*L.linalg.lu_factor(a)), a)
    check(lambda L, a: L.lu_unpack(*L.linalg.lu_factor(a), unpack_data=False), a)


def test_lu_factor_ex_singular_info(rng):
    a = np.zeros((2, 3, 3))
    a[0] = np.eye(3)
    check(lambda L, a: L.linalg.lu_factor_ex(a).info, a)


@pytest.mark.parametrize("left", [True, False])
@pytest.mark.parametrize("adjoint", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_lu_solve(rng, left, adjoint, dtype):
    a = well_conditioned(rng, 2, 3, 3, dtype=DTYPES[dtype])
    b = rand(rng, 2, 3, 2, dtype=DTYPES[dtype]) if left else \
        rand(rng, 2, 2, 3, dtype=DTYPES[dtype])

    def fn(L, a, b):
        lu, piv = L.linalg.lu_factor(a)
        return L.linalg.lu_solve(lu, piv, b, left=left, adjoint=adjoint)
    check(fn, a, b)


def test_torch_lu_and_lu_solve(rng):
    a, b = well_conditioned(rng, 3, 3), rand(rng, 3, 2)
    check(lambda L, a: L.linalg.lu_factor(a), a)
    check(lambda L, a, b: L.lu_solve(b, *L.linalg.lu_factor(a)), a, b)


# --- LDL --------------------------------------------------------------------------------

@pytest.mark.parametrize("hermitian", [False, True])
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_ldl_factor_and_solve(rng, hermitian, dtype):
    h = rand(rng, 2, 4, 4, dtype=DTYPES[dtype])
    a = h + (np.conj(np.swapaxes(h, -1, -2)) if hermitian else np.swapaxes(h, -1, -2))
    b = rand(rng, 2, 4, 2, dtype=DTYPES[dtype])

    def fn(L, a, b):
        ld, piv = L.linalg.ldl_factor(a, hermitian=hermitian)
        return L.linalg.ldl_solve(ld, piv, b, hermitian=hermitian)
    check(fn, a, b)
    check(lambda L, a: L.linalg.ldl_factor_ex(a, hermitian=hermitian), a)


# --- tensorinv / tensorsolve ------------------------------------------------------------

@pytest.mark.parametrize("shape,ind", [((4, 6, 8, 3), 2), ((6, 4, 24), 2), ((24, 4, 6), 1)])
def test_tensorinv(rng, shape, ind):
    n = int(np.prod(shape[:ind]))
    a = well_conditioned(rng, n, n).reshape(shape)
    check(lambda L, a: L.linalg.tensorinv(a, ind=ind), a)


@pytest.mark.parametrize("dims", [None, (0,), (1,)])
def test_tensorsolve(rng, dims):
    a = well_conditioned(rng, 6, 6).reshape(2, 3, 6)       # a's last dim is x's
    if dims == (0,):
        a = np.ascontiguousarray(np.moveaxis(a, 2, 0))      # (6, 2, 3): dims moves it back
    if dims == (1,):
        a = np.ascontiguousarray(np.moveaxis(a, 2, 1))      # (2, 6, 3)
    b_shape = (2, 3) if dims != (1,) else (2, 3)
    check(lambda L, a, b: L.linalg.tensorsolve(a, b, dims=dims), a, rand(rng, *b_shape))


# --- gradients --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["solve", "solve_left_false", "inv", "det", "slogdet",
                                  "logdet", "cholesky", "cholesky_upper", "lstsq",
                                  "solve_triangular", "lu_factor", "lu_solve",
                                  "tensorinv", "cholesky_solve", "inv_ex", "cholesky_ex"])
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_gradients_match_torch(rng, name, dtype):
    dt = DTYPES[dtype]
    a, b = well_conditioned(rng, 2, 3, 3, dtype=dt), rand(rng, 2, 3, 2, dtype=dt)
    s = spd(rng, 2, 3, 3, dtype=dt)
    cases = {
        "solve": (lambda L, a, b: L.linalg.solve(a, b), a, b),
        "solve_left_false": (lambda L, a, b: L.linalg.solve(a, b.mT, left=False), a, b),
        "inv": (lambda L, a: L.linalg.inv(a), a),
        "inv_ex": (lambda L, a: L.linalg.inv_ex(a).inverse, a),
        "det": (lambda L, a: L.linalg.det(a), a),
        "slogdet": (lambda L, a: L.linalg.slogdet(a).logabsdet, a),
        "logdet": (lambda L, s: L.logdet(s), s),
        "cholesky": (lambda L, s: L.linalg.cholesky(s), s),
        "cholesky_ex": (lambda L, s: L.linalg.cholesky_ex(s).L, s),
        "cholesky_upper": (lambda L, s: L.linalg.cholesky(s, upper=True), s),
        "lstsq": (lambda L, a, b: L.linalg.lstsq(a[..., :2], b).solution, a, b),
        "solve_triangular": (lambda L, a, b: L.linalg.solve_triangular(
            a.triu(), b, upper=True), a, b),
        "lu_factor": (lambda L, a: L.linalg.lu_factor(a).LU, a),
        "lu_solve": (lambda L, a, b: L.linalg.lu_solve(*L.linalg.lu_factor(a), b), a, b),
        "tensorinv": (lambda L, a: L.linalg.tensorinv(a[0].reshape(3, 3), ind=1), a),
        "cholesky_solve": (lambda L, s, b: L.cholesky_solve(b, L.linalg.cholesky(s)), s, b),
    }
    fn, *args = cases[name]
    check_grad(fn, *args)
