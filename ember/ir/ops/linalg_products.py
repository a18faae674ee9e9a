"""ember.linalg, matrix functions and products: matrix_power, matrix_exp, cross,
multi_dot, vander."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, DTypeNotImplementedError, ShapeError
from . import samples as S
from .linalg_common import (
    _c, _eye, _meta, _mH, _same_dtype, _sample, _square_meta, _well_conditioned, linalg_op)
from .rules import broadcast_shapes, wrap_dim


# --- matrix_power, matrix_exp --------------------------------------------------------------

def _matrix_power_ref(A, n):
    if A.dtype.kind == "f" and A.dtype.itemsize == 2 or A.dtype.name == "bfloat16":
        return _matrix_power_ref(A.astype(np.float32), n).astype(A.dtype)   # as opmath
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


def _matrix_power_meta(A, n):
    """Integer matrices have non-negative powers (products only), as in torch; a negative
    power needs an inverse, which needs a floating dtype."""
    low = A.dtype in (dtypes.float16, dtypes.bfloat16)     # products only, as torch
    if n >= 0 and (low or not (A.dtype.is_floating_point or A.dtype.is_complex)) and \
            A.dtype != dtypes.bool_:
        if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
            raise ShapeError(f"linalg.matrix_power: A must be batches of square matrices, but "
                             f"they are {A.shape[-2] if A.ndim > 1 else A.shape} by "
                             f"{A.shape[-1] if A.ndim else 1} matrices")
        return _meta(A)
    return _square_meta(A)


matrix_power = linalg_op(
    "matrix_power(Tensor A, int n) -> Tensor",
    meta=_matrix_power_meta, reference=_matrix_power_ref, derivative=_matrix_power_grad,
    samples=lambda rng: [_sample(S.randn(rng, 3, 3, dtype=np.float64), 3),
                         _sample(S.randn(rng, 2, 3, 3, dtype=np.float64), 0),
                         _sample(S.randn(rng, 3, 3, dtype=np.float32), 1),
                         _sample(_well_conditioned(rng, 3, 3), -2),
                         _sample(S.randn(rng, 3, 3, dtype=np.complex128), 2)],
)


def _expm_np(A: np.ndarray) -> np.ndarray:
    """Scaling and squaring with an 18-term Taylor series: after scaling, ||A||_1 <= 1/2,
    where the truncation error is below float64's epsilon. Single precision is computed in
    double and rounded once: each squaring doubles the relative error, so float32 squarings
    of a large-norm matrix drift by tens of ulps from the correctly rounded result."""
    if A.dtype in (np.float32, np.complex64) or A.dtype.itemsize == 2:   # 2: half, bfloat16
        wide = np.complex128 if A.dtype == np.complex64 else np.float64
        return _expm_np(A.astype(wide)).astype(A.dtype)
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


def _matrix_exp_meta(A):
    """float16 and bfloat16 too, as torch (computed in double, rounded once)."""
    if A.dtype in (dtypes.float16, dtypes.bfloat16):
        if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
            raise ShapeError(f"linalg.matrix_exp: A must be batches of square matrices, but "
                             f"got shape {list(A.shape)}")
        return _meta(A)
    return _square_meta(A)


matrix_exp = linalg_op(
    "matrix_exp(Tensor A) -> Tensor",
    meta=_matrix_exp_meta, reference=_expm_np, derivative=_matrix_exp_grad,
    samples=lambda rng: [_sample(S.randn(rng, 3, 3, dtype=np.float64)),
                         _sample(S.randn(rng, 2, 3, 3, dtype=np.float64) * 3),
                         _sample(S.randn(rng, 3, 3, dtype=np.float32)),
                         _sample(S.randn(rng, 3, 3, dtype=np.complex128))],
)


# --- cross, multi_dot, vander --------------------------------------------------------------

def _cross_meta(input, other, dim=-1):
    _same_dtype(input, other)
    if input.dtype == dtypes.bool_:
        raise DTypeNotImplementedError("\"cross\" not implemented for 'Bool'")
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
    if tensors[0].dtype == dtypes.bool_:              # torch's products have no bool kernel
        raise DTypeNotImplementedError("\"addmm_impl_cpu_\" not implemented for 'Bool'")
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


def _vander_rows(shape) -> tuple:
    """torch reads a 0-d x as one point: its Vandermonde matrix has one row."""
    return tuple(shape) or (1,)


def _vander_meta(x, N=None):
    rows = _vander_rows(x.shape)
    n = rows[-1] if N is None else N
    if n <= 1:
        raise ShapeError("N must be greater than 1.")
    if x.dtype in (dtypes.bool_, dtypes.float16, dtypes.bfloat16):    # as torch
        raise DTypeError(f"linalg.vander supports floating point, complex, and integer "
                         f"tensors, but got {x.dtype.scalar_type_name}")
    # integer powers are taken in int64, as PyTorch does (a uint8 x would wrap at 256)
    exact = x.dtype.is_floating_point or x.dtype.is_complex
    return _meta(x, rows + (n,), None if exact else dtypes.int64)


def _vander_ref(x, N=None):
    x = x.reshape(_vander_rows(x.shape))
    if x.dtype.kind in "iu":
        x = x.astype(np.int64)
    n = x.shape[-1] if N is None else N
    return x[..., None] ** np.arange(n)


def _vander_grad(g, x, N, out):
    """d x^k = k x^(k-1) dx, summed over the row."""
    n = out.shape[-1]
    if n < 2:
        return reshape(g.sum(-1) * 0, list(x.shape))
    k = convert_element_type(arange(1, n), out.dtype)
    gx = sum(narrow(g, -1, 1, n - 1) * k * _c(narrow(out, -1, 0, n - 1)), [-1])
    return reshape(gx, list(x.shape))


vander = linalg_op(
    "vander(Tensor x, *, int? N=None) -> Tensor",
    meta=_vander_meta, reference=_vander_ref, derivative=_vander_grad,
    samples=lambda rng: [_sample(S.randn(rng, 4)), _sample(S.randn(rng, 2, 3), N=5),
                         _sample(S.randn(rng, 3, dtype=np.complex128), N=3)],
)


from .creation import arange  # noqa: E402 - derivative rules use these
from .joining import cat  # noqa: E402
from .linalg_solve import _inv_grad, _inv_ref, inv  # noqa: E402
from .linear import matmul  # noqa: E402
from .pointwise import convert_element_type  # noqa: E402
from .reduction import sum  # noqa: E402,A001
from .shape import narrow, reshape, squeeze, unsqueeze  # noqa: E402
