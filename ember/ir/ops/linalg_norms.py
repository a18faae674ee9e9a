"""ember.linalg, norms and conditioning: vector_norm, matrix_norm, norm, cond."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..errors import DTypeError, EmberIndexError, ShapeError
from ..schema import SchemaError
from . import samples as S
from .linalg_common import (
    _batch, _col, _distinct_spectrum, _meta, _real_of, _require_float, _require_matrix,
    _require_square, _sample, _well_conditioned, linalg_op)
from .rules import opmath_arrays, wrap_dims


# --- norms -------------------------------------------------------------------------------

INF = math.inf


def _norm_dtype(x, dtype):
    """Norms take float16/bfloat16 too (computed in float32, as torch's opmath). dtype=
    casts the input first, so it must keep its kind (real, complex) and not narrow it."""
    if not (x.dtype.is_floating_point or x.dtype.is_complex):
        _require_float(x, "input")
    if dtype is not None:
        kind = "complex" if x.dtype.is_complex else "real"
        if dtype.is_complex != x.dtype.is_complex:
            raise DTypeError(f"linalg.vector_norm: dtype should be {kind} for {kind} inputs, "
                             f"but got {dtype.scalar_type_name}")
        if dtype.itemsize < x.dtype.itemsize:
            raise DTypeError(f"linalg.vector_norm: the dtype of the input "
                             f"({x.dtype.scalar_type_name}) should be convertible without "
                             f"narrowing to the specified dtype ({dtype.scalar_type_name})")
    return _real_of(dtype or x.dtype)


def _check_ord_number(ord, what="ord"):
    if isinstance(ord, bool) or not isinstance(ord, (int, float)):
        raise SchemaError(f"linalg.vector_norm: argument '{what}' must be a number, not "
                          f"{type(ord).__name__} ({ord!r}); string orders ('fro', 'nuc') are "
                          f"matrix norms (linalg.matrix_norm)")


def _check_identity(x, ord, dims):
    """max, min and negative powers have no value over an empty set: torch refuses them
    where a reduced dimension is empty (0 is fine: the norms are >= 0 ... only for max)."""
    if not (ord < 0 or ord == INF):
        return
    name = f"{ord:g}" if ord not in (INF, -INF) else ("inf" if ord > 0 else "-inf")
    if x.ndim and dims == tuple(range(x.ndim)) and 0 in x.shape:
        raise ShapeError(f"linalg.vector_norm cannot compute the {name} norm on an empty "
                         f"tensor (shape {list(x.shape)}) because the operation does not "
                         f"have an identity")
    for d in dims:
        if x.ndim and x.shape[d] == 0:
            raise ShapeError(f"linalg.vector_norm cannot compute the {name} norm on the "
                             f"dimension {d} (shape {list(x.shape)}) because this dimension "
                             f"is empty and the operation does not have an identity")


def _vector_norm_meta(x, ord=2, dim=None, keepdim=False, dtype=None):
    _check_ord_number(ord)
    dims = tuple(range(x.ndim)) if dim is None else wrap_dims(dim, x.ndim)
    _check_identity(x, ord, tuple(dims))
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
    # a 0-d tensor's dim 0 / -1 is the tensor itself, as in torch
    axes = None if dim is None or x.ndim == 0 else tuple(wrap_dims(dim, x.ndim))
    out_dtype = np.abs(np.zeros((), x.dtype)).dtype       # complex -> its real type
    (wide,) = opmath_arrays(x)
    return np.asarray(_vector_norm_np(wide, ord, axes, keepdim)).astype(out_dtype)


def _unreduce(t, x, dim, keepdim):
    """A reduced result, with the reduced dims back as size 1 (broadcasts against x)."""
    if keepdim or x.ndim == 0:
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
    # 0 where x is 0 (p < 1: |x|^(p-1) is infinite there) or the norm is 0 (p < 0: any
    # zero entry makes it so): torch's subgradient
    zero = logical_or(eq(x, 0), eq(norm, 0))
    ratio = abs(x) / where(eq(norm, 0), 1.0, norm)
    ratio = where(zero, 1.0, ratio)
    return where(zero, 0.0, sgn(x) * pow(ratio, ord - 1) * g)


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
    if ord in ("nuc", 2, -2) or not A.dtype.is_floating_point:   # through the SVD
        _require_matrix(A)
    elif A.ndim < 2:
        _require_matrix(A)
    if ord not in MATRIX_ORDS:
        raise ShapeError(f"Order {ord} not supported.")
    dims = wrap_dims(dim, A.ndim)
    if len(dims) != 2 or dims[0] == dims[1]:
        raise ShapeError(f"dim must be a 2-tuple of different dimensions. Got {list(dim)}")
    _check_min_not_empty(A, ord, dims)
    return _vector_norm_meta(A, 2, list(dims), keepdim, dtype)


def _check_min_not_empty(A, ord, dims):
    """The minimizing orders have no value over an empty set (torch: amin's error); the
    maximizing ones are 0 there."""
    rows, cols = A.shape[dims[0]], A.shape[dims[1]]
    size = {-2: min(rows, cols), -1: cols, -INF: rows}.get(ord)
    if size == 0:
        raise EmberIndexError(f"linalg.matrix_norm: ord={ord} of an empty matrix (shape "
                         f"{list(A.shape)}): amin(): Expected reduction dim to have "
                         f"non-zero size.")


def _matrix_norm_last2(a, ord):
    """The norm of each matrix over the last two axes."""
    if ord == "fro":
        return np.sqrt(np.sum(np.abs(a) ** 2, axis=(-2, -1)))
    if ord in ("nuc", 2, -2):
        s = np.linalg.svd(a, compute_uv=False)
        if ord == "nuc":
            return np.sum(s, -1)
        return np.max(s, -1, initial=0) if ord == 2 else np.min(s, -1)
    axis = -2 if ord in (1, -1) else -1            # 1: max column sum, inf: max row sum
    sums = np.sum(np.abs(a), axis=axis)
    # norms are >= 0, so an empty matrix's maximizing norm is 0, as in torch
    return np.max(sums, -1, initial=0) if ord in (1, INF) else np.min(sums, -1)


def _matrix_norm_ref(A, ord="fro", dim=(-2, -1), keepdim=False, dtype=None):
    if dtype is not None:
        A = A.astype(dtype.np_dtype)
    d0, d1 = wrap_dims(dim, A.ndim)
    out_dtype = np.abs(np.zeros((), A.dtype)).dtype
    (A,) = opmath_arrays(A)
    out = _matrix_norm_last2(np.moveaxis(A, (d0, d1), (-2, -1)), ord).astype(out_dtype)
    if keepdim:
        out = np.expand_dims(out, tuple(sorted((d0, d1))))
    return np.asarray(out)


def _matrix_norm_grad_last2(g, A, ord, norm):
    """g and norm: one value per matrix (batch shape)."""
    if ord == "fro":
        safe = where(eq(norm, 0), 1.0, norm)
        return A * _col(g / safe * convert_element_type(eq(norm, 0) == 0, norm.dtype))
    if ord == "nuc":
        U, _, Vh = svd(A, full_matrices=False)
        return matmul(U, Vh) * _col(g)
    if ord in (2, -2):
        # the largest (smallest) singular value's u v^H; where several tie (the zero
        # matrix) g is shared evenly between them, as torch's amax/amin of svdvals does
        U, S, Vh = svd(A, full_matrices=False)
        k = 0 if ord == 2 else S.shape[-1] - 1            # S is sorted descending
        hit = convert_element_type(eq(S, narrow(S, -1, max(k, 0), min(S.shape[-1], 1))),
                                   S.dtype)
        share = hit / where(eq(sum(hit, [-1], keepdim=True), 0), 1.0,
                            sum(hit, [-1], keepdim=True))
        return matmul(U * unsqueeze(share, -2), Vh) * _col(g)
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
    if dim is not None and isinstance(dim, (list, tuple)) and len(dim) not in (1, 2):
        raise ShapeError(f"linalg.norm: If dim is specified, it must be of length 1 or 2. "
                         f"Got {list(dim)}")
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
    if A.shape[-1] == 0 or A.shape[-2] == 0:     # torch: an empty matrix's condition is 0
        return np.zeros(A.shape[:-2], np.abs(np.zeros((), A.dtype)).dtype)
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


from .joining import cat  # noqa: E402 - derivative rules use these
from .linalg_decomp import svd  # noqa: E402
from .linalg_solve import _inv_grad, inv  # noqa: E402
from .linear import matmul  # noqa: E402
from .pointwise import (  # noqa: E402
    abs, convert_element_type, eq, logical_or, pow, sgn, where)  # noqa: A001
from .reduction import sum  # noqa: E402,A001
from .shape import movedim, narrow, squeeze, unsqueeze  # noqa: E402
