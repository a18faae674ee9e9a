"""ember.linalg, inverses and linear systems: inv(_ex), det, slogdet, solve,
solve_triangular, pinv, matrix_rank, lstsq, tensorinv, tensorsolve.

Conventions shared by every linalg family (schemas, LinAlgError, derivative style,
gauge) are described in `linalg_common`.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..errors import at_user_line, LinAlgError, ShapeError
from ..schema import SchemaError
from ..registry import NOT_DIFFERENTIABLE
from . import samples as S
from .linalg_common import (
    _batch, _c, _col, _first_zero_pivot, _i_imag, _meta, _mH, _mH_np, _nan_to_zero,
    _raise_singular, _real_of, _require_float, _require_matrix, _require_square, _same_dtype,
    _sample, _spd, _square_meta, _square_samples, _well_conditioned, linalg_op)
from .rules import broadcast_shapes, wrap_dims


# --- inv, det, slogdet --------------------------------------------------------------------

def _inv_ref(A):
    try:
        return np.linalg.inv(A)
    except np.linalg.LinAlgError:
        _raise_singular("inv", A)


def _inv_grad(g, A, out):
    """d(A^-1) = -A^-1 dA A^-1, so gA = -A^-H g A^-H."""
    return -matmul(matmul(_mH(out), g), _mH(out))


inv = linalg_op(
    "inv(Tensor A) -> Tensor",
    meta=_square_meta, reference=_inv_ref, derivative=_inv_grad, saves=(),
    samples=_square_samples(),
    doc="Inverse of square matrices; singular input raises LinAlgError naming the zero pivot.",
)


def _inv_ex_meta(A, check_errors=False):
    _require_square(A)
    return _meta(A), _meta(A, _batch(A), dtypes.int32)


def _inv_ex_ref(A, check_errors=False):
    if A.size == 0:  # every matrix of a 0x0 (or empty batch) input is trivially invertible
        return A.copy(), np.zeros(A.shape[:-2], np.int32)
    info = np.array([_first_zero_pivot(m) for m in A.reshape((-1,) + A.shape[-2:])],
                    np.int32).reshape(A.shape[:-2])
    if check_errors and info.any():
        _raise_singular("inv_ex", A)
    # Singular matrices get NaN: LAPACK leaves a partial factorization, never a meaning.
    out = np.full(A.shape, np.nan, dtype=A.dtype)
    ok = info == 0
    if ok.any():
        out[ok] = np.linalg.inv(A[ok])
    return out, info


inv_ex = linalg_op(
    "inv_ex(Tensor A, *, bool check_errors=False) -> (Tensor inverse, Tensor info)",
    named=True, meta=_inv_ex_meta, reference=_inv_ex_ref,
    derivative=lambda g, A, check_errors, out: _inv_grad(g[0], A, out[0]), saves=(),
    samples=lambda rng: [_sample(_well_conditioned(rng, 2, 3, 3)),
                         _sample(np.zeros((3, 3)), grad=False)],
    torch_ref=lambda torch: lambda A, **kw: _nan_to_zero(torch, torch.linalg.inv_ex(A, **kw)),
    doc="(inverse, info): info is the 1-based zero pivot (0: invertible); singular "
        "matrices' inverses are NaN (torch leaves LAPACK's partial result).",
)


def _det_meta(A):
    _require_square(A)
    return _meta(A, _batch(A))


def _det_grad(g, A, out):
    """d det = tr(adj(A) dA): gA = g adj(A)^H, which is (g * conj(det)) A^-H where A is
    invertible. At a singular A (det exactly 0, seen eagerly) the adjugate comes from the
    SVD instead, as torch does there; traced graphs keep the A^-1 form."""
    if _has_values(out) and bool(np.any(np.asarray(out) == 0)):
        return _col(g) * _mH(_adjugate_svd(A))
    return _col(g * _c(out)) * _mH(inv(A))


def _has_values(t) -> bool:
    return hasattr(type(t), "__array__") and str(getattr(t, "device", "cpu")).startswith("cpu")


def _adjugate_svd(A):
    """adj(A) = det(U) det(V^H) V diag(prod_{j != i} s_j) U^H for A = U S V^H: defined
    (and continuous) at singular A too."""
    U, S, Vh = svd(A, full_matrices=False)
    n = S.shape[-1]
    others = [prod(cat([narrow(S, -1, 0, i), narrow(S, -1, i + 1, n - i - 1)], -1), -1)
              for i in range(n)]
    scale = stack(others, -1) if n else S
    if A.dtype.is_complex:
        scale = convert_element_type(scale, A.dtype)
    phase = det(U) * det(Vh)
    return _col(phase) * matmul(_mH(Vh) * unsqueeze(scale, -2), _mH(U))


det = linalg_op(
    "det(Tensor A) -> Tensor",
    meta=_det_meta, reference=lambda A: np.asarray(np.linalg.det(A)), derivative=_det_grad,
    samples=_square_samples(),
    doc="Determinant. The gradient uses A^-1, so it is undefined at singular A (torch "
        "falls back to an SVD there).",
)


def _slogdet_meta(A):
    _require_square(A)
    return _meta(A, _batch(A)), _meta(A, _batch(A), _real_of(A.dtype))


def _slogdet_ref(A):
    sign, logabsdet = np.linalg.slogdet(A)
    return np.asarray(sign, A.dtype), np.asarray(logabsdet)


def _slogdet_grad(g, A, out):
    """logabsdet changes by Re tr(A^-1 dA), the sign's phase by Im tr(A^-1 dA)."""
    g_sign, g_log = g
    sign = out[0]
    coeff = g_log
    if A.dtype.is_complex:
        coeff = g_log - _i_imag(_c(g_sign) * sign)
    return _col(coeff) * _mH(inv(A))


slogdet = linalg_op(
    "slogdet(Tensor A) -> (Tensor sign, Tensor logabsdet)",
    named=True, meta=_slogdet_meta, reference=_slogdet_ref, derivative=_slogdet_grad,
    samples=_square_samples(),
)


# --- solve, solve_triangular ----------------------------------------------------------------

def _solve_is_vector(A, B) -> bool:
    """torch: B is a (batch of) vector(s) if 1-D, or if B.shape == A.shape[:-1]."""
    return B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))


def _solve_meta(A, B, left=True):
    _require_square(A)
    _same_dtype(A, B)
    n = A.shape[-1]
    vector = _solve_is_vector(A, B)
    # a vector B is a column (n x 1), as in torch: with left=False, XA = B cannot hold
    rows = (B.shape[-1] if left else 1) if vector else B.shape[-2 if left else -1]
    if rows != n:
        side = "A.size(-1) == B.size(-2)" if left else "A.size(-2) == B.size(-1)"
        b_dims = f"{B.shape[-1]}x1" if vector else _dims(B)
        raise ShapeError(f"Incompatible shapes of A and B for the equation "
                         f"{'AX = B' if left else 'XA = B'} ({_dims(A)} and {b_dims}): "
                         f"expected {side}")
    b_batch = tuple(B.shape[:-1]) if vector else tuple(B.shape[:-2])
    batch = broadcast_shapes(_batch(A), b_batch)
    tail = (n,) if vector else tuple(B.shape[-2:])
    return _meta(A, batch + tail)


def _dims(t) -> str:
    return "x".join(str(s) for s in t.shape)


def _solve_ref(A, B, left=True):
    vector = _solve_is_vector(A, B)
    b = B[..., None] if vector else B
    if not left:        # X A = B  <=>  A^T X^T = B^T
        A, b = np.swapaxes(A, -1, -2), np.swapaxes(b, -1, -2)
    try:
        x = np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        raise LinAlgError(f"torch.linalg.solve: {_first_singular(A, b)}The solver failed "
                          f"because the input matrix is singular." + at_user_line()) from None
    if not left:
        x = np.swapaxes(x, -1, -2)
    return x[..., 0] if vector else x


def _first_singular(A, b) -> str:
    """torch's '(Batch element i): ' prefix: the first singular matrix of A's batch,
    broadcast against b's."""
    batch = np.broadcast_shapes(A.shape[:-2], b.shape[:-2])
    if not batch:
        return ""
    mats = np.broadcast_to(A, batch + A.shape[-2:]).reshape((-1,) + A.shape[-2:])
    index = next((i for i, m in enumerate(mats) if _first_zero_pivot(m)), 0)
    return f"(Batch element {index}): "


def _as_matrix(x, vector):
    return unsqueeze(x, -1) if vector else x


def _solve_grad(g, A, B, left, out):
    """X = A^-1 B: gB = A^-H g, gA = -gB X^H (left); X = B A^-1: gA = -X^H gB."""
    vector = _solve_is_vector(A, B)
    gB = solve(_mH(A), g, left=left)
    gm, xm = _as_matrix(gB, vector), _as_matrix(out, vector)
    gA = -matmul(gm, _mH(xm)) if left else -matmul(_mH(xm), gm)
    return gA, gB


solve = linalg_op(
    "solve(Tensor A, Tensor B, *, bool left=True) -> Tensor",
    meta=_solve_meta, reference=_solve_ref, derivative=_solve_grad, saves=("A",),
    samples=lambda rng: [
        _sample(_well_conditioned(rng, 3, 3), S.randn(rng, 3, 2, dtype=np.float64)),
        _sample(_well_conditioned(rng, 2, 3, 3), S.randn(rng, 2, 3, dtype=np.float64)),
        _sample(_well_conditioned(rng, 3, 3), S.randn(rng, 3, dtype=np.float64)),
        _sample(_well_conditioned(rng, 2, 3, 3), S.randn(rng, 3, 1, dtype=np.float64)),
        _sample(_well_conditioned(rng, 3, 3), S.randn(rng, 2, 3, dtype=np.float64),
                left=False),
        _sample(_well_conditioned(rng, 3, 3, dtype=np.float32),
                S.randn(rng, 3, 2, dtype=np.float32)),
        _sample(_well_conditioned(rng, 3, 3, dtype=np.complex128),
                _well_conditioned(rng, 3, 3, dtype=np.complex128)[:, :2].copy())],
)


def _triangular(a: np.ndarray, upper: bool, unitriangular: bool) -> np.ndarray:
    t = np.triu(a) if upper else np.tril(a)
    if unitriangular:
        t = t - np.eye(a.shape[-1]) * np.diagonal(t, 0, -2, -1)[..., None, :] + np.eye(a.shape[-1])
    return t


def _solve_triangular_meta(A, B, upper, left=True, unitriangular=False):
    """As solve's, except that B is always a (batch of) matrices: no vector case."""
    _require_square(A)
    _require_matrix(B, "B")
    _same_dtype(A, B)
    n = A.shape[-1]
    if B.shape[-2 if left else -1] != n:
        side = "A.size(-1) == B.size(-2)" if left else "A.size(-2) == B.size(-1)"
        raise ShapeError(f"Incompatible shapes of A and B for the equation "
                         f"{'AX = B' if left else 'XA = B'} ({_dims(A)} and {_dims(B)}): "
                         f"expected {side}")
    return _meta(A, broadcast_shapes(_batch(A), tuple(B.shape[:-2])) + tuple(B.shape[-2:]))


def _solve_triangular_ref(A, B, upper, left=True, unitriangular=False):
    t = _triangular(A, upper, unitriangular)
    if not left:
        t, B = np.swapaxes(t, -1, -2), np.swapaxes(B, -1, -2)
    batch = np.broadcast_shapes(t.shape[:-2], B.shape[:-2])
    t = np.broadcast_to(t, batch + t.shape[-2:])
    B = np.broadcast_to(B, batch + B.shape[-2:])
    # torch (trsm) gives inf/nan for a zero pivot, in that batch element only
    x = np.full(batch + B.shape[-2:], np.nan, dtype=np.result_type(t, B))
    ok = np.all(np.diagonal(t, 0, -2, -1) != 0, axis=-1)
    if ok.any():
        x[ok] = np.linalg.solve(t[ok], B[ok])
    return np.swapaxes(x, -1, -2) if not left else x


def _solve_triangular_grad(g, A, B, upper, left, unitriangular, out):
    """As solve's, with gA projected onto the triangle that A's values come from."""
    gB = solve_triangular(_mH(A), g, upper=not upper, left=left, unitriangular=unitriangular)
    gA = -matmul(gB, _mH(out)) if left else -matmul(_mH(out), gB)
    gA = triu(gA, 1 if unitriangular else 0) if upper else tril(gA, -1 if unitriangular else 0)
    return gA, gB


solve_triangular = linalg_op(
    "solve_triangular(Tensor A, Tensor B, *, bool upper, bool left=True, "
    "bool unitriangular=False) -> Tensor",
    meta=_solve_triangular_meta, reference=_solve_triangular_ref,
    derivative=_solve_triangular_grad, saves=("A",),
    samples=lambda rng: [
        _sample(_well_conditioned(rng, 3, 3), S.randn(rng, 3, 2, dtype=np.float64), upper=True),
        _sample(_well_conditioned(rng, 2, 3, 3), S.randn(rng, 2, 3, 2, dtype=np.float64),
                upper=False),
        _sample(_well_conditioned(rng, 3, 3), S.randn(rng, 2, 3, dtype=np.float64),
                upper=False, left=False),
        _sample(_well_conditioned(rng, 3, 3), S.randn(rng, 3, 2, dtype=np.float64),
                upper=True, unitriangular=True),
        _sample(_well_conditioned(rng, 3, 3, dtype=np.complex128),
                _well_conditioned(rng, 3, 3, dtype=np.complex128), upper=True)],
)


# --- pinv, matrix_rank, lstsq --------------------------------------------------------------

def _tolerance(s: np.ndarray, atol, rtol, m: int, n: int, eps: float) -> np.ndarray:
    """torch's rule: max(atol, rtol * sigma_max); rtol defaults to eps * max(m, n) unless
    only a positive atol is given. atol and rtol may be tensors over the batch (torch's
    Tensor overload): each matrix then has its own."""
    atol_a = np.asarray(0.0 if atol is None else atol, dtype=np.float64)[..., None]
    if rtol is None:
        default = eps * max(m, n)
        rtol_a = default if atol is None else np.where(atol_a > 0, 0.0, default)
    else:
        rtol_a = np.asarray(rtol, dtype=np.float64)[..., None]
    smax = s[..., :1] if s.shape[-1] else np.zeros(s.shape[:-1] + (1,))
    return np.maximum(atol_a, rtol_a * smax)


def _pinv_ref(A, atol=None, rtol=None, hermitian=False):
    if hermitian:
        return _pinv_hermitian_ref(A, atol, rtol)
    u, s, vh = np.linalg.svd(A, full_matrices=False)
    keep = s > _tolerance(s, atol, rtol, *A.shape[-2:], np.finfo(s.dtype).eps)
    s_inv = np.where(keep, 1 / np.where(keep, s, 1), 0)
    return np.asarray(_mH_np(vh) * s_inv[..., None, :] @ _mH_np(u), A.dtype)


def _pinv_hermitian_ref(A, atol, rtol):
    """Through eigh of the lower triangle (PyTorch reads only that one): eigenvalues whose
    magnitude passes the tolerance are inverted, the rest dropped."""
    w, v = np.linalg.eigh(A, UPLO="L")
    mag = np.abs(w)
    order = np.argsort(-mag, axis=-1)                    # the tolerance reads the largest
    tol = _tolerance(np.take_along_axis(mag, order, -1), atol, rtol, *A.shape[-2:],
                     np.finfo(mag.dtype).eps)
    keep = mag > tol
    w_inv = np.where(keep, 1 / np.where(keep, w, 1), 0)
    return np.asarray(v * w_inv[..., None, :] @ _mH_np(v), A.dtype)


def _pinv_meta(A, atol=None, rtol=None, hermitian=False):
    _require_matrix(A)
    return _meta(A, _batch(A) + (A.shape[-1], A.shape[-2]))


def _pinv_vjp(g, A, X):
    """dX = -X dA X + X X^H dA^H (I - A X) + (I - X A) dA^H X^H X (Golub & Pereyra):
    gA = -X^H g X^H + (I - A X) g^H X X^H + X^H X g^H (I - X A)."""
    gh = _mH(g)
    term1 = -matmul(matmul(_mH(X), g), _mH(X))
    ghXXh = matmul(gh, matmul(X, _mH(X)))
    term2 = ghXXh - matmul(A, matmul(X, ghXXh))
    XhXgh = matmul(matmul(_mH(X), X), gh)
    term3 = XhXgh - matmul(matmul(XhXgh, X), A)
    return term1 + term2 + term3


PINV_HERMITIAN_NOTE = ("PyTorch's gradient for hermitian=True is the general pinv gradient at "
                       "A, while the value reads only A's lower triangle, so finite "
                       "differences disagree; tests/ops/test_wrong_results.py checks it "
                       "against torch")

pinv = linalg_op(
    "pinv(Tensor A, *, float? atol=None, float? rtol=None, bool hermitian=False) -> Tensor",
    meta=_pinv_meta, reference=_pinv_ref,
    derivative=lambda g, A, atol, rtol, hermitian, out: _pinv_vjp(g, A, out),
    samples=lambda rng: [_sample(S.randn(rng, 4, 3, dtype=np.float64)),
                         _sample(S.randn(rng, 2, 3, 4, dtype=np.float64)),
                         _sample(_well_conditioned(rng, 3, 3, dtype=np.float32)),
                         _sample(S.randn(rng, 3, 2, dtype=np.float64), rtol=1e-3),
                         _sample(_well_conditioned(rng, 3, 3, dtype=np.complex128)),
                         _sample(_well_conditioned(rng, 3, 3, dtype=np.float64), hermitian=True,
                                 grad=False, note=PINV_HERMITIAN_NOTE),
                         _sample(_well_conditioned(rng, 2, 3, 3, dtype=np.complex128),
                                 hermitian=True, grad=False, note=PINV_HERMITIAN_NOTE)],
    doc="Moore-Penrose inverse through the SVD (hermitian=True: eigh of the lower triangle; "
        "the gradient, as PyTorch's, is the general one at A); it assumes a locally "
        "constant rank.",
)


def _matrix_rank_meta(A, tol=None, hermitian=False, atol=None, rtol=None):
    _require_matrix(A)
    if tol is not None and (atol is not None or rtol is not None):
        raise SchemaError("linalg.matrix_rank: tol cannot be given with atol or rtol (tol is "
                         "the older spelling of atol with rtol=0)")
    return _meta(A, _batch(A), dtypes.int64)


def _matrix_rank_ref(A, tol=None, hermitian=False, atol=None, rtol=None):
    if tol is not None:             # torch's older overload: an absolute tolerance alone
        atol, rtol = tol, 0.0
    if hermitian:
        s = np.sort(np.abs(np.linalg.eigvalsh(A)), axis=-1)[..., ::-1]
    else:
        s = np.linalg.svd(A, compute_uv=False)
    tol = _tolerance(s, atol, rtol, *A.shape[-2:], np.finfo(s.dtype).eps)
    return np.sum(s > tol, axis=-1).astype(np.int64)


def _low_rank(rng, *shape, rank=2, dtype=np.float64):
    a = S.randn(rng, *shape[:-1], rank, dtype=np.float64) @ \
        S.randn(rng, *shape[:-2], rank, shape[-1], dtype=np.float64)
    return np.asarray(a, dtype)


matrix_rank = linalg_op(
    "matrix_rank(Tensor A, float? tol=None, bool hermitian=False, *, float? atol=None, "
    "float? rtol=None) -> Tensor",
    meta=_matrix_rank_meta, reference=_matrix_rank_ref, derivative=NOT_DIFFERENTIABLE,
    samples=lambda rng: [_sample(_low_rank(rng, 4, 3)), _sample(_low_rank(rng, 2, 3, 5)),
                         _sample(S.randn(rng, 3, 3, dtype=np.float64), atol=0.5),
                         _sample(_spd(rng, 3, 3), hermitian=True)],
)

LSTSQ_DRIVERS = ("gels", "gelsy", "gelsd", "gelss")


def _lstsq_parts(A, B, driver):
    """Which of residuals / rank / singular_values torch's driver fills (others: empty)."""
    driver = driver or "gelsy"
    if driver not in LSTSQ_DRIVERS:
        raise ShapeError(f"parameter `driver` should be one of {LSTSQ_DRIVERS}")
    m, n = A.shape[-2:]
    return driver, driver != "gelsy" and m > n, driver != "gels", driver in ("gelsd", "gelss")


def _lstsq_meta(self, b, rcond=None, driver=None):
    _require_matrix(self)
    _same_dtype(self, b)
    vector = b.ndim == self.ndim - 1
    if not vector and b.ndim != self.ndim:
        raise ShapeError(f"input.dim() must be greater or equal to other.dim() and "
                         f"(input.dim() - other.dim()) <= 1 (A {list(self.shape)}, "
                         f"B {list(b.shape)})")
    m, n = self.shape[-2:]
    b_rows = b.shape[-1] if vector else b.shape[-2]
    if b_rows != m:
        raise ShapeError(f"input.size(-2) should match other.size(-2) (A {list(self.shape)}, "
                         f"B {list(b.shape)})")
    _, has_res, has_rank, has_sv = _lstsq_parts(self, b, driver)
    b_batch = tuple(b.shape[:-1]) if vector else tuple(b.shape[:-2])
    batch = broadcast_shapes(_batch(self), b_batch)
    k = () if vector else (b.shape[-1],)
    real = _real_of(self.dtype)
    a_batch = _batch(self)      # rank and singular values describe A alone, as in torch
    return (_meta(self, batch + (n,) + k),
            _meta(self, batch + (k or (1,)) if has_res else (0,), real),
            _meta(self, a_batch if has_rank else (0,), dtypes.int64),
            _meta(self, a_batch + (min(m, n),) if has_sv else (0,), real))


def _lstsq_ref(A, B, rcond=None, driver=None):
    driver, has_res, has_rank, has_sv = _lstsq_parts(A, B, driver)
    vector = B.ndim == A.ndim - 1
    b = B[..., None] if vector else B
    batch = np.broadcast_shapes(A.shape[:-2], b.shape[:-2])
    A_, b_ = np.broadcast_to(A, batch + A.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:])
    m, n = A.shape[-2:]
    rcond = np.finfo(np.abs(A).dtype).eps * max(m, n) if rcond is None else rcond
    x = np.empty(batch + (n, b.shape[-1]), np.result_type(A, B))
    rank = np.empty(batch, np.int64)
    sv = np.empty(batch + (min(m, n),), np.abs(A).dtype)
    for idx in np.ndindex(*batch):
        if driver == "gelsy":
            x[idx], rank[idx] = _gelsy(A_[idx], b_[idx], rcond)
        else:
            x[idx], _, rank[idx], sv[idx] = np.linalg.lstsq(A_[idx], b_[idx], rcond=rcond)
    res = np.sum(np.abs(A_ @ x - b_) ** 2, axis=-2)
    # A broadcast against B's batch repeats the same matrices: keep A's own batch
    a_idx = (0,) * (len(batch) - A.ndim + 2) + tuple(
        slice(None) if s > 1 else slice(0, 1) for s in A.shape[:-2])
    rank, sv = rank[a_idx].reshape(A.shape[:-2]), sv[a_idx].reshape(A.shape[:-2] + sv.shape[-1:])
    if vector:
        x = x[..., 0]
    empty = np.zeros((0,), np.abs(A).dtype)
    return (x, res if has_res else empty, rank if has_rank else np.zeros((0,), np.int64),
            sv if has_sv else empty)


def _gelsy(a, b, rcond):
    """LAPACK's gelsy, as torch's CPU default: its rank comes from a pivoted QR, not from
    singular values, so on rank-deficient input its solution differs from gelsd's."""
    from scipy.linalg import lstsq as scipy_lstsq  # noqa: PLC0415 - only when a kernel runs
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[1], b.shape[1]), np.result_type(a, b)), 0
    x, _, rank, _ = scipy_lstsq(a, b, cond=rcond, lapack_driver="gelsy", check_finite=False)
    return x, rank


def _lstsq_grad(g, self, b, rcond, driver, out):
    """X = pinv(A) B (full rank): through pinv's VJP; residuals ||AX - B||^2 are stationary
    in X, so only their explicit A and B dependence counts."""
    gX, gRes = g[0], g[1]
    vector = b.ndim == self.ndim - 1
    X, Bm, gXm = _as_matrix(out[0], vector), _as_matrix(b, vector), _as_matrix(gX, vector)
    P = pinv(self)
    gA = _pinv_vjp(matmul(gXm, _mH(Bm)), self, P)
    gB = matmul(_mH(P), gXm)
    if out[1].numel() > 0:
        R = matmul(self, X) - Bm
        gRm = unsqueeze(gRes, -2) * 2
        gA = gA + matmul(R * gRm, _mH(X))
        gB = gB - R * gRm
    return gA, (squeeze(gB, [-1]) if vector else gB)


LSTSQ_SV_NOTE = ("singular_values carries no gradient (as in torch), so finite differences "
                 "over every output do not check this sample")

lstsq = linalg_op(
    "lstsq(Tensor self, Tensor b, float? rcond=None, *, str? driver=None) -> "
    "(Tensor solution, Tensor residuals, Tensor rank, Tensor singular_values)",
    named=True, meta=_lstsq_meta, reference=_lstsq_ref, derivative=_lstsq_grad,
    nondifferentiable_outputs=(3,),
    samples=lambda rng: [
        _sample(S.randn(rng, 5, 3, dtype=np.float64), S.randn(rng, 5, 2, dtype=np.float64)),
        _sample(S.randn(rng, 2, 5, 3, dtype=np.float64), S.randn(rng, 2, 5, 2, dtype=np.float64),
                driver="gelsd", grad=False, note=LSTSQ_SV_NOTE),
        _sample(S.randn(rng, 4, 3, dtype=np.float64), S.randn(rng, 4, 2, dtype=np.float64),
                driver="gels"),
        _sample(S.randn(rng, 4, 3, dtype=np.float64), S.randn(rng, 4, dtype=np.float64),
                driver="gelss", grad=False, note=LSTSQ_SV_NOTE),
        _sample(S.randn(rng, 4, 3, dtype=np.float32), S.randn(rng, 4, 2, dtype=np.float32))],
    tol={"fwd": dict(rtol=1e-4, atol=1e-5)},
    doc="driver as torch (CPU default 'gelsy'); which outputs are filled follows the driver.",
)


# --- tensorinv, tensorsolve ------------------------------------------------------------------

def _tensorinv_meta(A, ind=2):
    if ind <= 0:
        raise ShapeError(f"Expected a strictly positive integer for 'ind', but got {ind}")
    _require_float(A)
    rows, cols = math.prod(A.shape[:ind]), math.prod(A.shape[ind:])
    if rows != cols:
        raise ShapeError(f"Expected self to satisfy the requirement prod(self.shape[ind:]) == "
                         f"prod(self.shape[:ind]), but got {cols} != {rows}")
    return _meta(A, tuple(A.shape[ind:]) + tuple(A.shape[:ind]))


def _tensorinv_ref(A, ind=2):
    rows = math.prod(A.shape[:ind])
    return _inv_ref(A.reshape(rows, rows)).reshape(A.shape[ind:] + A.shape[:ind])


def _tensorinv_grad(g, A, ind, out):
    rows = math.prod(A.shape[:ind])
    Y, gY = reshape(out, [rows, rows]), reshape(g, [rows, rows])
    return reshape(_inv_grad(gY, None, Y), list(A.shape))


tensorinv = linalg_op(
    "tensorinv(Tensor A, int ind=2) -> Tensor",
    meta=_tensorinv_meta, reference=_tensorinv_ref, derivative=_tensorinv_grad, saves=(),
    samples=lambda rng: [_sample(_well_conditioned(rng, 6, 6).reshape(2, 3, 6), 2),
                         _sample(_well_conditioned(rng, 4, 4).reshape(4, 2, 2), 1)],
)


def _tensorsolve_moved(A, dims):
    if not dims:
        return A
    return movedim(A, list(dims), list(range(A.ndim - len(dims), A.ndim)))


def _tensorsolve_meta(A, B, dims=None):
    _require_float(A)
    _same_dtype(A, B)
    shape = list(A.shape)
    if dims:
        kept = [s for i, s in enumerate(shape) if i not in wrap_dims(dims, A.ndim)]
        shape = kept + [shape[d] for d in wrap_dims(dims, A.ndim)]
    x_shape = tuple(shape[B.ndim:])
    # torch flattens both sides: A's leading dims need only hold as many elements as B
    if math.prod(shape[:B.ndim]) != math.prod(x_shape) or math.prod(x_shape) != math.prod(B.shape):
        raise ShapeError(f"Expected self to satisfy the requirement prod(self.shape[other.ndim:]) "
                         f"== prod(self.shape[:other.ndim]), but got {math.prod(x_shape)} != "
                         f"{math.prod(B.shape)} (A {list(A.shape)}, B {list(B.shape)})")
    return _meta(A, x_shape)


def _tensorsolve_ref(A, B, dims=None):
    if dims:
        dims = wrap_dims(dims, A.ndim)
        A = np.moveaxis(A, dims, range(A.ndim - len(dims), A.ndim))
    x_shape = A.shape[B.ndim:]
    n = B.size
    return _solve_ref(A.reshape(n, n), B.reshape(n)).reshape(x_shape)


def _tensorsolve_grad(g, A, B, dims, out):
    moved = _tensorsolve_moved(A, wrap_dims(dims, A.ndim) if dims else None)
    n = math.prod(B.shape)
    A2 = reshape(moved, [n, n])
    gA2, gB = _solve_grad(reshape(g, [n]), A2, reshape(B, [n]), True, reshape(out, [n]))
    gA = reshape(gA2, list(moved.shape))
    if dims:
        d = wrap_dims(dims, A.ndim)
        gA = movedim(gA, list(range(A.ndim - len(d), A.ndim)), list(d))
    return gA, reshape(gB, list(B.shape))


tensorsolve = linalg_op(
    "tensorsolve(Tensor A, Tensor B, int[]? dims=None) -> Tensor",
    meta=_tensorsolve_meta, reference=_tensorsolve_ref, derivative=_tensorsolve_grad,
    samples=lambda rng: [
        _sample(_well_conditioned(rng, 6, 6).reshape(2, 3, 6), S.randn(rng, 2, 3, dtype=np.float64)),
        _sample(_well_conditioned(rng, 6, 6).reshape(6, 2, 3), S.randn(rng, 6, dtype=np.float64)),
        _sample(np.moveaxis(_well_conditioned(rng, 4, 4).reshape(4, 2, 2), 0, 2),
                S.randn(rng, 4, dtype=np.float64), dims=[0, 1])],
)


from .joining import cat, stack, tril, triu  # noqa: E402 - derivative rules use these
from .linalg_decomp import svd  # noqa: E402
from .pointwise import convert_element_type  # noqa: E402
from .reduction import prod  # noqa: E402
from .shape import narrow  # noqa: E402
from .linear import matmul  # noqa: E402
from .pointwise import real  # noqa: E402
from .shape import movedim, reshape, squeeze, unsqueeze  # noqa: E402
