"""Shared by the ember.linalg op families: `linalg_op`, meta rules, NumPy reference
helpers, ember-op helpers for derivative rules, and sample builders.

The families (linalg_solve, linalg_decomp, linalg_norms, linalg_products) declare
torch.linalg's ops as registry ops: torch's schemas, outputs, dtypes, errors and
derivatives.

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
from ..errors import (at_user_line, AutogradError, DTypeError, DTypeNotImplementedError,
                      LinAlgError, ShapeError)
from ..meta import TensorMeta
from ..registry import defop, Tag
from . import samples as S
from .reduction import named_tuple_op


LIN = {Tag.LINALG}


def linalg_op(schema: str, *, named: bool = False, torch_ref=None, **fields):
    """Declare `linalg_<schema>` as ember.linalg.<name>; `named`: namedtuple result."""
    name = schema.split("(", 1)[0]
    op = defop("linalg_" + schema, namespace="linalg", python_name=name, tags=LIN,
               torch_ref=torch_ref or f"torch.linalg.{name}", **fields)
    return named_tuple_op(op) if named else op


# --- meta rules ----------------------------------------------------------------------

def _require_float(A, name="A"):
    """torch refuses these dtypes with a RuntimeError from some linalg functions and a
    NotImplementedError ('"lu_cpu" not implemented for 'Long'') from others: the error
    raised here is both (DTypeNotImplementedError), so either `except` catches it."""
    if not (A.dtype.is_floating_point or A.dtype.is_complex):
        raise DTypeNotImplementedError(f"Expected a floating point or complex tensor as "
                                       f"input. Got {A.dtype.scalar_type_name}")
    if A.dtype in (dtypes.float16, dtypes.bfloat16):
        raise DTypeNotImplementedError(f"Low precision dtypes not supported. Got "
                                       f"{A.dtype.scalar_type_name}")


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
    mats = a.reshape((math.prod(a.shape[:-2]),) + a.shape[-2:])
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
    mats = a.reshape((math.prod(a.shape[:-2]),) + a.shape[-2:])
    return np.array([_not_pd_order(m) for m in mats], np.int32).reshape(a.shape[:-2])


def _mH_np(a):
    return np.conj(np.swapaxes(a, -1, -2))


def _gauge_fix_np(vectors: np.ndarray) -> np.ndarray:
    """Per-column phase that makes each column's largest-|.| entry real positive."""
    if vectors.size == 0:            # no entries: nothing to fix (argmax needs some)
        return np.ones(vectors.shape[:-2] + (1, vectors.shape[-1]), vectors.dtype)
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


def _nan_to_zero(torch, result):
    """Test-only: compare inv_ex's inverse where defined (ember: NaN, torch: garbage)."""
    inverse, info = result
    bad = (info != 0)[..., None, None]
    return inverse.masked_fill(bad, float("nan")), info


from .creation import arange  # noqa: E402 - derivative rules use these
from .pointwise import conj, convert_element_type, eq, real  # noqa: E402
from .shape import diagonal, transpose, unsqueeze  # noqa: E402
