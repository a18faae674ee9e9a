"""The LU family and torch's top-level linear-algebra functions (issue 13) against torch:
values, float64 gradients through a random cotangent, named-tuple fields."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember

from tests.oracle import assert_close


def _both(a):
    return ember.tensor(a.copy()).requires_grad_(True), torch.from_numpy(a.copy()).requires_grad_(True)


def _check(e_outs, t_outs, e_ins, t_ins, rng, grad=True, tol=1e-9):
    e_outs = [o for o in e_outs]
    t_outs = [o for o in t_outs]
    for e, t in zip(e_outs, t_outs):
        assert_close(e.detach(), t.detach(), rtol=tol, atol=tol)
    if not grad:
        return
    pairs = [(e, t) for e, t in zip(e_outs, t_outs) if t.requires_grad]
    cots = [rng.standard_normal(tuple(t.shape)) for _, t in pairs]
    cots = [c + 1j * rng.standard_normal(c.shape) if t.is_complex() else c
            for c, (_, t) in zip(cots, pairs)]
    eg = ember.autograd.grad([e for e, _ in pairs], e_ins, [ember.tensor(c) for c in cots])
    tg = torch.autograd.grad([t for _, t in pairs], t_ins, [torch.from_numpy(c) for c in cots])
    for a, b in zip(eg, tg):
        assert_close(a, b, rtol=1e-7, atol=1e-9, what="grad")


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_lu_factor_lu_and_lu_unpack(dtype, rng):
    a = rng.standard_normal((2, 4, 4)).astype(dtype)
    if dtype == np.complex128:
        a = a + 1j * rng.standard_normal((2, 4, 4))
    e, t = _both(a)
    el, tl = ember.linalg.lu_factor(e), torch.linalg.lu_factor(t)
    assert np.array_equal(el.pivots.numpy(), tl.pivots.numpy())
    _check([el.LU], [tl.LU], [e], [t], rng)
    ep, tp = ember.linalg.lu(e), torch.linalg.lu(t)
    assert not ep.P.requires_grad
    _check([ep.P, ep.L, ep.U], [tp.P, tp.L, tp.U], [e], [t], rng)


@pytest.mark.parametrize("shape", [(3, 5), (5, 3)])
def test_lu_of_rectangular_and_singular_matrices(shape, rng):
    a = rng.standard_normal(shape)
    a[:, 1] = 0
    el, tl = ember.linalg.lu_factor_ex(ember.tensor(a)), torch.linalg.lu_factor_ex(
        torch.from_numpy(a))
    for x, y in zip(el, tl):
        assert_close(x, y, rtol=1e-12, atol=1e-12)
    P, L, U = ember.lu_unpack(el.LU, el.pivots)
    assert_close(P @ L @ U, a, rtol=1e-12, atol=1e-12, what="P L U")


@pytest.mark.parametrize("left,adjoint", [(True, False), (True, True), (False, False),
                                          (False, True)])
def test_lu_solve(left, adjoint, rng):
    a, b = rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 3, 2) if left else (2, 2, 3))
    (ea, ta), (eb, tb) = _both(a), _both(b)
    elu, tlu = ember.linalg.lu_factor(ea), torch.linalg.lu_factor(ta)
    eo = ember.linalg.lu_solve(elu.LU, elu.pivots, eb, left=left, adjoint=adjoint)
    to = torch.linalg.lu_solve(tlu.LU, tlu.pivots, tb, left=left, adjoint=adjoint)
    _check([eo], [to], [ea, eb], [ta, tb], rng)
    assert_close(ember.lu_solve(eb, elu.LU, elu.pivots) if left else eo.detach(),
                 torch.lu_solve(tb, tlu.LU, tlu.pivots) if left else to.detach(), 1e-9, 1e-9)


def test_solve_ex_reports_singular_input(rng):
    a, b = rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 3))
    a[1, :, 2] = 0
    eo, to = ember.linalg.solve_ex(ember.tensor(a), ember.tensor(b)), torch.linalg.solve_ex(
        torch.from_numpy(a), torch.from_numpy(b))
    assert np.array_equal(eo.info.numpy(), to.info.numpy())
    assert_close(eo.result[0], to.result[0], rtol=1e-10, atol=1e-12)


def test_top_level_svd_qr_cholesky(rng):
    a = rng.standard_normal((4, 3))
    e, t = _both(a)
    for some in (True, False):
        eu, es, ev = ember.svd(e, some=some)
        tu, ts, tv = torch.svd(t, some=some)
        assert tuple(ev.shape) == tuple(tv.shape) and tuple(eu.shape) == tuple(tu.shape)
        assert_close(es, ts.detach(), rtol=1e-12, atol=1e-12)
        assert_close((eu[:, :3] * es) @ ev[:, :3].mT, a, rtol=1e-10, atol=1e-10)
        eq, er = ember.qr(e, some=some)
        tq, tr = torch.qr(t, some=some)
        assert_close(eq, tq.detach(), rtol=1e-10, atol=1e-10)
    z = ember.svd(e, compute_uv=False)
    assert float(z.U.abs().sum()) == 0 and tuple(z.V.shape) == (3, 3)
    spd = a.T @ a + np.eye(3)
    for upper in (False, True):
        assert_close(ember.cholesky(ember.tensor(spd), upper=upper),
                     torch.cholesky(torch.from_numpy(spd), upper=upper), 1e-12, 1e-12)


@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_solve_and_inverse(upper, rng):
    a = rng.standard_normal((3, 3))
    factor = np.linalg.cholesky(a @ a.T + 3 * np.eye(3))
    factor = factor.T.copy() if upper else factor
    b = rng.standard_normal((3, 2))
    eo = ember.cholesky_solve(ember.tensor(b), ember.tensor(factor), upper=upper)
    to = torch.cholesky_solve(torch.from_numpy(b), torch.from_numpy(factor), upper=upper)
    assert_close(eo, to, rtol=1e-10, atol=1e-12)
    assert_close(ember.cholesky_inverse(ember.tensor(factor), upper=upper),
                 torch.cholesky_inverse(torch.from_numpy(factor), upper=upper), 1e-10, 1e-12)


@pytest.mark.parametrize("upper,transpose,unit", [(True, False, False), (False, True, False),
                                                  (True, True, True)])
def test_triangular_solve(upper, transpose, unit, rng):
    a, b = rng.standard_normal((3, 3)) + 3 * np.eye(3), rng.standard_normal((3, 2))
    (ea, ta), (eb, tb) = _both(a), _both(b)
    eo = ember.triangular_solve(eb, ea, upper=upper, transpose=transpose, unitriangular=unit)
    to = torch.triangular_solve(tb, ta, upper=upper, transpose=transpose, unitriangular=unit)
    _check([eo.solution, eo.cloned_coefficient], [to.solution, to.cloned_coefficient],
           [ea, eb], [ta, tb], rng)


def test_logdet_pinverse_matrix_exp_cross_vecdot(rng):
    a = rng.standard_normal((3, 3, 3))
    e, t = ember.tensor(a), torch.from_numpy(a)
    assert_close(ember.logdet(e), torch.logdet(t), rtol=1e-10, atol=1e-12)
    z = a + 1j * rng.standard_normal((3, 3, 3))
    assert_close(ember.logdet(ember.tensor(z)), torch.logdet(torch.from_numpy(z)), 1e-10, 1e-12)
    assert_close(ember.pinverse(e), torch.pinverse(t), rtol=1e-9, atol=1e-10)
    assert_close(ember.matrix_exp(e * 0.3), torch.matrix_exp(t * 0.3), rtol=1e-10, atol=1e-12)
    b = rng.standard_normal((3, 3, 3))
    assert_close(ember.cross(e, ember.tensor(b)), torch.cross(t, torch.from_numpy(b)), 1e-12,
                 1e-12)
    # (torch refuses mixed dtypes here, and so does ember: both sides cast b)
    assert_close(ember.linalg.vecdot(ember.tensor(z), ember.tensor(b).to(ember.complex128)),
                 torch.linalg.vecdot(torch.from_numpy(z), torch.from_numpy(b).to(torch.complex128)),
                 1e-12, 1e-12)
    assert_close(ember.linalg.diagonal(e, offset=1), torch.linalg.diagonal(t, offset=1), 0, 0)


@pytest.mark.parametrize("shape,complex_", [((3, 5), False), ((5, 3), False),
                                            ((2, 3, 6), True), ((2, 6, 3), True)])
def test_lu_factor_gradient_of_non_square_matches_torch(shape, complex_):
    rng = np.random.default_rng(3)
    a = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if complex_ else 0)
    cot = rng.standard_normal(shape) + (1j * rng.standard_normal(shape) if complex_ else 0)
    ta, ea = torch.tensor(a, requires_grad=True), ember.tensor(a, requires_grad=True)
    want, = torch.autograd.grad(
        (torch.linalg.lu_factor(ta).LU * torch.tensor(cot).conj()).real.sum(), ta)
    got, = ember.autograd.grad(
        [(ember.linalg.lu_factor(ea).LU * ember.tensor(cot).conj()).real.sum()], [ea])
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-12)
