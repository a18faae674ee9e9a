"""ember.linalg, LU: lu_factor_ex (LU with partial pivoting, LAPACK getrf's layout) and
lu_unpack (P, L, U from the packed form). The rest of the family (linalg.lu_factor,
linalg.lu, linalg.lu_solve, linalg.solve_ex, torch.lu, torch.lu_solve) composes these
with triangular solves in ember/frontend/linalg_functions.py, so gradients come from
the rules here and solve_triangular's.

Pivots are 1-based int32, as LAPACK's ipiv: row i was swapped with row pivots[i] - 1.
A zero pivot does not stop the factorization (info names the first one), as getrf.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..errors import at_user_line, LinAlgError, ShapeError
from ..registry import defop, Tag
from . import samples as S
from .linalg_common import (_batch, _batch_prefix, _mH, _meta, _require_matrix, _sample,
                            _well_conditioned, linalg_op)
from .reduction import named_tuple_op


# --- the factorization ---------------------------------------------------------------------

def _cabs1(x: np.ndarray) -> np.ndarray:
    """LAPACK's pivot size: |Re| + |Im| (i?amax), which can pick a different row than |x|."""
    return np.abs(x.real) + np.abs(x.imag) if x.dtype.kind == "c" else np.abs(x)


def _getrf(a: np.ndarray):
    """Batched partial-pivoting LU of (..., m, n): (LU packed, 1-based pivots, info)."""
    lu = np.array(a, copy=True, order="C")        # flat below must be a view of it
    batch, (m, n) = lu.shape[:-2], lu.shape[-2:]
    k = min(m, n)
    flat = lu.reshape((math.prod(batch), m, n))     # (-1 is ambiguous for 0 x 0)
    pivots = np.zeros((flat.shape[0], k), np.int32)
    info = np.zeros(flat.shape[0], np.int32)
    rows = np.arange(flat.shape[0])
    for j in range(k):
        p = j + np.argmax(_cabs1(flat[:, j:, j]), axis=1)
        pivots[:, j] = p + 1
        flat[rows, [j] * len(rows)], flat[rows, p] = flat[rows, p], flat[rows, [j] * len(rows)]
        pivot = flat[:, j, j]
        zero = pivot == 0
        info[zero & (info == 0)] = j + 1
        scale = np.where(zero, 0, 1 / np.where(zero, 1, pivot))
        flat[:, j + 1:, j] *= scale[:, None]
        flat[:, j + 1:, j + 1:] -= flat[:, j + 1:, j:j + 1] * flat[:, j:j + 1, j + 1:]
    return lu, pivots.reshape(batch + (k,)), info.reshape(batch)


def _lu_factor_ex_meta(A, pivot=True, check_errors=False):
    _require_matrix(A)
    if not pivot:
        raise ShapeError("linalg.lu_factor: LU without pivoting is not implemented on the CPU")
    k = min(A.shape[-2:])
    return (_meta(A), _meta(A, _batch(A) + (k,), dtypes.int32),
            _meta(A, _batch(A), dtypes.int32))


def _lu_factor_ex_ref(A, pivot=True, check_errors=False):
    lu, pivots, info = _getrf(A)
    if check_errors and info.any():
        first = int(np.argmax(info.reshape(-1) != 0))
        order = info.reshape(-1)[first]
        raise LinAlgError(f"linalg.lu_factor_ex: {_batch_prefix(A, first)}The factorization "
                          f"could not be completed because the input is singular (U[{order}, "
                          f"{order}] is zero).{at_user_line()}")
    return lu, pivots, info


def _lu_factor_grad(gLU, A, LU, pivots):
    """A = P L U; gL, gU are gLU's strict lower (m x k) and upper (k x n) parts.

    Square: gA = P L^-H (tril(L^H gL, -1) + triu(gU U^H)) U^-H (torch's rule).
    Wide (m < n, U = [U1 U2]): with phi = tril(L^H gL - gU2 U2^H, -1) + triu(gU1 U1^H),
    gA = P L^-H [phi U1^-H, gU2]. Tall (m > n, L = [L1; L2]): with
    phi = tril(L1^H gL1, -1) + triu(gU U^H - L2^H gL2), gA = P [L1^-H phi; gL2] U^-H.
    Both follow from differentiating L^-1 P^T A (wide) or P^T A U^-1 (tall) blockwise.
    """
    m, n = A.shape[-2:]
    k = min(m, n)
    P, L, U = lu_unpack(LU, pivots)
    gL, gU = tril(gLU, -1)[..., :, :k], triu(gLU)[..., :k, :]
    if m == n:
        phi = tril(matmul(_mH(L), gL), -1) + triu(matmul(gU, _mH(U)))
        inner = solve_triangular(_mH(U), phi, upper=False, left=False)
        return matmul(P, solve_triangular(_mH(L), inner, upper=True, unitriangular=True))
    if m < n:
        return _lu_wide_grad(P, L, U, gL, gU, k)
    return _lu_tall_grad(P, L, U, gL, gU, k)


def _lu_wide_grad(P, L, U, gL, gU, k):
    U1, U2, gU1, gU2 = U[..., :, :k], U[..., :, k:], gU[..., :, :k], gU[..., :, k:]
    phi = tril(matmul(_mH(L), gL) - matmul(gU2, _mH(U2)), -1) + triu(matmul(gU1, _mH(U1)))
    left = solve_triangular(_mH(U1), phi, upper=False, left=False)          # phi U1^-H
    gX = cat([left, gU2], -1)
    return matmul(P, solve_triangular(_mH(L), gX, upper=True, unitriangular=True))


def _lu_tall_grad(P, L, U, gL, gU, k):
    L1, L2, gL1, gL2 = L[..., :k, :], L[..., k:, :], gL[..., :k, :], gL[..., k:, :]
    phi = tril(matmul(_mH(L1), gL1), -1) + triu(matmul(gU, _mH(U)) - matmul(_mH(L2), gL2))
    top = solve_triangular(_mH(L1), phi, upper=True, unitriangular=True)    # L1^-H phi
    gX = cat([top, gL2], -2)
    return matmul(P, solve_triangular(_mH(U), gX, upper=False, left=False))


def _lu_samples(rng):
    singular = S.randn(rng, 3, 3, dtype=np.float64)
    singular[:, 1] = 0
    return [_sample(_well_conditioned(rng, 3, 3)),
            _sample(_well_conditioned(rng, 2, 4, 4, dtype=np.float32)),
            _sample(_well_conditioned(rng, 3, 3, dtype=np.complex128)),
            _sample(S.randn(rng, 3, 5, dtype=np.float64), note="wide"),
            _sample(S.randn(rng, 2, 4, 2, dtype=np.complex128), note="tall"),
            _sample(singular, grad=False, note="singular: info > 0")]


lu_factor_ex = linalg_op(
    "lu_factor_ex(Tensor A, *, bool pivot=True, bool check_errors=False) -> "
    "(Tensor LU, Tensor pivots, Tensor info)",
    named=True, meta=_lu_factor_ex_meta, reference=_lu_factor_ex_ref,
    derivative=lambda g, A, pivot, check_errors, out: _lu_factor_grad(g[0], A, out[0], out[1]),
    saves=(), samples=_lu_samples,
    doc="LU with partial pivoting; LAPACK's packed layout and 1-based int32 pivots.",
)


# --- unpacking --------------------------------------------------------------------------

def _lu_unpack_meta(LU_data, LU_pivots, unpack_data=True, unpack_pivots=True):
    if LU_data.ndim < 2:
        raise ShapeError("torch.lu_unpack: Expected tensor with 2 or more dimensions. Got size: "
                         f"{list(LU_data.shape)} instead")
    if LU_pivots.dtype is not dtypes.int32:
        raise ShapeError("torch.lu_unpack: LU_pivots is expected to be a contiguous tensor of "
                         f"torch.int32 dtype. Note: this function is intended to be used with "
                         f"the output produced by torch.linalg.lu_factor")
    m, n = LU_data.shape[-2:]
    k = min(m, n)
    batch = tuple(LU_data.shape[:-2])
    p = _meta(LU_data, batch + (m, m) if unpack_pivots else (0,))
    lower = _meta(LU_data, batch + (m, k) if unpack_data else (0,))
    upper = _meta(LU_data, batch + (k, n) if unpack_data else (0,))
    return p, lower, upper


def _permutation(pivots: np.ndarray, m: int, dtype) -> np.ndarray:
    """P with A = P L U: apply the row swaps to the identity's rows, then transpose."""
    flat = pivots.reshape((math.prod(pivots.shape[:-1]), pivots.shape[-1])) - 1
    perm = np.tile(np.arange(m), (flat.shape[0], 1))
    rows = np.arange(flat.shape[0])
    for j in range(flat.shape[1]):
        p = flat[:, j]
        perm[rows, j], perm[rows, p] = perm[rows, p], perm[rows, j].copy()
    eye = np.eye(m, dtype=dtype)
    P = np.swapaxes(eye[perm], -1, -2)
    return P.reshape(pivots.shape[:-1] + (m, m))


def _lu_unpack_ref(LU, pivots, unpack_data=True, unpack_pivots=True):
    m, n = LU.shape[-2:]
    k = min(m, n)
    if pivots.size and (pivots.min() < 1 or pivots.max() > m):
        raise ShapeError(f"torch.lu_unpack: pivots must be in [1, {m}]")
    P = _permutation(pivots, m, LU.dtype) if unpack_pivots else np.zeros((0,), LU.dtype)
    if not unpack_data:
        return P, np.zeros((0,), LU.dtype), np.zeros((0,), LU.dtype)
    L = np.tril(LU[..., :, :k], -1) + np.eye(m, k, dtype=LU.dtype)
    U = np.triu(LU[..., :k, :])
    return P, L, U


def _lu_unpack_grad(g, LU_data, LU_pivots, unpack_data, unpack_pivots):
    """L's strict lower part and U's upper part come from disjoint entries of LU: each
    gradient goes back to its entries (zero-extended from m x k and k x n to m x n)."""
    _, gL, gU = g
    if not unpack_data:
        return None, None
    m, n = LU_data.shape[-2:]
    k = min(m, n)
    lower = pad_op(tril(gL, -1), [0, n - k])
    upper = pad_op(triu(gU), [0, 0, 0, m - k])
    return lower + upper, None


def _lu_unpack_samples(rng):
    def packed(*shape, dtype=np.float64):
        lu, piv, _ = _getrf(S.randn(rng, *shape, dtype=dtype))
        return lu, piv
    return [S.Sample(packed(3, 3)), S.Sample(packed(2, 4, 3)), S.Sample(packed(3, 5)),
            S.Sample(packed(3, 3, dtype=np.complex128)),
            S.Sample(packed(3, 3), {"unpack_pivots": False}),
            S.Sample(packed(3, 3), {"unpack_data": False}, grad=False,
                     note="nothing differentiable is returned")]


lu_unpack = named_tuple_op(defop(
    "lu_unpack(Tensor LU_data, Tensor LU_pivots, bool unpack_data=True, "
    "bool unpack_pivots=True) -> (Tensor P, Tensor L, Tensor U)",
    meta=_lu_unpack_meta, reference=_lu_unpack_ref, derivative=_lu_unpack_grad, saves=(),
    tags={Tag.LINALG}, samples=_lu_unpack_samples, torch_ref="torch.lu_unpack",
    doc="P, L (unit lower, m x k), U (upper, k x n) from lu_factor's packed form.",
))


from .joining import cat, pad_op, tril, triu  # noqa: E402 - derivative rules use these
from .linalg_solve import solve_triangular  # noqa: E402
from .linear import matmul  # noqa: E402
