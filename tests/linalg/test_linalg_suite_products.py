"""linalg suite, products: matmul/mm/bmm/mv/dot/vdot and the addmm family at edge shapes
(0-size, 1-D, broadcast batch dims), outer/inner/kron/tensordot/einsum common forms,
multi_dot, cross/linalg.cross (dim, broadcasting), vecdot, vander, linalg.diagonal, and
out= variants, against torch; with gradients and shape refusals."""
from __future__ import annotations

import numpy as np
import pytest

from tests.linalg.suite_util import DTYPES, check, check_grad, check_raises, rand

MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                 ((5, 2, 3), (3, 4)), ((3,), (5, 3, 4)), ((5, 2, 3), (3,)),
                 ((1, 2, 3), (5, 3, 4)), ((2, 1, 2, 3), (5, 3, 4)), ((0, 3), (3, 4)),
                 ((2, 0), (0, 4)), ((0, 2, 3), (3, 4)), ((2, 3), (3, 0)), ((0,), (0,))]


@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_shapes(rng, sa, sb):
    check(lambda L, a, b: L.matmul(a, b), rand(rng, *sa), rand(rng, *sb))
    check(lambda L, a, b: a @ b, rand(rng, *sa), rand(rng, *sb))


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_matmul_dtypes_and_linalg_alias(rng, dtype):
    a, b = rand(rng, 2, 3, 4, dtype=DTYPES[dtype]), rand(rng, 4, 2, dtype=DTYPES[dtype])
    check(lambda L, a, b: L.linalg.matmul(a, b), a, b)


def test_matmul_integer(rng):
    a, b = np.arange(6).reshape(2, 3), np.arange(12).reshape(3, 4)
    check(lambda L, a, b: L.matmul(a, b), a, b)
    check(lambda L, a, b: L.mm(a, b), a, b)


@pytest.mark.parametrize("sa,sb", [((2, 3), (3, 4)), ((0, 3), (3, 4)), ((2, 0), (0, 4))])
def test_mm(rng, sa, sb):
    check(lambda L, a, b: L.mm(a, b), rand(rng, *sa), rand(rng, *sb))


@pytest.mark.parametrize("sa,sb", [((2, 3, 4), (2, 4, 5)), ((0, 3, 4), (0, 4, 5)),
                                   ((2, 3, 0), (2, 0, 5))])
def test_bmm(rng, sa, sb):
    check(lambda L, a, b: L.bmm(a, b), rand(rng, *sa), rand(rng, *sb))


def test_mv_dot_vdot(rng):
    check(lambda L, a, v: L.mv(a, v), rand(rng, 3, 4), rand(rng, 4))
    check(lambda L, a, b: L.dot(a, b), rand(rng, 4), rand(rng, 4))
    c, d = rand(rng, 4, dtype=np.complex128), rand(rng, 4, dtype=np.complex128)
    check(lambda L, a, b: L.vdot(a, b), c, d)
    check(lambda L, a, b: L.dot(a, b), c, d)
    check(lambda L, a, b: L.dot(a, b), np.zeros(0), np.zeros(0))


@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, 2.0), (0, 1), (1, 0)])
def test_addmm_family(rng, beta, alpha):
    kw = dict(beta=beta, alpha=alpha)
    check(lambda L, c, a, b: L.addmm(c, a, b, **kw), rand(rng, 2, 4), rand(rng, 2, 3),
          rand(rng, 3, 4))
    check(lambda L, c, a, b: L.addmm(c, a, b, **kw), rand(rng, 4), rand(rng, 2, 3),
          rand(rng, 3, 4))                                  # broadcast input
    check(lambda L, c, a, b: L.baddbmm(c, a, b, **kw), rand(rng, 5, 2, 4),
          rand(rng, 5, 2, 3), rand(rng, 5, 3, 4))
    check(lambda L, c, a, b: L.addbmm(c, a, b, **kw), rand(rng, 2, 4), rand(rng, 5, 2, 3),
          rand(rng, 5, 3, 4))
    check(lambda L, c, a, v: L.addmv(c, a, v, **kw), rand(rng, 2), rand(rng, 2, 3),
          rand(rng, 3))
    check(lambda L, c, u, v: L.addr(c, u, v, **kw), rand(rng, 2, 3), rand(rng, 2),
          rand(rng, 3))


def test_addmm_beta_zero_ignores_nan(rng):
    c = np.full((2, 4), np.nan)
    check(lambda L, c, a, b: L.addmm(c, a, b, beta=0), c, rand(rng, 2, 3), rand(rng, 3, 4))


def test_addmm_empty_inner(rng):
    check(lambda L, c, a, b: L.addmm(c, a, b, beta=2.0), rand(rng, 2, 4), np.zeros((2, 0)),
          np.zeros((0, 4)))


# --- outer / inner / kron / tensordot / einsum ------------------------------------------

def test_outer_ger_inner(rng):
    check(lambda L, u, v: L.outer(u, v), rand(rng, 3), rand(rng, 4))
    check(lambda L, u, v: L.ger(u, v), rand(rng, 3), rand(rng, 4))
    check(lambda L, u, v: L.outer(u, v), np.zeros(0), rand(rng, 4))
    check(lambda L, a, b: L.inner(a, b), rand(rng, 2, 3), rand(rng, 4, 3))
    check(lambda L, a, b: L.inner(a, b), rand(rng, 3), rand(rng, 3))
    check(lambda L, a, b: L.inner(a, b), np.array(2.0), rand(rng, 2, 3))


@pytest.mark.parametrize("sa,sb", [((2, 3), (4, 5)), ((2,), (3, 4)), ((2, 1, 3), (3, 2)),
                                   ((0, 2), (3, 3)), ((2, 2), (2, 2, 2))])
def test_kron(rng, sa, sb):
    check(lambda L, a, b: L.kron(a, b), rand(rng, *sa), rand(rng, *sb))


@pytest.mark.parametrize("sa,sb,dims", [((2, 3, 4), (3, 4, 5), 2), ((2, 3), (3, 4), 1),
                                        ((2, 3), (4, 5), 0), ((2, 3, 4), (4, 3, 5),
                                                              ([1, 2], [1, 0])),
                                        ((3, 4), (4, 3), ([0, 1], [1, 0]))])
def test_tensordot(rng, sa, sb, dims):
    check(lambda L, a, b: L.tensordot(a, b, dims=dims), rand(rng, *sa), rand(rng, *sb))


@pytest.mark.parametrize("eq,shapes", [
    ("ij,jk->ik", [(2, 3), (3, 4)]), ("bij,bjk->bik", [(2, 2, 3), (2, 3, 4)]),
    ("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("ij->ji", [(2, 3)]), ("i,i->", [(3,), (3,)]),
    ("i,j->ij", [(2,), (3,)]), ("...ij,...jk->...ik", [(5, 2, 3), (3, 4)]),
    ("ij,ij->ij", [(2, 3), (2, 3)]), ("ijk->", [(2, 3, 4)]), ("ab,bc,cd->ad", [(2, 3), (3, 4),
                                                                               (4, 2)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]), ("i j , j k -> i k", [(2, 3), (3, 2)]),
    ("ij", [(2, 3)]), ("ba", [(2, 3)]), ("i...->...", [(2, 3, 4)])])
def test_einsum(rng, eq, shapes):
    arrays = [rand(rng, *s) for s in shapes]
    check(lambda L, *xs: L.einsum(eq, *xs), *arrays)


def test_einsum_list_operand_form(rng):
    a, b = rand(rng, 2, 3), rand(rng, 3, 4)
    check(lambda L, a, b: L.einsum("ij,jk", [a, b]), a, b)
    check(lambda L, a, b: L.einsum(a, [0, 1], b, [1, 2], [0, 2]), a, b)


# --- multi_dot --------------------------------------------------------------------------

@pytest.mark.parametrize("shapes", [[(2, 3), (3, 4)], [(3,), (3, 4), (4,)],
                                    [(3,), (3, 4), (4, 5)], [(2, 3), (3, 4), (4,)],
                                    [(5, 2), (2, 6), (6, 3), (3, 1)], [(0, 3), (3, 4)],
                                    [(2, 0), (0, 4), (4, 2)]])
def test_multi_dot(rng, shapes):
    arrays = [rand(rng, *s) for s in shapes]
    check(lambda L, *xs: L.linalg.multi_dot(list(xs)), *arrays)


def test_multi_dot_complex_and_tuple(rng):
    arrays = [rand(rng, 2, 3, dtype=np.complex128), rand(rng, 3, 2, dtype=np.complex128)]
    check(lambda L, a, b: L.linalg.multi_dot((a, b)), *arrays)


# --- cross / vecdot / vander / diagonal -------------------------------------------------

@pytest.mark.parametrize("sa,sb,dim", [((3,), (3,), -1), ((4, 3), (4, 3), -1),
                                       ((4, 3), (1, 3), -1), ((3, 4), (3, 4), 0),
                                       ((2, 3, 5), (1, 3, 1), 1), ((1, 3), (2, 3), -1)])
def test_linalg_cross(rng, sa, sb, dim):
    check(lambda L, a, b: L.linalg.cross(a, b, dim=dim), rand(rng, *sa), rand(rng, *sb))


def test_torch_cross_default_dim_is_first_size_3(rng):
    check(lambda L, a, b: L.cross(a, b, dim=1), rand(rng, 2, 3), rand(rng, 2, 3))
    check(lambda L, a, b: L.cross(a, b, dim=0), rand(rng, 3, 4), rand(rng, 3, 4))
    c = rand(rng, 4, 3, dtype=np.complex128)
    check(lambda L, a, b: L.linalg.cross(a, b), c, c[::-1].copy())


@pytest.mark.parametrize("sa,sb,dim", [((3,), (3,), -1), ((2, 3), (3,), -1),
                                       ((2, 3), (2, 3), 0), ((4, 1, 3), (2, 3), -1)])
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_vecdot(rng, sa, sb, dim, dtype):
    a, b = rand(rng, *sa, dtype=DTYPES[dtype]), rand(rng, *sb, dtype=DTYPES[dtype])
    check(lambda L, a, b: L.linalg.vecdot(a, b, dim=dim), a, b)


@pytest.mark.parametrize("n", [None, 2, 4])
def test_vander(rng, n):
    x = rand(rng, 3)
    check(lambda L, x: L.linalg.vander(x, N=n), x)
    check(lambda L, x: L.linalg.vander(x, N=n), rand(rng, 2, 3))
    check(lambda L, x: L.vander(x, N=n, increasing=True), x)
    check(lambda L, x: L.vander(x, N=n), x)


def test_vander_integer_and_complex(rng):
    check(lambda L, x: L.linalg.vander(x), np.arange(1, 5))
    check(lambda L, x: L.linalg.vander(x, N=3), rand(rng, 3, dtype=np.complex128))


@pytest.mark.parametrize("kwargs", [{}, {"offset": 1}, {"offset": -2}, {"dim1": 0, "dim2": 2},
                                    {"offset": 5}, {"dim1": -1, "dim2": 0, "offset": 1}])
def test_linalg_diagonal(rng, kwargs):
    a = rand(rng, 3, 4, 5)
    check(lambda L, a: L.linalg.diagonal(a, **kwargs), a)


# --- out= -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["matmul", "mm", "bmm", "outer", "kron", "inner", "dot",
                                  "mv", "cross", "vecdot", "addmm", "tensordot"])
def test_out_variants_products(rng, name):
    a2, b2 = rand(rng, 3, 3), rand(rng, 3, 3)
    v, w = rand(rng, 3), rand(rng, 3)
    cases = {"matmul": (lambda L, a, b, **o: L.matmul(a, b, **o), a2, b2),
             "mm": (lambda L, a, b, **o: L.mm(a, b, **o), a2, b2),
             "bmm": (lambda L, a, b, **o: L.bmm(a, b, **o), rand(rng, 2, 3, 3),
                     rand(rng, 2, 3, 3)),
             "outer": (lambda L, a, b, **o: L.outer(a, b, **o), v, w),
             "kron": (lambda L, a, b, **o: L.kron(a, b, **o), a2, b2),
             "inner": (lambda L, a, b, **o: L.inner(a, b, **o), a2, b2),
             "dot": (lambda L, a, b, **o: L.dot(a, b, **o), v, w),
             "mv": (lambda L, a, b, **o: L.mv(a, b, **o), a2, v),
             "cross": (lambda L, a, b, **o: L.linalg.cross(a, b, **o), a2, b2),
             "vecdot": (lambda L, a, b, **o: L.linalg.vecdot(a, b, **o), a2, b2),
             "addmm": (lambda L, a, b, **o: L.addmm(a, a, b, **o), a2, b2),
             "tensordot": (lambda L, a, b, **o: L.tensordot(a, b, dims=1, **o), a2, b2)}
    fn, *args = cases[name]

    def with_out(L, *xs):
        out = L.empty(0, dtype=xs[0].dtype)
        r = fn(L, *xs, out=out)
        return r, out, r is out
    check(with_out, *args)


@pytest.mark.parametrize("name", ["inv", "det", "solve", "cholesky", "pinv",
                                  "matrix_power", "svdvals", "eigvalsh", "eigvals", "cond",
                                  "matrix_rank", "multi_dot", "solve_triangular",
                                  "householder_product", "tensorinv"])
def test_out_variants_linalg(rng, name):
    # (torch.linalg.matrix_exp and vander take no out=)
    a = rand(rng, 3, 3) + 3 * np.eye(3)
    s = a @ a.T
    b = rand(rng, 3, 2)
    cases = {"inv": (lambda L, a, **o: L.linalg.inv(a, **o), a),
             "det": (lambda L, a, **o: L.linalg.det(a, **o), a),
             "solve": (lambda L, a, b, **o: L.linalg.solve(a, b, **o), a, b),
             "cholesky": (lambda L, s, **o: L.linalg.cholesky(s, **o), s),
             "pinv": (lambda L, a, **o: L.linalg.pinv(a, **o), a),
             "matrix_exp": (lambda L, a, **o: L.linalg.matrix_exp(a, **o), a / 3),
             "matrix_power": (lambda L, a, **o: L.linalg.matrix_power(a, 2, **o), a),
             "svdvals": (lambda L, a, **o: L.linalg.svdvals(a, **o), a),
             "eigvalsh": (lambda L, s, **o: L.linalg.eigvalsh(s, **o), s),
             "eigvals": (lambda L, s, **o: L.linalg.eigvals(s, **o), s),
             "cond": (lambda L, a, **o: L.linalg.cond(a, **o), a),
             "matrix_rank": (lambda L, a, **o: L.linalg.matrix_rank(a, **o), a),
             "multi_dot": (lambda L, a, b, **o: L.linalg.multi_dot([a, b], **o), a, b),
             "vander": (lambda L, a, **o: L.linalg.vander(a[0], **o), a),
             "solve_triangular": (lambda L, a, b, **o: L.linalg.solve_triangular(
                 a.triu(), b, upper=True, **o), a, b),
             "householder_product": (lambda L, a, **o: L.linalg.householder_product(
                 a, a[0, :2] * 0.3, **o), a),
             "tensorinv": (lambda L, a, **o: L.linalg.tensorinv(a, ind=1, **o), a)}
    fn, *args = cases[name]

    def with_out(L, *xs):
        ref = fn(L, *xs)
        out = L.empty(0, dtype=ref.dtype)
        r = fn(L, *xs, out=out)
        return r, out, r is out
    check(with_out, *args)


@pytest.mark.parametrize("name", ["slogdet", "eigh", "qr", "svd", "lu_factor", "inv_ex",
                                  "cholesky_ex", "lu", "eig"])
def test_out_variants_tuples(rng, name):
    a = rand(rng, 3, 3) + 3 * np.eye(3)
    s = a @ a.T
    cases = {"slogdet": (lambda L, a, **o: L.linalg.slogdet(a, **o), a),
             "eigh": (lambda L, s, **o: L.linalg.eigh(s, **o)[0], s),
             "qr": (lambda L, a, **o: L.linalg.qr(a, **o), a),
             "svd": (lambda L, a, **o: L.linalg.svd(a, **o)[1], a),   # S: gauge-free
             "lu_factor": (lambda L, a, **o: L.linalg.lu_factor(a, **o), a),
             "inv_ex": (lambda L, a, **o: L.linalg.inv_ex(a, **o), a),
             "cholesky_ex": (lambda L, s, **o: L.linalg.cholesky_ex(s, **o), s),
             "lu": (lambda L, a, **o: L.linalg.lu(a, **o), a),
             "eig": (lambda L, a, **o: L.linalg.eig(a, **o)[0], a)}
    fn, *args = cases[name]

    def with_out(L, *xs):
        ref = fn(L, *xs)
        n = {"eigh": 2, "svd": 3, "eig": 2}.get(name)
        if n is None:
            outs = tuple(L.empty(0, dtype=r.dtype) for r in ref)
        else:
            full = getattr(L.linalg, name)(*xs)
            outs = tuple(L.empty(0, dtype=r.dtype) for r in full)
        r = getattr(L.linalg, name)(*xs, out=outs) if n else fn(L, *xs, out=outs)
        if n:               # vectors are unique up to phase: compare the values only
            return r[0 if name != "svd" else 1], outs[0 if name != "svd" else 1], \
                all(x is y for x, y in zip(r, outs))
        return tuple(r), outs, all(x is y for x, y in zip(r, outs))
    check(with_out, *args)


# --- gradients --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["matmul_batched", "matmul_vec", "addmm", "baddbmm",
                                  "outer", "kron", "tensordot", "einsum", "multi_dot",
                                  "cross", "vecdot", "vander", "diagonal", "inner", "addr"])
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_product_gradients(rng, name, dtype):
    dt = DTYPES[dtype]
    r = lambda *s: rand(rng, *s, dtype=dt)  # noqa: E731
    cases = {
        "matmul_batched": (lambda L, a, b: L.matmul(a, b), r(1, 2, 3), r(4, 3, 2)),
        "matmul_vec": (lambda L, a, b: L.matmul(a, b), r(3), r(2, 3, 4)),
        "addmm": (lambda L, c, a, b: L.addmm(c, a, b, beta=0.5, alpha=2), r(4), r(2, 3),
                  r(3, 4)),
        "baddbmm": (lambda L, c, a, b: L.baddbmm(c, a, b), r(2, 1, 4), r(2, 3, 3),
                    r(2, 3, 4)),
        "outer": (lambda L, a, b: L.outer(a, b), r(3), r(2)),
        "kron": (lambda L, a, b: L.kron(a, b), r(2, 3), r(2, 2)),
        "tensordot": (lambda L, a, b: L.tensordot(a, b, dims=([1, 2], [0, 1])), r(2, 3, 4),
                      r(3, 4, 2)),
        "einsum": (lambda L, a, b: L.einsum("bij,jk->bki", a, b), r(2, 3, 4), r(4, 2)),
        "multi_dot": (lambda L, a, b, c: L.linalg.multi_dot([a, b, c]), r(3), r(3, 4), r(4, 2)),
        "cross": (lambda L, a, b: L.linalg.cross(a, b), r(2, 3), r(1, 3)),
        "vecdot": (lambda L, a, b: L.linalg.vecdot(a, b), r(2, 3), r(3)),
        "vander": (lambda L, x: L.linalg.vander(x, N=4), r(3)),
        "diagonal": (lambda L, a: L.linalg.diagonal(a, offset=1), r(2, 3, 4)),
        "inner": (lambda L, a, b: L.inner(a, b), r(2, 3), r(4, 3)),
        "addr": (lambda L, c, a, b: L.addr(c, a, b, alpha=0.5), r(2, 3), r(2), r(3)),
    }
    fn, *args = cases[name]
    check_grad(fn, *args)


# --- refusals ---------------------------------------------------------------------------

@pytest.mark.parametrize("fn,shapes,words", [
    (lambda L, a, b: L.matmul(a, b), [(2, 3), (4, 5)], ("2x3", "4x5")),
    (lambda L, a, b: L.mm(a, b), [(2, 3), (4, 5)], ("2x3", "4x5")),
    (lambda L, a, b: L.mm(a, b), [(2, 3, 3), (3, 3)], ("2D",)),
    (lambda L, a, b: L.bmm(a, b), [(2, 3, 4), (3, 4, 5)], ("bmm",)),
    (lambda L, a, b: L.matmul(a, b), [(2, 2, 3), (3, 3, 4)], ("2", "3")),
    (lambda L, a, b: L.matmul(a, b), [(), (3,)], ("0D",)),
    (lambda L, a, b: L.dot(a, b), [(3,), (4,)], ("3", "4")),
    (lambda L, a, b: L.mv(a, b), [(2, 3), (4,)], ("2x3", "4")),
    (lambda L, a, b: L.outer(a, b), [(2, 2), (3,)], ()),
    (lambda L, a, b: L.linalg.cross(a, b), [(4,), (4,)], ("3",)),
    (lambda L, a, b: L.linalg.cross(a, b), [(2, 3), (3, 3)], ("2", "3")),
    (lambda L, a, b: L.linalg.vecdot(a, b), [(3,), (4,)], ("3", "4")),
    (lambda L, a, b: L.tensordot(a, b, dims=1), [(2, 3), (4, 5)], ("3", "4")),
    (lambda L, a, b: L.einsum("ij,jk->ik", a, b), [(2, 3), (4, 5)], ("3", "4")),
    (lambda L, a, b: L.einsum("ij,jk->ik", a), [(2, 3), (3, 4)], ("einsum",)),
    (lambda L, a, b: L.linalg.multi_dot([a, b]), [(2, 3), (4, 5)], ("multi_dot",)),
    (lambda L, a, b: L.linalg.multi_dot([a, b]), [(2, 3, 3), (3, 3)], ("multi_dot",)),
    (lambda L, a, b: L.addmm(a, a, b), [(2, 3), (3, 5)], ("addmm",)),
    (lambda L, a, b: L.linalg.vander(a), [(), (3,)], ("vander",)),
    (lambda L, a, b: L.linalg.vander(b, N=1), [(), (3,)], ("N",)),
    (lambda L, a, b: L.linalg.vander(b, N=0), [(), (3,)], ("N",)),
    (lambda L, a, b: L.linalg.cross(a, b), [(3,), (2, 3)], ("dimensions",)),
])
def test_product_refusals(rng, fn, shapes, words):
    check_raises(fn, *[rand(rng, *s) for s in shapes], words=words)


def test_matmul_dtype_mismatch_refused(rng):
    check_raises(lambda L, a, b: L.matmul(a, b), rand(rng, 2, 3),
                 rand(rng, 3, 2, dtype=np.float32), words=("matmul", "dtype"))
    check_raises(lambda L, a, b: L.mm(a, b), rand(rng, 2, 3),
                 rand(rng, 3, 2, dtype=np.complex128))


@pytest.mark.parametrize("name", ["lu_factor", "lu_solve", "solve_ex", "vecdot", "ldl_factor",
                                  "torch.svd", "torch.qr", "torch.cholesky",
                                  "torch.cholesky_solve", "torch.cholesky_inverse",
                                  "torch.triangular_solve", "torch.cross", "torch.lu_unpack",
                                  "torch.ormqr", "torch.lu_solve"])
def test_out_variants_of_composites(rng, name):
    """The functions torch writes in Python-level form take out= too: the result lands in
    out (resized), and out is what comes back."""
    a = rand(rng, 3, 3) + 3 * np.eye(3)
    s, b = a @ a.T, rand(rng, 3, 2)
    cases = {
        "lu_factor": (lambda L, a, **o: L.linalg.lu_factor(a, **o), a),
        "lu_solve": (lambda L, a, b, **o: L.linalg.lu_solve(*L.linalg.lu_factor(a), b, **o),
                     a, b),
        "solve_ex": (lambda L, a, b, **o: L.linalg.solve_ex(a, b, **o), a, b),
        "vecdot": (lambda L, a, b, **o: L.linalg.vecdot(a, b, **o), a, a),
        "ldl_factor": (lambda L, s, **o: L.linalg.ldl_factor(s, **o), s),
        "torch.svd": (lambda L, a, **o: L.svd(a, **o), s),
        "torch.qr": (lambda L, a, **o: L.qr(a, **o), a),
        "torch.cholesky": (lambda L, s, **o: L.cholesky(s, **o), s),
        "torch.cholesky_solve": (lambda L, b, s, **o: L.cholesky_solve(
            b, L.linalg.cholesky(s), **o), b, s),
        "torch.cholesky_inverse": (lambda L, s, **o: L.cholesky_inverse(
            L.linalg.cholesky(s), **o), s),
        "torch.triangular_solve": (lambda L, b, a, **o: L.triangular_solve(b, a.triu(), **o),
                                   b, a),
        "torch.cross": (lambda L, a, b, **o: L.cross(a, b, dim=1, **o), a, a[::-1].copy()),
        "torch.lu_unpack": (lambda L, a, **o: L.lu_unpack(*L.linalg.lu_factor(a), **o), a),
        "torch.ormqr": (lambda L, a, b, **o: L.ormqr(a, a[0] * 0.3, b, **o), a, b),
        "torch.lu_solve": (lambda L, a, b, **o: L.lu_solve(b, *L.linalg.lu_factor(a), **o),
                           a, b),
    }
    fn, *args = cases[name]

    def with_out(L, *xs):
        ref = fn(L, *xs)
        if isinstance(ref, tuple):
            outs = tuple(L.empty(0, dtype=r.dtype) for r in ref)
            r = fn(L, *xs, out=outs)
            if name == "torch.svd":          # singular vectors: up to phase
                return r[1], outs[1]
            return tuple(r), outs, all(x is y for x, y in zip(r, outs))
        out = L.empty(0, dtype=ref.dtype)
        r = fn(L, *xs, out=out)
        return r, out, r is out
    check(with_out, *args)


def test_out_of_a_composite_with_the_wrong_dtype_refused(rng):
    a = rand(rng, 3, 3) + 3 * np.eye(3)
    check_raises(lambda L, a: L.linalg.vecdot(a, a, out=L.empty(0, dtype=L.float32)), a,
                 words=("dtype",))
    check_raises(lambda L, a: L.cholesky_inverse(a.triu(), out=L.empty(0, dtype=L.int64)), a)
