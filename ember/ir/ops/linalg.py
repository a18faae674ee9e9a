"""ember.linalg as registry ops: torch.linalg's schemas, outputs, dtypes, errors and
derivatives (norms, det/slogdet, inv, solve(_triangular), cholesky, qr, eig(h), svd,
pinv, lstsq, matrix_rank/power/exp, cross, multi_dot, cond, vander, tensorinv/solve).

Schema names are aten's (`linalg_inv`); `namespace="linalg"` puts each op at
`ember.linalg.<python_name>`. Every op batches over leading dimensions. NumPy's
LAPACK wrappers are the reference kernels. Singular or indefinite input raises
`LinAlgError` with torch's wording.

Derivatives are written with ember ops (they differentiate again) and follow torch's
formulas and conventions: conjugate Wirtinger gradients for complex inputs; for
eigh/eig/svd the gradient exists only for losses that do not depend on the phase of
the vectors, and, as torch, we raise when the loss does (checked on concrete values;
traced graphs skip the check).

Gauge: ember fixes the sign/phase of eigenvectors and singular vectors so that the
largest-magnitude entry of each column of V (eig, eigh) or U (svd) is real positive.
torch and NumPy leave it to LAPACK; the normalization makes results reproducible.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..errors import AutogradError, DTypeError, LinAlgError, ShapeError, at_user_line
from ..meta import TensorMeta
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S
from .reduction import named_tuple_op
from .rules import broadcast_shapes, wrap_dim, wrap_dims

LIN = {Tag.LINALG}


def linalg_op(schema: str, *, named: bool = False, torch_ref=None, **fields):
    """Declare `linalg_<schema>` as ember.linalg.<name>; `named`: namedtuple result."""
    name = schema.split("(", 1)[0]
    op = defop("linalg_" + schema, namespace="linalg", python_name=name, tags=LIN,
               torch_ref=torch_ref or f"torch.linalg.{name}", **fields)
    return named_tuple_op(op) if named else op


# --- meta rules ----------------------------------------------------------------------

def _require_float(A, name="A"):
    if not (A.dtype.is_floating_point or A.dtype.is_complex):
        raise DTypeError(f"Expected a floating point or complex tensor as input. Got "
                         f"{A.dtype.scalar_type_name}")
    if A.dtype in (dtypes.float16, dtypes.bfloat16):
        raise DTypeError(f"Low precision dtypes not supported. Got {A.dtype.scalar_type_name}")


def _require_matrix(A, name="A"):
    _require_float(A, name)
    if A.ndim < 2:
        raise ShapeError(f"The input tensor {name} must have at least 2 dimensions.")


def _require_square(A, name="A"):
    _require_matrix(A, name)
    m, n = A.shape[-2:]
    if m != n:
        raise ShapeError(f"{name} must be batches of square matrices, but they are {m} by {n} "
                         f"matrices")


def _meta(like, shape=None, dtype=None) -> TensorMeta:
    return TensorMeta(tuple(like.shape) if shape is None else tuple(shape),
                      dtype or like.dtype, str(like.device))


def _real_of(dt):
    return dt.to_real() if dt.is_complex else dt


def _complex_of(dt):
    return dt if dt.is_complex else dt.to_complex()


def _square_meta(A, *_, **__):
    _require_square(A)
    return _meta(A)


def _batch(A):
    return tuple(A.shape[:-2])


def _same_dtype(A, B):
    if A.dtype != B.dtype:
        raise DTypeError(f"Expected A and B to have the same dtype, but found A of type "
                         f"{A.dtype.scalar_type_name} and B of type {B.dtype.scalar_type_name} "
                         f"instead.")


# --- reference helpers -----------------------------------------------------------------

def _batch_prefix(a: np.ndarray, index: int) -> str:
    return f"(Batch element {index}): " if a.ndim > 2 else ""


def _first_zero_pivot(a: np.ndarray) -> int:
    """1-based index of the first zero pivot of LU with partial pivoting (LAPACK getrf's
    info), 0 if none: torch names it in its singular-matrix error."""
    u = np.array(a, dtype=np.complex128 if a.dtype.kind == "c" else np.float64)
    n = u.shape[0]
    for k in range(n):
        p = k + int(np.argmax(np.abs(u[k:, k])))
        if u[p, k] == 0:
            return k + 1
        u[[k, p]] = u[[p, k]]
        u[k + 1:, k:] -= np.outer(u[k + 1:, k] / u[k, k], u[k, k:])
    return 0


def _raise_singular(opname: str, a: np.ndarray):
    mats = a.reshape((-1,) + a.shape[-2:])
    for i, mat in enumerate(mats):
        pivot = _first_zero_pivot(mat)
        if pivot:
            raise LinAlgError(f"linalg.{opname}: {_batch_prefix(a, i)}The diagonal element "
                              f"{pivot} is zero, the inversion could not be completed because "
                              f"the input matrix is singular.{at_user_line()}")
    raise LinAlgError(f"linalg.{opname}: the input matrix is singular.{at_user_line()}")


def _not_pd_order(mat: np.ndarray) -> int:
    """Order of the first leading minor that is not positive-definite (potrf's info)."""
    for k in range(1, mat.shape[0] + 1):
        try:
            np.linalg.cholesky(mat[:k, :k])
        except np.linalg.LinAlgError:
            return k
    return 0


def _cholesky_info(a: np.ndarray) -> np.ndarray:
    mats = a.reshape((-1,) + a.shape[-2:])
    return np.array([_not_pd_order(m) for m in mats], np.int32).reshape(a.shape[:-2])


def _mH_np(a):
    return np.conj(np.swapaxes(a, -1, -2))


def _gauge_fix_np(vectors: np.ndarray) -> np.ndarray:
    """Per-column phase that makes each column's largest-|.| entry real positive."""
    idx = np.argmax(np.abs(vectors), axis=-2)[..., None, :]
    peak = np.take_along_axis(vectors, idx, axis=-2)
    mag = np.abs(peak)
    return np.where(mag > 0, np.conj(peak) / np.where(mag > 0, mag, 1), 1).astype(vectors.dtype)


# --- ember-op helpers for derivative rules -------------------------------------------

def _c(x):
    return conj(x) if getattr(x, "dtype", None) is not None and x.dtype.is_complex else x


def _mT(x):
    return transpose(x, -2, -1)


def _mH(x):
    return _c(_mT(x))


def _eye(n: int, like):
    idx = arange(0, n)
    return convert_element_type(eq(unsqueeze(idx, 1), unsqueeze(idx, 0)), like.dtype)


def _diag_embed(v):
    return unsqueeze(v, -1) * _eye(v.shape[-1], v)


def _diag(x):
    return diagonal(x, 0, -2, -1)


def _col(v):
    """Scalar-per-matrix values (batch shape) as (..., 1, 1), to scale matrices."""
    return unsqueeze(unsqueeze(v, -1), -1)


def _i_imag(z):
    """i * Im(z) for complex z (z - Re z), avoiding complex Python scalars in graphs."""
    return z - real(z)


def _is_concrete(t) -> bool:
    return hasattr(t, "_array")


def _check_phase_invariant(VhgV_diag, what: str):
    """torch's check: a loss that depends on the vectors' phases has no gradient."""
    if not VhgV_diag.dtype.is_complex or not _is_concrete(VhgV_diag):
        return
    im = np.imag(np.asarray(VhgV_diag._array))
    if not np.allclose(im, 0, rtol=1e-2, atol=1e-2):
        raise AutogradError(what + at_user_line())


EIG_PHASE = ("{}: The eigenvectors in the complex case are specified up to multiplication by "
             "e^{{i phi}}. The specified loss function depends on this quantity, so it is "
             "ill-defined.")
SVD_PHASE = ("svd_backward: The singular vectors in the complex case are specified up to "
             "multiplication by e^{i phi}. The specified loss function depends on this phase "
             "term, making it ill-defined.")


# --- samples ----------------------------------------------------------------------------

def _well_conditioned(rng, *shape, dtype=np.float64):
    """Random square matrices kept away from singular: A + n*I, entries O(1)."""
    n = shape[-1]
    a = S.randn(rng, *shape, dtype=np.float64)
    if np.dtype(dtype).kind == "c":
        a = a + 1j * S.randn(rng, *shape, dtype=np.float64)
    return np.asarray(a + n * np.eye(shape[-2], n), dtype=dtype)


def _spd(rng, *shape, dtype=np.float64):
    a = _well_conditioned(rng, *shape, dtype=dtype)
    return np.asarray(a @ _mH_np(a) + np.eye(shape[-1]), dtype=dtype)


def _distinct_spectrum(rng, *shape, dtype=np.float64):
    """Q diag(1..n spaced) Q^T (+ a complex phase): eigen- and singular values apart."""
    n = shape[-1]
    q, _ = np.linalg.qr(_well_conditioned(rng, *shape, dtype=dtype))
    vals = np.arange(1, n + 1, dtype=np.float64) * 1.5 + rng.random(n) * 0.3
    return np.asarray((q * vals) @ _mH_np(q), dtype=dtype)


def _sample(*args, grad=True, note="", **kwargs):
    return S.Sample(tuple(args), kwargs, grad=grad, note=note)


def _square_samples(make=_well_conditioned):
    def gen(rng):
        return [_sample(make(rng, 3, 3)), _sample(make(rng, 2, 4, 4)),
                _sample(make(rng, 3, 3, dtype=np.float32)),
                _sample(make(rng, 2, 3, 3, dtype=np.complex128))]
    return gen


def _gauge_fixed(torch_fn, *, vec_index, partner_index=None):
    """torch_ref wrapper: torch's result with ember's gauge (see the module docstring).
    With a partner (svd's Vh), only the first k = partner rows columns are paired."""
    def call(*args, **kwargs):
        import torch
        out = list(torch_fn(*args, **kwargs))
        vecs = out[vec_index]
        k = vecs.shape[-1] if partner_index is None else out[partner_index].shape[-2]
        k = min(k, vecs.shape[-1])
        head = vecs[..., :k]
        peak = head.gather(-2, head.abs().argmax(dim=-2, keepdim=True)).detach()
        phase = (peak.conj() / peak.abs()).to(vecs.dtype)
        rest = torch.ones(phase.shape[:-1] + (vecs.shape[-1] - k,), dtype=vecs.dtype)
        out[vec_index] = vecs * torch.cat([phase, rest], -1)
        if partner_index is not None:
            partner = out[partner_index]
            rest = torch.ones(phase.shape[:-2] + (partner.shape[-2] - k, 1), dtype=vecs.dtype)
            out[partner_index] = partner * torch.cat([phase.conj().transpose(-2, -1), rest], -2)
        return tuple(out)
    return call


def _real_spectrum(rng, *shape, dtype=np.float64):
    """P diag(spaced) P^-1: a non-symmetric matrix with distinct real eigenvalues."""
    n = shape[-1]
    p = _well_conditioned(rng, *shape)
    vals = np.arange(1, n + 1, dtype=np.float64) * 1.5 + rng.random(n) * 0.3
    return np.asarray((p * vals) @ np.linalg.inv(p), dtype=dtype)


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


def _nan_to_zero(torch, result):
    """Test-only: compare inv_ex's inverse where defined (ember: NaN, torch: garbage)."""
    inverse, info = result
    bad = (info != 0)[..., None, None]
    return inverse.masked_fill(bad, float("nan")), info


def _det_meta(A):
    _require_square(A)
    return _meta(A, _batch(A))


def _det_grad(g, A, out):
    """d det = det * tr(A^-1 dA): gA = conj(g * det) ... as torch: (g * conj(det)) A^-H."""
    return _col(g * _c(out)) * _mH(inv(A))


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
    rows = B.shape[-1] if vector else B.shape[-2 if left else -1]
    if rows != n:
        side = "A.size(-1) == B.size(-2)" if left else "A.size(-2) == B.size(-1)"
        raise ShapeError(f"Incompatible shapes of A and B for the equation "
                         f"{'AX = B' if left else 'XA = B'} ({_dims(A)} and {_dims(B)}): "
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
        raise LinAlgError("torch.linalg.solve: The solver failed because the input matrix is "
                          "singular." + at_user_line()) from None
    if not left:
        x = np.swapaxes(x, -1, -2)
    return x[..., 0] if vector else x


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
    _require_square(A)
    _require_matrix(B, "B")
    return _solve_meta(A, B, left)


def _solve_triangular_ref(A, B, upper, left=True, unitriangular=False):
    t = _triangular(A, upper, unitriangular)
    if not left:
        t, B = np.swapaxes(t, -1, -2), np.swapaxes(B, -1, -2)
    with np.errstate(all="ignore"):      # torch (trsm) returns inf/nan for zero pivots
        x = np.linalg.solve(t, B) if np.all(np.diagonal(t, 0, -2, -1)) else \
            np.full(np.broadcast_shapes(t.shape[:-2], B.shape[:-2]) + B.shape[-2:], np.nan,
                    dtype=A.dtype)
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


# --- cholesky ---------------------------------------------------------------------------------

def _cholesky_ref(A, upper=False, check=True):
    try:
        L = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        info = _cholesky_info(A).reshape(-1)
        first = int(np.argmax(info != 0))
        raise LinAlgError(f"linalg.cholesky: {_batch_prefix(A, first)}The factorization could "
                          f"not be completed because the input is not positive-definite (the "
                          f"leading minor of order {info[first]} is not positive-definite)."
                          f"{at_user_line()}") from None
    return _mH_np(L) if upper else L


def _cholesky_grad(g, A, upper, out):
    """Murray (2016), torch's form: gA = sym(L^-H phi(L^H gL) L^-1), phi = tril with the
    diagonal halved."""
    L, gL = (_mH(out), _mH(g)) if upper else (out, g)
    L_inv = solve_triangular(L, _eye(L.shape[-1], L), upper=False)
    phi = tril(matmul(_mH(L), gL))
    phi = phi - _diag_embed(_diag(phi)) * 0.5
    gA = matmul(matmul(_mH(L_inv), phi), L_inv)
    return (gA + _mH(gA)) * 0.5


HERMITIAN_NOTE = ("finite differences perturb one entry and break the Hermitian input, while "
                  "torch's gradient is the symmetric one; tests/linalg checks it through a "
                  "symmetrizing wrapper, as torch's own OpInfo does")


def _hermitian_samples(make):
    def gen(rng):
        return [_sample(make(rng, 3, 3), grad=False, note=HERMITIAN_NOTE),
                _sample(make(rng, 2, 3, 3, dtype=np.float32), grad=False, note=HERMITIAN_NOTE),
                _sample(make(rng, 3, 3, dtype=np.complex128), grad=False, note=HERMITIAN_NOTE)]
    return gen


cholesky = linalg_op(
    "cholesky(Tensor A, *, bool upper=False) -> Tensor",
    meta=_square_meta, reference=lambda A, upper=False: _cholesky_ref(A, upper),
    derivative=_cholesky_grad, saves=(), samples=_hermitian_samples(_spd),
    doc="Reads the lower triangle of A; upper=True returns L^H.",
)


def _cholesky_ex_meta(A, upper=False, check_errors=False):
    _require_square(A)
    return _meta(A), _meta(A, _batch(A), dtypes.int32)


def _cholesky_ex_ref(A, upper=False, check_errors=False):
    info = _cholesky_info(A)
    if check_errors and info.any():
        _cholesky_ref(A, upper)
    out = np.full(A.shape, np.nan, dtype=A.dtype)
    ok = info == 0
    if ok.any():
        out[ok] = _cholesky_ref(A[ok], upper)
    return out, info


cholesky_ex = linalg_op(
    "cholesky_ex(Tensor A, *, bool upper=False, bool check_errors=False) -> "
    "(Tensor L, Tensor info)",
    named=True, meta=_cholesky_ex_meta, reference=_cholesky_ex_ref,
    derivative=lambda g, A, upper, check_errors, out: _cholesky_grad(g[0], A, upper, out[0]),
    saves=(), samples=lambda rng: [_sample(_spd(rng, 2, 3, 3), grad=False, note=HERMITIAN_NOTE),
                                   _sample(-np.eye(3), grad=False)],
    torch_ref=lambda torch: lambda A, **kw: _nan_to_zero(torch, torch.linalg.cholesky_ex(A, **kw)),
    doc="(L, info): info is the order of the first leading minor that is not positive-"
        "definite (0: success); failed factorizations are NaN.",
)



# --- qr ---------------------------------------------------------------------------------

def _qr_meta(A, mode="reduced"):
    _require_matrix(A)
    if mode not in ("reduced", "complete", "r"):
        raise ShapeError(f"qr received unrecognized mode '{mode}' but expected one of "
                         f"'reduced' (default), 'r', or 'complete'")
    m, n = A.shape[-2:]
    k = m if mode == "complete" else min(m, n)
    q = _meta(A, (0,)) if mode == "r" else _meta(A, _batch(A) + (m, k))
    return q, _meta(A, _batch(A) + (k, n))


def _qr_ref(A, mode="reduced"):
    if mode == "r":
        return np.zeros((0,), A.dtype), np.linalg.qr(A, mode="r")
    q, r = np.linalg.qr(A, mode=mode)
    return q, r


def _qr_grad(g, A, mode, out):
    """m >= n (torch's case 1): gA = [gQ + Q syminvadj(triu(gR R^H - Q^H gQ))] R^-H."""
    gQ, gR = g
    Q, R = out
    m, n = A.shape[-2:]
    if mode == "r":
        raise AutogradError("The derivative of linalg.qr depends on Q, which is not computed "
                            "when mode='r'. Please use linalg.qr(A, mode='reduced') if you are "
                            "going to differentiate through linalg.qr." + at_user_line())
    if mode == "complete" and m > n:
        raise AutogradError("The QR decomposition is not differentiable when mode='complete' "
                            "and nrows > ncols." + at_user_line())
    if m < n:
        raise AutogradError("linalg.qr: the derivative for wide matrices (m < n) is not "
                            "implemented in ember" + at_user_line())
    M = triu(matmul(gR, _mH(R)) - matmul(_mH(Q), gQ))
    M = M + _mH(M) - _diag_embed(real(_diag(M)))     # syminvadj: Hermitian, real diagonal
    return solve_triangular(_mH(R), gQ + matmul(Q, M), upper=False, left=False)


qr = linalg_op(
    "qr(Tensor A, str mode='reduced') -> (Tensor Q, Tensor R)",
    named=True, meta=_qr_meta, reference=_qr_ref, derivative=_qr_grad,
    samples=lambda rng: [_sample(_well_conditioned(rng, 3, 3)),
                         _sample(S.randn(rng, 2, 4, 3, dtype=np.float64)),
                         _sample(S.randn(rng, 4, 3, dtype=np.float32)),
                         _sample(S.randn(rng, 3, 3, dtype=np.float64), mode="complete"),
                         _sample(S.randn(rng, 4, 2, dtype=np.float64), mode="complete",
                                 grad=False),
                         _sample(S.randn(rng, 2, 4, dtype=np.float64), grad=False),
                         _sample(S.randn(rng, 3, 2, dtype=np.float64), mode="r", grad=False),
                         _sample(_well_conditioned(rng, 3, 3, dtype=np.complex128))],
    doc="Householder QR (LAPACK's signs, as torch). Differentiable for m >= n.",
)


# --- eigh, eigvalsh ----------------------------------------------------------------------

def _eigh_meta(A, UPLO="L"):
    _require_square(A)
    if UPLO not in ("L", "U"):
        raise ShapeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    return _meta(A, A.shape[:-1], _real_of(A.dtype)), _meta(A)


def _eigh_ref(A, UPLO="L"):
    w, v = np.linalg.eigh(A, UPLO=UPLO)
    return w, v * _gauge_fix_np(v)


def _eigh_grad(g, A, UPLO, out):
    """torch's linalg_eig_backward (Hermitian): gA = V (skew(V^H gV)/E + diag(gL)) V^H,
    E_ij = L_j - L_i off the diagonal."""
    gL, gV = g
    L, V = out
    VhgV = matmul(_mH(V), gV)
    _check_phase_invariant(_diag(VhgV), EIG_PHASE.format("linalg_eigh_backward"))
    VhgV = (VhgV - _mH(VhgV)) * 0.5
    E = unsqueeze(L, -2) - unsqueeze(L, -1)
    inner = VhgV / (E + _eye(L.shape[-1], E)) + _diag_embed(gL)
    return matmul(matmul(V, inner), _mH(V))


eigh = linalg_op(
    "eigh(Tensor A, str UPLO='L') -> (Tensor eigenvalues, Tensor eigenvectors)",
    named=True, meta=_eigh_meta, reference=_eigh_ref, derivative=_eigh_grad, saves=(),
    samples=_hermitian_samples(_distinct_spectrum),
    torch_ref=lambda torch: _gauge_fixed(torch.linalg.eigh, vec_index=1),
    doc="Ascending eigenvalues (real) and unit eigenvectors with ember's gauge.",
)


def _eigvalsh_meta(A, UPLO="L"):
    return _eigh_meta(A, UPLO)[0]


eigvalsh = linalg_op(
    "eigvalsh(Tensor A, str UPLO='L') -> Tensor",
    meta=_eigvalsh_meta, reference=lambda A, UPLO="L": np.linalg.eigvalsh(A, UPLO=UPLO),
    derivative=lambda g, A, UPLO: _eigvals_grad(g, eigh(A, UPLO)[1]),
    samples=_hermitian_samples(_distinct_spectrum),
)


def _eigvals_grad(gL, V):
    """dL_k = (V^-1 dA V)_kk; for unitary V, V^-H = V."""
    return matmul(V * unsqueeze(gL, -2), _mH(V))


# --- eig, eigvals ------------------------------------------------------------------------

def _eig_meta(A):
    _require_square(A)
    ct = _complex_of(A.dtype)
    return _meta(A, A.shape[:-1], ct), _meta(A, dtype=ct)


def _eig_ref(A):
    w, v = np.linalg.eig(A)
    ct = np.result_type(A.dtype, np.complex64)
    v = v.astype(ct)
    return w.astype(ct), v * _gauge_fix_np(v)


def _eig_grad(g, A, out):
    """torch's linalg_eig_backward: gA = V^-H (diag(gL) + (V^H gV - V^H V Re diag(V^H gV))
    / conj(E)) V^H, with E_ij = L_j - L_i."""
    gL, gV = g
    L, V = out
    VhgV = matmul(_mH(V), gV)
    _check_phase_invariant(_diag(VhgV), EIG_PHASE.format("linalg_eig_backward"))
    VhgV = VhgV - matmul(_mH(V), V * unsqueeze(real(_diag(VhgV)), -2))
    Lc = _c(L)
    E = unsqueeze(Lc, -2) - unsqueeze(Lc, -1)
    inner = VhgV / (E + _eye(L.shape[-1], E)) + _diag_embed(gL)
    return solve(_mH(V), matmul(inner, _mH(V)))


EIG_NOTE = ("the table's random complex cotangents on eigenvectors depend on their phase, "
            "so the gradient is ill-defined (torch raises too); tests/linalg checks "
            "phase-invariant losses")


def _eig_samples(rng):
    return [_sample(_real_spectrum(rng, 3, 3), grad=False, note=EIG_NOTE),
            _sample(_real_spectrum(rng, 2, 3, 3, dtype=np.float32), grad=False, note=EIG_NOTE),
            _sample(_well_conditioned(rng, 2, 3, 3, dtype=np.complex128), grad=False,
                    note=EIG_NOTE)]


eig = linalg_op(
    "eig(Tensor A) -> (Tensor eigenvalues, Tensor eigenvectors)",
    named=True, meta=_eig_meta, reference=_eig_ref, derivative=_eig_grad, saves=("A",),
    samples=_eig_samples, torch_ref=lambda torch: _gauge_fixed(torch.linalg.eig, vec_index=1),
    tol={"grad": dict(rtol=1e-4, atol=1e-4)},
    doc="Complex eigenvalues and unit eigenvectors (LAPACK's order) with ember's gauge.",
)

eigvals = linalg_op(
    "eigvals(Tensor A) -> Tensor",
    meta=lambda A: _eig_meta(A)[0], reference=lambda A: _eig_ref(A)[0],
    derivative=lambda g, A: _eigvals_general_grad(g, eig(A)[1]),
    samples=lambda rng: [_sample(_well_conditioned(rng, 3, 3)),
                         _sample(_well_conditioned(rng, 2, 3, 3, dtype=np.complex128))],
)


def _eigvals_general_grad(gL, V):
    return solve(_mH(V), matmul(_diag_embed(gL), _mH(V)))


# --- svd, svdvals --------------------------------------------------------------------------

def _svd_meta(A, full_matrices=True, driver=None):
    _require_matrix(A)
    m, n = A.shape[-2:]
    k = min(m, n)
    ur, vr = (m, n) if full_matrices else (k, k)
    batch = _batch(A)
    return (_meta(A, batch + (m, ur)), _meta(A, batch + (k,), _real_of(A.dtype)),
            _meta(A, batch + (vr, n)))


def _svd_ref(A, full_matrices=True, driver=None):
    u, s, vh = np.linalg.svd(A, full_matrices=full_matrices)
    k = s.shape[-1]
    phase = _gauge_fix_np(u[..., :k])
    u = u.copy()
    u[..., :k] *= phase
    vh = vh.copy()
    vh[..., :k, :] *= np.conj(np.swapaxes(phase, -1, -2))
    return u, s, vh


def _svd_grad(g, A, full_matrices, driver, out):
    """torch's svd_backward (gauge-invariant losses): with J = U^H gU, K = V^H gV,
    gA = U[(skew(J) S + S skew(K)) / E + diag(gS) + i Im diag(J) / S] V^H
         + (I - UU^H) gU S^-1 V^H + U S^-1 gV^H (I - VV^H),  E_jk = S_k^2 - S_j^2."""
    gU, gS, gVh = g
    U, S, Vh = out
    k = S.shape[-1]
    if full_matrices:        # the extra columns are arbitrary: only the first k carry meaning
        U, gU = narrow(U, -1, 0, k), narrow(gU, -1, 0, k)
        Vh, gVh = narrow(Vh, -2, 0, k), narrow(gVh, -2, 0, k)
    V, gV = _mH(Vh), _mH(gVh)
    J, K = matmul(_mH(U), gU), matmul(_mH(V), gV)
    _check_phase_invariant(_diag(J) + _diag(K), SVD_PHASE)
    S2 = S * S
    E = unsqueeze(S2, -2) - unsqueeze(S2, -1)
    E = E + _eye(k, E)
    inner = ((J - _mH(J)) * unsqueeze(S, -2) + unsqueeze(S, -1) * (K - _mH(K))) / E
    inner = inner + _diag_embed(gS)
    if A.dtype.is_complex:
        inner = inner + _diag_embed(_i_imag(_diag(J)) / S)
    gA = matmul(matmul(U, inner), Vh)
    m, n = A.shape[-2:]
    if m > k:
        gUs = gU / unsqueeze(S, -2)
        gA = gA + matmul(gUs - matmul(U, matmul(_mH(U), gUs)), Vh)
    if n > k:
        gVs = gV / unsqueeze(S, -2)
        gA = gA + matmul(U, _mH(gVs - matmul(V, matmul(Vh, gVs))))
    return gA


def _svd_samples(rng):
    return [_sample(_distinct_spectrum(rng, 3, 3), full_matrices=False),
            _sample(S.randn(rng, 2, 4, 3, dtype=np.float64), full_matrices=False),
            _sample(S.randn(rng, 3, 5, dtype=np.float64), full_matrices=False),
            _sample(S.randn(rng, 4, 3, dtype=np.float64), grad=False,
                    note="U's last m - k columns are any basis of the complement"),
            _sample(S.randn(rng, 3, 3, dtype=np.float32), full_matrices=False),
            _sample(_well_conditioned(rng, 3, 3, dtype=np.complex128), grad=False,
                    note="random cotangents on complex singular vectors depend on their "
                         "phase; tests/linalg checks phase-invariant losses")]


svd = linalg_op(
    "svd(Tensor A, bool full_matrices=True, *, str? driver=None) -> "
    "(Tensor U, Tensor S, Tensor Vh)",
    named=True, meta=_svd_meta, reference=_svd_ref, derivative=_svd_grad, saves=(),
    samples=_svd_samples,
    torch_ref=lambda torch: _gauge_fixed(torch.linalg.svd, vec_index=0, partner_index=2),
    tol={"grad": dict(rtol=1e-4, atol=1e-4)},
    doc="Descending singular values; U's columns carry ember's gauge, Vh's rows follow.",
)

svdvals = linalg_op(
    "svdvals(Tensor A, *, str? driver=None) -> Tensor",
    meta=lambda A, driver=None: _svd_meta(A, False)[1],
    reference=lambda A, driver=None: np.linalg.svd(A, compute_uv=False),
    derivative=lambda g, A, driver: _svdvals_grad(g, A),
    samples=lambda rng: [_sample(_distinct_spectrum(rng, 3, 3)),
                         _sample(S.randn(rng, 2, 4, 3, dtype=np.float64)),
                         _sample(S.randn(rng, 3, 3, dtype=np.complex128))],
)


def _svdvals_grad(gS, A):
    U, _, Vh = svd(A, full_matrices=False)
    return matmul(U * unsqueeze(gS, -2), Vh)



# --- pinv, matrix_rank, lstsq --------------------------------------------------------------

def _tolerance(s: np.ndarray, atol, rtol, m: int, n: int, eps: float) -> np.ndarray:
    """torch's rule: max(atol, rtol * sigma_max); rtol defaults to eps * max(m, n) unless
    only a positive atol is given."""
    if rtol is None:
        rtol = 0.0 if (atol is not None and atol > 0) else eps * max(m, n)
    smax = s[..., :1] if s.shape[-1] else np.zeros(s.shape[:-1] + (1,))
    return np.maximum(atol or 0.0, rtol * smax)


def _pinv_ref(A, atol=None, rtol=None, hermitian=False):
    u, s, vh = np.linalg.svd(A, full_matrices=False)
    keep = s > _tolerance(s, atol, rtol, *A.shape[-2:], np.finfo(s.dtype).eps)
    s_inv = np.where(keep, 1 / np.where(keep, s, 1), 0)
    return np.asarray(_mH_np(vh) * s_inv[..., None, :] @ _mH_np(u), A.dtype)


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


pinv = linalg_op(
    "pinv(Tensor A, *, float? atol=None, float? rtol=None, bool hermitian=False) -> Tensor",
    meta=_pinv_meta, reference=_pinv_ref,
    derivative=lambda g, A, atol, rtol, hermitian, out: _pinv_vjp(g, A, out),
    samples=lambda rng: [_sample(S.randn(rng, 4, 3, dtype=np.float64)),
                         _sample(S.randn(rng, 2, 3, 4, dtype=np.float64)),
                         _sample(_well_conditioned(rng, 3, 3, dtype=np.float32)),
                         _sample(S.randn(rng, 3, 2, dtype=np.float64), rtol=1e-3),
                         _sample(_well_conditioned(rng, 3, 3, dtype=np.complex128))],
    doc="Moore-Penrose inverse through the SVD; the gradient assumes a locally constant rank.",
)


def _matrix_rank_meta(A, atol=None, rtol=None, hermitian=False):
    _require_matrix(A)
    return _meta(A, _batch(A), dtypes.int64)


def _matrix_rank_ref(A, atol=None, rtol=None, hermitian=False):
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
    "matrix_rank(Tensor A, *, float? atol=None, float? rtol=None, bool hermitian=False) "
    "-> Tensor",
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
    return (_meta(self, batch + (n,) + k),
            _meta(self, batch + (k or (1,)) if has_res else (0,), real),
            _meta(self, batch if has_rank else (0,), dtypes.int64),
            _meta(self, batch + (min(m, n),) if has_sv else (0,), real))


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
        x[idx], _, rank[idx], sv[idx] = np.linalg.lstsq(A_[idx], b_[idx], rcond=rcond)
    res = np.sum(np.abs(A_ @ x - b_) ** 2, axis=-2)
    if vector:
        x = x[..., 0]
    empty = np.zeros((0,), np.abs(A).dtype)
    return (x, res if has_res else empty, rank if has_rank else np.zeros((0,), np.int64),
            sv if has_sv else empty)


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


LSTSQ_SV_NOTE = ("torch's singular_values output carries no gradient; ember's tape gives "
                 "every float output one, so finite differences see it")

lstsq = linalg_op(
    "lstsq(Tensor self, Tensor b, float? rcond=None, *, str? driver=None) -> "
    "(Tensor solution, Tensor residuals, Tensor rank, Tensor singular_values)",
    named=True, meta=_lstsq_meta, reference=_lstsq_ref, derivative=_lstsq_grad,
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



# --- matrix_power, matrix_exp --------------------------------------------------------------

def _matrix_power_ref(A, n):
    if n < 0:
        A, n = _inv_ref(A), -n
    return np.linalg.matrix_power(A, n) if A.ndim == 2 else _batched_power(A, n)


def _batched_power(A, n):
    out = np.broadcast_to(np.eye(A.shape[-1], dtype=A.dtype), A.shape).copy()
    for _ in range(n):
        out = out @ A
    return out


def _power_vjp(g, B, n):
    """d(B^n) = sum_k B^k dB B^(n-1-k): gB = sum_k (B^H)^k g (B^H)^(n-1-k)."""
    Bh = _mH(B)
    powers = [None] * n
    powers[0] = _eye(B.shape[-1], B)
    for k in range(1, n):
        powers[k] = matmul(powers[k - 1], Bh)
    total = None
    for k in range(n):
        term = matmul(matmul(powers[k], g), powers[n - 1 - k])
        total = term if total is None else total + term
    return total


def _matrix_power_grad(g, A, n):
    if n == 0:
        return g * 0
    if n > 0:
        return _power_vjp(g, A, n)
    Y = inv(A)
    return _inv_grad(_power_vjp(g, Y, -n), A, Y)


matrix_power = linalg_op(
    "matrix_power(Tensor A, int n) -> Tensor",
    meta=_square_meta, reference=_matrix_power_ref, derivative=_matrix_power_grad,
    samples=lambda rng: [_sample(S.randn(rng, 3, 3, dtype=np.float64), 3),
                         _sample(S.randn(rng, 2, 3, 3, dtype=np.float64), 0),
                         _sample(S.randn(rng, 3, 3, dtype=np.float32), 1),
                         _sample(_well_conditioned(rng, 3, 3), -2),
                         _sample(S.randn(rng, 3, 3, dtype=np.complex128), 2)],
)


def _expm_np(A: np.ndarray) -> np.ndarray:
    """Scaling and squaring with an 18-term Taylor series: after scaling, ||A||_1 <= 1/2,
    where the truncation error is below float64's epsilon."""
    norm = np.max(np.sum(np.abs(A), axis=-2), axis=-1, initial=0.0)
    squarings = int(max(0, np.ceil(np.log2(max(float(np.max(norm, initial=0.0)), 1e-300)) + 1)))
    X = A / (2.0 ** squarings)
    out = np.broadcast_to(np.eye(A.shape[-1], dtype=A.dtype), A.shape).copy()
    term = out.copy()
    for k in range(1, 19):
        term = term @ X / k
        out = out + term
    for _ in range(squarings):
        out = out @ out
    return out


def _matrix_exp_grad(g, A):
    """The Frechet derivative's adjoint through the block trick (Mathias 1996):
    exp([[A^H, g], [0, A^H]]) has gA in its upper-right block."""
    n = A.shape[-1]
    Ah = _mH(A)
    top = cat([Ah, g], -1)
    bottom = cat([g * 0, Ah], -1)
    big = matrix_exp(cat([top, bottom], -2))
    return narrow(narrow(big, -2, 0, n), -1, n, n)


matrix_exp = linalg_op(
    "matrix_exp(Tensor A) -> Tensor",
    meta=_square_meta, reference=_expm_np, derivative=_matrix_exp_grad,
    samples=lambda rng: [_sample(S.randn(rng, 3, 3, dtype=np.float64)),
                         _sample(S.randn(rng, 2, 3, 3, dtype=np.float64) * 3),
                         _sample(S.randn(rng, 3, 3, dtype=np.float32)),
                         _sample(S.randn(rng, 3, 3, dtype=np.complex128))],
)


# --- cross, multi_dot, vander --------------------------------------------------------------

def _cross_meta(input, other, dim=-1):
    _same_dtype(input, other)
    if input.ndim != other.ndim:
        raise ShapeError(f"inputs must have the same number of dimensions (self "
                         f"{list(input.shape)}, other {list(other.shape)})")
    shape = broadcast_shapes(tuple(input.shape), tuple(other.shape))
    d = wrap_dim(dim, len(shape))
    if input.shape[dim] != 3 or other.shape[dim] != 3:
        raise ShapeError(f"inputs dimension {dim} must have length 3. Got "
                         f"{input.shape[dim]} and {other.shape[dim]}")
    return _meta(input, shape[:d] + (3,) + shape[d + 1:])


def _cross_ref(a, b, dim=-1):
    shape = np.broadcast_shapes(a.shape, b.shape)
    return np.cross(np.broadcast_to(a, shape), np.broadcast_to(b, shape), axis=dim)


cross = linalg_op(
    "cross(Tensor self, Tensor other, *, int dim=-1) -> Tensor",
    meta=_cross_meta, reference=_cross_ref,
    derivative=lambda g, self, other, dim: (cross(_c(other), g, dim=dim),
                                            cross(g, _c(self), dim=dim)),
    samples=lambda rng: [_sample(S.randn(rng, 4, 3), S.randn(rng, 4, 3)),
                         _sample(S.randn(rng, 3, 2, dtype=np.float64),
                                 S.randn(rng, 3, 1, dtype=np.float64), dim=0),
                         _sample(S.randn(rng, 2, 1, 3, dtype=np.float64),
                                 S.randn(rng, 1, 4, 3, dtype=np.float64))],
)


def _multi_dot_meta(tensors):
    if len(tensors) < 2:
        raise ShapeError(f"multi_dot(): expected at least 2 tensors but got {len(tensors)}")
    for i, t in enumerate(tensors):
        edge = i in (0, len(tensors) - 1)
        if t.ndim != 2 and not (edge and t.ndim == 1):
            which = "first and last" if edge else f"tensor {i}"
            raise ShapeError(f"multi_dot(): {which} tensor must be 1D or 2D but got "
                             f"{t.ndim}D" if edge else
                             f"multi_dot(): tensor {i} must be 2D but got {t.ndim}D")
        _same_dtype(tensors[0], t)
    mats = [tuple(t.shape) if t.ndim == 2 else None for t in tensors]
    shapes = [(1,) + tuple(tensors[0].shape) if tensors[0].ndim == 1 else mats[0]]
    shapes += mats[1:-1] + [tuple(tensors[-1].shape) + (1,) if tensors[-1].ndim == 1
                            else mats[-1]]
    for i in range(1, len(shapes)):
        if shapes[i - 1][1] != shapes[i][0]:
            raise ShapeError(f"multi_dot(): tensors {i - 1} and {i} with shapes "
                             f"{list(tensors[i - 1].shape)} and {list(tensors[i].shape)} "
                             f"cannot be multiplied")
    out = ((shapes[0][0],) if tensors[0].ndim == 2 else ()) + \
        ((shapes[-1][1],) if tensors[-1].ndim == 2 else ())
    return _meta(tensors[0], out)


def _chain(mats):
    out = mats[0]
    for m in mats[1:]:
        out = matmul(out, m)
    return out


def _multi_dot_grad(g, tensors):
    """grad_i = (M_0 .. M_{i-1})^H G (M_{i+1} .. M_last)^H, 1-D ends as row/column."""
    first_vec, last_vec = tensors[0].ndim == 1, tensors[-1].ndim == 1
    mats = list(tensors)
    if first_vec:
        mats[0] = unsqueeze(mats[0], 0)
        g = unsqueeze(g, 0)
    if last_vec:
        mats[-1] = unsqueeze(mats[-1], -1)
        g = unsqueeze(g, -1)
    grads = []
    for i in range(len(mats)):
        gi = g
        if i > 0:
            gi = matmul(_mH(_chain(mats[:i])), gi)
        if i < len(mats) - 1:
            gi = matmul(gi, _mH(_chain(mats[i + 1:])))
        grads.append(gi)
    if first_vec:
        grads[0] = squeeze(grads[0], [0])
    if last_vec:
        grads[-1] = squeeze(grads[-1], [-1])
    return (grads,)


multi_dot = linalg_op(
    "multi_dot(Tensor[] tensors) -> Tensor",
    meta=_multi_dot_meta, reference=lambda tensors: np.asarray(np.linalg.multi_dot(tensors)),
    derivative=_multi_dot_grad,
    samples=lambda rng: [_sample([S.randn(rng, 2, 3), S.randn(rng, 3, 4), S.randn(rng, 4, 2)]),
                         _sample([S.randn(rng, 3, dtype=np.float64),
                                  S.randn(rng, 3, 4, dtype=np.float64),
                                  S.randn(rng, 4, dtype=np.float64)]),
                         _sample([S.randn(rng, 3, 4, dtype=np.complex128),
                                  S.randn(rng, 4, dtype=np.complex128)])],
)


def _vander_meta(x, N=None):
    if x.ndim < 1:
        raise ShapeError("x must be at least 1-dimensional.")
    n = x.shape[-1] if N is None else N
    if n <= 1 and N is not None and N < 2:
        raise ShapeError("N must be greater than 1.")
    return _meta(x, tuple(x.shape) + (n,))


def _vander_ref(x, N=None):
    n = x.shape[-1] if N is None else N
    return x[..., None] ** np.arange(n)


def _vander_grad(g, x, N, out):
    """d x^k = k x^(k-1) dx, summed over the row."""
    n = out.shape[-1]
    if n < 2:
        return g.sum(-1) * 0
    k = convert_element_type(arange(1, n), out.dtype)
    return sum(narrow(g, -1, 1, n - 1) * k * _c(narrow(out, -1, 0, n - 1)), [-1])


vander = linalg_op(
    "vander(Tensor x, *, int? N=None) -> Tensor",
    meta=_vander_meta, reference=_vander_ref, derivative=_vander_grad,
    samples=lambda rng: [_sample(S.randn(rng, 4)), _sample(S.randn(rng, 2, 3), N=5),
                         _sample(S.randn(rng, 3, dtype=np.complex128), N=3)],
)



# --- norms -------------------------------------------------------------------------------

INF = math.inf


def _norm_dtype(x, dtype):
    _require_float(x, "input")
    return _real_of(dtype or x.dtype)


def _vector_norm_meta(x, ord=2, dim=None, keepdim=False, dtype=None):
    dims = tuple(range(x.ndim)) if dim is None else wrap_dims(dim, x.ndim)
    shape = tuple(1 if i in dims else s for i, s in enumerate(x.shape)) if keepdim else \
        tuple(s for i, s in enumerate(x.shape) if i not in dims)
    return _meta(x, shape, _norm_dtype(x, dtype))


def _vector_norm_np(x, ord, axes, keepdim):
    a = np.abs(x)
    if ord == INF:
        return np.max(a, axis=axes, keepdims=keepdim, initial=0.0)
    if ord == -INF:
        return np.min(a, axis=axes, keepdims=keepdim)
    if ord == 0:
        return np.sum(a != 0, axis=axes, keepdims=keepdim).astype(a.dtype)
    return np.sum(a ** ord, axis=axes, keepdims=keepdim) ** (1.0 / ord)


def _vector_norm_ref(x, ord=2, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        x = x.astype(dtype.np_dtype)
    axes = None if dim is None else tuple(wrap_dims(dim, x.ndim))
    return np.asarray(_vector_norm_np(x, ord, axes, keepdim))


def _unreduce(t, x, dim, keepdim):
    """A reduced result, with the reduced dims back as size 1 (broadcasts against x)."""
    if keepdim:
        return t
    dims = range(x.ndim) if dim is None else sorted(wrap_dims(dim, x.ndim))
    for d in dims:
        t = unsqueeze(t, d)
    return t


def _vector_norm_grad(g, x, ord, dim, keepdim, dtype, out):
    """sgn(x) |x|^(p-1) / norm^(p-1); 0 where the norm is 0 (torch's subgradient); inf:
    g shared evenly between the entries that reach the max."""
    g, norm = _unreduce(g, x, dim, keepdim), _unreduce(out, x, dim, keepdim)
    if ord == 0:
        return x * 0
    if ord in (INF, -INF):
        hit = convert_element_type(eq(abs(x), norm), norm.dtype)
        count = sum(hit, None if dim is None else list(wrap_dims(dim, x.ndim)), keepdim=True)
        return sgn(x) * hit * (g / count)
    if ord == 2:
        scale = g / where(eq(norm, 0), 1.0, norm) * convert_element_type(
            eq(norm, 0) == 0, norm.dtype)
        return x * scale
    if ord == 1:
        return sgn(x) * g
    ratio = abs(x) / where(eq(norm, 0), 1.0, norm)
    return sgn(x) * pow(ratio, ord - 1) * g


vector_norm = linalg_op(
    "vector_norm(Tensor x, Scalar ord=2, int[1]? dim=None, bool keepdim=False, *, "
    "ScalarType? dtype=None) -> Tensor",
    meta=_vector_norm_meta, reference=_vector_norm_ref, derivative=_vector_norm_grad,
    samples=lambda rng: [_sample(S.randn(rng, 3, 4)), _sample(S.randn(rng, 3, 4), 1, [1]),
                         _sample(S.randn(rng, 2, 3, 4, dtype=np.float64), 3, [0, 2], True),
                         _sample(S.randn(rng, 5), INF), _sample(S.randn(rng, 5), -INF),
                         _sample(S.randn(rng, 2, 3), 0, grad=False),
                         _sample(np.zeros((2, 3)), 2, [1]),
                         _sample(S.randn(rng, 4, 3, dtype=np.complex128), 2, [0]),
                         _sample(S.randn(rng, 4, dtype=np.float32), dtype=dtypes.float64)],
)

MATRIX_ORDS = ("fro", "nuc", 2, -2, 1, -1, INF, -INF)


def _matrix_norm_meta(A, ord="fro", dim=(-2, -1), keepdim=False, dtype=None):
    _require_matrix(A)
    if ord not in MATRIX_ORDS:
        raise ShapeError(f"Order {ord} not supported.")
    dims = wrap_dims(dim, A.ndim)
    if len(dims) != 2 or dims[0] == dims[1]:
        raise ShapeError(f"dim must be a 2-tuple of different dimensions. Got {list(dim)}")
    return _vector_norm_meta(A, 2, list(dims), keepdim, dtype)


def _matrix_norm_last2(a, ord):
    """The norm of each matrix over the last two axes."""
    if ord == "fro":
        return np.sqrt(np.sum(np.abs(a) ** 2, axis=(-2, -1)))
    if ord in ("nuc", 2, -2):
        s = np.linalg.svd(a, compute_uv=False)
        return {"nuc": np.sum(s, -1), 2: s[..., 0], -2: s[..., -1]}[ord]
    axis = -2 if ord in (1, -1) else -1            # 1: max column sum, inf: max row sum
    sums = np.sum(np.abs(a), axis=axis)
    return np.max(sums, -1) if ord in (1, INF) else np.min(sums, -1)


def _matrix_norm_ref(A, ord="fro", dim=(-2, -1), keepdim=False, dtype=None):
    if dtype is not None:
        A = A.astype(dtype.np_dtype)
    d0, d1 = wrap_dims(dim, A.ndim)
    out = _matrix_norm_last2(np.moveaxis(A, (d0, d1), (-2, -1)), ord)
    if keepdim:
        out = np.expand_dims(out, tuple(sorted((d0, d1))))
    return np.asarray(out)


def _matrix_norm_grad_last2(g, A, ord, norm):
    """g and norm: one value per matrix (batch shape)."""
    if ord == "fro":
        safe = where(eq(norm, 0), 1.0, norm)
        return A * _col(g / safe * convert_element_type(eq(norm, 0) == 0, norm.dtype))
    if ord in ("nuc", 2, -2):
        U, _, Vh = svd(A, full_matrices=False)
        if ord != "nuc":
            k = 0 if ord == 2 else U.shape[-1] - 1
            U, Vh = narrow(U, -1, k, 1), narrow(Vh, -2, k, 1)
        return matmul(U, Vh) * _col(g)
    axis = -2 if ord in (1, -1) else -1
    sums = sum(abs(A), [axis], keepdim=True)
    hit = convert_element_type(eq(sums, unsqueeze(unsqueeze(norm, -1), -1)), norm.dtype)
    count = sum(hit, [-2, -1], keepdim=True)
    return sgn(A) * hit * _col(g) / count


def _matrix_norm_grad(g, A, ord, dim, keepdim, dtype, out):
    d0, d1 = wrap_dims(dim, A.ndim)
    if keepdim:
        g, out = squeeze(g, [d0, d1]), squeeze(out, [d0, d1])
    moved = movedim(A, [d0, d1], [-2, -1])
    return movedim(_matrix_norm_grad_last2(g, moved, ord, out), [-2, -1], [d0, d1])


def _matrix_norm_samples(rng):
    return [_sample(S.randn(rng, 3, 4, dtype=np.float64), ord)
            for ord in ("fro", "nuc", 2, -2, 1, -1, INF, -INF)] + [
        _sample(S.randn(rng, 3, 2, 4, dtype=np.float64), "fro", [0, 2], True),
        _sample(S.randn(rng, 2, 3, 3, dtype=np.float32), 2, [-1, -2]),
        _sample(S.randn(rng, 3, 3, dtype=np.complex128), 1)]


matrix_norm = linalg_op(
    "matrix_norm(Tensor A, Scalar ord='fro', int[] dim=[-2,-1], bool keepdim=False, *, "
    "ScalarType? dtype=None) -> Tensor",
    meta=_matrix_norm_meta, reference=_matrix_norm_ref, derivative=_matrix_norm_grad,
    samples=_matrix_norm_samples,
    doc="ord: 'fro', 'nuc', 2, -2, 1, -1, inf, -inf (torch's matrix_norm; str or number).",
)


def _norm_is_matrix(A, ord, dim) -> bool:
    if dim is not None:
        return len(dim) == 2 if isinstance(dim, (list, tuple)) else False
    return ord is not None and (isinstance(ord, str) or A.ndim == 2)


def _norm_route(A, ord, dim):
    """torch.linalg.norm: a matrix norm for 2 dims (or a str ord), else a vector norm."""
    if _norm_is_matrix(A, ord, dim):
        if A.ndim < 2 and dim is None:
            raise ShapeError(f"linalg.norm: If dim is not specified but ord is, the input "
                             f"must be 1D or 2D. Got {A.ndim}D.")
        return "matrix", ("fro" if ord is None else ord), (list(dim) if dim else [-2, -1])
    if isinstance(ord, str):
        raise ShapeError(f"linalg.norm: ord '{ord}' needs a 2-d input or a 2-tuple dim")
    if ord is not None and dim is None and A.ndim > 1:
        raise ShapeError(f"linalg.norm: If dim is not specified but ord is, the input must be "
                         f"1D or 2D. Got {A.ndim}D.")
    return "vector", (2 if ord is None else ord), dim


def _norm_meta(A, ord=None, dim=None, keepdim=False, dtype=None):
    kind, o, d = _norm_route(A, ord, dim)
    if kind == "matrix":
        return _matrix_norm_meta(A, o, d, keepdim, dtype)
    return _vector_norm_meta(A, o, d, keepdim, dtype)


def _norm_ref(A, ord=None, dim=None, keepdim=False, dtype=None):
    kind, o, d = _norm_route(A, ord, dim)
    if kind == "matrix":
        return _matrix_norm_ref(A, o, d, keepdim, dtype)
    return _vector_norm_ref(A, o, d, keepdim, dtype)


def _norm_grad(g, A, ord, dim, keepdim, dtype, out):
    kind, o, d = _norm_route(A, ord, dim)
    rule = _matrix_norm_grad if kind == "matrix" else _vector_norm_grad
    return rule(g, A, o, d, keepdim, dtype, out)


norm = linalg_op(
    "norm(Tensor A, Scalar? ord=None, int[1]? dim=None, bool keepdim=False, *, "
    "ScalarType? dtype=None) -> Tensor",
    meta=_norm_meta, reference=_norm_ref, derivative=_norm_grad,
    samples=lambda rng: [_sample(S.randn(rng, 2, 3, 4)), _sample(S.randn(rng, 3, 4), "nuc"),
                         _sample(S.randn(rng, 3, 4, dtype=np.float64), 1),
                         _sample(S.randn(rng, 5, dtype=np.float64), 3),
                         _sample(S.randn(rng, 2, 3, 4, dtype=np.float64), INF, [0, 2]),
                         _sample(S.randn(rng, 2, 3, 4, dtype=np.float64), None, [1], True)],
)


# --- cond ----------------------------------------------------------------------------------

def _cond_meta(A, p=None):
    _require_matrix(A)
    if p not in (None,) + MATRIX_ORDS:
        raise ShapeError(f"linalg.cond got an invalid norm type: {p}")
    if p not in (None, 2, -2):
        _require_square(A)
    return _meta(A, _batch(A), _real_of(A.dtype))


def _cond_ref(A, p=None):
    if p in (None, 2, -2):
        s = np.linalg.svd(A, compute_uv=False)
        ratio = s[..., 0] / s[..., -1]
        return np.asarray(ratio if p != -2 else 1 / ratio)
    try:
        inverse = np.linalg.inv(A)
    except np.linalg.LinAlgError:        # torch: a singular matrix has infinite condition
        return np.asarray(np.full(A.shape[:-2], np.inf, np.abs(A).dtype))
    return np.asarray(_matrix_norm_last2(A, p) * _matrix_norm_last2(inverse, p))


def _cond_grad(g, A, p, out):
    """2-norm: s_max / s_min through the SVD; others: |A| |A^-1| by the product rule."""
    if p in (None, 2, -2):
        U, S_, Vh = svd(A, full_matrices=False)
        k = S_.shape[-1]
        top, bottom = narrow(S_, -1, 0, 1), narrow(S_, -1, k - 1, 1)
        ends = cat([1 / bottom, -top / (bottom * bottom)], -1)
        if p == -2:
            ends = cat([-bottom / (top * top), 1 / top], -1)
        gS = cat([narrow(ends, -1, 0, 1), S_[..., 1:k - 1] * 0, narrow(ends, -1, 1, 1)], -1) \
            if k > 1 else ends[..., :1] * 0
        return matmul(U * unsqueeze(gS * unsqueeze(g, -1), -2), Vh)
    Y = inv(A)
    nA, nY = matrix_norm(A, p), matrix_norm(Y, p)
    gA = _matrix_norm_grad_last2(g * nY, A, p, nA)
    gY = _matrix_norm_grad_last2(g * nA, Y, p, nY)
    return gA + _inv_grad(gY, A, Y)


cond = linalg_op(
    "cond(Tensor A, Scalar? p=None) -> Tensor",
    meta=_cond_meta, reference=_cond_ref, derivative=_cond_grad,
    torch_grad_differs="torch 2.13's own cond backward fails for p not in (None, 2, -2) (an "
                       "in-place write to inv_ex's output); finite differences check ours, "
                       "tests/linalg compares the 2-norm case with torch",
    samples=lambda rng: [_sample(_distinct_spectrum(rng, 3, 3)),
                         _sample(S.randn(rng, 2, 4, 3, dtype=np.float64), -2),
                         _sample(_well_conditioned(rng, 3, 3), "fro"),
                         _sample(_well_conditioned(rng, 2, 3, 3), 1),
                         _sample(_well_conditioned(rng, 3, 3), "nuc"),
                         _sample(_well_conditioned(rng, 3, 3, dtype=np.complex128), INF)],
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
    if tuple(shape[:B.ndim]) != tuple(B.shape) or math.prod(x_shape) != math.prod(B.shape):
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


from .creation import arange  # noqa: E402 - derivative rules use these
from .linear import matmul  # noqa: E402
from .reduction import sum  # noqa: E402,A001
from .joining import cat  # noqa: E402
from .pointwise import abs, conj, convert_element_type, eq, pow, real, sgn, where  # noqa: E402,A004  # noqa: E402
from .joining import tril, triu  # noqa: E402
from .shape import diagonal, movedim, narrow, reshape, squeeze, transpose, unsqueeze  # noqa: E402
