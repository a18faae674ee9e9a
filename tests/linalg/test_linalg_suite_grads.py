"""linalg suite, gradients beyond the per-family files: broadcasting right-hand sides,
every lstsq output, singular det (the SVD adjugate), complex svd/eig reconstructions,
cholesky_inverse, triangular_solve, the LU family, tensorsolve, norms at ties and zeros,
Householder products and the matmul family, against torch's gradients."""
from __future__ import annotations

import numpy as np
import pytest

from tests.linalg.suite_util import check_grad, hermitian, rand, spd, well_conditioned

SINGULAR = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]])


def _cases(rng):  # noqa: PLR0915 - one table: name -> (fn, *inputs)
    sing = SINGULAR
    return {
        "solve broadcast vec": (lambda L, a, b: L.linalg.solve(a, b),
            well_conditioned(rng, 2, 3, 3), rand(rng, 3)),
        "solve broadcast batch": (lambda L, a, b: L.linalg.solve(a, b),
            well_conditioned(rng, 1, 3, 3), rand(rng, 4, 3, 2)),
        "solve left False": (lambda L, a, b: L.linalg.solve(a, b, left=False),
            well_conditioned(rng, 2, 3, 3), rand(rng, 2, 4, 3)),
        "lstsq gelsd": (lambda L, a, b: L.linalg.lstsq(a, b, driver='gelsd').solution,
            rand(rng, 5, 3), rand(rng, 5, 2)),
        "lstsq wide": (lambda L, a, b: L.linalg.lstsq(a, b).solution,
            rand(rng, 3, 5), rand(rng, 3, 2)),
        "lstsq residuals": (lambda L, a, b: L.linalg.lstsq(a, b, driver='gelsd').residuals,
            rand(rng, 5, 3), rand(rng, 5, 2)),
        "lstsq complex": (lambda L, a, b: L.linalg.lstsq(a, b, driver='gelsd').solution,
            rand(rng, 5, 3, dtype=np.complex128), rand(rng, 5, 2, dtype=np.complex128)),
        "det singular": (lambda L, a: L.linalg.det(a),
            sing),
        "det rank n-2": (lambda L, a: L.linalg.det(a),
            np.ones((3, 3))),
        "slogdet complex": (lambda L, a: L.linalg.slogdet(a).logabsdet,
            rand(rng, 3, 3, dtype=np.complex128)),
        "slogdet sign complex": (lambda L, a: L.linalg.slogdet(a).sign,
            rand(rng, 3, 3, dtype=np.complex128)),
        "det complex batched": (lambda L, a: L.linalg.det(a),
            rand(rng, 2, 3, 3, dtype=np.complex128)),
        "logdet real": (lambda L, a: L.logdet(a),
            spd(rng, 2, 3, 3)),
        "torch.svd V": (lambda L, a: (lambda u, s, v: (u*s.unsqueeze(-2))@v.mT)(*L.svd(a)),
            rand(rng, 4, 3)),
        "svd complex usv": (lambda L, a:
            (lambda u, s, vh: (u * s.unsqueeze(-2).to(u.dtype)) @ vh)(
                *L.linalg.svd(a, full_matrices=False)),
            rand(rng, 3, 4, dtype=np.complex128)),
        "cholesky_inverse": (lambda L, a: L.cholesky_inverse(L.linalg.cholesky(a)),
            spd(rng, 3, 3)),
        "cholesky_inverse upper": (lambda L, a:
            L.cholesky_inverse(L.linalg.cholesky(a, upper=True), upper=True),
            spd(rng, 3, 3)),
        "triangular_solve": (lambda L, b, a: L.triangular_solve(b, a.triu()).solution,
            rand(rng, 3, 2), well_conditioned(rng, 3, 3)),
        "triangular_solve transpose": (lambda L, b, a:
            L.triangular_solve(b, a.triu(), transpose=True).solution,
            rand(rng, 3, 2), well_conditioned(rng, 3, 3)),
        "lu_unpack L U": (lambda L, a: L.lu_unpack(*L.linalg.lu_factor(a))[1:],
            rand(rng, 3, 3)),
        "linalg.lu": (lambda L, a: L.linalg.lu(a)[1:],
            rand(rng, 2, 4, 3)),
        "linalg.lu wide": (lambda L, a: L.linalg.lu(a)[1:],
            rand(rng, 3, 5)),
        "tensorsolve": (lambda L, a, b: L.linalg.tensorsolve(a, b),
            well_conditioned(rng, 6, 6).reshape(2, 3, 6), rand(rng, 2, 3)),
        "tensorinv": (lambda L, a: L.linalg.tensorinv(a, ind=2),
            well_conditioned(rng, 6, 6).reshape(2, 3, 6)),
        "vector_norm dtype": (lambda L, a: L.linalg.vector_norm(a, dtype=L.float64),
            rand(rng, 4, dtype=np.float32)),
        "matrix_norm fro complex dim": (lambda L, a: L.linalg.matrix_norm(a, dim=(0, 2)),
            rand(rng, 2, 3, 4, dtype=np.complex128)),
        "norm nuc keepdim": (lambda L, a: L.linalg.norm(a, 'nuc', keepdim=True),
            rand(rng, 3, 4)),
        "cond -2 rect": (lambda L, a: L.linalg.cond(a, -2),
            rand(rng, 4, 3)),
        "eigvalsh U": (lambda L, a: L.linalg.eigvalsh(a, 'U'),
            hermitian(rng, 3, 3)),
        "eigh U vectors proj": (lambda L, a:
            (lambda v: v[..., :1]@v[..., :1].mH)(L.linalg.eigh(a, 'U')[1]),
            hermitian(rng, 3, 3)),
        "eig complex vectors proj": (lambda L, a:
            (lambda w, v: (v*w.unsqueeze(-2))@L.linalg.inv(v))(*L.linalg.eig(a)),
            rand(rng, 3, 3)),
        "eigvals real": (lambda L, a: L.linalg.eigvals(a),
            rand(rng, 2, 3, 3)),
        "matrix_exp complex": (lambda L, a: L.linalg.matrix_exp(a),
            rand(rng, 2, 3, 3, dtype=np.complex128)),
        "matrix_power 0": (lambda L, a: L.linalg.matrix_power(a, 0),
            rand(rng, 3, 3)),
        "matrix_power -1 complex": (lambda L, a: L.linalg.matrix_power(a, -1),
            well_conditioned(rng, 3, 3, dtype=np.complex128)),
        "pinv rank deficient": (lambda L, a: L.linalg.pinv(a),
            rand(rng, 4, 2)@rand(rng, 2, 4)),
        "pinv wide complex": (lambda L, a: L.linalg.pinv(a),
            rand(rng, 2, 4, dtype=np.complex128)),
        "householder complex": (lambda L, a, t: L.linalg.householder_product(a, t),
            rand(rng, 4, 3, dtype=np.complex128), rand(rng, 3, dtype=np.complex128)*0.3),
        "ormqr": (lambda L, a, t, c: L.ormqr(a, t, c),
            rand(rng, 4, 3), rand(rng, 3)*0.3, rand(rng, 4, 2)),
        "vander complex": (lambda L, x: L.linalg.vander(x),
            rand(rng, 3, dtype=np.complex128)),
        "kron complex": (lambda L, a, b: L.kron(a, b),
            rand(rng, 2, 2, dtype=np.complex128), rand(rng, 2, dtype=np.complex128)),
        "einsum trace": (lambda L, a: L.einsum('ii', a),
            rand(rng, 3, 3)),
        "einsum diag": (lambda L, a: L.einsum('ii->i', a),
            rand(rng, 3, 3)),
        "einsum outer broadcast": (lambda L, a, b: L.einsum('...i, ...j->...ij', a, b),
            rand(rng, 2, 3), rand(rng, 4)),
        "tensordot 0": (lambda L, a, b: L.tensordot(a, b, dims=0),
            rand(rng, 2), rand(rng, 3)),
        "addbmm": (lambda L, c, a, b: L.addbmm(c, a, b, beta=0.3, alpha=1.5),
            rand(rng, 2, 4), rand(rng, 3, 2, 3), rand(rng, 3, 3, 4)),
        "addmv": (lambda L, c, a, v: L.addmv(c, a, v, beta=0.3, alpha=1.5),
            rand(rng, 2), rand(rng, 2, 3), rand(rng, 3)),
        "mv complex": (lambda L, a, v: L.mv(a, v),
            rand(rng, 2, 3, dtype=np.complex128), rand(rng, 3, dtype=np.complex128)),
        "vdot": (lambda L, a, b: L.vdot(a, b),
            rand(rng, 3, dtype=np.complex128), rand(rng, 3, dtype=np.complex128)),
        "dot complex": (lambda L, a, b: L.dot(a, b),
            rand(rng, 3, dtype=np.complex128), rand(rng, 3, dtype=np.complex128)),
        "matmul 1d 1d": (lambda L, a, b: L.matmul(a, b),
            rand(rng, 3), rand(rng, 3)),
        "matmul 1d nd": (lambda L, a, b: L.matmul(a, b),
            rand(rng, 3), rand(rng, 2, 3, 2)),
        "matmul nd 1d": (lambda L, a, b: L.matmul(a, b),
            rand(rng, 2, 2, 3), rand(rng, 3)),
        "bmm": (lambda L, a, b: L.bmm(a, b),
            rand(rng, 2, 2, 3), rand(rng, 2, 3, 2)),
        "linalg.diagonal": (lambda L, a: L.linalg.diagonal(a, dim1=0, dim2=2),
            rand(rng, 3, 2, 3)),
        "solve_ex": (lambda L, a, b: L.linalg.solve_ex(a, b).result,
            well_conditioned(rng, 3, 3), rand(rng, 3, 2)),
        "lu_solve adjoint": (lambda L, a, b:
            L.linalg.lu_solve(*L.linalg.lu_factor(a), b, adjoint=True),
            well_conditioned(rng, 3, 3), rand(rng, 3, 2)),
        "lu_solve right": (lambda L, a, b:
            L.linalg.lu_solve(*L.linalg.lu_factor(a), b, left=False),
            well_conditioned(rng, 3, 3), rand(rng, 2, 3)),
        "inv complex batch": (lambda L, a: L.linalg.inv(a),
            well_conditioned(rng, 2, 3, 3, dtype=np.complex128)),
        "det batch0": (lambda L, a: L.linalg.det(a),
            np.zeros((0, 3, 3))),
        "inv 0x0": (lambda L, a: L.linalg.inv(a),
            np.zeros((0, 0))),
        "det singular batch": (lambda L, a: L.linalg.det(a),
            np.stack([sing, np.eye(3) + sing * 0.1])),
        "vector_norm inf ties": (lambda L, a: L.linalg.vector_norm(a, float('inf')),
            np.array([1.0, -2.0, 2.0])),
        "matrix_norm 1 ties": (lambda L, a: L.linalg.matrix_norm(a, 1),
            np.array([[1.0, -1.0], [1.0, 1.0]])),
        "norm zero vec": (lambda L, a: L.linalg.norm(a),
            np.zeros(3)),
        "matrix_norm nuc rank def": (lambda L, a: L.linalg.matrix_norm(a, 'nuc'),
            rand(rng, 4, 2)@rand(rng, 2, 4)),
        "svdvals wide batch": (lambda L, a: L.linalg.svdvals(a),
            rand(rng, 2, 2, 4)),
    }


NAMES = sorted(_cases(np.random.default_rng(0)))


def _single_cases(rng):  # noqa: PLR0915 - float32/complex64: gradients keep the dtype
    f, c = np.float32, np.complex64
    return {
        "inv f32": (lambda L, a: L.linalg.inv(a),
            well_conditioned(rng, 2, 3, 3, dtype=f)),
        "det c64": (lambda L, a: L.linalg.det(a),
            well_conditioned(rng, 3, 3, dtype=c)),
        "solve f32": (lambda L, a, b: L.linalg.solve(a, b),
            well_conditioned(rng, 3, 3, dtype=f), rand(rng, 3, 2, dtype=f)),
        "cholesky f32": (lambda L, a: L.linalg.cholesky(a),
            spd(rng, 3, 3, dtype=f)),
        "eigvalsh f32": (lambda L, a: L.linalg.eigvalsh(a),
            hermitian(rng, 3, 3, dtype=f)),
        "svdvals c64": (lambda L, a: L.linalg.svdvals(a),
            rand(rng, 3, 2, dtype=c)),
        "norm f32": (lambda L, a: L.linalg.norm(a),
            rand(rng, 3, 3, dtype=f)),
        "matrix_norm nuc f32": (lambda L, a: L.linalg.matrix_norm(a, 'nuc'),
            rand(rng, 3, 3, dtype=f)),
        "vector_norm dtype f64 from f32": (lambda L, a: L.linalg.vector_norm(a, dtype=L.float64),
            rand(rng, 3, dtype=f)),
        "matmul f32": (lambda L, a, b: L.matmul(a, b),
            rand(rng, 2, 3, dtype=f), rand(rng, 3, dtype=f)),
        "pinv f32": (lambda L, a: L.linalg.pinv(a),
            rand(rng, 3, 2, dtype=f)),
        "matrix_exp c64": (lambda L, a: L.linalg.matrix_exp(a),
            rand(rng, 2, 2, dtype=c)),
        "lstsq f32": (lambda L, a, b: L.linalg.lstsq(a, b).solution,
            rand(rng, 4, 2, dtype=f), rand(rng, 4, 1, dtype=f)),
        "slogdet f32": (lambda L, a: L.linalg.slogdet(a).logabsdet,
            well_conditioned(rng, 3, 3, dtype=f)),
        "qr f32": (lambda L, a: L.linalg.qr(a),
            rand(rng, 3, 2, dtype=f)),
        "cross f32": (lambda L, a, b: L.linalg.cross(a, b),
            rand(rng, 3, dtype=f), rand(rng, 3, dtype=f)),
        "vecdot c64": (lambda L, a, b: L.linalg.vecdot(a, b),
            rand(rng, 3, dtype=c), rand(rng, 3, dtype=c)),
    }


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_torch(rng, name):
    fn, *args = _cases(rng)[name]
    check_grad(fn, *args, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(_single_cases(np.random.default_rng(0))))
def test_single_precision_gradient_matches_torch(rng, name):
    fn, *args = _single_cases(rng)[name]
    check_grad(fn, *args, rtol=2e-3, atol=2e-4)


def test_vector_norm_order_zero_has_zero_gradient(rng):
    """torch leaves x.grad None for ord=0 (no path); ember's is zeros: the same update."""
    import ember
    x = ember.tensor(rand(rng, 3), requires_grad=True)
    ember.linalg.vector_norm(x, 0).backward()
    assert x.grad is None or not x.grad.numpy().any()


def _cofactors(a):
    n = a.shape[-1]
    c = np.empty_like(a)
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(a, i, 0), j, 1)
            c[i, j] = (-1) ** (i + j) * np.linalg.det(minor)
    return c


def test_det_gradient_of_a_complex_singular_matrix_is_the_cofactor_matrix():
    """torch 2.13 returns zeros here; the gradient of det is conj(cofactors) (g = 1), which
    is not zero for a rank n-1 matrix: ember follows the mathematics, checked by NumPy."""
    import ember
    a = SINGULAR.astype(np.complex128) * (1 + 1j)
    x = ember.tensor(a, requires_grad=True)
    (g,) = ember.autograd.grad(ember.linalg.det(x), [x], ember.tensor(1.0 + 0j))
    np.testing.assert_allclose(g.numpy(), np.conj(_cofactors(a)), atol=1e-10)
