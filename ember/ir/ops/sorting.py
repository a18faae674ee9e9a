"""Sorting, selection and scans: sort, argsort, topk, kthvalue, cumsum, cumprod,
cummax, cummin, logcumsumexp -- with PyTorch's schemas, dtypes and tie rules.

Ops returning `(values, indices)` give a namedtuple (`.values`, `.indices`), as
torch.return_types do (see `reduction.NamedTupleOp`). Sorting is stable in the
reference kernels (ties keep input order, NaN sorts as the largest value), which
is what PyTorch guarantees with `stable=True`. Gradients of selections send `g`
to the selected index (a one-hot of the indices against an arange: no gather/
scatter needed); scans use reverse cumulative sums written as
`sum(g) - cumsum(g) + g`.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError, ShapeError
from ..meta import TensorMeta
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S
from .reduction import (_is_intlike, _keep, _np_sum_dtype, _positions, _select_grad,
                        _sum_dtype, named_tuple_op)
from .rules import np_inexact, wrap_dim

R = {Tag.REDUCTION}


def _sample(*args, **kwargs):
    return S.Sample(tuple(args), kwargs)


def _distinct(rng, *shape, dtype=np.float32):
    """Values without ties (sort/topk gradients and indices are then unambiguous)."""
    n = int(np.prod(shape)) if shape else 1
    return np.asarray(rng.permutation(n).reshape(shape) * 0.37 - n * 0.1 +
                      rng.random(shape) * 0.01, dtype=dtype)


def _stable_argsort(x: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Stable order along `axis`; descending keeps ties in input order; NaN is largest."""
    if not descending:
        return np.argsort(x, axis=axis, kind="stable")
    n = x.shape[axis]
    rev = np.flip(x, axis)
    return (n - 1) - np.flip(np.argsort(rev, axis=axis, kind="stable"), axis)


def _scatter_grad(g, indices, self, dim):
    """sum_k g[..k..] * (indices[..k..] == j): routes the gradient of gathered values
    (sort, topk, cummax) back to the positions they came from."""
    if not self.ndim:
        return g
    d = wrap_dim(dim, self.ndim)
    n = self.shape[d]
    idx, g = unsqueeze(indices, d + 1), unsqueeze(g, d + 1)
    hit = idx == _positions(n, d + 1, self.ndim + 1, indices)
    return sum(where(hit, g, 0), [d])


def _values_indices_meta(self, shape):
    out = TensorMeta(shape, self.dtype, str(self.device))
    return out, out.with_(dtype=dtypes.int64)


# --- sort, argsort ----------------------------------------------------------------------
def _sort_np(x, dim, descending, stable=False):
    if not x.ndim:
        wrap_dim(dim, 0)
        return x.copy(), np.zeros((), np.int64)
    axis = wrap_dim(dim, x.ndim)
    idx = _stable_argsort(x, axis, descending)
    return np.take_along_axis(x, idx, axis), idx.astype(np.int64)


def no_complex(self, what):
    """PyTorch sorts and selects real numbers only."""
    if self.dtype.is_complex:
        raise DTypeError(f"{what} does not support complex dtypes")


def _sort_meta(self, dim, descending, stable=False):
    no_complex(self, "sort")
    wrap_dim(dim, self.ndim)
    return _values_indices_meta(self, tuple(self.shape))


SORT_SAMPLES = lambda rng: [  # noqa: E731
    _sample(_distinct(rng, 3, 5)), _sample(_distinct(rng, 3, 5), 0),
    _sample(_distinct(rng, 2, 3, 4), 1, True), _sample(_distinct(rng, 6), descending=True),
    _sample(_distinct(rng)),
    S.Sample((S.int_array(rng, 3, 8, low=0, high=3),), {"stable": True}),
    S.Sample((S.int_array(rng, 3, 8, low=0, high=3),),
             {"dim": 0, "descending": True, "stable": True}),
    S.Sample((np.array([1.0, np.nan, -2.0, 3.0], np.float32),), {"stable": True},
             grad=False)]

sort = named_tuple_op(defop(
    "sort(Tensor self, int dim=-1, bool descending=False, *, bool? stable=False) -> "
    "(Tensor values, Tensor indices)",
    meta=_sort_meta, reference=_sort_np,
    derivative=lambda g, self, dim, descending, stable, out: _scatter_grad(
        g[0], out[1], self, dim),
    saves=(), tags=set(), torch_ref="torch.sort", method=True, samples=SORT_SAMPLES,
))

argsort = defop(
    "argsort(Tensor self, int dim=-1, bool descending=False, *, bool stable=False) -> Tensor",
    meta=lambda self, dim, descending, stable: _sort_meta(self, dim, descending)[1],
    reference=lambda x, dim, descending, stable: _sort_np(x, dim, descending)[1],
    derivative=NOT_DIFFERENTIABLE, tags=set(), torch_ref="torch.argsort", method=True,
    samples=SORT_SAMPLES,
)


# --- topk, kthvalue -------------------------------------------------------------------
def _topk_meta(self, k, dim, largest, sorted):
    no_complex(self, "topk")
    d = wrap_dim(dim, self.ndim)
    n = self.shape[d] if self.ndim else 1
    if not 0 <= k <= n:
        raise ShapeError(f"selected index k out of range (k={k}, size {n})")
    shape = list(self.shape)
    if self.ndim:
        shape[d] = k
    return _values_indices_meta(self, tuple(shape))


def _topk_np(x, k, dim, largest, sorted):
    if not x.ndim:
        return x.copy(), np.zeros((), np.int64)
    axis = wrap_dim(dim, x.ndim)
    idx = np.take(_stable_argsort(x, axis, largest), np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis), idx.astype(np.int64)


topk = named_tuple_op(defop(
    "topk(Tensor self, int k, int dim=-1, bool largest=True, bool sorted=True) -> "
    "(Tensor values, Tensor indices)",
    meta=_topk_meta, reference=_topk_np,
    derivative=lambda g, self, k, dim, largest, sorted, out: _scatter_grad(
        g[0], out[1], self, dim),
    saves=(), tags=set(), torch_ref="torch.topk", method=True,
    samples=lambda rng: [
        _sample(_distinct(rng, 3, 5), 2), _sample(_distinct(rng, 4, 3), 3, 0),
        _sample(_distinct(rng, 2, 3, 4), 1, 1, False), _sample(_distinct(rng, 6), 6),
        _sample(_distinct(rng, 6), 0), _sample(_distinct(rng), 1),
        _sample(S.int_array(rng, 3, 8, low=-100, high=100) * 7 + np.arange(8), 3,
                largest=False)],
))


def _kthvalue_meta(self, k, dim, keepdim):
    no_complex(self, "kthvalue")
    d = wrap_dim(dim, self.ndim)
    n = self.shape[d] if self.ndim else 1
    if not 1 <= k <= n:
        raise ShapeError(f"kthvalue(): selected number k out of range for dimension {d}")
    shape = tuple(self.shape)
    if self.ndim:
        shape = shape[:d] + ((1,) if keepdim else ()) + shape[d + 1:]
    return _values_indices_meta(self, shape)


def _kthvalue_np(x, k, dim, keepdim):
    if not x.ndim:
        return x.copy(), np.zeros((), np.int64)
    axis = wrap_dim(dim, x.ndim)
    idx = np.take(_stable_argsort(x, axis, False), [k - 1], axis=axis)
    vals = np.take_along_axis(x, idx, axis)
    if not keepdim:
        idx, vals = idx.squeeze(axis), vals.squeeze(axis)
    return vals, idx.astype(np.int64)


kthvalue = named_tuple_op(defop(
    "kthvalue(Tensor self, int k, int dim=-1, bool keepdim=False) -> "
    "(Tensor values, Tensor indices)",
    meta=_kthvalue_meta, reference=_kthvalue_np,
    derivative=lambda g, self, k, dim, keepdim, out: _select_grad(
        g[0], self, dim, keepdim, out[1]),
    saves=(), tags=R, torch_ref="torch.kthvalue", method=True,
    samples=lambda rng: [
        _sample(_distinct(rng, 3, 5), 2), _sample(_distinct(rng, 4, 3), 4, 0, True),
        _sample(_distinct(rng, 2, 3, 4), 1, 1), _sample(_distinct(rng), 1),
        _sample(S.int_array(rng, 3, 8, low=-100, high=100) * 7 + np.arange(8), 3)],
))


# --- cumulative scans -------------------------------------------------------------------
def _scan_meta(self, dim, dtype=None):
    wrap_dim(dim, self.ndim)
    return TensorMeta(tuple(self.shape), _sum_dtype(self, dtype), str(self.device))


def _scan_np(fn, half_in_float32=False):
    def ref(x, dim, dtype=None):
        if not x.ndim:
            wrap_dim(dim, 0)
            return x.astype(_np_sum_dtype(x, dtype))
        return fn(x, axis=wrap_dim(dim, x.ndim),
                  dtype=_np_sum_dtype(x, dtype, half_in_float32))
    return ref


def _reverse_cumsum(g, dim):
    """out[i] = sum_{k >= i} g[k] along dim."""
    if not g.ndim:
        return g
    return sum(g, [dim], True) - cumsum(g, dim) + g


SCAN_SAMPLES = lambda rng, make=S.randn: [  # noqa: E731
    _sample(make(rng, 3, 5), 1), _sample(make(rng, 3, 5), 0), _sample(make(rng, 2, 3, 4), -1),
    _sample(make(rng, 6), 0), _sample(make(rng), 0),
    _sample(S.int_array(rng, 3, 4, dtype=np.int32), 1), _sample(S.bool_array(rng, 5), 0),
    _sample(make(rng, 3, 4), 1, dtype="float64")]

cumsum = defop(
    "cumsum(Tensor self, int dim, *, ScalarType? dtype=None) -> Tensor",
    meta=_scan_meta, reference=_scan_np(np.cumsum, half_in_float32=True),
    derivative=lambda g, self, dim, dtype: _reverse_cumsum(g, dim),
    saves=(), tags=set(), torch_ref="torch.cumsum", method=True, samples=SCAN_SAMPLES,
)


def _cumprod_grad(g, self, dim, dtype, out):
    """d out_k / d x_i = prod_{j <= k, j != i} x_j for k >= i. Per slice, with z the first
    zero of x: for i < z it is out_k / x_i (x_i != 0 there, and out_k = 0 for k >= z);
    for i = z it is the cumprod of x with x_z replaced by 1; for i > z every term has the
    factor x_z = 0. Exact with zeros, O(n), and written in ember ops (differentiates again)."""
    if not self.ndim:
        return g
    d = wrap_dim(dim, self.ndim)
    is_zero = eq(self, 0)
    zeros_seen = cumsum(is_zero, d)
    before_first_zero = eq(zeros_seen, 0)
    at_first_zero = logical_and(is_zero, eq(zeros_seen, 1))
    x_safe = where(before_first_zero, self, 1)
    # complex: g * conj(d out / dx), i.e. conj of the products
    before = _reverse_cumsum(g * _c(out), d) / _c(x_safe)
    skip_first_zero = cumprod(where(at_first_zero, 1, self), d)
    at = _reverse_cumsum(g * _c(skip_first_zero), d)
    return where(before_first_zero, before, where(at_first_zero, at, 0))


def _cumprod_samples(rng):
    with_zeros = S.away_from_zero(rng, 3, 6, dtype=np.float64)
    with_zeros[0, 2] = with_zeros[1, 0] = with_zeros[1, 4] = with_zeros[2, 5] = 0
    with_zeros[2, 1] = with_zeros[2, 3] = 0            # two zeros in one row
    return SCAN_SAMPLES(rng, S.away_from_zero) + [_sample(with_zeros, 1),
                                                  _sample(with_zeros.T.copy(), 0)]


cumprod = defop(
    "cumprod(Tensor self, int dim, *, ScalarType? dtype=None) -> Tensor",
    meta=_scan_meta, reference=_scan_np(np.cumprod),
    derivative=_cumprod_grad,
    tags=set(), torch_ref="torch.cumprod", method=True,
    samples=_cumprod_samples,
)


def _cum_extreme_np(better):
    def ref(x, dim):
        if not x.ndim:
            wrap_dim(dim, 0)
            return x.copy(), np.zeros((), np.int64)
        axis = wrap_dim(dim, x.ndim)
        if x.shape[axis] == 0:
            return x.copy(), np.zeros(x.shape, np.int64)
        xs = np.moveaxis(x, axis, 0)
        vals, idx = np.empty_like(xs), np.empty(xs.shape, np.int64)
        vals[0], idx[0] = xs[0], 0
        for i in range(1, xs.shape[0]):
            cur = xs[i]
            take = better(cur, vals[i - 1]) | (cur != cur) & (vals[i - 1] == vals[i - 1]) \
                if np_inexact(xs.dtype) else better(cur, vals[i - 1])
            vals[i] = np.where(take, cur, vals[i - 1])
            idx[i] = np.where(take, i, idx[i - 1])
        return np.moveaxis(vals, 0, axis), np.moveaxis(idx, 0, axis)
    return ref


def _cum_extreme(name, better):
    return named_tuple_op(defop(
        f"{name}(Tensor self, int dim) -> (Tensor values, Tensor indices)",
        meta=lambda self, dim: _values_indices_meta(self, tuple(self.shape))
        if wrap_dim(dim, self.ndim) is not None else None,
        reference=_cum_extreme_np(better),
        derivative=lambda g, self, dim, out: _scatter_grad(g[0], out[1], self, dim),
        saves=(), tags=set(), torch_ref=f"torch.{name}", method=True,
        samples=lambda rng: [
            _sample(_distinct(rng, 3, 6), 1), _sample(_distinct(rng, 4, 3), 0),
            _sample(_distinct(rng, 2, 3, 4), -1), _sample(_distinct(rng), 0),
            _sample(S.int_array(rng, 3, 8, low=0, high=4), 1)],
    ))


cummax = _cum_extreme("cummax", np.greater_equal)   # ties: the later index, as PyTorch
cummin = _cum_extreme("cummin", np.less_equal)


def _logcumsumexp_np(x, dim):
    if x.dtype.kind in "biu":
        x = x.astype(dtypes.get_default_dtype().np_dtype)
    if not x.ndim:
        wrap_dim(dim, 0)
        return x.copy()
    axis = wrap_dim(dim, x.ndim)
    if x.dtype.kind != "c":
        return np.logaddexp.accumulate(x, axis=axis)
    xs = np.moveaxis(x, axis, 0)
    out = np.empty_like(xs)
    acc = np.full(xs.shape[1:], complex(-np.inf, 0), xs.dtype)    # log(0)
    for i in range(len(xs)):
        acc = _complex_logaddexp(acc, xs[i])
        out[i] = acc
    return np.moveaxis(out, 0, axis)


def _complex_logaddexp(acc, new):
    """log(exp(acc) + exp(new)) as PyTorch's scan computes it: big + log1p(exp(small - big))
    with big the operand of larger real part (the new one on ties), so the imaginary part
    continues big's branch rather than wrapping to (-pi, pi]."""
    take_acc = acc.real > new.real
    big, small = np.where(take_acc, acc, new), np.where(take_acc, new, acc)
    with np.errstate(invalid="ignore", over="ignore"):
        r = big + np.log1p(np.exp(small - big))
    both_log_zero = np.isneginf(acc.real) & np.isneginf(new.real)
    return np.where(both_log_zero, acc, r).astype(acc.dtype)


# stands for log(0) in the gradient's log-space sums: -inf there would give inf - inf in
# the second derivative, and exp of it is 0 all the same
_LOG_ZERO = -1e30


def _log_or_floor(v, where_ok):
    return where(where_ok, log(where(where_ok, v, 1)), _LOG_ZERO)


def _reverse_logcumsumexp(v, dim):
    return flip(logcumsumexp(flip(v, [dim]), dim), [dim])


def _signed_log_sums(v, weights, d, reverse):
    """sum over the scan of v_j exp(weights_j), as (log of the positive part, log of the
    negative part) for real v, or one complex log for complex v."""
    scan = _reverse_logcumsumexp if reverse else logcumsumexp
    if v.dtype.is_complex:
        return scan(_log_or_floor(v, ne(v, 0)) + weights, d), None
    return (scan(_log_or_floor(v, gt(v, 0)) + weights, d),
            scan(_log_or_floor(-v, lt(v, 0)) + weights, d))


def _centered(self, out, d):
    """x and out less the slice's last (largest) output: the log-space sums then run over
    numbers near 0 rather than near |x|, which keeps their rounding relative."""
    shift = narrow(out, d, out.shape[d] - 1, 1) if out.shape[d] else out
    shift = where(isfinite(shift), shift, 0)
    return self - shift, out - shift


def _logcumsumexp_grad(g, self, dim, out):
    """gx_i = sum_{k >= i} g_k exp(x_i - out_k), summed in log space so that neither
    exp(x) nor exp(-out) overflows: real g splits into its positive and negative parts,
    complex g takes its complex log. (As PyTorch's, the rule's own derivative in g is
    lost where g is exactly 0; forward mode uses the explicit jvp below.)"""
    if not self.ndim:
        return g
    d = wrap_dim(dim, self.ndim)
    x, out = _centered(self, out, d)
    pos, neg = _signed_log_sums(g, -_c(out), d, reverse=True)
    if neg is None:
        return exp(pos + _c(x))
    return exp(pos + x) - exp(neg + x)


def _logcumsumexp_jvp(tangents, self, dim, out):
    """d out_k = sum_{i <= k} exp(x_i - out_k) t_i, in log space as the VJP."""
    (t,) = tangents
    if t is None:
        return None
    if not self.ndim:
        return t
    d = wrap_dim(dim, self.ndim)
    x, out = _centered(self, out, d)
    pos, neg = _signed_log_sums(t, x, d, reverse=False)
    if neg is None:
        return exp(pos - out)
    return exp(pos - out) - exp(neg - out)


logcumsumexp = defop(
    "logcumsumexp(Tensor self, int dim) -> Tensor",
    meta=lambda self, dim: TensorMeta(
        tuple(self.shape), dtypes.get_default_dtype() if _is_intlike(self.dtype)
        else self.dtype, str(self.device)) if wrap_dim(dim, self.ndim) is not None else None,
    reference=_logcumsumexp_np,
    derivative=_logcumsumexp_grad, jvp=_logcumsumexp_jvp,
    tags=set(), torch_ref="torch.logcumsumexp", method=True,
    samples=lambda rng: [_sample(S.randn(rng, 3, 5), 1), _sample(S.randn(rng, 4), 0),
                         _sample(S.randn(rng, 2, 3, 4), 0), _sample(S.randn(rng), 0),
                         _sample(S.randn(rng, 2, 4, dtype=np.float64) * 800, 1),
                         _sample(S.randn(rng, 3, 2, dtype=np.complex128), 0)],
)


from .joining import flip  # noqa: E402 - derivative rules use these ops
from .pointwise import _c, eq, exp, gt, isfinite, log, logical_and, lt, ne, where  # noqa: E402
from .reduction import sum  # noqa: E402,A004
from .shape import narrow, unsqueeze  # noqa: E402
