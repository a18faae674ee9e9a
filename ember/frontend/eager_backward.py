"""NumPy backwards for ops whose composed derivative is mostly dispatch (issue 22).

A registry op's derivative is written with ember ops, so `create_graph=True` and
tracing work unchanged. Run eagerly, though, cross_entropy's rule is ~17 op calls on
a (batch, classes) array: for a 64x10 batch that is ~0.3 ms of dispatch for
microseconds of arithmetic, more than PyTorch's whole loss backward. The rules here
compute the same formulas on the arrays directly; the autograd engine
(`engine.ARRAY_BACKWARD`) uses one only for a plain eager backward (no
`create_graph`, no dispatch mode such as a profiler or tracer, CPU gradient), and a
rule returns None for every case it does not cover (weights, probability targets,
other dtypes), which then takes the composed rule. Gradients match the composed
rule within float rounding (tests/frontend/test_eager_backward.py).
"""
from __future__ import annotations

import numpy as np

from ..ir.ops.normalization import np_log_softmax
from ..ir.ops.pooling import PoolParams, _pad_pool, flat_planes, lowest, scatter_add_planes
from ..ir.autodiff import fit_grad
from ..ir.meta import TensorMeta
from ..ir.ops.pointwise import _c
from ..ir.ops.reduction import _count
from ..ir.ops.rules import wrap_dims
from ..ir.ops.shape import _narrow_args, _transpose_dims, flat_storage
from ..ir.registry import OPS
from .autograd.engine import ARRAY_BACKWARD
from .eager import quiet_fp, restore_fp
from .nn._max_pool_eager import _winning_slice
from .tensor import Storage, Tensor

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _class_loss_backward(logits: bool):
    """cross_entropy (logits) / nll_loss (log-probabilities) with class-index targets:
    d input = gl * (mask * softmax(input) - coeff) for cross_entropy and -gl * coeff for
    nll_loss, coeff = mask * (one-hot smoothed), gl = the loss gradient per sample."""
    def rule(g, bound, out, mask):
        input, target, weight, ignore_index, reduction = bound[:5]
        smoothing = bound[5] if logits else 0.0
        if weight is not None or (mask is not None and not mask[0]):
            return None
        x, t = input._array, target._array
        if x.dtype not in _FLOATS or g.dtype != x.dtype or t.dtype.kind not in "iu" \
                or x.ndim == 0:
            return None
        cd = 1 if x.ndim >= 2 else 0
        c = x.shape[cd]
        t = np.expand_dims(t, cd)
        classes = np.arange(c).reshape((c,) + (1,) * (x.ndim - cd - 1))
        onehot = t == classes
        valid = t != ignore_index
        coeff = (valid & onehot).astype(x.dtype)
        if reduction == "mean":
            # every target ignored: the loss is NaN but its gradient 0, as PyTorch's
            # (each coefficient is 0, so any nonzero divisor gives it)
            gl = g / (coeff.sum(dtype=x.dtype) or x.dtype.type(1))
        elif reduction == "sum":
            gl = g
        else:
            gl = np.expand_dims(g, cd)
        if smoothing > 0:
            coeff = valid * (onehot * x.dtype.type(1 - smoothing) + x.dtype.type(smoothing / c))
        with np.errstate(all="ignore"):
            if not logits:
                return np.negative(gl * coeff, dtype=x.dtype), None, None
            probs = np.exp(np_log_softmax(x, cd))
            return ((probs * valid - coeff) * gl).astype(x.dtype, copy=False), None, None
    return rule


def _relu_backward(g, bound, out, mask):
    if out is None or g.dtype not in _FLOATS or out._array.dtype != g.dtype:
        return None
    y = out._array
    # NaN * 0 and inf * 0 are NaN, but PyTorch's rule gives 0 where out <= 0: such a g
    # takes np.where. A finite sum proves g is all finite in one pass (a NaN or an inf
    # makes it NaN or inf; a merely overflowing sum takes np.where too, same values)
    token = quiet_fp()                      # inf - inf, an overflowing sum: no warning
    try:
        total = np.add.reduce(g, axis=None)
    finally:
        restore_fp(token)
    if not np.isfinite(total):
        return (np.where(y <= 0, g.dtype.type(0), g),)
    # PyTorch's rule, out <= 0 ? 0 : g, as a product (np.where is ~15x slower on a random
    # mask); a NaN output passes g; adding +0 turns the product's -0 into PyTorch's +0
    grad = np.multiply(g, ~(y <= 0))
    grad += g.dtype.type(0)
    return (grad,)


def _linear_backward(g, bound, out, mask):
    """linear's composed rule, with each GEMM called as that rule calls it: below
    eager_kernels' work threshold (where no generated kernel is a candidate, so the
    composed matmul/mm run NumPy's reference) as np.matmul on the arrays, above it
    through the ops themselves (the same plans, so the same kernel choices); the bias
    gradient as sum_to_shape's sum. No transposes, reshapes or masks dispatched."""
    input, weight, bias = bound
    if weight.ndim != 2 or input.ndim == 0:
        return None
    x, w = input._array, weight._array
    dt = g.dtype
    if dt not in _FLOATS or x.dtype != dt or w.dtype != dt or \
            (bias is not None and bias._array.dtype != dt):
        return None
    n_out, k = w.shape
    rows = g.size // n_out if n_out else 0
    mask = mask or (True, True, True)
    gi = gw = gb = None
    if mask[0]:
        gi = _gemm("matmul", g, weight, rows * k * n_out)
    if mask[1]:
        g2 = g if g.ndim == 2 else g.reshape(-1, n_out)
        x2 = input if x.ndim == 2 else x.reshape(-1, k)
        gw = _gemm("mm", g2.T, x2, rows * k * n_out)
    if bias is not None and (len(mask) < 3 or mask[2]):
        gb = g if g.ndim == 1 else \
            np.add.reduce(g, axis=tuple(range(g.ndim - 1)), dtype=dt, keepdims=True).reshape(n_out)
    return gi, gw, gb


def _gemm(name: str, a: np.ndarray, b, work: int) -> np.ndarray:
    """OPS[name](a, b) as the composed rule runs it (b: an array or a tensor)."""
    from .eager_kernels import _MIN_WORK
    b_arr = b if type(b) is np.ndarray else b._array
    if work < _MIN_WORK:
        return np.matmul(a, b_arr)
    b_t = Tensor._adopt(b) if type(b) is np.ndarray else b
    return OPS[name](Tensor._adopt(a), b_t)._array


def _reduced_view(g, self, dim, keepdim):
    """reduction.expand_reduced(g, self, dim, keepdim) on the arrays: the same unsqueeze
    and expand references, as one view of g (its strides and flags: the composed rule's)."""
    a = g._array
    size = tuple(self.shape)
    if type(a) is not np.ndarray or a.dtype != self.dtype.np_dtype or 0 in size:
        return None
    # the unsqueezes' and the expand's strides worked out in elements (as their shape
    # rules do), then one as_strided view instead of one per step
    item = a.itemsize
    shape, strides = list(a.shape), [s // item for s in a.strides]
    if not keepdim and self.ndim:
        for d in sorted(wrap_dims(dim, self.ndim)):
            strides.insert(d, shape[d] * strides[d] if d < len(shape) else 1)
            shape.insert(d, 1)
    lead = len(size) - len(shape)
    out = [0] * lead + [st * item if have == want else 0
                        for have, want, st in zip(shape, size[lead:], strides)]
    return g._view_of_self(np.lib.stride_tricks.as_strided(a, size, out))


def _sum_backward(g, bound, out, mask):
    self, dim, keepdim, _ = bound
    view = _reduced_view(g, self, dim, keepdim)
    return None if view is None else (view,)


def _mean_backward(g, bound, out, mask):
    self, dim, keepdim, _ = bound
    view = _reduced_view(g, self, dim, keepdim)
    if view is None or g.dtype.is_complex:
        return None
    return (view / max(_count(self, dim), 1),)      # the composed rule's division


_sum_backward.takes_tensor = _mean_backward.takes_tensor = True


def _mul_backward(g, bound, out, mask):
    """mul's composed rule, `(g * other, g * self)` each fitted to its input, computing
    only the gradients that go somewhere (a Python scalar or a tensor that needs no
    gradient gets none): the same operator calls, one fewer product."""
    self, other = bound
    return (_product_grad(g, self, other, mask, 0), _product_grad(g, other, self, mask, 1))


def _product_grad(g, input, factor, mask, i):
    if not isinstance(input, Tensor) or (mask is not None and not mask[i]):
        return None
    return fit_grad(g * _c(factor), input._array.shape, input.dtype)


def _add_backward(g, bound, out, mask):
    """add's composed rule for alpha 1, `(g, g)` each fitted to its input (the same
    fit_grad calls), without the rule's call through the registry; a Python number
    operand gets none, as the engine would drop it."""
    self, other, alpha = bound
    if alpha != 1:
        return None
    return tuple(fit_grad(g, v.shape, v.dtype) if isinstance(v, TensorMeta) else None
                 for v in (self, other))


def _div_backward(g, bound, out, mask):
    """x / c for a Python number c: the composed rule's `g / c` without the divisor's
    gradient, which a number does not take (its three ops were thrown away)."""
    self, other, rounding_mode = bound
    if rounding_mode is not None or isinstance(other, Tensor) or not isinstance(self, Tensor):
        return None
    return (fit_grad(g / _c(other), self._array.shape, self.dtype), None)


_mul_backward.takes_tensor = _div_backward.takes_tensor = _add_backward.takes_tensor = True


def _max_pool2d_backward(g, bound, out, mask):
    """The composed rule recomputes max_pool2d_with_indices (an argmax over every
    window: 80 ms for resnet18's stem pool) and scatters g. The same indices come from
    kh*kw strided slices of the padded input (first maximum, or first NaN, wins: the
    argmax's rule); the scatter is the op's own."""
    input, kernel_size, stride, padding, dilation, ceil_mode = bound
    x = input._array
    if x.dtype not in _FLOATS or g.dtype != x.dtype or x.ndim not in (3, 4) or \
            not x.flags.c_contiguous:
        return None
    params = PoolParams(x, kernel_size, stride, padding, dilation, ceil_mode, 2)
    if x.dtype == np.float32:
        return (_max_pool2d_backward_native(g, x, params),)
    indices = _max_pool2d_indices(x, params)
    return (scatter_add_planes(g, indices, x.shape, 2),)


def _max_pool2d_backward_native(g: np.ndarray, x: np.ndarray, p: PoolParams) -> np.ndarray:
    """float32: one generated kernel finds each window's winner (the argmax's rule) and
    adds its gradient there, threaded over planes: no index array, no scatter."""
    from ..codegen.llvm.max_pool import max_pool2d_backward
    planes = flat_planes(x, 2)
    gi = np.zeros(planes.shape, np.float32)
    g = np.ascontiguousarray(g, np.float32).reshape((planes.shape[0],) + p.out)
    max_pool2d_backward(planes, g, gi, p.k + p.s + p.p + p.d)
    return gi.reshape(x.shape)


def _max_pool2d_indices(x: np.ndarray, p: PoolParams) -> np.ndarray:
    """max_pool2d_with_indices' flat per-plane indices, by window slices."""
    xp = _pad_pool(flat_planes(x, 2), p, lowest(x.dtype))
    (oh, ow), (kh, kw), (sh, sw), (dh, dw) = p.out, p.k, p.s, p.d
    width = p.spatial[1]
    slices = [xp[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
              for i in range(kh) for j in range(kw)]
    best = np.array(slices[0], order="C")
    for view in slices[1:]:
        np.maximum(best, view, out=best)    # NaN propagates: its window picks a NaN
    which = _winning_slice(slices, best)
    taps = np.array([i * dh * width + j * dw for i in range(kh) for j in range(kw)], np.int64)
    corner = (np.arange(oh) * sh - p.p[0])[:, None] * width + (np.arange(ow) * sw - p.p[1])
    return (corner + taps[which]).reshape(x.shape[:-2] + p.out)


def _matmul_backward(g, bound, out, mask):
    """matmul of two operands with the same batch dims (attention's per-head products):
    the composed rule's `g @ mT(b)` and `mT(a) @ g`, each GEMM called as _gemm calls
    it (the same kernel choice), without the transposes and fitting dispatched."""
    self, other = bound
    a, b = self._array, other._array
    dt = g.dtype
    if type(a) is not np.ndarray or type(b) is not np.ndarray or dt not in _FLOATS or \
            a.dtype != dt or b.dtype != dt or a.ndim < 2 or a.ndim != b.ndim or \
            a.shape[:-2] != b.shape[:-2]:
        return None
    mask = mask or (True, True)
    work = g.size * a.shape[-1]
    ga = _gemm("matmul", g, np.swapaxes(b, -1, -2), work) if mask[0] else None
    gb = _gemm("matmul", np.swapaxes(a, -1, -2), g, work) if mask[1] else None
    return ga, gb


def _layer_norm_backward(g, bound, out, mask):
    """layer_norm's composed rule (normalize_backward, then `g * xhat` and `g` fitted to
    the weight and bias by sum_to_shape's sum) on the arrays: the same NumPy reductions
    and elementwise steps in the same order, ~20 op calls fewer."""
    input, normalized_shape, weight, bias, eps = bound
    x = input._array
    dt = g.dtype
    n = len(normalized_shape)
    if dt not in _FLOATS or type(x) is not np.ndarray or x.dtype != dt or x.size == 0 or \
            x.ndim <= n or (weight is not None and weight._array.dtype != dt) or \
            (bias is not None and bias.dtype.np_dtype != dt):
        return None
    mask = mask or (True, True, True)
    axes = tuple(range(x.ndim - n, x.ndim))
    lead = tuple(range(x.ndim - n))
    xc = x - np.mean(x, axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(np.mean(xc * xc, axis=axes, keepdims=True) + dt.type(eps))
    xhat = xc * rstd
    gi = gw = gb = None
    if mask[0]:
        gxhat = g * weight._array if weight is not None else g
        gi = rstd * (gxhat - np.mean(gxhat, axis=axes, keepdims=True) -
                     xhat * np.mean(gxhat * xhat, axis=axes, keepdims=True))
    if weight is not None and mask[1]:
        gw = np.sum(g * xhat, axis=lead, keepdims=True, dtype=dt).reshape(x.shape[-n:])
    if bias is not None and mask[2]:
        gb = np.sum(g, axis=lead, keepdims=True, dtype=dt).reshape(x.shape[-n:])
    return gi, gw, gb


def _softmax_backward(g, bound, out, mask):
    """softmax's composed rule, `g * y - y * sum(g * y, dim)`, on the arrays."""
    self, dim, dtype = bound
    y = out._array if out is not None else None
    if dtype is not None or y is None or type(y) is not np.ndarray or y.ndim == 0 or \
            g.dtype not in _FLOATS or y.dtype != g.dtype or y.size == 0:
        return None
    gy = g * y
    return (gy - y * np.sum(gy, axis=(dim,), keepdims=True, dtype=g.dtype),)


def _narrow_backward(g, bound, out, mask):
    """narrow's composed rule, slice_scatter(zeros(self), g, ...): zeros with g
    written into the narrowed range."""
    self, dim, start, length = bound
    if g.dtype != self.dtype.np_dtype or self.ndim == 0:
        return None
    d, lo, hi = _narrow_args(self, dim, start, length)
    full = np.zeros(tuple(self.shape), g.dtype)
    full[(slice(None),) * d + (slice(lo, hi),)] = g
    return (full,)


def _as_view_of(g: Tensor, a: np.ndarray) -> Tensor:
    """What the eager op call makes of a NumPy result over g's memory: a view of g
    (sharing its storage and version), or a fresh tensor when NumPy had to copy."""
    if np.may_share_memory(a, g._array):
        return g._view_of_self(a)
    return Tensor._make(a, Storage(flat_storage(a)))


def _reshape_backward(g, bound, out, mask):
    """view / reshape: the composed rule's `reshape(g, self.shape)`, whose eager call
    is NumPy's reshape of g's array (a view of g when the strides allow one)."""
    a = g._array
    if type(a) is not np.ndarray or a.size == 0:
        return None
    return (_as_view_of(g, a.reshape(tuple(bound[0].shape))),)


def _transpose_backward(g, bound, out, mask):
    """transpose's composed rule, `transpose(g, dim0, dim1)`: a view of g."""
    a = g._array
    if type(a) is not np.ndarray or a.size == 0:
        return None
    _, dim0, dim1 = bound
    return (_as_view_of(g, np.transpose(a, _transpose_dims(a.ndim, dim0, dim1))),)


_reshape_backward.takes_tensor = _transpose_backward.takes_tensor = True


def install() -> None:
    for name, rule in (("cross_entropy", _class_loss_backward(True)),
                       ("nll_loss", _class_loss_backward(False)),
                       ("relu", _relu_backward), ("linear", _linear_backward),
                       ("sum", _sum_backward), ("mean", _mean_backward),
                       ("mul", _mul_backward), ("div", _div_backward), ("add", _add_backward),
                       ("max_pool2d", _max_pool2d_backward),
                       ("layer_norm", _layer_norm_backward), ("matmul", _matmul_backward),
                       ("softmax", _softmax_backward),
                       ("narrow", _narrow_backward), ("view", _reshape_backward),
                       ("reshape", _reshape_backward), ("transpose", _transpose_backward)):
        if name in OPS:
            ARRAY_BACKWARD[OPS[name]] = rule

