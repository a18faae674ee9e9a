"""torch.lobpcg: a few extreme eigenpairs of a symmetric (generalized) eigenproblem
A x = lambda B x by the locally optimal block preconditioned conjugate gradient method.

Each iteration runs Rayleigh-Ritz over the block [X, R, P] (current vectors, their
preconditioned residuals, the previous search directions), made B-orthonormal through its
Gram matrix's eigendecomposition (directions it cannot tell apart are dropped), and
keeps the n extreme Ritz pairs. The loop runs without autograd; the returned eigenvalues
are one last Rayleigh quotient of the (detached) eigenvectors, so their gradient with
respect to A is x x^T (and -lambda x x^T with respect to B), the exact derivative of a
simple eigenvalue.
"""
from __future__ import annotations

from ..ir import dtypes
from ..ir.registry import OPS
from .autograd.grad_mode import no_grad


def _matmul(a, b):
    return OPS["matmul"](a, b)


def _b_orthonormal_basis(S, B, drop: float):
    """Columns spanning S, B-orthonormal; directions with Gram eigenvalues below
    `drop` times the largest are dropped."""
    BS = S if B is None else _matmul(B, S)
    gram = _matmul(S.mT, BS)
    gram = (gram + gram.mT) * 0.5
    d, V = OPS["linalg_eigh"](gram)
    keep = d > d.max() * drop
    V, d = V[:, keep], d[keep]
    return _matmul(S, V) * d.rsqrt()


def lobpcg(A, k=None, B=None, X=None, n=None, iK=None, niter=None, tol=None, largest=None,
           method=None, tracker=None, ortho_iparams=None, ortho_fparams=None,
           ortho_bparams=None):
    """(E, X): the k largest (or smallest, `largest=False`) eigenvalues of the symmetric
    A (with B: of A x = lambda B x) and their eigenvectors, as torch.lobpcg."""
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"lobpcg: A must be a square matrix, got shape {tuple(A.shape)}")
    m = A.shape[-1]
    k = (1 if X is None else X.shape[-1]) if k is None else k
    n = (k if n is None else n) if X is None else X.shape[-1]
    if m < 3 * n:
        raise ValueError(f"LOBPCG algorithm is not applicable when the number of A rows (={m})"
                         f" is smaller than 3 x the number of requested eigenpairs (={n})")
    if tracker is not None:
        raise NotImplementedError("lobpcg: tracker= (a callback on torch's LOBPCG worker "
                                  "object) is not supported")
    if method not in (None, "basic", "ortho"):
        raise ValueError(f"lobpcg: method must be 'basic' or 'ortho', got {method!r}")
    largest = True if largest is None else largest
    niter = 1000 if niter is None else niter
    dtype = A.dtype if A.dtype.is_floating_point else dtypes.get_default_dtype()
    from .dtype_info import finfo
    eps = finfo(dtype).eps
    tol = eps ** 0.5 if tol is None else tol
    with no_grad():
        vectors = _iterate(A.detach(), None if B is None else B.detach(), X, n, iK, niter,
                           tol, largest, dtype, eps)
    vectors = vectors[:, :k]
    AX = _matmul(A, vectors)
    E = (vectors * AX).sum(0)
    if B is not None:
        E = E / (vectors * _matmul(B, vectors)).sum(0)
    return E, vectors


def _iterate(A, B, X, n, iK, niter, tol, largest, dtype, eps):
    from .factories import randn
    m = A.shape[-1]
    X = randn(m, n, dtype=dtype) if X is None else X.detach().to(dtype)
    drop = eps * 10
    X = _b_orthonormal_basis(X, B, drop)
    P = None
    for _ in range(max(niter, 1)):
        AX = _matmul(A, X)
        BX = X if B is None else _matmul(B, X)
        theta = (X * AX).sum(0)
        R = AX - BX * theta
        scale = AX.norm(dim=0) + theta.abs() * BX.norm(dim=0)
        if bool((R.norm(dim=0) <= tol * scale).all()):
            break
        if iK is not None:
            R = _matmul(iK, R)
        blocks = [X, R] if P is None else [X, R, P]
        W = _b_orthonormal_basis(OPS["cat"](blocks, 1), B, drop)
        H = _matmul(W.mT, _matmul(A, W))
        values, Y = OPS["linalg_eigh"]((H + H.mT) * 0.5)
        pick = Y[:, -n:].flip(1) if largest else Y[:, :n]
        X_new = _matmul(W, pick)
        BX_old = X if B is None else _matmul(B, X)
        P = X_new - _matmul(X, _matmul(BX_old.mT, X_new))
        if float(P.norm()) <= eps:
            P = None
        X = X_new
    return X
