"""CUDA routes that rewrite ops ordinary model and training code calls into ops that have
CUDA kernels (exact rewrites: the same arithmetic, up to the reduction order of a sum).
eager_cuda_training.run takes them from ROUTES (merged into its table). Each returns None
outside what it handles, and the op runs on the host with the fallback warning.

- einsum (no letter repeated within one operand): operands contracted left to right,
  each pair one bmm;
- mv, dot, addmm with any beta/alpha, tensordot: mm of reshaped operands; std_mean: var
  and mean; isin: a comparison with every test element; linalg.cross: its components;
- matmul of two batched operands (attention's `q @ k.transpose(-2, -1)`): batch dims
  broadcast, then one bmm; scaled_dot_product_attention: its definition (scores, mask,
  softmax, dropout on the device, weights @ value); baddbmm: beta * self + alpha * bmm;
- norm / linalg_vector_norm (p = 2, 1, inf, -inf, 0 or any other p): reductions of |x|;
- tril / triu (causal masks): a comparison of row and column numbers, then where;
- repeat: expand over inserted dims, then a dense reshape; roll: a cat of two slices;
  pixel_shuffle / pixel_unshuffle: reshape, permute, reshape; diagonal_scatter /
  select_scatter (diag, diag_embed): a copy, then src copied into the view;
- binary_cross_entropy (logs clamped at -100, as PyTorch), group_norm (var and mean per
  group), avg_pool2d's backward where every window has one divisor (a transposed
  convolution with a constant kernel, one group per channel), max_pool1d (max_pool2d
  over a height of 1), adaptive_max_pool2d with output sizes dividing the input's (max
  pooling with kernel = stride), isclose, nan_to_num, count_nonzero.
"""
from __future__ import annotations

import math

from ..ir import dtypes
from ..ir.registry import OPS
from ..ir.ops.rules import broadcast_shapes
from .tensor import Tensor


def _as_meta(value, meta, index):
    from .eager_cuda_training import _as_meta
    return _as_meta(value, meta, index)


# --- GEMM shapes -------------------------------------------------------------------------
def _matmul(args, out_meta, index):
    a, b = args[0], args[1]
    if a.ndim >= 3 and b.ndim >= 3 and not (a.dtype.is_complex or b.dtype.is_complex):
        return _as_meta(_batched_matmul(a, b), out_meta, index)
    from .eager_cuda_training import _dense_operands
    return _dense_operands(args, out_meta, index, "matmul", 2)


def _batched_matmul(a: Tensor, b: Tensor) -> Tensor:
    batch = list(broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2])))
    (n, k), m = a.shape[-2:], b.shape[-1]
    a3 = a.expand(batch + [n, k]).reshape([-1, n, k]).contiguous()
    b3 = b.expand(batch + [k, m]).reshape([-1, k, m]).contiguous()
    return OPS["bmm"](a3, b3).reshape(batch + [n, m])


def _baddbmm(args, out_meta, index):
    target, b1, b2, beta, alpha = args
    if b1.dtype.is_complex:
        return None
    product = OPS["bmm"](b1.contiguous(), b2.contiguous())
    if alpha != 1:
        product = product * alpha
    out = product if beta == 0 else (target + product if beta == 1 else target * beta + product)
    return _as_meta(out, out_meta, index)


def _sdpa(args, out_meta, index):
    q, k, v, mask, dropout_p, is_causal, scale, enable_gqa = args
    if enable_gqa or q.ndim < 2 or q.dtype.is_complex:
        return None
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = _batched_matmul(q, k.transpose(-2, -1)) * scale if q.ndim >= 3 else \
        OPS["matmul"](q, k.transpose(-2, -1)) * scale
    rows, cols = scores.shape[-2:]
    if is_causal:
        keep = _lower_triangle(rows, cols, 0, q.device)
        scores = scores.masked_fill(~keep, -math.inf)
    if mask is not None:
        scores = scores.masked_fill(~mask, -math.inf) if mask.dtype == dtypes.bool_ else \
            scores + mask
    weights = OPS["softmax"](scores, -1)
    if dropout_p > 0:
        weights = OPS["dropout"](weights, dropout_p, True)
    out = _batched_matmul(weights, v) if weights.ndim >= 3 and v.ndim >= 3 else \
        OPS["matmul"](weights, v)
    return _as_meta(out, out_meta, index)


def _float_operands(*tensors) -> bool:
    return all(t.dtype.is_floating_point and not t.dtype.is_complex for t in tensors)


def _mv(args, out_meta, index):
    a, v = args
    if not _float_operands(a, v):
        return None
    return _as_meta(OPS["mm"](a, v.unsqueeze(1)).squeeze(1), out_meta, index)


def _dot(args, out_meta, index):
    a, b = args
    if not _float_operands(a, b):
        return None
    return _as_meta(OPS["mm"](a.unsqueeze(0), b.unsqueeze(1)).reshape([]), out_meta, index)


def _addmm(args, out_meta, index):
    target, m1, m2, beta, alpha = args
    if not _float_operands(m1, m2):
        return None
    product = OPS["mm"](m1.contiguous(), m2.contiguous())
    if alpha != 1:
        product = product * alpha
    out = product if beta == 0 else (target + product if beta == 1 else target * beta + product)
    return _as_meta(out.expand(list(out_meta.shape)), out_meta, index)


def _tensordot(args, out_meta, index):
    a, b, dims_a, dims_b = args
    if not _float_operands(a, b):
        return None
    dims_a = [d % a.ndim for d in dims_a]
    dims_b = [d % b.ndim for d in dims_b]
    if [a.shape[d] for d in dims_a] != [b.shape[d] for d in dims_b]:
        return None                               # size-1 contracted dims: the host's rule
    free_a = [d for d in range(a.ndim) if d not in dims_a]
    free_b = [d for d in range(b.ndim) if d not in dims_b]
    k = math.prod(a.shape[d] for d in dims_a)
    a2 = a.permute(free_a + dims_a).contiguous().reshape([-1, k])
    b2 = b.permute(dims_b + free_b).contiguous().reshape([k, -1])
    out = OPS["mm"](a2, b2).reshape([a.shape[d] for d in free_a] + [b.shape[d] for d in free_b])
    return _as_meta(out, out_meta, index)


# --- einsum -------------------------------------------------------------------------------
def _einsum(args, out_meta, index):
    """Operands contracted left to right, each pair as one bmm (batch letters, free
    letters, contracted letters), letters no later term needs summed first."""
    equation, tensors = args
    if not tensors or any(t.dtype.is_complex or not t.dtype.is_floating_point
                          for t in tensors):
        return None
    parsed = _parse_einsum(equation, [t.ndim for t in tensors])
    if parsed is None:
        return None
    subs, out = parsed
    terms = list(zip(subs, tensors))
    while len(terms) > 1:
        later = set(out).union(*[set(s) for s, _ in terms[2:]])
        terms = [_contract(terms[0], terms[1], later)] + terms[2:]
    s, t = _sum_letters(terms[0], set(out))
    t = t.permute([s.index(c) for c in out]) if out else t
    return _as_meta(t.reshape(list(out_meta.shape)), out_meta, index)


def _parse_einsum(equation: str, ndims: list):
    """(operand subscripts with '...' spelled as spare letters, output subscripts), or None
    (a letter repeated within one operand: a diagonal, left to the host)."""
    import string
    from collections import Counter
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(ndims):
        return None
    used = {c for c in eq if c.isalpha()}
    spare = [c for c in string.ascii_letters if c not in used]
    widths = [nd - (len(s) - 3) for s, nd in zip(inputs, ndims) if "..." in s]
    ell = "".join(spare[:max(widths, default=0)])
    subs = []
    for s, nd in zip(inputs, ndims):
        if "..." in s:
            width = nd - (len(s) - 3)
            s = s.replace("...", ell[len(ell) - width:] if width else "")
        if len(s) != nd or len(set(s)) != len(s) or not all(c.isalpha() for c in s):
            return None
        subs.append(s)
    if arrow:
        out = rhs.replace("...", ell)
    else:                                 # implicit: '...' then letters used once, sorted
        counts = Counter("".join(subs))
        out = ell + "".join(sorted(c for c in counts if counts[c] == 1 and c not in ell))
    if len(set(out)) != len(out) or any(c not in "".join(subs) for c in out):
        return None
    return subs, out


def _sum_letters(term, keep: set):
    s, t = term
    drop = [i for i, c in enumerate(s) if c not in keep]
    if not drop:
        return s, t
    return "".join(c for c in s if c in keep), OPS["sum"](t, drop, False)


def _contract(left, right, later: set):
    """Two (subscripts, tensor) terms as one: letters of both that later terms or the
    output need are batch letters, the others contracted; each term's own letters stay."""
    sa, a = _sum_letters(left, later | set(right[0]))
    sb, b = _sum_letters(right, later | set(sa))
    size = {}
    for s, t in ((sa, a), (sb, b)):
        for c, n in zip(s, t.shape):
            size[c] = max(size.get(c, 1), n)
    batch = [c for c in sa if c in sb and c in later]
    summed = [c for c in sa if c in sb and c not in later]
    free_a = [c for c in sa if c not in sb]
    free_b = [c for c in sb if c not in sa]

    def arranged(s, t, order):
        t = t.permute([s.index(c) for c in order]) if order else t
        return t.expand([size[c] for c in order]).contiguous()
    nb, m = math.prod(size[c] for c in batch), math.prod(size[c] for c in free_a)
    k, n = math.prod(size[c] for c in summed), math.prod(size[c] for c in free_b)
    a3 = arranged(sa, a, batch + free_a + summed).reshape([nb, m, k])
    b3 = arranged(sb, b, batch + summed + free_b).reshape([nb, k, n])
    letters = batch + free_a + free_b
    product = OPS["bmm"](a3, b3).reshape([size[c] for c in letters])
    return "".join(letters), product


# --- norms ---------------------------------------------------------------------------------
def _vector_norm(x: Tensor, p, dim, keepdim: bool, dtype):
    if dtype is not None:
        x = x.to(dtype)
    a = x.abs()
    dims = list(range(x.ndim)) if dim is None or (isinstance(dim, (list, tuple)) and
                                                   len(dim) == 0) else \
        ([dim] if isinstance(dim, int) else list(dim))
    if x.ndim == 0:
        return a
    if p == 2:
        return OPS["sum"](a * a, dims, keepdim).sqrt()
    if p == 1:
        return OPS["sum"](a, dims, keepdim)
    if p == math.inf:
        return OPS["amax"](a, dims, keepdim)
    if p == -math.inf:
        return OPS["amin"](a, dims, keepdim)
    if p == 0:
        return OPS["sum"]((x != 0).to(a.dtype), dims, keepdim)
    return OPS["sum"](a ** float(p), dims, keepdim) ** (1.0 / p)


def _norm(args, out_meta, index):
    x, p, dim, keepdim, dtype = args
    if x.dtype.is_complex or x.numel() == 0 or not (p == "fro" or isinstance(p, (int, float))):
        return None
    if p == "fro":
        if dim is not None and not isinstance(dim, int) and len(dim) > 2:
            return None
        p = 2
    return _as_meta(_vector_norm(x, p, dim, keepdim, dtype).to(out_meta.dtype), out_meta, index)


def _linalg_vector_norm(args, out_meta, index):
    x, p, dim, keepdim, dtype = args
    if x.dtype.is_complex or x.numel() == 0 or not isinstance(p, (int, float)):
        return None
    return _as_meta(_vector_norm(x, p, dim, keepdim, dtype).to(out_meta.dtype), out_meta, index)


# --- shapes --------------------------------------------------------------------------------
def _lower_triangle(rows: int, cols: int, diagonal: int, device) -> Tensor:
    """bool [rows, cols]: column - row <= diagonal."""
    r = OPS["arange"](0, rows, device=device).reshape([rows, 1])
    c = OPS["arange"](0, cols, device=device).reshape([1, cols])
    return (c - r) <= diagonal


def _triangle(lower: bool):
    def route(args, out_meta, index):
        x, diagonal = args
        if x.ndim < 2:
            return None
        rows, cols = x.shape[-2:]
        keep = _lower_triangle(rows, cols, diagonal, x.device) if lower else \
            ~_lower_triangle(rows, cols, diagonal - 1, x.device)
        return _as_meta(x.masked_fill(~keep, 0), out_meta, index)
    return route


def _repeat(args, out_meta, index):
    x, repeats = args
    repeats = list(repeats)
    lead = len(repeats) - x.ndim
    if lead < 0:
        return None
    shape = [1] * lead + list(x.shape)
    interleaved, expanded = [], []
    for r, s in zip(repeats, shape):
        interleaved += [1, s]
        expanded += [r, s]
    out = x.reshape(interleaved).expand(expanded).contiguous().reshape(list(out_meta.shape))
    return _as_meta(out, out_meta, index)


def _roll(args, out_meta, index):
    x, shifts, dims = args
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    if not dims:                                 # the flattened tensor, then the shape back
        if len(shifts) != 1:
            return None
        flat = x.reshape([-1])
        return _as_meta(_roll_dim(flat, shifts[0], 0).reshape(list(x.shape)), out_meta, index)
    if len(shifts) != len(dims):
        return None
    out = x
    for s, d in zip(shifts, dims):
        out = _roll_dim(out, s, d % x.ndim)
    return _as_meta(out, out_meta, index)


def _roll_dim(x: Tensor, shift: int, dim: int) -> Tensor:
    n = x.shape[dim]
    shift = shift % n if n else 0
    if shift == 0:
        return x.clone()
    return OPS["cat"]([x.narrow(dim, n - shift, shift), x.narrow(dim, 0, n - shift)], dim)


def _view_scatter(view_of):
    """diagonal_scatter / select_scatter: a copy of self, then src copied into the view of
    it that the op names."""
    def route(args, out_meta, index):
        from . import eager_cuda
        target, src = args[0], args[1]
        if target.dtype.is_complex:
            return None
        out = eager_cuda.clone(target)
        window = view_of(out, *args[2:])
        if window.numel():
            eager_cuda.copy_into(window, src)
        return _as_meta(out, out_meta, index)
    return route


def _pixel_shuffle(args, out_meta, index):
    x, r = args
    if x.ndim < 3:
        return None
    *lead, c, h, w = x.shape
    split = x.reshape(lead + [c // (r * r), r, r, h, w])
    n = len(lead)
    order = list(range(n)) + [n, n + 3, n + 1, n + 4, n + 2]
    out = split.permute(order).contiguous().reshape(lead + [c // (r * r), h * r, w * r])
    return _as_meta(out, out_meta, index)


def _pixel_unshuffle(args, out_meta, index):
    x, r = args
    if x.ndim < 3:
        return None
    *lead, c, h, w = x.shape
    split = x.reshape(lead + [c, h // r, r, w // r, r])
    n = len(lead)
    order = list(range(n)) + [n, n + 2, n + 4, n + 1, n + 3]
    out = split.permute(order).contiguous().reshape(lead + [c * r * r, h // r, w // r])
    return _as_meta(out, out_meta, index)


# --- losses and normalization --------------------------------------------------------------
def _bce(args, out_meta, index):
    x, target, weight, reduction = args
    if x.dtype.is_complex:
        return None
    log_x = x.log().clamp(min=-100.0)
    log_rest = (1 - x).log().clamp(min=-100.0)
    loss = -(target * log_x + (1 - target) * log_rest)
    if weight is not None:
        loss = loss * weight
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return _as_meta(loss, out_meta, index)


def _group_norm(args, out_meta, index):
    x, groups, weight, bias, eps = args
    if x.ndim < 2 or x.dtype.is_complex or x.numel() == 0:
        return None
    n, c = x.shape[:2]
    grouped = x.reshape([n, groups, -1])
    mean = grouped.mean(-1, keepdim=True)
    var = OPS["var"](grouped, [-1], False, True)
    out = ((grouped - mean) / (var + eps).sqrt()).reshape(list(x.shape))
    per_channel = [1, c] + [1] * (x.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(per_channel)
    if bias is not None:
        out = out + bias.reshape(per_channel)
    return _as_meta(out, out_meta, index)


def _avg_pool2d_backward(args, out_meta, index):
    g, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor = args
    kh, kw = _pair(kernel)
    sh, sw = _pair(stride) if stride else (kh, kw)
    ph, pw = _pair(padding)
    if x.ndim not in (3, 4) or ((ph or pw) and not count_include_pad and divisor is None):
        return None                              # windows at the border have other divisors
    (h, w), (oh, ow) = x.shape[-2:], g.shape[-2:]
    if ceil_mode and ((oh - 1) * sh + kh > h + 2 * ph or (ow - 1) * sw + kw > w + 2 * pw):
        return None                              # a last window past the padding: smaller
    batched = g if g.ndim == 4 else g.unsqueeze(0)
    c = batched.shape[1]
    value = 1.0 / (divisor if divisor else kh * kw)
    ones = OPS["full"]([c, 1, kh, kw], value, dtype=g.dtype, device=g.device)
    extra = (h + 2 * ph - kh - (oh - 1) * sh, w + 2 * pw - kw - (ow - 1) * sw)
    if min(extra) < 0 or extra[0] >= sh and extra[0] or extra[1] >= sw and extra[1]:
        return None
    out = OPS["conv_transpose2d"](batched.contiguous(), ones, None, [sh, sw], [ph, pw],
                                  list(extra), c)
    return _as_meta(out if g.ndim == 4 else out.squeeze(0), out_meta, index)


def _pair(v):
    if isinstance(v, int):
        return (v, v)
    v = list(v)
    return (v[0], v[0]) if len(v) == 1 else tuple(v)


def _one_int_list(v, default: int) -> list:
    """max_pool1d's int[1] arguments as a one-element list (empty or None: the default)."""
    if v is None or (isinstance(v, (list, tuple)) and not v):
        return [default]
    return [v] if isinstance(v, int) else list(v)


def _adaptive_max_pool2d(args, out_meta, index):
    """Output sizes dividing the input's: max pooling with kernel = stride = the ratio
    (the same windows, the same first-max indices)."""
    x, _ = args
    (h, w), (oh, ow) = x.shape[-2:], out_meta[0].shape[-2:]
    if x.ndim not in (3, 4) or not (oh and ow) or h % oh or w % ow:
        return None
    kernel = [h // oh, w // ow]
    values, indices = OPS["max_pool2d_with_indices"](x, kernel, kernel, [0, 0], [1, 1], False)
    return tuple(_as_meta(t, m, index) for t, m in zip((values, indices), out_meta))


def _max_pool1d(with_indices: bool):
    def route(args, out_meta, index):
        x, kernel, stride, padding, dilation, ceil_mode = args
        if x.ndim not in (2, 3):
            return None
        one = _one_int_list
        k = one(kernel, 1)
        s = one(stride, k[0])
        values, indices = OPS["max_pool2d_with_indices"](
            x.unsqueeze(-2), [1] + k, [1] + s, [0] + one(padding, 0), [1] + one(dilation, 1),
            ceil_mode)
        if not with_indices:
            return _as_meta(values.squeeze(-2), out_meta, index)
        return tuple(_as_meta(t.squeeze(-2), m, index)
                     for t, m in zip((values, indices), out_meta))
    return route


# --- comparisons and cleanups ------------------------------------------------------------
def _std_mean(args, out_meta, index):
    x, dim, unbiased, keepdim, correction = args
    if not _float_operands(x):
        return None
    if isinstance(dim, bool):                     # std_mean(x, unbiased): torch's overload
        dim, unbiased = None, dim
    var = OPS["var"](x, dim, unbiased, keepdim, correction=correction)
    mean = OPS["mean"](x, dim, keepdim) if dim is not None else \
        OPS["mean"](x, list(range(x.ndim)), keepdim)
    return tuple(_as_meta(t, m, index) for t, m in zip((var.sqrt(), mean), out_meta))


def _isin(args, out_meta, index):
    elements, tests, _, invert = args
    if not isinstance(elements, Tensor) or not isinstance(tests, Tensor) or \
            elements.dtype.is_complex or tests.numel() == 0:
        return None
    found = OPS["any"](elements.unsqueeze(-1) == tests.reshape([-1]), [-1], False)
    return _as_meta(~found if invert else found, out_meta, index)


def _linalg_cross(args, out_meta, index):
    a, b, dim = args
    if a.dtype.is_complex or b.dtype.is_complex:
        return None
    shape = list(out_meta.shape)
    dim %= len(shape)
    a, b = a.expand(shape), b.expand(shape)
    x = [a.narrow(dim, i, 1) for i in range(3)]
    y = [b.narrow(dim, i, 1) for i in range(3)]
    parts = [x[1] * y[2] - x[2] * y[1], x[2] * y[0] - x[0] * y[2], x[0] * y[1] - x[1] * y[0]]
    return _as_meta(OPS["cat"](parts, dim), out_meta, index)


def _isclose(args, out_meta, index):
    a, b, rtol, atol, equal_nan = args
    if a.dtype.is_complex or not a.dtype.is_floating_point:
        return None
    finite = OPS["isfinite"](a) & OPS["isfinite"](b)
    close = ((a - b).abs() <= atol + rtol * b.abs()) & finite
    close = close | (a == b)                     # equal infinities are close, others not
    if equal_nan:
        close = close | (OPS["isnan"](a) & OPS["isnan"](b))
    return _as_meta(close, out_meta, index)


def _nan_to_num(args, out_meta, index):
    x, nan, posinf, neginf = args
    if x.dtype.is_complex:
        return None
    if not x.dtype.is_floating_point:
        return _as_meta(x.clone(), out_meta, index)
    import numpy as np
    info = np.finfo(x.dtype.name if x.dtype.name != "bfloat16" else "float32")
    big = float(info.max) if x.dtype.name != "bfloat16" else 3.3895313892515355e38
    out = x.masked_fill(OPS["isnan"](x), 0.0 if nan is None else nan)
    out = out.masked_fill(x == math.inf, big if posinf is None else posinf)
    out = out.masked_fill(x == -math.inf, -big if neginf is None else neginf)
    return _as_meta(out, out_meta, index)


def _count_nonzero(args, out_meta, index):
    x, dim = args
    if x.dtype.is_complex:
        return None
    dims = list(range(x.ndim)) if dim is None else ([dim] if isinstance(dim, int) else list(dim))
    counts = OPS["sum"]((x != 0).to(dtypes.int64), dims, False) if x.ndim else \
        (x != 0).to(dtypes.int64)
    return _as_meta(counts, out_meta, index)


ROUTES = {
    "matmul": _matmul, "baddbmm": _baddbmm, "einsum": _einsum, "mv": _mv, "dot": _dot,
    "addmm": _addmm, "tensordot": _tensordot, "std_mean": _std_mean, "isin": _isin,
    "linalg_cross": _linalg_cross, "scaled_dot_product_attention": _sdpa,
    "norm": _norm, "linalg_vector_norm": _linalg_vector_norm,
    "tril": _triangle(True), "triu": _triangle(False), "repeat": _repeat, "roll": _roll,
    "diagonal_scatter": _view_scatter(lambda t, offset, d1, d2: OPS["diagonal"](t, offset, d1, d2)),
    "select_scatter": _view_scatter(lambda t, dim, i: OPS["select"](t, dim, i)),
    "pixel_shuffle": _pixel_shuffle, "pixel_unshuffle": _pixel_unshuffle,
    "binary_cross_entropy": _bce, "group_norm": _group_norm,
    "avg_pool2d_backward": _avg_pool2d_backward,
    "adaptive_max_pool2d": _adaptive_max_pool2d, "max_pool1d": _max_pool1d(False), "max_pool1d_with_indices": _max_pool1d(True),
    "isclose": _isclose, "nan_to_num": _nan_to_num, "count_nonzero": _count_nonzero,
}
