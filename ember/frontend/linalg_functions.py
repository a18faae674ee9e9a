"""torch.linalg and top-level linear-algebra functions that compose registry ops: the LU
family (linalg.lu_factor, linalg.lu, linalg.lu_solve, linalg.solve_ex, torch.lu,
torch.lu_solve), torch's older top-level forms (svd, qr, cholesky, cholesky_solve,
cholesky_inverse, triangular_solve, logdet, matrix_exp, pinverse, cross) and the small
helpers linalg.vecdot / linalg.diagonal.

Each is written with ember ops, so it runs eagerly, traces and differentiates through
the ops' own rules; results are PyTorch's named tuples.
"""
from __future__ import annotations

import math
from collections import namedtuple

from ..ir import autocast
from ..ir.errors import DTypeError, DTypeNotImplementedError, ShapeError
from ..ir.ops.rules import broadcast_shapes
from ..ir.out_arg import with_out
from ..ir.registry import OPS

LUFactor = namedtuple("LUFactor", ["LU", "pivots"])
LU = namedtuple("LU", ["P", "L", "U"])
SolveEx = namedtuple("SolveEx", ["result", "info"])
SVD = namedtuple("SVD", ["U", "S", "V"])
QR = namedtuple("QR", ["Q", "R"])
TriangularSolve = namedtuple("TriangularSolve", ["solution", "cloned_coefficient"])


def _mH(x):
    t = OPS["transpose"](x, -2, -1)
    return OPS["conj"](t) if x.dtype.is_complex else t


def _solve_tri(A, B, *, upper, left=True, unitriangular=False):
    return OPS["linalg_solve_triangular"](A, B, upper=upper, left=left,
                                          unitriangular=unitriangular)


# --- LU ---------------------------------------------------------------------------------
def lu_factor(A, *, pivot=True):
    """torch.linalg.lu_factor: (LU, pivots); singular input raises, as torch."""
    LU_, pivots, _ = OPS["linalg_lu_factor_ex"](A, pivot=pivot, check_errors=True)
    return LUFactor(LU_, pivots)


def lu(A, *, pivot=True):
    """torch.linalg.lu: A = P L U."""
    LU_, pivots, _ = OPS["linalg_lu_factor_ex"](A, pivot=pivot)
    return lu_unpack(LU_, pivots)


def lu_unpack(LU_data, LU_pivots, unpack_data=True, unpack_pivots=True):
    """torch.lu_unpack: (P, L, U); P is a constant of the pivots (no gradient), as torch."""
    P, L, U = OPS["lu_unpack"](LU_data, LU_pivots, unpack_data, unpack_pivots)
    return LU(P.detach(), L, U)


def lu_solve(LU_, pivots, B, *, left=True, adjoint=False):
    """torch.linalg.lu_solve: A X = B (left), X A = B (not left), with A^H if adjoint."""
    n, rows = LU_.shape[-1], (B.shape[-2] if left else B.shape[-1]) if B.ndim >= 2 else -1
    if rows != n:
        dims = "x".join(str(d) for d in B.shape)
        raise ShapeError(f"linalg.lu_solve: Incompatible shapes of A and B for the equation "
                         f"{'AX = B' if left else 'XA = B'} ({n}x{n} and {dims})")
    P, L, U = OPS["lu_unpack"](LU_, pivots)
    if left and not adjoint:      # X = U^-1 L^-1 P^T B
        y = _solve_tri(L, OPS["matmul"](OPS["transpose"](P, -2, -1), B), upper=False,
                       unitriangular=True)
        return _solve_tri(U, y, upper=True)
    if left:                      # A^H = U^H L^H P^T: X = P L^-H U^-H B
        y = _solve_tri(_mH(U), B, upper=False)
        return OPS["matmul"](P, _solve_tri(_mH(L), y, upper=True, unitriangular=True))
    if not adjoint:               # X P L U = B: X = B U^-1 L^-1 P^T
        y = _solve_tri(U, B, upper=True, left=False)
        y = _solve_tri(L, y, upper=False, left=False, unitriangular=True)
        return OPS["matmul"](y, OPS["transpose"](P, -2, -1))
    # X U^H L^H P^T = B: X = B P L^-H U^-H
    y = OPS["matmul"](B, P)
    y = _solve_tri(_mH(L), y, upper=True, left=False, unitriangular=True)
    return _solve_tri(_mH(U), y, upper=False, left=False)


def solve_ex(A, B, *, left=True, check_errors=False):
    """torch.linalg.solve_ex: (result, info) through LU, as LAPACK's gesv; info > 0 names
    the first zero pivot of a singular A (the result is then not meaningful)."""
    LU_, pivots, info = OPS["linalg_lu_factor_ex"](A, check_errors=check_errors)
    vector = B.ndim == 1 or (left and B.ndim == A.ndim - 1 and
                             tuple(B.shape) == tuple(A.shape[:-1]))
    rhs = OPS["unsqueeze"](B, -1) if vector else B
    X = lu_solve(LU_, pivots, rhs, left=left)
    return SolveEx(OPS["squeeze"](X, [-1]) if vector else X, info)


def lstsq(A, B, rcond=None, *, driver=None):
    """torch.linalg.lstsq: the registry op, plus torch's one data-dependent rule: with
    gelsd/gelss and m > n, `residuals` is empty unless every matrix has full rank. That
    needs the ranks' values, so it applies eagerly; a traced lstsq keeps the op's static
    shape (the residuals of the minimum-norm solution)."""
    result = OPS["linalg_lstsq"](A, B, rcond, driver=driver)
    rank, residuals = result.rank, result.residuals
    n = A.shape[-1]
    if residuals.numel() and rank.numel() and hasattr(type(rank), "__array__") and \
            bool((rank < n).any()):
        empty = OPS["narrow"](OPS["reshape"](residuals, [-1]), 0, 0, 0)
        return type(result)(result.solution, empty, rank, result.singular_values)
    return result


def torch_lu(A, pivot=True, get_infos=False):
    """torch.lu: (LU, pivots[, infos])."""
    LU_, pivots, info = OPS["linalg_lu_factor_ex"](A, pivot=pivot)
    return (LU_, pivots, info) if get_infos else (LU_, pivots)


def torch_lu_solve(b, LU_data, LU_pivots):
    """torch.lu_solve(b, LU_data, LU_pivots): A x = b."""
    return lu_solve(LU_data, LU_pivots, b)


# --- torch's older top-level forms ------------------------------------------------------
def svd(input, some=True, compute_uv=True):
    """torch.svd: (U, S, V) with V (not V^H); some=False gives full U and V. Without
    compute_uv, U and V are zeros of shape (m, m) and (n, n), as torch."""
    if not compute_uv:
        m, n = input.shape[-2:]
        batch = list(input.shape[:-2])
        S = OPS["linalg_svdvals"](input)
        zeros = OPS["full"]
        return SVD(zeros(batch + [m, m], 0, dtype=input.dtype), S,
                   zeros(batch + [n, n], 0, dtype=input.dtype))
    U, S, Vh = OPS["linalg_svd"](input, full_matrices=not some)
    return SVD(U, S, _mH(Vh))


def qr(input, some=True):
    """torch.qr: reduced (some=True) or complete QR."""
    return QR(*OPS["linalg_qr"](input, "reduced" if some else "complete"))


def cholesky(input, upper=False):
    return OPS["linalg_cholesky"](input, upper=upper)


def cholesky_solve(B, L, upper=False):
    """X with A X = B, A = L L^H (or U^H U when upper)."""
    _check_batched_matrices("cholesky_solve", B, L)
    if B.shape[-2] != L.shape[-1]:
        raise ShapeError(f"Incompatible matrix sizes for cholesky_solve: each A matrix is "
                         f"{L.shape[-2]} by {L.shape[-1]} but each b matrix is {B.shape[-2]} "
                         f"by {B.shape[-1]}")
    if upper:
        y = _solve_tri(_mH(L), B, upper=False)
        return _solve_tri(L, y, upper=True)
    y = _solve_tri(L, B, upper=False)
    return _solve_tri(_mH(L), y, upper=True)


def cholesky_inverse(L, upper=False):
    """(L L^H)^-1, or (U^H U)^-1 when upper."""
    if L.ndim < 2 or L.shape[-1] != L.shape[-2]:
        raise ShapeError(f"cholesky_inverse: A must be batches of square matrices, got "
                         f"{list(L.shape)}")
    return cholesky_solve(_eye_like(L, L.shape[-1]), L, upper)


def _eye_like(A, n):
    idx = OPS["arange"](0, n)
    eye = OPS["convert_element_type"](OPS["eq"](OPS["unsqueeze"](idx, 1),
                                                OPS["unsqueeze"](idx, 0)), A.dtype)
    return OPS["expand"](eye, list(A.shape[:-2]) + [n, n])


def _check_batched_matrices(name, B, A):
    if B.ndim < 2 or A.ndim < 2:
        raise ShapeError(f"{name}: b should have at least 2 dimensions, but has {B.ndim} "
                         f"dimensions instead")


def triangular_solve(b, A, upper=True, transpose=False, unitriangular=False):
    """torch.triangular_solve: (X with op(A) X = b, A's clone); op(A) is A^T if transpose."""
    _check_batched_matrices("triangular_solve", b, A)
    coeff = OPS["transpose"](A, -2, -1) if transpose else A
    X = _solve_tri(coeff, b, upper=upper != transpose, unitriangular=unitriangular)
    return TriangularSolve(X, OPS["clone"](A))


def logdet(input):
    """log(det(A)): NaN for a real A with negative determinant, -inf for a singular one;
    complex A: log|det| + i angle(det)."""
    sign, logabs = OPS["linalg_slogdet"](input)
    if input.dtype.is_complex:
        return logabs + OPS["angle"](sign) * 1j
    return OPS["where"](OPS["lt"](sign, 0), math.nan, logabs)


def matrix_exp(A):
    return OPS["linalg_matrix_exp"](A)


def pinverse(input, rcond=1e-15):
    return OPS["linalg_pinv"](input, rtol=rcond)


@autocast.autocast_as("cross")
def cross(input, other, dim=None):
    """torch.cross: with dim=None, the first dim of size 3 (of the broadcast shape)."""
    if dim is None:
        shape = [max(a, b) for a, b in zip((1,) * (other.ndim - input.ndim) + tuple(input.shape),
                                           (1,) * (input.ndim - other.ndim) + tuple(other.shape))]
        sizes = [i for i, s in enumerate(shape) if s == 3]
        if not sizes:
            raise ShapeError(f"no dimension of size 3 in input (shape {list(input.shape)})")
        dim = sizes[0]
    return OPS["linalg_cross"](input, other, dim=dim)


# --- small linalg helpers ---------------------------------------------------------------
def vecdot(x, y, *, dim=-1):
    """sum(conj(x) * y, dim): torch.linalg.vecdot; x and y of one dtype, as torch."""
    if not (x.dtype.is_floating_point or x.dtype.is_complex):
        raise DTypeNotImplementedError(f"linalg.vecdot: Expected a floating point or complex "
                                       f"tensor as input. Got {x.dtype.scalar_type_name}")
    if x.dtype != y.dtype:
        raise DTypeError(f"linalg.vecdot: Expected x and y to have the same dtype, but found "
                         f"x of type {x.dtype.scalar_type_name} and y of type "
                         f"{y.dtype.scalar_type_name} instead")
    try:
        broadcast_shapes(tuple(x.shape), tuple(y.shape))
    except ShapeError as err:
        raise ShapeError(f"linalg.vecdot: {err} (x {list(x.shape)}, y {list(y.shape)})") \
            from None
    with autocast.as_one_op("linalg_vecdot", x, y) as (x, y):
        xc = OPS["conj"](x) if x.dtype.is_complex else x
        return OPS["sum"](xc * y, [dim])


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    return OPS["diagonal"](A, offset, dim1, dim2)


# out= as torch takes it (written after the call, resized, same dtype: ir/out_arg.py);
# logdet, matrix_exp, pinverse and diagonal have none in torch
LINALG = {"lu_factor": with_out(lu_factor), "lu": with_out(lu), "lu_solve": with_out(lu_solve),
          "solve_ex": with_out(solve_ex), "vecdot": with_out(vecdot), "diagonal": diagonal,
          "lstsq": lstsq}
TOP_LEVEL = {"svd": with_out(svd), "qr": with_out(qr), "cholesky": with_out(cholesky),
             "cholesky_solve": with_out(cholesky_solve),
             "cholesky_inverse": with_out(cholesky_inverse), "lu": with_out(torch_lu),
             "lu_solve": with_out(torch_lu_solve), "triangular_solve": with_out(triangular_solve),
             "logdet": logdet, "matrix_exp": matrix_exp, "pinverse": pinverse,
             "cross": with_out(cross), "lu_unpack": with_out(lu_unpack)}
