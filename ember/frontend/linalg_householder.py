"""Householder products and randomized low-rank factorizations, composed of ember ops.

- linalg.householder_product(A, tau) and ormqr(input, tau, other, left, transpose) read
  geqrf's packed reflectors: v_i is column i of A below the diagonal with a 1 on it, and
  H_i = I - tau_i v_i v_i^H; Q = H_1 ... H_k. Each reflector is applied as a rank-1
  update (never forming Q for ormqr), so gradients come from matmul/where/indexing.
- linalg.ldl_factor: ldl_factor_ex with check_errors=True.
- svd_lowrank / pca_lowrank: Halko, Martinsson and Tropp's randomized range finder
  (Algorithm 4.4, `niter` power iterations, re-orthonormalized by QR), then the SVD of
  the small projected matrix. Random: results differ run to run, like PyTorch's.
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from ..ir.registry import OPS
from ..ir.out_arg import with_out
from .tensor import Tensor

LDLFactor = namedtuple("LDLFactor", ["LD", "pivots"])


def _ember():
    import ember  # noqa: PLC0415 - ember is loaded by the time any function runs
    return ember


def _const(array: np.ndarray) -> Tensor:
    return Tensor._from_array(array)


def _reflector(A, i: int):
    """v_i of geqrf's packed A: zeros above row i, one at row i, A[i+1:, i] below."""
    m = A.shape[-2]
    rows = np.arange(m)
    unit = _const((rows == i).astype(A.dtype.np_dtype))
    return OPS["where"](_const(rows > i), A[..., :, i], unit)


def _apply_left(C, v, tau):
    """(I - tau v v^H) C."""
    vh_c = OPS["matmul"](v.conj().unsqueeze(-2), C)                   # (..., 1, k)
    return C - OPS["matmul"](v.unsqueeze(-1), vh_c) * tau[..., None, None]


def _apply_right(C, v, tau):
    """C (I - tau v v^H)."""
    c_v = OPS["matmul"](C, v.unsqueeze(-1))                           # (..., r, 1)
    return C - OPS["matmul"](c_v, v.conj().unsqueeze(-2)) * tau[..., None, None]


def _apply_q(A, tau, C, left: bool, adjoint: bool):
    """Q C, Q^H C, C Q or C Q^H for Q = H_1 ... H_k from (A, tau)."""
    k = tau.shape[-1]
    # Q C applies H_k first; Q^H C = H_k^H .. H_1^H C applies H_1^H first; C Q applies
    # H_1 first; C Q^H applies H_k^H first. H_i^H uses conj(tau_i).
    forward = adjoint if left else not adjoint
    order = range(k) if forward else range(k - 1, -1, -1)
    apply = _apply_left if left else _apply_right
    for i in order:
        t = tau[..., i]
        C = apply(C, _reflector(A, i), t.conj() if adjoint else t)
    return C


def householder_product(A, tau):
    """The first n columns of H_1 ... H_k (torch.linalg.householder_product)."""
    _check_householder_args(A, tau)
    m, n = A.shape[-2:]
    eye = _const(np.eye(m, n, dtype=A.dtype.np_dtype))
    # the identity, batched like A and (with k = 0 reflectors) still a function of A, as
    # in PyTorch, whose result then has a zero gradient rather than none
    start = OPS["where"](_const(np.zeros((m, n), bool)), A, eye)
    return _apply_q(A, tau, start, left=True, adjoint=False)


def _check_householder_args(A, tau):
    """PyTorch's checks, in its order."""
    name = "torch.linalg.householder_product"
    if A.ndim < 2:
        raise RuntimeError(f"{name}: input must have at least 2 dimensions.")
    m, n = A.shape[-2:]
    if m < n:
        raise RuntimeError(f"{name}: input.shape[-2] must be greater than or equal to "
                           f"input.shape[-1]")
    if n < tau.shape[-1]:
        raise RuntimeError(f"{name}: input.shape[-1] must be greater than or equal to "
                           f"tau.shape[-1]")
    if tau.ndim != A.ndim - 1:
        raise RuntimeError(f"{name}: Expected tau to have one dimension less than input, but "
                           f"got tau.ndim equal to {tau.ndim} and input.ndim is equal to "
                           f"{A.ndim}")
    if tuple(tau.shape[:-1]) != tuple(A.shape[:-2]):
        raise RuntimeError(f"{name}: Expected batch dimensions of tau to be equal to "
                           f"input.shape[:-2], but got {list(tau.shape[:-1])}")
    if tau.dtype != A.dtype:
        raise RuntimeError(f"{name}: tau dtype {tau.dtype.scalar_type_name} does not match "
                           f"input dtype {A.dtype.scalar_type_name}")
    if not (A.dtype.is_floating_point or A.dtype.is_complex):
        raise NotImplementedError(f'"orgqr_cpu" not implemented for '
                                  f"'{A.dtype.scalar_type_name}'")


def ormqr(input, input2, input3, left: bool = True, transpose: bool = False):
    """Q @ other (or Q^H, or on the right) for Q from geqrf's (input, tau) (torch.ormqr)."""
    A, tau, other = input, input2, input3
    _check_ormqr_shapes(A, tau, other, left)
    _check_ormqr_dtypes(A, tau, other)
    return _apply_q(A, tau, other, left=left, adjoint=transpose)


def _check_ormqr_shapes(A, tau, other, left):
    """PyTorch's checks, in its order (shapes before dtypes)."""
    name = "torch.ormqr"
    for label, t in (("input", A), ("other", other)):
        if t.ndim < 2:
            raise RuntimeError(f"{name}: {label} must have at least 2 dimensions.")
    side = -2 if left else -1
    if tau.shape[-1] != min(other.shape[side], A.shape[-1]):
        raise RuntimeError(f"{name}: tau.shape[-1] must be equal to min(other.shape"
                           f"[{side}], input.shape[-1])")
    if tau.ndim != A.ndim - 1:
        raise RuntimeError(f"{name}: Expected tau to have one dimension less than input, but "
                           f"got tau.ndim equal to {tau.ndim} and input.ndim is equal to "
                           f"{A.ndim}")
    if other.ndim != A.ndim:
        raise RuntimeError(f"{name}: Expected other to have the same number of dimensions as "
                           f"input, but got other.ndim equal to {other.ndim} and input.ndim "
                           f"is equal to {A.ndim}")
    batch = tuple(A.shape[:-2])
    for label, t in (("tau", tau), ("other", other)):
        got = tuple(t.shape[:-1] if label == "tau" else t.shape[:-2])
        if got != batch:
            raise RuntimeError(f"{name}: Expected batch dimensions of {label} to be equal to "
                               f"input.shape[:-2], but got {list(got)}")
    if other.shape[side] != A.shape[-2]:
        which = "other.shape[-2]" if left else "other.shape[-1]"
        raise RuntimeError(f"{name}: {which} must be equal to input.shape[-2]")


def _check_ormqr_dtypes(A, tau, other):
    for label, t in (("tau", tau), ("other", other)):
        if t.dtype != A.dtype:
            raise RuntimeError(f"torch.ormqr: Expected input and {label} to have the same "
                               f"dtype, but input has dtype {A.dtype.scalar_type_name} and "
                               f"{label} has dtype {t.dtype.scalar_type_name}")
    if not (A.dtype.is_floating_point or A.dtype.is_complex):
        raise NotImplementedError(f'"ormqr_cpu" not implemented for '
                                  f"'{A.dtype.scalar_type_name}'")


def ldl_factor(A, *, hermitian: bool = False):
    """torch.linalg.ldl_factor: (LD, pivots); a singular D raises, as PyTorch."""
    LD, pivots, _ = OPS["linalg_ldl_factor_ex"](A, hermitian=hermitian, check_errors=True)
    return LDLFactor(LD, pivots)


# --- randomized low rank ---------------------------------------------------------------
def _orthonormal_basis(X):
    return OPS["linalg_qr"](X)[0]


def _range_finder(A, q: int, niter: int):
    """An orthonormal (m, q) Q with A ~ Q Q^H A (power iterations sharpen the spectrum)."""
    e = _ember()
    n = A.shape[-1]
    probe = e.randn(*A.shape[:-2], n, q, dtype=_real(A.dtype))
    if probe.dtype != A.dtype:
        probe = OPS["convert_element_type"](probe, A.dtype)
    Q = _orthonormal_basis(OPS["matmul"](A, probe))
    for _ in range(niter):
        Q = _orthonormal_basis(OPS["matmul"](A.mH, Q))
        Q = _orthonormal_basis(OPS["matmul"](A, Q))
    return Q


def _real(dtype):
    e = _ember()
    return {"complex64": e.float32, "complex128": e.float64}.get(dtype.name, dtype)


def svd_lowrank(A, q: int | None = 6, niter: int = 2, M=None):
    """(U, S, V) with A - M ~ U diag(S) V^H, U (m, q), S (q,), V (n, q)."""
    q = 6 if q is None else q
    if M is not None:
        A = A - M
    m, n = A.shape[-2:]
    if m < n:                               # work on A^H: its range is the smaller one
        V, S, U = _svd_lowrank_tall(A.mH, q, niter)
        return U, S, V
    return _svd_lowrank_tall(A, q, niter)


def _svd_lowrank_tall(A, q, niter):
    Q = _range_finder(A, q, niter)
    B = OPS["matmul"](Q.mH, A)                                        # (q, n)
    Ub, S, Vh = OPS["linalg_svd"](B, full_matrices=False)
    return OPS["matmul"](Q, Ub), S, Vh.mH


def pca_lowrank(A, q: int | None = None, center: bool = True, niter: int = 2):
    """svd_lowrank of A with its column means removed (when `center`)."""
    if not isinstance(A, Tensor) and not hasattr(A, "shape"):
        raise TypeError(f"pca_lowrank: expected a Tensor, got {type(A).__name__}")
    m, n = A.shape[-2:]
    q = min(6, m, n) if q is None else q
    if not (isinstance(q, int) and 0 <= q <= min(m, n)):
        raise ValueError(f"q(={q}) must be non-negative integer and not greater than "
                         f"min(m, n)={min(m, n)}")
    if niter < 0:
        raise ValueError(f"niter(={niter}) must be non-negative integer")
    if center:
        A = A - A.mean(dim=-2, keepdim=True)
    return svd_lowrank(A, q, niter=niter)


# out= as torch takes it (ir/out_arg.py: written after the call, resized, same dtype)
LINALG_HOUSEHOLDER = {"householder_product": with_out(householder_product),
                      "ldl_factor": with_out(ldl_factor)}
TOP_LEVEL_HOUSEHOLDER = {"ormqr": with_out(ormqr), "svd_lowrank": svd_lowrank,
                         "pca_lowrank": pca_lowrank}
