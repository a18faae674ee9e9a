"""linalg suite, dtypes and refusal parity: integer, bool and half inputs to the product
family and linalg, and a table of misuses (bad ranks, dtypes, arguments, out=): where torch
raises, ember raises the same kind of error; where torch computes, ember computes the same.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.linalg.suite_util import check, check_raises, raised, convert, rand

F, C = np.float64, np.complex128


def _dtype_cases(rng):  # noqa: PLR0915 - one table: name -> (fn, *inputs)
    def ints(*s, dt=np.int64):
        return rng.integers(-3, 4, s).astype(dt)
    return {
        "matmul int32": (lambda L, a, b: L.matmul(a, b),
            ints(2, 3, dt=np.int32), ints(3, 2, dt=np.int32)),
        "matmul int8": (lambda L, a, b: L.matmul(a, b),
            ints(2, 3, dt=np.int8), ints(3, 2, dt=np.int8)),
        "matmul uint8": (lambda L, a, b: L.matmul(a, b),
            ints(2, 3, dt=np.uint8), ints(3, 2, dt=np.uint8)),
        "bmm int": (lambda L, a, b: L.bmm(a, b),
            ints(2, 2, 3), ints(2, 3, 2)),
        "mv int": (lambda L, a, b: L.mv(a, b),
            ints(2, 3), ints(3)),
        "dot int": (lambda L, a, b: L.dot(a, b),
            ints(3), ints(3)),
        "matmul bool": (lambda L, a, b: L.matmul(a, b),
            ints(2, 3)>0, ints(3, 2)>0),
        "mm bool": (lambda L, a, b: L.mm(a, b),
            ints(2, 3)>0, ints(3, 2)>0),
        "dot bool": (lambda L, a, b: L.dot(a, b),
            ints(3)>0, ints(3)>0),
        "matmul f16": (lambda L, a, b: L.matmul(a, b),
            rand(rng, 2, 3).astype(np.float16), rand(rng, 3, 2).astype(np.float16)),
        "addmm int beta float": (lambda L, c, a, b: L.addmm(c, a, b, beta=0.5),
            ints(2, 2), ints(2, 3), ints(3, 2)),
        "addmm int": (lambda L, c, a, b: L.addmm(c, a, b, beta=2, alpha=3),
            ints(2, 2), ints(2, 3), ints(3, 2)),
        "addmv int": (lambda L, c, a, b: L.addmv(c, a, b),
            ints(2), ints(2, 3), ints(3)),
        "addr bool": (lambda L, c, a, b: L.addr(c, a, b),
            ints(2, 3)>0, ints(2)>0, ints(3)>0),
        "addr bool alpha int": (lambda L, c, a, b: L.addr(c, a, b, alpha=2),
            ints(2, 3)>0, ints(2)>0, ints(3)>0),
        "outer int bool": (lambda L, a, b: L.outer(a, b),
            ints(2), ints(3)>0),
        "outer int float": (lambda L, a, b: L.outer(a, b),
            ints(2), rand(rng, 3)),
        "kron int": (lambda L, a, b: L.kron(a, b),
            ints(2, 2), ints(2)),
        "kron bool": (lambda L, a, b: L.kron(a, b),
            ints(2, 2)>0, ints(2)>0),
        "inner int": (lambda L, a, b: L.inner(a, b),
            ints(2, 3), ints(3)),
        "tensordot int": (lambda L, a, b: L.tensordot(a, b, dims=1),
            ints(2, 3), ints(3, 2)),
        "einsum int": (lambda L, a, b: L.einsum('ij, jk->ik', a, b),
            ints(2, 3), ints(3, 2)),
        "einsum bool": (lambda L, a: L.einsum('ij->j', a),
            ints(2, 3)>0),
        "cross int": (lambda L, a, b: L.linalg.cross(a, b),
            ints(2, 3), ints(2, 3)),
        "cross bool": (lambda L, a, b: L.linalg.cross(a, b),
            ints(2, 3)>0, ints(2, 3)>0),
        "vander bool": (lambda L, x: L.linalg.vander(x),
            ints(3)>0),
        "multi_dot int": (lambda L, a, b, c: L.linalg.multi_dot([a, b, c]),
            ints(2, 3), ints(3, 2), ints(2, 2)),
        "matmul mixed int float": (lambda L, a, b: L.matmul(a, b),
            ints(2, 3), rand(rng, 3, 2)),
        "mm f32 f64": (lambda L, a, b: L.mm(a, b),
            rand(rng, 2, 3).astype(np.float32), rand(rng, 3, 2)),
        "vdot int": (lambda L, a, b: L.vdot(a, b),
            ints(3), ints(3)),
        "vecdot f16": (lambda L, a, b: L.linalg.vecdot(a, b),
            rand(rng, 3).astype(np.float16), rand(rng, 3).astype(np.float16)),
        "vector_norm f16": (lambda L, a: L.linalg.vector_norm(a),
            rand(rng, 3).astype(np.float16)),
        "matrix_norm f16 nuc": (lambda L, a: L.linalg.matrix_norm(a, 'nuc'),
            rand(rng, 3, 3).astype(np.float16)),
        "matrix_norm f16 fro": (lambda L, a: L.linalg.matrix_norm(a),
            rand(rng, 3, 3).astype(np.float16)),
        "norm f16 2": (lambda L, a: L.linalg.norm(a, 2),
            rand(rng, 3, 3).astype(np.float16)),
        "cross f16": (lambda L, a, b: L.linalg.cross(a, b),
            rand(rng, 3).astype(np.float16), rand(rng, 3).astype(np.float16)),
        "multi_dot f16": (lambda L, a, b: L.linalg.multi_dot([a, b]),
            rand(rng, 2, 3).astype(np.float16), rand(rng, 3, 2).astype(np.float16)),
        "vander f16": (lambda L, x: L.linalg.vander(x),
            rand(rng, 3).astype(np.float16)),
        "diagonal int": (lambda L, a: L.linalg.diagonal(a),
            ints(3, 3)),
    }


def _misuse_cases(rng):  # noqa: PLR0915 - one table: name -> (fn, *inputs)
    return {
        "eigh 1d": (lambda L, a: L.linalg.eigh(a),
            rand(rng, 3)),
        "eigh lowercase UPLO": (lambda L, a: L.linalg.eigh(a, UPLO='l')[0],
            rand(rng, 3, 3)),
        "svd driver cpu": (lambda L, a: L.linalg.svd(a, driver='gesvd'),
            rand(rng, 3, 3)),
        "svdvals int": (lambda L, a: L.linalg.svdvals(a),
            np.eye(3, dtype=np.int64)),
        "qr mode bad": (lambda L, a: L.linalg.qr(a, mode='full'),
            rand(rng, 3, 3)),
        "solve int": (lambda L, a, b: L.linalg.solve(a, b),
            np.eye(3, dtype=np.int64), np.ones((3, 1), dtype=np.int64)),
        "solve complex real": (lambda L, a, b: L.linalg.solve(a, b),
            np.eye(3, dtype=C), rand(rng, 3, 1)),
        "solve 0d": (lambda L, a, b: L.linalg.solve(a, b),
            np.array(1.0), np.array(1.0)),
        "lstsq 1d A": (lambda L, a, b: L.linalg.lstsq(a, b),
            rand(rng, 3), rand(rng, 3)),
        "lstsq int": (lambda L, a, b: L.linalg.lstsq(a, b),
            np.eye(3, dtype=np.int64), np.ones((3, 1), dtype=np.int64)),
        "lstsq b dim": (lambda L, a, b: L.linalg.lstsq(a, b),
            rand(rng, 3, 3), rand(rng, 2, 3, 3, 1)),
        "cholesky complex nonherm": (lambda L, a: L.linalg.cholesky(a),
            np.diag([1, -1, 1]).astype(C)),
        "cross dim out of range": (lambda L, a, b: L.linalg.cross(a, b, dim=3),
            rand(rng, 2, 3), rand(rng, 2, 3)),
        "cross int float": (lambda L, a, b: L.linalg.cross(a, b),
            np.ones(3, dtype=np.int64), rand(rng, 3)),
        "vander 0d": (lambda L, x: L.linalg.vander(x),
            np.array(1.0)),
        "matrix_power non square": (lambda L, a: L.linalg.matrix_power(a, 2),
            rand(rng, 2, 3)),
        "matrix_power 1d": (lambda L, a: L.linalg.matrix_power(a, 2),
            rand(rng, 3)),
        "matrix_power int neg": (lambda L, a: L.linalg.matrix_power(a, -1),
            np.eye(3, dtype=np.int64)),
        "matrix_power bool": (lambda L, a: L.linalg.matrix_power(a, 2),
            np.eye(3, dtype=bool)),
        "multi_dot 3d": (lambda L, a, b: L.linalg.multi_dot([a, b]),
            rand(rng, 2, 2, 2), rand(rng, 2, 2)),
        "multi_dot middle 1d": (lambda L, a, b, c: L.linalg.multi_dot([a, b, c]),
            rand(rng, 2, 2), rand(rng, 2), rand(rng, 2, 2)),
        "multi_dot dtype": (lambda L, a, b: L.linalg.multi_dot([a, b]),
            rand(rng, 2, 2), rand(rng, 2, 2).astype(np.float32)),
        "tensorinv ind neg": (lambda L, a: L.linalg.tensorinv(a, ind=-1),
            rand(rng, 2, 2)),
        "tensorsolve mismatch": (lambda L, a, b: L.linalg.tensorsolve(a, b),
            rand(rng, 2, 3, 4), rand(rng, 2, 3)),
        "householder tau complex mismatch": (lambda L, a, t: L.linalg.householder_product(a, t),
            rand(rng, 3, 2), rand(rng, 2, dtype=C)),
        "householder int": (lambda L, a, t: L.linalg.householder_product(a, t),
            np.ones((3, 2), dtype=np.int64), np.ones(2, dtype=np.int64)),
        "ldl_solve mismatch": (lambda L, a, b: L.linalg.ldl_solve(*L.linalg.ldl_factor(a), b),
            rand(rng, 3, 3)+np.eye(3)*5, rand(rng, 2, 3)),
        "lu_solve int64 pivots": (lambda L, a, b:
            L.linalg.lu_solve(a, L.ones(3, dtype=L.int64), b),
            rand(rng, 3, 3), rand(rng, 3, 1)),
        "solve_triangular int": (lambda L, a, b: L.linalg.solve_triangular(a, b, upper=True),
            np.eye(3, dtype=np.int64), np.ones((3, 1), dtype=np.int64)),
        "solve_triangular no upper": (lambda L, a, b: L.linalg.solve_triangular(a, b),
            np.eye(3), np.ones((3, 1))),
        "pinv 1d": (lambda L, a: L.linalg.pinv(a),
            rand(rng, 3)),
        "pinv atol rcond": (lambda L, a: L.linalg.pinv(a, atol=0.1, rcond=0.1),
            rand(rng, 3, 3)),
        "matrix_rank int": (lambda L, a: L.linalg.matrix_rank(a),
            np.eye(3, dtype=np.int64)),
        "cond int": (lambda L, a: L.linalg.cond(a),
            np.eye(3, dtype=np.int64)),
        "cond nonsquare fro": (lambda L, a: L.linalg.cond(a, 'fro'),
            rand(rng, 2, 3)),
        "cond 1d": (lambda L, a: L.linalg.cond(a),
            rand(rng, 3)),
        "norm ord str vector": (lambda L, a: L.linalg.norm(a, 'nuc', dim=0),
            rand(rng, 3, 3)),
        "norm 3d ord": (lambda L, a: L.linalg.norm(a, 2),
            rand(rng, 2, 2, 2)),
        "vector_norm dim dup": (lambda L, a: L.linalg.vector_norm(a, dim=(0, 0)),
            rand(rng, 3, 3)),
        "matrix_norm nuc int": (lambda L, a: L.linalg.matrix_norm(a, 'nuc'),
            np.eye(3, dtype=np.int64)),
        "matmul 0d": (lambda L, a, b: L.matmul(a, b),
            np.array(1.0), np.array(1.0)),
        "bmm 2d": (lambda L, a, b: L.bmm(a, b),
            rand(rng, 2, 2), rand(rng, 2, 2)),
        "bmm batch mismatch": (lambda L, a, b: L.bmm(a, b),
            rand(rng, 2, 2, 2), rand(rng, 3, 2, 2)),
        "mv 1d": (lambda L, a, b: L.mv(a, b),
            rand(rng, 3), rand(rng, 3)),
        "dot 2d": (lambda L, a, b: L.dot(a, b),
            rand(rng, 2, 2), rand(rng, 2, 2)),
        "dot dtype": (lambda L, a, b: L.dot(a, b),
            rand(rng, 2), rand(rng, 2).astype(np.float32)),
        "vdot 2d": (lambda L, a, b: L.vdot(a, b),
            rand(rng, 2, 2), rand(rng, 2, 2)),
        "addmm bad input": (lambda L, c, a, b: L.addmm(c, a, b),
            rand(rng, 3, 3), rand(rng, 2, 3), rand(rng, 3, 2)),
        "addmv bad": (lambda L, c, a, b: L.addmv(c, a, b),
            rand(rng, 3), rand(rng, 2, 3), rand(rng, 3)),
        "addr bad": (lambda L, c, a, b: L.addr(c, a, b),
            rand(rng, 3, 3), rand(rng, 2), rand(rng, 3)),
        "baddbmm bad": (lambda L, c, a, b: L.baddbmm(c, a, b),
            rand(rng, 2, 2, 3), rand(rng, 2, 2, 3), rand(rng, 2, 2, 2)),
        "einsum bad eq": (lambda L, a: L.einsum('ij->k', a),
            rand(rng, 2, 2)),
        "einsum ops count": (lambda L, a: L.einsum('ij, jk', a),
            rand(rng, 2, 2)),
        "einsum dims": (lambda L, a: L.einsum('ijk', a),
            rand(rng, 2, 2)),
        "kron dtype": (lambda L, a, b: L.kron(a, b),
            rand(rng, 2), rand(rng, 2).astype(np.float32)),
        "tensordot dims too many": (lambda L, a, b: L.tensordot(a, b, dims=3),
            rand(rng, 2, 2), rand(rng, 2, 2)),
        "tensordot neg dims": (lambda L, a, b: L.tensordot(a, b, dims=-1),
            rand(rng, 2, 2), rand(rng, 2, 2)),
        "outer 2d": (lambda L, a, b: L.outer(a, b),
            rand(rng, 2, 2), rand(rng, 2)),
        "inner mismatch": (lambda L, a, b: L.inner(a, b),
            rand(rng, 2, 3), rand(rng, 2, 2)),
        "diagonal same dims": (lambda L, a: L.linalg.diagonal(a, dim1=1, dim2=-1),
            rand(rng, 2, 2)),
        "det non-square batch": (lambda L, a: L.linalg.det(a),
            rand(rng, 2, 3, 2)),
        "inv out wrong dtype": (lambda L, a: L.linalg.inv(a, out=L.empty(0, dtype=L.float32)),
            rand(rng, 2, 2)+np.eye(2)*3),
        "eigvals out real": (lambda L, a: L.linalg.eigvals(a, out=L.empty(0, dtype=L.float64)),
            rand(rng, 2, 2)),
        "slogdet out tuple len": (lambda L, a:
            L.linalg.slogdet(a, out=(L.empty(0, dtype=L.float64), )),
            rand(rng, 2, 2)),
        "out requires grad": (lambda L, a:
            L.linalg.inv(a.requires_grad_(), out=L.empty(0, dtype=L.float64)),
            rand(rng, 2, 2)+np.eye(2)*3),
    }


def _torch_norm_cases(rng):  # noqa: PLR0915 - torch.norm's own semantics and its neighbours
    inf = float("inf")
    return {
        "norm p2 dims2 3d": (lambda L, a: L.norm(a, p=2, dim=(0, 1)),
            rand(rng, 2, 3, 4)),
        "norm fro 3d": (lambda L, a: L.norm(a, p='fro'),
            rand(rng, 2, 3, 4)),
        "norm fro dim3": (lambda L, a: L.norm(a, p='fro', dim=(0, 1, 2)),
            rand(rng, 2, 3, 4)),
        "norm nuc dims": (lambda L, a: L.norm(a, p='nuc', dim=(0, 2)),
            rand(rng, 2, 3, 4)),
        "norm inf": (lambda L, a: L.norm(a, p=inf),
            rand(rng, 2, 3)),
        "norm -inf dim": (lambda L, a: L.norm(a, p=-inf, dim=1),
            rand(rng, 2, 3)),
        "norm -1 dim keep": (lambda L, a: L.norm(a, p=-1, dim=1, keepdim=True),
            rand(rng, 2, 3)),
        "norm 0": (lambda L, a: L.norm(a, p=0),
            rand(rng, 2, 3)),
        "norm 0.5 dim": (lambda L, a: L.norm(a, 0.5, 1),
            rand(rng, 2, 3)),
        "norm dtype": (lambda L, a: L.norm(a, dtype=L.float64),
            rand(rng, 2, 3).astype(np.float32)),
        "norm p dtype": (lambda L, a: L.norm(a, p=1, dim=0, dtype=L.float64),
            rand(rng, 2, 3).astype(np.float32)),
        "norm complex": (lambda L, a: L.norm(a),
            rand(rng, 2, 3, dtype=np.complex128)),
        "norm complex p1": (lambda L, a: L.norm(a, p=1, dim=1),
            rand(rng, 2, 3, dtype=np.complex64)),
        "norm int": (lambda L, a: L.norm(a),
            np.arange(6).reshape(2, 3)),
        "norm 0d": (lambda L, a: L.norm(a),
            np.array(-2.0)),
        "norm empty": (lambda L, a: L.norm(a),
            np.zeros((0, 3))),
        "norm empty inf": (lambda L, a: L.norm(a, p=inf),
            np.zeros((0, 3))),
        "norm dim int list": (lambda L, a: L.norm(a, dim=[1]),
            rand(rng, 2, 3)),
        "Tensor.norm p3": (lambda L, a: a.norm(3),
            rand(rng, 2, 3)),
        "Tensor.norm fro dim": (lambda L, a: a.norm('fro', (0, 1)),
            rand(rng, 2, 3)),
        "norm out": (lambda L, a: L.norm(a, dim=1, out=L.empty(0, dtype=L.float64)),
            rand(rng, 2, 3)),
        "frobenius_norm": (lambda L, a: L.frobenius_norm(a, (0, 1)),
            rand(rng, 2, 3)),
        "dist": (lambda L, a, b: L.dist(a, b, 3),
            rand(rng, 2, 3), rand(rng, 2, 3)),
        "renorm": (lambda L, a: L.renorm(a, 2, 0, 1.0),
            rand(rng, 3, 4)),
        "trace": (lambda L, a: L.trace(a),
            rand(rng, 3, 4)),
        "trace int": (lambda L, a: L.trace(a),
            np.arange(12).reshape(3, 4)),
        "F.normalize": (lambda L, a: L.nn.functional.normalize(a, p=1, dim=0),
            rand(rng, 3, 4)),
        "cdist": (lambda L, a, b: L.cdist(a, b),
            rand(rng, 3, 4), rand(rng, 2, 4)),
        "diag_embed": (lambda L, a: L.diag_embed(a, offset=1),
            rand(rng, 2, 3)),
        "block_diag": (lambda L, a, b: L.block_diag(a, b),
            rand(rng, 2, 3), rand(rng, 1, 2)),
        "cartesian_prod": (lambda L, a, b: L.cartesian_prod(a, b),
            rand(rng, 2), rand(rng, 3)),
        "chain_matmul": (lambda L, a, b: L.chain_matmul(a, b),
            rand(rng, 2, 3), rand(rng, 3, 2)),
        "chain_matmul one": (lambda L, a: L.chain_matmul(a),
            rand(rng, 2, 3)),
    }


def _same_as_torch(fn, args):
    if raised(fn, torch, *convert(args, torch)) is not None:
        check_raises(fn, *args)
    else:
        check(fn, *args, rtol=1e-2, atol=1e-2)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(_dtype_cases(np.random.default_rng(0))))
def test_dtype_case_matches_torch(rng, name):
    fn, *args = _dtype_cases(rng)[name]
    _same_as_torch(fn, args)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(_misuse_cases(np.random.default_rng(0))))
def test_misuse_matches_torch(rng, name):
    fn, *args = _misuse_cases(rng)[name]
    _same_as_torch(fn, args)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(_torch_norm_cases(np.random.default_rng(0))))
def test_torch_norm_and_neighbours_match_torch(rng, name):
    fn, *args = _torch_norm_cases(rng)[name]
    _same_as_torch(fn, args)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("eq,shapes", [("ij,jk->ik", [(2, 3), (3, 2)]), ("i,i->", [(3,), (3,)]),
                                       ("ij,ij->i", [(2, 3), (2, 3)]), ("i,i->i", [(3,), (3,)]),
                                       ("i,j->ij", [(2,), (3,)]), ("ij->", [(2, 3)]),
                                       ("ii", [(3, 3)]), ("i,i,i->i", [(3,), (3,), (3,)])])
def test_bool_einsum_contracts_only_where_torch_does(rng, eq, shapes):
    """torch contracts two bool operands with bmm, which has no bool kernel; elementwise
    products, outer products and single-operand sums of bool are fine."""
    _same_as_torch(lambda L, *xs: L.einsum(eq, *xs),
                   [rng.integers(0, 2, s).astype(bool) for s in shapes])


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("fn", [lambda L, a, v: L.tensordot(a, a, 1),
                                lambda L, a, v: L.inner(v, v),
                                lambda L, a, v: L.linalg.multi_dot([a, a]),
                                lambda L, a, v: L.chain_matmul(a, a),
                                lambda L, a, v: L.addmv(v, a, v),
                                lambda L, a, v: L.addmm(a, a, a),
                                lambda L, a, v: L.baddbmm(a[None], a[None], a[None]),
                                lambda L, a, v: L.addr(a, v, v),
                                lambda L, a, v: L.outer(v, v),
                                lambda L, a, v: L.kron(a, v)])
def test_bool_products_like_torch(rng, fn):
    _same_as_torch(fn, [rng.integers(0, 2, (3, 3)).astype(bool),
                        rng.integers(0, 2, 3).astype(bool)])
