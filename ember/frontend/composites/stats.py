"""Reductions, statistics and products written as registry-op calls: aminmax, msort,
quantile/nanquantile, dist, renorm, cov, corrcoef, diff, gradient, trapezoid/trapz,
cumulative_trapezoid, histogram/histogramdd (over the ops in ir/ops/statistics.py),
addmv, addr, addbmm, vdot, inner, kron, trace.

quantile sorts, then reads the two order statistics around each rank with gather and
interpolates with lerp: exactly PyTorch's definition, differentiable through sort and
gather, and free of data-dependent shapes (nanquantile counts the non-NaN values per
slice as a tensor).
"""
from __future__ import annotations

import collections
import numbers

from ...ir import autocast, dtypes
from ...ir.composite import composite
from ...ir.errors import DTypeError, ShapeError
from ...ir.ops import OPS_NS as ops
from ...ir.registry import OPS
from ...ir.ops.rules import broadcast_shapes, is_tensor_like, opmath, result_dtype, \
    wrap_dim, wrap_dims

aminmax_result = collections.namedtuple("aminmax", ["min", "max"])
histogram_result = collections.namedtuple("histogram", ["hist", "bin_edges"])
histogramdd_result = collections.namedtuple("histogramdd", ["hist", "bin_edges"])


def _scalar(value, like):
    return ops.full([], value, dtype=like.dtype)


def _float_dtype_of(t):
    return t.dtype if t.dtype.is_floating_point or t.dtype.is_complex else \
        dtypes.get_default_dtype()


# --- simple reductions ------------------------------------------------------------------

@composite(method=True)
def aminmax(input, *, dim=None, keepdim=False):
    """(min, max) over dim (or everything), as a named tuple."""
    empty = input.numel() == 0 if dim is None or input.ndim == 0 else \
        input.shape[wrap_dim(dim, input.ndim)] == 0
    if empty and dim is None:
        raise RuntimeError("aminmax(): cannot compute aminmax over an empty dimension as the "
                           "operation has no identity.")
    if empty:   # an empty dim named: PyTorch's IndexError
        raise IndexError(f"aminmax(): Expected reduction dim {dim} to have non-zero size.")
    dims = [] if dim is None else [dim]
    if dim is None and keepdim:
        low = ops.reshape(ops.amin(input, []), [1] * input.ndim)
        high = ops.reshape(ops.amax(input, []), [1] * input.ndim)
        return aminmax_result(low, high)
    if dim is not None and input.ndim == 0:
        wrap_dim(dim, 1)
        return aminmax_result(ops.clone(input), ops.clone(input))
    return aminmax_result(ops.amin(input, dims, keepdim), ops.amax(input, dims, keepdim))


@composite(method=True)
def msort(input):
    return ops.sort(input, 0)[0]


@composite(method=True)
def trace(input):
    if input.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.ndim}")
    return ops.sum(ops.diagonal(input, 0, 0, 1))


# --- quantiles --------------------------------------------------------------------------

_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile_checks(name, input, q, interpolation):
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"{name}() input tensor must be either float or double dtype")
    if input.numel() == 0:
        raise RuntimeError(f"{name}() input tensor must be non-empty")
    if interpolation not in _INTERPOLATIONS:
        raise RuntimeError(f"{name}() interpolation must be one of linear, lower, higher, "
                           f"midpoint or nearest. Got {interpolation}")
    if is_tensor_like(q):
        if q.ndim > 1:
            raise RuntimeError(f"{name}() q must be a scalar or 1D tensor")
        if q.dtype is not input.dtype:
            raise RuntimeError(f"{name}() q tensor must be same dtype as the input tensor")
        values = q._array.reshape(-1).tolist() if hasattr(q, "_array") else []
    else:
        values = [float(q)]
    if any(not 0 <= v <= 1 for v in values):
        raise RuntimeError(f"{name}() q values must be in the range [0, 1]")


def _quantile(name, input, q, dim, keepdim, interpolation, ignore_nan):
    from ..devices import creation_device_like
    with creation_device_like([input]):             # its factories on the input's device
        return _quantile_on(name, input, q, dim, keepdim, interpolation, ignore_nan)


def _quantile_on(name, input, q, dim, keepdim, interpolation, ignore_nan):
    _quantile_checks(name, input, q, interpolation)
    scalar_q = not is_tensor_like(q) or q.ndim == 0
    qs = ops.reshape(q if is_tensor_like(q) else ops.full([], float(q), dtype=input.dtype),
                     [-1])
    x = ops.reshape(input, [-1]) if dim is None else input
    d = 0 if dim is None else wrap_dim(dim, max(input.ndim, 1))
    if x.ndim == 0:
        x = ops.reshape(x, [1])
    rows = ops.movedim(ops.sort(x, d)[0], d, -1)            # [..., n], NaN last
    n = rows.shape[-1]
    nan = ops.isnan(rows)
    if ignore_nan:
        count = ops.sum(ops.logical_not(nan), [-1], True)   # non-NaN values per slice
    else:
        count = ops.full(list(rows.shape[:-1]) + [1], n, dtype=dtypes.int64, device=rows.device)
    last = ops.convert_element_type(count - 1, input.dtype)
    ranks = ops.clamp(qs * ops.clamp(last, min=0), min=0)   # [..., nq]
    if interpolation == "nearest":
        ranks = ops.round(ranks)
    low = ops.convert_element_type(ops.floor(ranks), dtypes.int64)
    high = ops.convert_element_type(ops.ceil(ranks), dtypes.int64)
    pick_low, pick_high = ops.gather(rows, -1, low), ops.gather(rows, -1, high)
    if interpolation in ("lower", "nearest"):
        out = pick_low
    elif interpolation == "higher":
        out = pick_high
    else:
        weight = ranks - ops.floor(ranks) if interpolation == "linear" else \
            ops.full([], 0.5, dtype=input.dtype)
        out = ops.lerp(pick_low, pick_high, weight)
    undefined = ops.eq(count, 0) if ignore_nan else ops.any(nan, [-1], True)
    out = ops.where(undefined, ops.full([], float("nan"), dtype=input.dtype), out)
    out = ops.movedim(out, -1, 0)                            # [nq, ...]
    if keepdim:
        out = _keep_reduced_dims(out, input, dim)
    return ops.select(out, 0, 0) if scalar_q else out


def _keep_reduced_dims(out, input, dim):
    """[nq, ...reduced] -> [nq, ...input's shape with the reduced dims as 1]."""
    shape = [1] * input.ndim if dim is None else \
        [1 if k == wrap_dim(dim, max(input.ndim, 1)) else s for k, s in enumerate(input.shape)]
    return ops.reshape(out, [out.shape[0]] + shape)


@composite(method=True)
def quantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """The q-th quantiles of input (flattened, or along dim): PyTorch's definition, rank
    q * (n - 1) in the sorted values, interpolated as asked. NaN if a slice holds NaN."""
    return _quantile("quantile", input, q, dim, keepdim, interpolation, False)


@composite(method=True)
def nanquantile(input, q, dim=None, keepdim=False, *, interpolation="linear"):
    """quantile over the non-NaN values (NaN where a slice holds only NaN)."""
    return _quantile("nanquantile", input, q, dim, keepdim, interpolation, True)


# --- distances and norms ----------------------------------------------------------------

@composite(method=True)
def dist(input, other, p=2):
    """The p-norm of input - other (broadcast)."""
    if input.dtype is not other.dtype and not (
            input.dtype.is_floating_point and other.dtype.is_floating_point):
        raise RuntimeError(f"dist(): expected both inputs to have the same floating point "
                           f"dtype, got {input.dtype.name} and {other.dtype.name}")
    return OPS["linalg_vector_norm"](input - other, p)


def _renorm_values(name, input, p, dim, maxnorm):
    if not (input.dtype.is_floating_point or input.dtype.is_complex):
        raise RuntimeError(f"{name}: input needs to be floating point or complex, got "
                           f"{input.dtype.name}")
    if p <= 0:
        raise RuntimeError(f"{name}: non-positive-norm not supported")
    if maxnorm < 0:
        raise RuntimeError(f"{name}: expected maxnorm to be >= 0 but got {maxnorm}")
    if input.ndim <= 1:
        raise RuntimeError(f"{name}: input needs at least 2 dimensions, got {input.ndim} "
                           f"dimensions")
    d = wrap_dim(dim, input.ndim)
    others = [k for k in range(input.ndim) if k != d]
    norms = OPS["linalg_vector_norm"](input, p, others, True)
    # PyTorch scales sub-tensors whose norm exceeds maxnorm by maxnorm / (norm + 1e-7)
    factor = ops.where(ops.gt(norms, maxnorm), maxnorm / (norms + 1e-7),
                       ops.full([], 1.0, dtype=norms.dtype))
    return input * factor


@composite(method=True)
def renorm(input, p, dim, maxnorm):
    """input with each slice along dim whose p-norm exceeds maxnorm scaled down to it."""
    return _renorm_values("renorm", input, p, dim, maxnorm)


@composite(function=False, method=True)
def renorm_(self, p, dim, maxnorm):
    return ops.copy_(self, _renorm_values("renorm_", self, p, dim, maxnorm))


# --- covariance -------------------------------------------------------------------------

def _check_weights(name, w, n, integral):
    if w.ndim > 1:
        raise RuntimeError(f"cov(): expected {name} to have one or fewer dimensions but got "
                           f"{name} with {w.ndim} dimensions")
    if w.numel() != n:
        raise RuntimeError(f"cov(): expected {name} to have the same numel as there are "
                           f"observations in the input but got {w.numel()} != {n}")
    if integral and (w.dtype.category is not dtypes.Category.INT or w.dtype is dtypes.bool_):
        raise RuntimeError(f"cov(): expected {name} to have integral dtype but got "
                           f"{name} with {w.dtype.name} dtype")
    if not integral and not w.dtype.is_floating_point:
        raise RuntimeError(f"cov(): expected {name} to have floating point dtype but got "
                           f"{name} with {w.dtype.name} dtype")
    if hasattr(w, "_array") and w._array.size and w._array.min() < 0:
        raise RuntimeError(f"cov(): {name} cannot have negative values")


@composite(method=True)
def cov(input, *, correction=1, fweights=None, aweights=None):
    """Covariance of the variables in input's rows (observations in its columns), with
    optional integer frequency weights and float observation weights."""
    if input.ndim > 2:
        raise RuntimeError(f"cov(): expected input to have two or fewer dimensions but got an "
                           f"input with {input.ndim} dimensions")
    x = ops.reshape(input, [1, -1]) if input.ndim < 2 else input
    n = x.shape[1]
    w = None                    # PyTorch's order of operations (integer sums stay exact)
    if fweights is not None:
        _check_weights("fweights", fweights, n, True)
        w = fweights
    if aweights is not None:
        _check_weights("aweights", aweights, n, False)
        w = aweights if w is None else w * aweights
    if w is None:
        w_sum = ops.full([], n, dtype=dtypes.int64)
        avg = ops.sum(x, [1]) / w_sum
        norm = w_sum - correction
    else:
        w_sum = ops.sum(w)
        avg = ops.sum(x * w, [1]) / w_sum
        norm = w_sum - correction * ops.sum(w * aweights) / w_sum \
            if aweights is not None and correction != 0 else w_sum - correction
    norm = ops.clamp(norm, min=0)             # PyTorch: <= 0 degrees of freedom -> 0
    centered = x - ops.unsqueeze(avg, 1)
    weighted = centered if w is None else centered * w
    other = ops.transpose(weighted, 0, 1)
    if other.dtype.is_complex:
        other = ops.conj(other)
    c = ops.div(ops.matmul(centered, other), norm)
    return ops.squeeze(c)


@composite(method=True)
def corrcoef(input):
    """Pearson correlation coefficients of the variables in input's rows."""
    c = cov(input)
    if c.ndim == 0:
        return c / c
    d = ops.diagonal(c, 0, 0, 1)
    std = ops.sqrt(ops.real(d) if d.dtype.is_complex else d)
    c = c / ops.unsqueeze(std, 1)
    c = c / ops.unsqueeze(std, 0)
    if c.dtype.is_complex:
        re = ops.clamp(ops.real(c), -1, 1)
        im = ops.clamp(ops.imag(c), -1, 1)
        return re + im * 1j
    return ops.clamp(c, -1, 1)


# --- differences, gradients, integrals --------------------------------------------------

def _cat_edge(name, x, extra, d):
    if extra is None:
        return None
    if not is_tensor_like(extra):
        extra = ops.full([1 if k == d else s for k, s in enumerate(x.shape)], extra,
                         dtype=x.dtype)
    if extra.ndim == 0:
        extra = ops.expand(ops.reshape(extra, [1] * x.ndim),
                           [1 if k == d else s for k, s in enumerate(x.shape)])
    if extra.ndim != x.ndim:
        raise RuntimeError(f"diff expects prepend or append to be the same dimension as "
                           f"input")
    return extra


@composite(method=True)
def diff(input, n=1, dim=-1, prepend=None, append=None):
    """The n-th forward difference along dim, after prepending/appending values."""
    if input.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    if n == 0:                  # PyTorch ignores prepend and append then
        return input
    d = wrap_dim(dim, input.ndim)
    parts = [p for p in (_cat_edge("prepend", input, prepend, d), input,
                         _cat_edge("append", input, append, d)) if p is not None]
    x = ops.cat(parts, d) if len(parts) > 1 else input
    for _ in range(n):
        m = x.shape[d]
        if m == 0:
            break
        head, tail = ops.narrow(x, d, 1, m - 1), ops.narrow(x, d, 0, m - 1)
        x = ops.logical_xor(head, tail) if x.dtype is dtypes.bool_ else head - tail
    return x


def _gradient_spacing(input, spacing, dims):
    """Per gradient dim: a Python number (uniform step) or a 1-D coordinate tensor."""
    if isinstance(spacing, (list, tuple)):
        if len(spacing) != len(dims):
            raise RuntimeError(f"torch.gradient expected spacing to be unspecified, a scalar "
                               f"or it's size to match the number of dimensions, but got "
                               f"{len(spacing)} and {len(dims)}")
        out = []
        for s, d in zip(spacing, dims):
            if is_tensor_like(s) and s.ndim == 0:
                s = s.item()
            if is_tensor_like(s) and (s.ndim != 1 or s.shape[0] != input.shape[d]):
                raise RuntimeError(f"torch.gradient expected each tensor to be on the same "
                                   f"device and the size of coordinates to match the size "
                                   f"of the dimension {d}, got {list(s.shape)}")
            out.append(s)
        return out
    if is_tensor_like(spacing):
        spacing = spacing.item()
    return [1 if spacing is None else spacing] * len(dims)


def _sl(x, d, start, stop):
    return ops.narrow(x, d, start, stop - start)


def _along(t, d, ndim):
    return ops.reshape(t, [-1 if k == d else 1 for k in range(ndim)])


def _gradient_uniform(f, d, h, edge_order):
    n = f.shape[d]
    inner = (_sl(f, d, 2, n) - _sl(f, d, 0, n - 2)) / (2 * h)
    if edge_order == 1:
        first = (_sl(f, d, 1, 2) - _sl(f, d, 0, 1)) / h
        last = (_sl(f, d, n - 1, n) - _sl(f, d, n - 2, n - 1)) / h
    else:
        first = (_sl(f, d, 0, 1) * -1.5 + _sl(f, d, 1, 2) * 2 - _sl(f, d, 2, 3) * 0.5) / h
        last = (_sl(f, d, n - 3, n - 2) * 0.5 - _sl(f, d, n - 2, n - 1) * 2 +
                _sl(f, d, n - 1, n) * 1.5) / h
    return ops.cat([first, inner, last], d)


def _gradient_coords(f, d, x, edge_order):
    """NumPy's second-order-accurate differences on the grid x (non-uniform steps)."""
    n, nd = f.shape[d], f.ndim
    x = ops.convert_element_type(x, f.dtype) if x.dtype is not f.dtype else x
    dx = _sl(x, 0, 1, n) - _sl(x, 0, 0, n - 1)
    h1, h2 = _along(_sl(dx, 0, 0, n - 2), d, nd), _along(_sl(dx, 0, 1, n - 1), d, nd)
    inner = (_sl(f, d, 0, n - 2) * (-h2 / (h1 * (h1 + h2))) +
             _sl(f, d, 1, n - 1) * ((h2 - h1) / (h1 * h2)) +
             _sl(f, d, 2, n) * (h1 / (h2 * (h1 + h2))))
    if edge_order == 1:
        first = (_sl(f, d, 1, 2) - _sl(f, d, 0, 1)) / _along(_sl(dx, 0, 0, 1), d, nd)
        last = (_sl(f, d, n - 1, n) - _sl(f, d, n - 2, n - 1)) / _along(
            _sl(dx, 0, n - 2, n - 1), d, nd)
    else:
        a1, a2 = _along(_sl(dx, 0, 0, 1), d, nd), _along(_sl(dx, 0, 1, 2), d, nd)
        first = (_sl(f, d, 0, 1) * (-(2 * a1 + a2) / (a1 * (a1 + a2))) +
                 _sl(f, d, 1, 2) * ((a1 + a2) / (a1 * a2)) +
                 _sl(f, d, 2, 3) * (-a1 / (a2 * (a1 + a2))))
        b1, b2 = _along(_sl(dx, 0, n - 3, n - 2), d, nd), _along(_sl(dx, 0, n - 2, n - 1), d,
                                                                  nd)
        last = (_sl(f, d, n - 3, n - 2) * (b2 / (b1 * (b1 + b2))) +
                _sl(f, d, n - 2, n - 1) * (-(b2 + b1) / (b1 * b2)) +
                _sl(f, d, n - 1, n) * ((2 * b2 + b1) / (b2 * (b1 + b2))))
    return ops.cat([first, inner, last], d)


@composite()
def gradient(input, *, spacing=1, dim=None, edge_order=1):
    """Estimates of the partial derivatives of input (samples of a function) along each
    of dims, by central differences inside and one-sided ones at the edges."""
    if edge_order not in (1, 2):
        raise RuntimeError(f"torch.gradient only supports edge_order=1 and edge_order=2.")
    dims = list(range(input.ndim)) if dim is None else \
        list(wrap_dims([dim] if isinstance(dim, int) else dim, input.ndim))
    steps = _gradient_spacing(input, spacing, dims)
    f = input if input.dtype.is_floating_point or input.dtype.is_complex else \
        ops.convert_element_type(input, dtypes.get_default_dtype())
    out = []
    for d, h in zip(dims, steps):
        if input.shape[d] < edge_order + 1:
            raise RuntimeError(f"torch.gradient expected each dimension size to be at least "
                               f"edge_order+1")
        out.append(_gradient_coords(f, d, h, edge_order) if is_tensor_like(h)
                   else _gradient_uniform(f, d, h, edge_order))
    return tuple(out)


def _trapezoid_terms(y, x, dx, dim):
    if y.ndim == 0:
        raise RuntimeError("trapezoid: expected y to have at least one dimension")
    d = wrap_dim(dim, y.ndim)
    n = y.shape[d]
    y = y if y.dtype.is_floating_point or y.dtype.is_complex else \
        ops.convert_element_type(y, dtypes.get_default_dtype())
    if n == 0:
        return None, y, d
    mids = (_sl(y, d, 1, n) + _sl(y, d, 0, n - 1)) / 2
    if x is None:
        return mids * (1 if dx is None else dx), y, d
    if x.ndim == 1:
        if x.shape[0] != n:
            raise RuntimeError(f"trapezoid: There must be one `x` value for each sample "
                               f"point")
        steps = _along(_sl(x, 0, 1, n) - _sl(x, 0, 0, n - 1), d, y.ndim)
    else:
        steps = diff(x, 1, dim)
    return mids * steps, y, d


@composite()
def trapezoid(y, x=None, *, dx=None, dim=-1):
    """The trapezoidal-rule integral of y along dim, at points x or with step dx.

    In torch's order of operations, so integer y sums its neighbours in its own dtype
    (uint8 wraps) before the halving makes the result float."""
    if is_tensor_like(x) is False and x is not None:     # trapezoid(y, 0.5): a step
        x, dx = None, x
    if y.ndim == 0 or y.shape[wrap_dim(dim, y.ndim)] == 0:
        terms, y, d = _trapezoid_terms(y, x, dx, dim)    # (its checks; the empty sum)
        return ops.sum(y, [d])
    d = wrap_dim(dim, y.ndim)
    n = y.shape[d]
    if x is None:                     # sum(y) - (y_0 + y_last) / 2, times the step
        ends = ops.squeeze(_sl(y, d, 0, 1), [d]) + ops.squeeze(_sl(y, d, n - 1, n), [d])
        return (ops.sum(y, [d]) - ends * 0.5) * (1 if dx is None else dx)
    if x.ndim == 1:
        if x.shape[0] != n:
            raise RuntimeError("trapezoid: There must be one `x` value for each sample "
                               "point")
        steps = _along(_sl(x, 0, 1, n) - _sl(x, 0, 0, n - 1), d, y.ndim)
    else:
        steps = diff(x, 1, dim)
    return ops.sum((_sl(y, d, 0, n - 1) + _sl(y, d, 1, n)) * steps, [d]) / 2


@composite()
def trapz(y, x=None, *, dx=None, dim=-1):
    return trapezoid(y, x, dx=dx, dim=dim)


@composite()
def cumulative_trapezoid(y, x=None, *, dx=None, dim=-1):
    """The running trapezoidal-rule integral of y along dim (one element shorter)."""
    if is_tensor_like(x) is False and x is not None:
        x, dx = None, x
    terms, y, d = _trapezoid_terms(y, x, dx, dim)
    if terms is None:
        return y
    return ops.cumsum(terms, d)


# --- histograms -------------------------------------------------------------------------

def _flat_range(range):
    return None if range is None else [float(v) for v in range]


@composite(method=True)
def histogram(input, bins, *, range=None, weight=None, density=False):
    """(hist, bin_edges) of input's values: `bins` equal bins over range (default: the
    data's min and max), or the given 1-D tensor of increasing edges."""
    points = ops.reshape(input, [-1, 1])
    w = None if weight is None else ops.reshape(weight, [-1])
    if weight is not None and tuple(weight.shape) != tuple(input.shape):
        raise RuntimeError(f"torch.histogram: if weight tensor is provided it should have the "
                           f"same shape as the input tensor excluding its innermost dimension,"
                           f" but got input with shape {list(input.shape)} and weight with "
                           f"shape {list(weight.shape)}")
    if is_tensor_like(bins):
        edges = bins
    else:
        edges = ops._histogramdd_bin_edges(points, [int(bins)], range=_flat_range(range),
                                           weight=w, density=density)[0]
    hist = ops._histogramdd_from_bin_tensors(points, [edges], weight=w, density=density)
    return histogram_result(hist, edges)


@composite()
def histogramdd(input, bins, *, range=None, weight=None, density=False):
    """(hist, [bin_edges per dim]) of the points in input's last dim: bins is an int, one
    int per dim, or one tensor of edges per dim."""
    if input.ndim < 1:
        raise RuntimeError("torch.histogramdd: input tensor should have at least 1 "
                           "dimension, but got 0")
    d = input.shape[-1]
    points = ops.reshape(input, [-1, d])
    w = None if weight is None else ops.reshape(weight, [-1])
    if isinstance(bins, numbers.Integral):
        bins = [int(bins)] * d
    bins = list(bins)
    if bins and all(is_tensor_like(b) for b in bins):
        edges = bins
    else:
        edges = ops._histogramdd_bin_edges(points, [int(b) for b in bins],
                                           range=_flat_range(range), weight=w,
                                           density=density)
    hist = ops._histogramdd_from_bin_tensors(points, list(edges), weight=w, density=density)
    return histogramdd_result(hist, list(edges))


# --- products ---------------------------------------------------------------------------

def _scaled_sum(name, input, product, beta, alpha):
    """beta * input + alpha * product, PyTorch's way: beta == 0 ignores input (NaN and
    all), bools combine with and/or, integers truncate beta and alpha."""
    if product.dtype is dtypes.bool_:
        keep_in = ops.logical_and(input, ops.full([], bool(beta), dtype=dtypes.bool_))
        keep_p = ops.logical_and(product, ops.full([], bool(alpha), dtype=dtypes.bool_))
        return ops.logical_or(keep_in, keep_p)
    if not (product.dtype.is_floating_point or product.dtype.is_complex):
        beta, alpha = int(beta), int(alpha)       # PyTorch truncates them for integers
    scaled = product if alpha == 1 else product * alpha
    if beta == 0:          # input must broadcast to the product's shape: the result's
        broadcast_shapes(tuple(input.shape), tuple(scaled.shape))
        return scaled
    return (input if beta == 1 else input * beta) + scaled


def _require_same_dtype(name, *tensors):
    dts = {t.dtype for t in tensors}
    if len(dts) > 1:
        names = " and ".join(t.dtype.name for t in tensors)
        raise RuntimeError(f"{name}: expected all tensors to have the same dtype, got {names}")


def _addmv_values(name, input, mat, vec, beta, alpha):
    if mat.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {input.ndim}, "
                           f"{mat.ndim}, {vec.ndim}")
    if mat.shape[1] != vec.shape[0]:
        raise RuntimeError(f"size mismatch, got input ({input.shape[0] if input.ndim else 1}),"
                           f" mat ({mat.shape[0]}x{mat.shape[1]}), vec ({vec.shape[0]})")
    _require_same_dtype(name, input, mat, vec)
    # bool: torch's addmv has no kernel ('"addmv_impl_cpu" not implemented'), nor has mv
    return _scaled_sum(name, input, ops.mv(mat, vec), beta, alpha)


@composite(method=True)
@autocast.autocast_as("addmv")
def addmv(input, mat, vec, *, beta=1, alpha=1):
    """beta * input + alpha * (mat @ vec)."""
    return _addmv_values("addmv", input, mat, vec, beta, alpha)


@composite(function=False, method=True)
def addmv_(self, mat, vec, *, beta=1, alpha=1):
    return ops.copy_(self, _addmv_values("addmv_", self, mat, vec, beta, alpha))


def _addr_values(name, input, vec1, vec2, beta, alpha):
    if vec1.ndim != 1 or vec2.ndim != 1:
        raise RuntimeError(f"{name}: Expected 1-D argument vec1, but got {vec1.ndim}-D"
                           if vec1.ndim != 1 else
                           f"{name}: Expected 1-D argument vec2, but got {vec2.ndim}-D")
    if vec1.dtype is dtypes.bool_:
        product = ops.logical_and(ops.unsqueeze(vec1, 1), ops.unsqueeze(vec2, 0))
    else:
        product = ops.unsqueeze(vec1, 1) * ops.unsqueeze(vec2, 0)
    return _scaled_sum(name, input, product, beta, alpha)


@composite(method=True)
@autocast.autocast_as("addr")
def addr(input, vec1, vec2, *, beta=1, alpha=1):
    """beta * input + alpha * outer(vec1, vec2)."""
    return _addr_values("addr", input, vec1, vec2, beta, alpha)


@composite(function=False, method=True)
def addr_(self, vec1, vec2, *, beta=1, alpha=1):
    return ops.copy_(self, _addr_values("addr_", self, vec1, vec2, beta, alpha))


def _addbmm_values(name, input, batch1, batch2, beta, alpha):
    if batch1.ndim != 3 or batch2.ndim != 3:
        raise RuntimeError(f"batch1 must be a 3D tensor" if batch1.ndim != 3 else
                           "batch2 must be a 3D tensor")
    if batch1.shape[0] != batch2.shape[0] or batch1.shape[2] != batch2.shape[1]:
        raise RuntimeError(f"{name}: incompatible batches, got {list(batch1.shape)} and "
                           f"{list(batch2.shape)}")
    _require_same_dtype(name, input, batch1, batch2)
    if opmath(batch1.dtype) is not batch1.dtype and batch1.shape[0] > 0:
        return _addbmm_by_batches(input, batch1, batch2, beta, alpha)
    if batch1.shape[0] == 0:
        product = ops.full([batch1.shape[1], batch2.shape[2]], 0, dtype=batch1.dtype)
    else:
        product = ops.sum(ops.bmm(batch1, batch2), [0], dtype=batch1.dtype)  # uint8 stays
    return _scaled_sum(name, input, product, beta, alpha)


def _addbmm_by_batches(input, batch1, batch2, beta, alpha):
    """float16/bfloat16: one addmm per batch into the running result, as PyTorch's CPU
    kernel does; each addmm computes in float32 and rounds once, so the result rounds
    once per batch (a float32 sum over the batches rounded at the end differs by ulps)."""
    out = ops.addmm(input, batch1[0], batch2[0], beta=beta, alpha=alpha)
    for b in range(1, batch1.shape[0]):
        out = ops.addmm(out, batch1[b], batch2[b], alpha=alpha)
    return out


@composite(method=True)
def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * sum_b(batch1[b] @ batch2[b])."""
    with autocast.as_one_op("addbmm", input, batch1, batch2) as (input, batch1, batch2):
        return _addbmm_values("addbmm", input, batch1, batch2, beta, alpha)


@composite(function=False, method=True)
def addbmm_(self, batch1, batch2, *, beta=1, alpha=1):
    return ops.copy_(self, _addbmm_values("addbmm_", self, batch1, batch2, beta, alpha))


@composite(method=True)
@autocast.autocast_as("vdot")
def vdot(input, other):
    """sum(conj(input) * other) of two 1-D tensors."""
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D "
                           f"tensors")
    if input.dtype is not other.dtype:
        raise RuntimeError(f"vdot : expected both vectors to have same dtype, but found "
                           f"{input.dtype.scalar_type_name} and {other.dtype.scalar_type_name}")
    return ops.dot(ops.conj(input) if input.dtype.is_complex else input, other)


@composite(method=True)
def inner(input, other):
    """The sum over the last dims of input and other of their products (a scalar times a
    tensor when either is 0-D)."""
    if input.ndim == 0 or other.ndim == 0:
        return input * other
    if input.shape[-1] != other.shape[-1]:
        raise RuntimeError(f"inner() the last dimension must match on both input tensors but "
                           f"got shapes {list(input.shape)} and {list(other.shape)}")
    return ops.tensordot(input, other, [input.ndim - 1], [other.ndim - 1])


@composite(method=True)
def kron(input, other):
    """The Kronecker product: every element of input times the whole of other."""
    nd = max(input.ndim, other.ndim)
    a = ops.reshape(input, [1] * (nd - input.ndim) + list(input.shape))
    b = ops.reshape(other, [1] * (nd - other.ndim) + list(other.shape))
    spread_a = ops.reshape(a, [s for n in a.shape for s in (n, 1)])
    spread_b = ops.reshape(b, [s for n in b.shape for s in (1, n)])
    out = ops.logical_and(spread_a, spread_b) if result_dtype([a, b]) is dtypes.bool_ else \
        spread_a * spread_b
    return ops.reshape(out, [m * n for m, n in zip(a.shape, b.shape)])


# --- segment_reduce -----------------------------------------------------------------------
_SEGMENT_REDUCTIONS = {"sum": ("sum", 0.0), "mean": ("sum", 0.0), "prod": ("prod", 1.0),
                       "max": ("amax", float("-inf")), "min": ("amin", float("inf"))}


@composite()
def segment_reduce(data, reduce, *, lengths=None, indices=None, offsets=None, axis=0,
                   unsafe=False, initial=None):
    """Reduces consecutive segments of `data` along axis 0 (segment i has lengths[i] rows,
    or offsets[i+1] - offsets[i]); `initial` joins every segment's reduction; empty
    segments give initial, else 0 (sum), 1 (prod), nan (mean), -inf (max), inf (min)."""
    if reduce not in _SEGMENT_REDUCTIONS:
        raise ValueError(f"segment_reduce(): reduce must be one of "
                         f"{sorted(_SEGMENT_REDUCTIONS)}, got {reduce!r}")
    if indices is not None:
        raise RuntimeError("segment_reduce(): indices based reduction is not supported yet.")
    if (lengths is None) == (offsets is None):
        raise RuntimeError("segment_reduce(): Either lengths or offsets must be defined")
    if lengths is None:
        lengths = offsets[1:] - offsets[:-1]
    if axis not in (lengths.ndim - 1, -1) or lengths.ndim != 1:
        raise RuntimeError(f"segment_reduce(): Expected axis to be the last dimension of "
                           f"lengths but got {axis}.")
    if not unsafe and int(lengths.sum().item()) != data.shape[0]:
        raise RuntimeError("segment_reduce(): Expected all rows of lengths along axis to sum "
                           "to data.size(lengths.dim()-1) when !unsafe.")
    kind, identity = _SEGMENT_REDUCTIONS[reduce]
    segments = lengths.shape[0]
    segment_of_row = ops.repeat_interleave(lengths.to(dtypes.int64))   # i, lengths[i] times
    index = segment_of_row.reshape([-1] + [1] * (data.ndim - 1)).expand(list(data.shape))
    start = ops.full([segments] + list(data.shape[1:]),
                     identity if initial is None else initial, dtype=data.dtype)
    out = ops.scatter_reduce(start, 0, index, data, kind, include_self=True)
    if reduce == "mean":
        counts = lengths.to(data.dtype).reshape([-1] + [1] * (data.ndim - 1))
        out = out / (counts if initial is None else counts.clamp_min(1))
    return out
