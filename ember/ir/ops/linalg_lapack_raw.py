"""LAPACK-layout factorizations: geqrf (Householder QR, packed) and the LDL^T / LDL^H
family (linalg.ldl_factor_ex, linalg.ldl_solve), run by LAPACK through SciPy.

Their results are LAPACK's own layouts, as PyTorch returns them: geqrf gives R in the
upper triangle and the Householder vectors below it with their scalars tau (so that
Q = H_1 ... H_k, H_i = I - tau_i v_i v_i^H); ldl_factor_ex gives Bunch-Kaufman's lower
factor with D's 1x1/2x2 blocks on the diagonal band and 1-based int32 pivots (negative
for a 2x2 block), from ?sytrf (?hetrf with hermitian=True). None is differentiable, as in
PyTorch; linalg.householder_product and ormqr, which read geqrf's output, are
differentiable composites (ember/frontend/linalg_householder.py).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, LinAlgError, ShapeError, at_user_line
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from .linalg_common import (_batch, _batch_prefix, _meta, _require_matrix, _require_square,
                            _sample, _well_conditioned, linalg_op)
from .reduction import named_tuple_op
from .rules import broadcast_shapes


def _lapack(name: str, like: np.ndarray):
    from scipy.linalg import get_lapack_funcs  # noqa: PLC0415 - only when a kernel runs
    return get_lapack_funcs(name, (like,))


def _per_matrix(a: np.ndarray):
    """(batch shape, (B, m, n) C-contiguous copy) to loop LAPACK over."""
    count = int(np.prod(a.shape[:-2], dtype=np.int64))
    return a.shape[:-2], np.ascontiguousarray(a.reshape((count,) + a.shape[-2:]))


# --- geqrf ---------------------------------------------------------------------------------
def _geqrf_meta(A):
    _require_matrix(A)
    return _meta(A), _meta(A, _batch(A) + (min(A.shape[-2:]),))


def _geqrf_ref(A):
    batch, flat = _per_matrix(A)
    m, n = A.shape[-2:]
    packed, taus = np.zeros_like(flat), np.zeros((flat.shape[0], min(m, n)), A.dtype)
    if m and n:
        geqrf = _lapack("geqrf", flat)
        for i, a in enumerate(flat):
            packed[i], taus[i] = geqrf(a)[:2]
    return packed.reshape(A.shape), taus.reshape(batch + (min(m, n),))


def _geqrf_samples(rng):
    return [_sample(rng.standard_normal((4, 3)), grad=False),
            _sample(rng.standard_normal((2, 3, 5)).astype(np.complex128), grad=False),
            _sample(np.zeros((0, 2)), grad=False)]


geqrf = named_tuple_op(defop(
    "geqrf(Tensor self) -> (Tensor a, Tensor tau)",
    meta=_geqrf_meta, reference=_geqrf_ref, derivative=NOT_DIFFERENTIABLE,
    tags={Tag.LINALG}, samples=_geqrf_samples, torch_ref="torch.geqrf", method=True,
    doc="Householder QR in LAPACK's packed form: R above the diagonal, reflectors below.",
))


# --- LDL^T / LDL^H -----------------------------------------------------------------------
def _ldl_factor_ex_meta(A, hermitian=False, check_errors=False):
    _require_square(A)
    return (_meta(A), _meta(A, _batch(A) + (A.shape[-1],), dtypes.int32),
            _meta(A, _batch(A), dtypes.int32))


def _sytrf_name(a: np.ndarray, hermitian: bool) -> str:
    return "hetrf" if hermitian and a.dtype.kind == "c" else "sytrf"


def _ldl_factor_ex_ref(A, hermitian=False, check_errors=False):
    batch, flat = _per_matrix(A)
    n = A.shape[-1]
    ld = np.zeros_like(flat)
    pivots = np.tile(np.arange(1, n + 1, dtype=np.int32), (flat.shape[0], 1))
    info = np.zeros(flat.shape[0], np.int32)
    if n:
        sytrf = _lapack(_sytrf_name(flat, hermitian), flat)
        for i, a in enumerate(flat):
            factor, pivots[i], info[i] = sytrf(a, lower=1)
            ld[i] = np.tril(factor)   # LAPACK leaves the untouched upper triangle behind
    if check_errors and info.any():
        first = int(np.argmax(info != 0))
        raise LinAlgError(f"torch.linalg.ldl_factor: {_batch_prefix(A, first)}The factorization "
                          f"could not be completed because the input is singular "
                          f"(D[{info[first]}, {info[first]}] is zero).{at_user_line()}")
    return ld.reshape(A.shape), pivots.reshape(batch + (n,)), info.reshape(batch)


def _symmetric(rng, *shape, dtype=np.float64):
    a = _well_conditioned(rng, *shape, dtype=dtype)
    return (a + np.swapaxes(a, -1, -2)) / 2


def _ldl_factor_samples(rng):
    return [_sample(_symmetric(rng, 4, 4), grad=False),
            _sample(_symmetric(rng, 2, 3, 3, dtype=np.complex128), grad=False),
            _sample(_symmetric(rng, 3, 3, dtype=np.complex128), hermitian=True, grad=False),
            _sample(np.zeros((0, 0)), grad=False)]


ldl_factor_ex = linalg_op(
    "ldl_factor_ex(Tensor self, *, bool hermitian=False, bool check_errors=False) -> "
    "(Tensor LD, Tensor pivots, Tensor info)",
    named=True, meta=_ldl_factor_ex_meta, reference=_ldl_factor_ex_ref,
    derivative=NOT_DIFFERENTIABLE, samples=_ldl_factor_samples,
    doc="Bunch-Kaufman LDL^T (LDL^H with hermitian=True) of the lower triangle of A.",
)


def _ldl_solve_meta(LD, pivots, B, hermitian=False):
    _require_square(LD, "LD")
    _require_matrix(B, "B")
    if pivots.dtype.is_floating_point or pivots.dtype.is_complex or pivots.dtype.name == "bool":
        raise DTypeError(f"Expected pivots to be integers. Got "
                         f"{pivots.dtype.scalar_type_name}")
    if LD.dtype != B.dtype:
        raise DTypeError(f"Expected b and A to have the same dtype, but found b of type "
                         f"{B.dtype.scalar_type_name} and A of type "
                         f"{LD.dtype.scalar_type_name} instead.")
    n = LD.shape[-1]
    if tuple(pivots.shape) != _batch(LD) + (n,):
        raise ShapeError("Expected LD.shape[:-1] and pivots.shape to be the same, but got "
                         f"pivots with shape {list(pivots.shape)} instead")
    if B.shape[-2] != n:
        raise ShapeError(f"Incompatible matrix sizes for torch.linalg.ldl_solve: each A "
                         f"matrix is {n} by {n} but each b matrix is {B.shape[-2]} by "
                         f"{B.shape[-1]}")
    batch = broadcast_shapes(_batch(LD), _batch(B))
    return _meta(B, tuple(batch) + tuple(B.shape[-2:]))


def _ldl_solve_ref(LD, pivots, B, hermitian=False):
    batch = np.broadcast_shapes(LD.shape[:-2], B.shape[:-2])
    n, k = B.shape[-2:]
    count = int(np.prod(batch, dtype=np.int64))
    ld = np.broadcast_to(LD, batch + LD.shape[-2:]).reshape((count, n, n))
    piv = np.broadcast_to(pivots, batch + (n,)).reshape((count, n)).astype(np.int32)
    b = np.broadcast_to(B, batch + (n, k)).reshape((count, n, k))
    out = np.zeros(b.shape, B.dtype)
    if n and k:
        name = "hetrs" if hermitian and B.dtype.kind == "c" else "sytrs"
        sytrs = _lapack(name, b)
        for i in range(b.shape[0]):
            out[i] = sytrs(ld[i], piv[i], b[i], lower=1)[0]
    return out.reshape(batch + (n, k))


def _ldl_solve_samples(rng):
    out = []
    for shape, hermitian, dtype in (((4, 4), False, np.float64),
                                    ((2, 3, 3), True, np.complex128)):
        ld, piv, _ = _ldl_factor_ex_ref(_symmetric(rng, *shape, dtype=dtype), hermitian)
        b = rng.standard_normal(shape[:-1] + (2,)).astype(dtype)
        out.append(_sample(ld, piv, b, hermitian=hermitian, grad=False))
    return out


ldl_solve = linalg_op(
    "ldl_solve(Tensor LD, Tensor pivots, Tensor B, *, bool hermitian=False) -> Tensor",
    meta=_ldl_solve_meta, reference=_ldl_solve_ref, derivative=NOT_DIFFERENTIABLE,
    samples=_ldl_solve_samples, doc="Solve A X = B from ldl_factor's LD and pivots.",
)
