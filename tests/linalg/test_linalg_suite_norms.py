"""linalg suite, norms: linalg.norm / vector_norm / matrix_norm with every ord (inf, -inf,
0, fractional, negative, 'fro', 'nuc', 2, -2), dim, keepdim, dtype=, out=, and
torch.norm / Tensor.norm, against torch; plus their gradients and refusals."""
from __future__ import annotations

import numpy as np
import pytest

from tests.linalg.suite_util import DTYPES, check, check_grad, check_raises, rand

INF = float("inf")
VECTOR_ORDS = [2, 1, 0, INF, -INF, 3, 0.5, -1, -2.5]
MATRIX_ORDS = ["fro", "nuc", INF, -INF, 1, -1, 2, -2]


@pytest.mark.parametrize("ord", VECTOR_ORDS)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_vector_norm_ords(rng, ord, dtype):
    x = rand(rng, 3, 4, dtype=DTYPES[dtype])
    check(lambda L, x: L.linalg.vector_norm(x, ord), x)
    check(lambda L, x: L.linalg.vector_norm(x, ord, dim=1, keepdim=True), x)


@pytest.mark.parametrize("dim", [None, 0, -1, (0, 2), (-1, -3), ()])
@pytest.mark.parametrize("keepdim", [False, True])
def test_vector_norm_dims(rng, dim, keepdim):
    x = rand(rng, 2, 3, 4)
    if dim == ():
        # torch reduces over every dim when dim is an empty tuple
        pass
    check(lambda L, x: L.linalg.vector_norm(x, 2, dim=dim, keepdim=keepdim), x)
    check(lambda L, x: L.linalg.vector_norm(x, INF, dim=dim, keepdim=keepdim), x)


@pytest.mark.parametrize("in_dtype,dtype", [("float32", "float64"), ("complex64", "complex128"),
                                            ("float64", "float64")])
def test_vector_norm_dtype_argument(rng, in_dtype, dtype):
    x = rand(rng, 5, dtype=DTYPES[in_dtype])
    check(lambda L, x: L.linalg.vector_norm(x, dtype=getattr(L, dtype)), x)
    check(lambda L, x: L.linalg.norm(x, dtype=getattr(L, dtype)), x)


@pytest.mark.parametrize("ord", [2, 0, INF, -INF, 1])
def test_vector_norm_empty_and_zero(ord):
    x = np.zeros((3, 0))
    if ord in (INF, -INF):
        check_raises(lambda L, x: L.linalg.vector_norm(x, ord), x)
    else:
        check(lambda L, x: L.linalg.vector_norm(x, ord), x)
    check(lambda L, x: L.linalg.vector_norm(x, ord, dim=0), x)
    check(lambda L, x: L.linalg.vector_norm(x, ord), np.zeros(4))


def test_vector_norm_of_integers_is_refused_and_scalar_ok():
    check_raises(lambda L, x: L.linalg.vector_norm(x), np.arange(4), words=("vector_norm",))
    check(lambda L, x: L.linalg.vector_norm(x), np.array(3.0))


@pytest.mark.parametrize("ord", MATRIX_ORDS)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_matrix_norm_ords(rng, ord, dtype):
    a = rand(rng, 2, 3, 4, dtype=DTYPES[dtype])
    rtol = 1e-4 if dtype in ("float32", "complex64") else None
    check(lambda L, a: L.linalg.matrix_norm(a, ord), a, rtol=rtol)
    check(lambda L, a: L.linalg.matrix_norm(a, ord, keepdim=True), a, rtol=rtol)


@pytest.mark.parametrize("ord", MATRIX_ORDS)
@pytest.mark.parametrize("dim", [(0, 2), (2, 0), (-1, 1)])
def test_matrix_norm_dims(rng, ord, dim):
    a = rand(rng, 3, 2, 4)
    check(lambda L, a: L.linalg.matrix_norm(a, ord, dim=dim), a)
    check(lambda L, a: L.linalg.matrix_norm(a, ord, dim=dim, keepdim=True), a)


@pytest.mark.parametrize("ord", ["fro", "nuc", 1, INF])
def test_matrix_norm_dtype_and_empty(rng, ord):
    a = rand(rng, 3, 3, dtype=np.float32)
    check(lambda L, a: L.linalg.matrix_norm(a, ord, dtype=L.float64), a)
    check(lambda L, a: L.linalg.matrix_norm(a, ord), np.zeros((2, 0, 0)))


@pytest.mark.parametrize("ord", [None, "fro", "nuc", INF, -INF, 1, -1, 2, -2])
@pytest.mark.parametrize("keepdim", [False, True])
def test_norm_matrix_input(rng, ord, keepdim):
    a = rand(rng, 3, 4)
    check(lambda L, a: L.linalg.norm(a, ord, keepdim=keepdim), a)
    check(lambda L, a: L.linalg.norm(a, ord, dim=(0, 1), keepdim=keepdim), a)


@pytest.mark.parametrize("ord", [None, 2, 1, 0, INF, -INF, 3.5])
def test_norm_vector_input_and_dim(rng, ord):
    check(lambda L, x: L.linalg.norm(x, ord), rand(rng, 5))
    check(lambda L, x: L.linalg.norm(x, ord, dim=1), rand(rng, 2, 5))
    check(lambda L, x: L.linalg.norm(x, ord, dim=-1, keepdim=True), rand(rng, 2, 5))


def test_norm_without_ord_flattens_any_rank(rng):
    check(lambda L, x: L.linalg.norm(x), rand(rng, 2, 3, 4))
    check(lambda L, x: L.linalg.norm(x, dim=(1, 2)), rand(rng, 2, 3, 4))


@pytest.mark.parametrize("p", [None, "fro", 2, 1, INF, 0, "nuc"])
def test_torch_norm_and_method(rng, p):
    a = rand(rng, 3, 4)
    if p == "nuc":
        check(lambda L, a: L.norm(a, p="nuc"), a)
        return
    check(lambda L, a: L.norm(a, p=p) if p is not None else L.norm(a), a)
    check(lambda L, a: a.norm(p=p, dim=1) if p is not None else a.norm(dim=1), a)
    check(lambda L, a: L.norm(a, p=p or 2, dim=0, keepdim=True), a)


@pytest.mark.parametrize("ord", ["fro", 2, INF])
def test_norm_out_variants(rng, ord):
    a = rand(rng, 3, 4)

    def fn(L, a):
        out = L.empty(0, dtype=a.dtype)
        r = L.linalg.norm(a, ord, out=out)
        return r, out
    check(fn, a)

    def fn_vec(L, a):
        out = L.empty(3, dtype=a.dtype)
        L.linalg.vector_norm(a, 2, dim=1, out=out)
        return out
    check(fn_vec, a)

    def fn_mat(L, a):
        out = L.empty((), dtype=a.dtype)
        L.linalg.matrix_norm(a, "fro", out=out)
        return out
    check(fn_mat, a)


# --- refusals ---------------------------------------------------------------------------

def test_matrix_norm_unknown_ord_and_1d_input(rng):
    check_raises(lambda L, a: L.linalg.matrix_norm(a, 3), rand(rng, 3, 3),
                 words=("matrix_norm", "3"))
    check_raises(lambda L, a: L.linalg.matrix_norm(a), rand(rng, 3), words=("2",))
    check_raises(lambda L, a: L.linalg.matrix_norm(a, "abc"), rand(rng, 3, 3))


def test_matrix_norm_repeated_dims_refused(rng):
    check_raises(lambda L, a: L.linalg.matrix_norm(a, dim=(1, 1)), rand(rng, 3, 3),
                 words=("dim",))
    check_raises(lambda L, a: L.linalg.matrix_norm(a, dim=(0, 3)), rand(rng, 3, 3))


def test_vector_norm_string_ord_refused(rng):
    check_raises(lambda L, a: L.linalg.vector_norm(a, "fro"), rand(rng, 3, 3),
                 words=("vector_norm", "'ord'"))


def test_norm_string_ord_on_vector_refused(rng):
    check_raises(lambda L, a: L.linalg.norm(a, "fro"), rand(rng, 3))
    check_raises(lambda L, a: L.linalg.norm(a, 2, dim=(0, 1, 2)), rand(rng, 2, 2, 2))


def test_matrix_norm_of_empty_max_orders_are_zero_min_orders_refused():
    check(lambda L, a: L.linalg.matrix_norm(a, 2), np.zeros((0, 3)))
    check(lambda L, a: L.linalg.matrix_norm(a, 1), np.zeros((0, 3)))
    check_raises(lambda L, a: L.linalg.matrix_norm(a, -2), np.zeros((0, 3)))


@pytest.mark.parametrize("fn", ["vector_norm", "norm", "matrix_norm"])
@pytest.mark.parametrize("in_dtype,dtype", [("complex64", "float32"), ("float32", "complex64"),
                                            ("float64", "float32")])
def test_norm_dtype_argument_refused(rng, fn, in_dtype, dtype):
    check_raises(lambda L, x: getattr(L.linalg, fn)(x, dtype=getattr(L, dtype)),
                 rand(rng, 3, 3, dtype=DTYPES[in_dtype]), words=("dtype",))


@pytest.mark.parametrize("ord", [INF, -1, -INF, -0.5])
@pytest.mark.parametrize("dim", [None, 1, (0, 1)])
def test_vector_norm_without_identity_on_empty_refused(ord, dim):
    check_raises(lambda L, x: L.linalg.vector_norm(x, ord, dim=dim), np.zeros((3, 0)),
                 words=("vector_norm", "empty"))


# --- gradients --------------------------------------------------------------------------

@pytest.mark.parametrize("ord", [2, 1, INF, -INF, 3, 0.5, -1])
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_vector_norm_gradients(rng, ord, dtype):
    x = rand(rng, 2, 4, dtype=DTYPES[dtype])
    check_grad(lambda L, x: L.linalg.vector_norm(x, ord, dim=1), x)


@pytest.mark.parametrize("ord", MATRIX_ORDS)
@pytest.mark.parametrize("dtype", ["float64", "complex128"])
def test_matrix_norm_gradients(rng, ord, dtype):
    a = rand(rng, 2, 3, 3, dtype=DTYPES[dtype])
    check_grad(lambda L, a: L.linalg.matrix_norm(a, ord), a)
