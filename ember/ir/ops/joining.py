"""Joining, gathering, scattering and indexing ops. All of these copy: none returns a view.

Gradients are written with ember ops: scatter-like ops differentiate into gather-like
ones and back. Samples use index tensors without duplicates where PyTorch's own
gradient would depend on which duplicate wins.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..errors import DTypeError, EmberIndexError, ShapeError, TraceError, at_user_line
from ..meta import TensorMeta, contiguous_format
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S
from .rules import broadcast_shapes, cast_scalar, pointwise_memory_format, result_dtype, wrap_dim, wrap_dims
from .shape import (_diag_geometry, _dim_slice, _norm_select, _norm_slice, _select_ref,
                    _slice_ref, _slice_shape_strides, _zeros, _diagonal_ref, _ArrayMeta,
                    diagonal, reshape, select, slice_op)

SH = {Tag.SHAPE}


def _meta(self, shape, dtype=None):
    return TensorMeta(tuple(shape), dtype or self.dtype, str(self.device))


def _same(self):
    return TensorMeta(tuple(self.shape), self.dtype, str(self.device),
                      pointwise_memory_format([self]))


def _unique_index(rng, self_shape, index_shape, dim):
    """An int64 index for gather/scatter along `dim` with no repeats within a fiber."""
    full = list(index_shape)
    full[dim] = self_shape[dim]
    keys = rng.random(full)
    perm = np.argsort(keys, axis=dim)
    return np.ascontiguousarray(
        perm[_dim_slice(len(full), dim, slice(0, index_shape[dim]))]).astype(np.int64)


def _is_bool(t) -> bool:
    return t.dtype is dtypes.bool_ or t.dtype is dtypes.uint8


# --- cat / stack ---------------------------------------------------------------------

def _cat_meta(tensors, dim):
    if not tensors:
        raise ShapeError("expected a non-empty list of Tensors")
    ref = next((t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)), tensors[0])
    if ref.ndim == 0:
        raise ShapeError("zero-dimensional tensor cannot be concatenated")
    d = wrap_dim(dim, ref.ndim)
    total = 0
    for i, t in enumerate(tensors):
        if t.ndim == 1 and t.shape[0] == 0 and ref.ndim != 1:
            continue
        if t.ndim != ref.ndim:
            raise ShapeError(f"Tensors must have same number of dimensions: got {ref.ndim} and "
                             f"{t.ndim}")
        for k in range(ref.ndim):
            if k != d and t.shape[k] != ref.shape[k]:
                raise ShapeError(f"Sizes of tensors must match except in dimension {d}. "
                                 f"Expected size {ref.shape[k]} but got size {t.shape[k]} for "
                                 f"tensor number {i} in the list.")
        total += t.shape[d]
    shape = list(ref.shape)
    shape[d] = total
    # PyTorch: the inputs' common memory format when they all agree, else contiguous
    formats = {pointwise_memory_format([t]) for t in tensors}
    fmt = formats.pop() if len(formats) == 1 and len(shape) == 4 else contiguous_format
    return TensorMeta(tuple(shape), _cat_dtype(tensors), str(ref.device), fmt)


def _cat_dtype(tensors):
    """The promoted dtype; quantized inputs (torch's quantized cat) give the first one's
    quantized dtype and cannot be mixed with other dtypes."""
    quantized = [getattr(t.dtype, "is_quantized", False) for t in tensors]
    if not any(quantized):
        return result_dtype(list(tensors))
    if not all(quantized) or len({t.dtype for t in tensors}) != 1:
        raise DTypeError("cat: expected all inputs quantized with the same dtype, got "
                         + ", ".join(str(t.dtype) for t in tensors))
    return tensors[0].dtype


def _cat_ref(tensors, dim):
    arrs = [np.asarray(t) for t in tensors]
    ref = next((a for a in arrs if not (a.ndim == 1 and a.shape[0] == 0)), arrs[0])
    keep = [a for a in arrs if a.ndim == ref.ndim]
    return np.concatenate(keep, axis=wrap_dim(dim, ref.ndim))


def _cat_derivative(g, tensors, dim):
    d = wrap_dim(dim, g.ndim)
    out, at = [], 0
    for t in tensors:
        if t.ndim != g.ndim:
            out.append(None)
            continue
        n = t.shape[d]
        out.append(slice_op(g, d, at, at + n))
        at += n
    return (out,)


cat = defop(
    "cat(Tensor[] tensors, int dim=0) -> Tensor",
    saves=(),
    meta=_cat_meta, reference=_cat_ref, derivative=_cat_derivative,
    tags=SH,
    samples=lambda rng: [S.Sample(([S.randn(rng, 2, 3), S.randn(rng, 4, 3)],)),
                         S.Sample(([S.randn(rng, 2, 3), S.randn(rng, 2, 1),
                                    S.randn(rng, 2, 2)], -1)),
                         S.Sample(([S.randn(rng, 3), S.int_array(rng, 2)],))],
    torch_ref="torch.cat",
)


def _stack_meta(tensors, dim):
    if not tensors:
        raise ShapeError("stack expects a non-empty TensorList")
    for i, t in enumerate(tensors):
        if tuple(t.shape) != tuple(tensors[0].shape):
            raise ShapeError(f"stack expects each tensor to be equal size, but got "
                             f"{list(tensors[0].shape)} at entry 0 and {list(t.shape)} at "
                             f"entry {i}")
    d = wrap_dim(dim, tensors[0].ndim + 1)
    shape = list(tensors[0].shape)
    shape.insert(d, len(tensors))
    return TensorMeta(tuple(shape), result_dtype(list(tensors)), str(tensors[0].device))


stack = defop(
    "stack(Tensor[] tensors, int dim=0) -> Tensor",
    saves=(),
    meta=_stack_meta,
    reference=lambda tensors, dim: np.stack([np.asarray(t) for t in tensors],
                                            wrap_dim(dim, np.ndim(tensors[0]) + 1)),
    derivative=lambda g, tensors, dim: ([select(g, dim, i) for i in range(len(tensors))],),
    tags=SH,
    samples=lambda rng: [S.Sample(([S.randn(rng, 2, 3), S.randn(rng, 2, 3)],)),
                         S.Sample(([S.randn(rng, 4), S.randn(rng, 4), S.randn(rng, 4)], -1)),
                         S.Sample(([S.randn(rng), S.randn(rng)],))],
    torch_ref="torch.stack",
)


def _hv_reshaped(tensors, vertical):
    out = []
    for t in tensors:
        shape = list(t.shape)
        if vertical:
            shape = [1, 1] if not shape else ([1] + shape if len(shape) == 1 else shape)
        else:
            shape = shape or [1]
        out.append(shape)
    return out


def _hv_dim(tensors, vertical):
    if vertical:
        return 0
    return 0 if max(tensors[0].ndim, 1) == 1 else 1


def _hv(name, vertical):
    def meta(tensors):
        if not tensors:
            raise ShapeError(f"{name} expects a non-empty TensorList")
        shapes = _hv_reshaped(tensors, vertical)
        metas = [TensorMeta(tuple(s), t.dtype, str(t.device)) for s, t in zip(shapes, tensors)]
        return _cat_meta(metas, _hv_dim(tensors, vertical))

    def ref(tensors):
        shapes = _hv_reshaped(tensors, vertical)
        return np.concatenate([np.asarray(t).reshape(s) for s, t in zip(shapes, tensors)],
                              _hv_dim(tensors, vertical))

    def deriv(g, tensors):
        d = _hv_dim(tensors, vertical)
        out, at = [], 0
        for s, t in zip(_hv_reshaped(tensors, vertical), tensors):
            out.append(reshape(slice_op(g, d, at, at + s[d]), list(t.shape)))
            at += s[d]
        return (out,)
    return defop(
        f"{name}(Tensor[] tensors) -> Tensor", saves=(), meta=meta, reference=ref,
        derivative=deriv, tags=SH,
        samples=lambda rng: [S.Sample(([S.randn(rng, 3), S.randn(rng, 2)],)),
                             S.Sample(([S.randn(rng, 2, 3), S.randn(rng, 2, 1)],)),
                             S.Sample(([S.randn(rng), S.randn(rng, 1)],))] if not vertical
        else [S.Sample(([S.randn(rng, 3), S.randn(rng, 2, 3)],)),
              S.Sample(([S.randn(rng), S.randn(rng, 1)],))],
        torch_ref=f"torch.{name}")


hstack = _hv("hstack", False)
vstack = _hv("vstack", True)


# --- gather / scatter ----------------------------------------------------------------

def _fiber_coords(index, dim):
    """Index tuple addressing self at `index` along dim, elsewhere at the index position."""
    coords = list(np.indices(index.shape, sparse=True))
    coords[dim] = index
    return tuple(coords)


class IndexBoundsError(EmberIndexError, RuntimeError):
    """An index past the end of a dim: an IndexError for indexing and index_select, a
    RuntimeError for gather/scatter in PyTorch; this error is both."""


def _check_index_bounds(index, size, dim, negative=True):
    low = -size if negative else 0
    if index.size and (index.min() < low or index.max() >= size):
        bad = index[(index < low) | (index >= size)].reshape(-1)[0]
        raise IndexBoundsError(f"index {bad} is out of bounds for dimension {dim} with size "
                               f"{size}")


def _gather_scatter_check(self, dim, index, src=None, name="gather"):
    if math.prod(index.shape) == 0:     # PyTorch checks nothing about an empty index
        return wrap_dim(dim, self.ndim)
    if index.dtype not in (dtypes.int64, dtypes.int32):
        raise DTypeError(f"{name}(): Expected dtype int32/int64 for index")
    nd = max(self.ndim, 1)
    if max(index.ndim, 1) != nd:
        raise ShapeError(f"Index tensor must have the same number of dimensions as "
                         f"{'input' if name == 'gather' else 'self'} tensor")
    d = wrap_dim(dim, self.ndim)
    ishape = tuple(index.shape) or (1,)
    sshape = tuple(self.shape) or (1,)
    for k in range(nd):
        if k != d and ishape[k] > sshape[k]:
            raise ShapeError(f"Size does not match at dimension {k} expected index "
                             f"{list(index.shape)} to be smaller than self {list(self.shape)} "
                             f"apart from dimension {d}")
        if src is not None and hasattr(src, "dtype") and src.dtype is not self.dtype:
            raise DTypeError(f"{name}(): Expected self.dtype to be equal to src.dtype")
        if src is not None and hasattr(src, "shape") and src.ndim and \
                ishape[k] > (tuple(src.shape) or (1,))[k]:
            raise ShapeError(f"Size does not match at dimension {k} expected index "
                             f"{list(index.shape)} to be smaller than src {list(src.shape)}")
    return d


def _gather_ref(x, dim, index, sparse_grad=False):
    d = wrap_dim(dim, x.ndim)
    if index.size == 0:
        return np.empty(index.shape, x.dtype)
    x1, i1 = x.reshape(x.shape or (1,)), index.reshape(index.shape or (1,))
    _check_index_bounds(i1, x1.shape[d], d, False)
    return x1[_fiber_coords(i1 % max(x1.shape[d], 1), d)].reshape(index.shape)


gather = defop(
    "gather(Tensor self, int dim, Tensor index, *, bool sparse_grad=False) -> Tensor",
    saves=("index",),
    meta=lambda self, dim, index, sparse_grad: (
        _gather_scatter_check(self, dim, index), _meta(self, index.shape))[1],
    reference=_gather_ref,
    derivative=lambda g, self, dim, index, sparse_grad: (
        scatter_add(_zeros(self), dim, index, g), None),
    tags=SH, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 1, S.int_array(rng, 3, 6, low=0, high=4))),
                         S.Sample((S.randn(rng, 4, 5), 0, S.int_array(rng, 2, 3, low=0,
                                                                       high=4))),
                         S.Sample((S.randn(rng), 0, np.zeros((), np.int64)))],
    torch_ref="torch.gather",
)


def _scatter_ref(x, dim, index, src, reduce=None, *, include_self=True):
    out = np.array(x, copy=True)
    if index.size == 0:
        return out
    d = wrap_dim(dim, x.ndim)
    o1 = out.reshape(out.shape or (1,))
    i1 = index.reshape(index.shape or (1,))
    _check_index_bounds(i1, o1.shape[d], d, False)
    coords = _fiber_coords(i1 % max(o1.shape[d], 1), d)
    if isinstance(src, np.ndarray) and src.ndim:
        vals = src[tuple(slice(0, n) for n in i1.shape)]
    else:
        vals = np.broadcast_to(np.asarray(src, dtype=out.dtype), i1.shape)
    if reduce is None:
        o1[coords] = vals
    elif reduce in ("add", "sum"):
        np.add.at(o1, coords, vals)
    elif reduce in ("multiply", "prod"):
        np.multiply.at(o1, coords, vals)
    else:
        raise ShapeError(f"reduce argument must be either add or multiply, got {reduce}")
    return out


def _src_grad(gg, src):
    """The gathered gradient, zero-padded where src is larger than index."""
    if src.ndim == 0 or tuple(gg.shape) == tuple(src.shape):
        return gg
    pads = []
    for have, want in zip(reversed(gg.shape), reversed(src.shape)):
        pads += [0, want - have]
    return pad_op(gg, pads)


def _scatter_derivative(g, self, dim, index, src, reduce):
    if reduce is not None:
        from ..errors import AutogradError
        raise AutogradError("scatter with a reduce argument has no derivative (as in PyTorch: "
                            "use scatter_reduce)")
    gsrc = _src_grad(gather(g, dim, index), src) if hasattr(src, "shape") else None
    return scatter(g, dim, index, 0), None, gsrc


scatter = defop(
    "scatter(Tensor self, int dim, Tensor index, Tensor src, *, str? reduce=None) -> Tensor",
    saves=("index",),
    meta=lambda self, dim, index, src, reduce: (
        _gather_scatter_check(self, dim, index, src, "scatter"), _same(self))[1],
    reference=_scatter_ref, derivative=_scatter_derivative,
    tags=SH, method=True, inplace_variant=True,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 4, 5), 0, _unique_index(rng, (4, 5), (2, 3), 0),
                  S.randn(rng, 2, 3))),
        S.Sample((S.randn(rng, 4, 5), 0, _unique_index(rng, (4, 5), (2, 3), 0),
                  S.randn(rng, 3, 4)), grad=False, note="torch has no grad for a larger src"),
        S.Sample((S.randn(rng, 3, 6), 1, _unique_index(rng, (3, 6), (3, 4), 1), 2.5)),
        S.Sample((S.randn(rng, 3, 4), 1, S.int_array(rng, 3, 2, low=0, high=4),
                  S.randn(rng, 3, 2)), {"reduce": "add"}, grad=False),
        S.Sample((S.randn(rng, 3, 4), 1, S.int_array(rng, 3, 2, low=0, high=4),
                  S.randn(rng, 3, 2)), {"reduce": "multiply"}, grad=False)],
    torch_ref="torch.scatter",
)

scatter_add = defop(
    "scatter_add(Tensor self, int dim, Tensor index, Tensor src) -> Tensor",
    saves=("index",),
    meta=lambda self, dim, index, src: (
        _gather_scatter_check(self, dim, index, src, "scatter_add"), _same(self))[1],
    reference=lambda x, dim, index, src: _scatter_ref(x, dim, index, src, "add"),
    derivative=lambda g, self, dim, index, src: (g, None, _src_grad(gather(g, dim, index), src)),
    tags=SH, method=True, inplace_variant=True,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 3, 4), 1, S.int_array(rng, 3, 6, low=0, high=4),
                  S.randn(rng, 3, 6))),
        S.Sample((S.randn(rng, 5, 2), 0, S.int_array(rng, 3, 2, low=0, high=5),
                  S.randn(rng, 3, 2))),
        S.Sample((S.randn(rng, 5, 2), 0, S.int_array(rng, 3, 2, low=0, high=5),
                  S.randn(rng, 4, 2)), grad=False, note="torch has no grad for a larger src")],
    torch_ref="torch.scatter_add",
)


# --- index_select / index_add ---------------------------------------------------------

def _index1d_check(self, dim, index, name):
    if index.ndim > 1:
        raise ShapeError(f"{name}(): Index is supposed to be a vector")
    if index.dtype not in (dtypes.int64, dtypes.int32):
        raise DTypeError(f"{name}(): Expected dtype int32/int64 for index")
    return wrap_dim(dim, self.ndim)


def _index_select_meta(self, dim, index):
    d = _index1d_check(self, dim, index, "index_select")
    shape = list(self.shape)
    if shape:
        shape[d] = int(np.prod(index.shape))
    return _meta(self, shape)


def _index_select_ref(x, dim, index):
    d = wrap_dim(dim, x.ndim)
    if x.ndim == 0:
        _check_index_bounds(index.reshape(-1), 1, 0, False)
        return x.copy()
    _check_index_bounds(index.reshape(-1), x.shape[d], d, False)
    return np.take(x, index.reshape(-1), axis=d)


index_select = defop(
    "index_select(Tensor self, int dim, Tensor index) -> Tensor",
    saves=("index",),
    meta=_index_select_meta, reference=_index_select_ref,
    derivative=lambda g, self, dim, index: (index_add(_zeros(self), dim, index, g), None),
    tags=SH, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 4, 3), 0, np.array([3, 0, 3, 1]))),
                         S.Sample((S.randn(rng, 2, 5), -1, np.array([4, 2])))],
    torch_ref="torch.index_select",
)


def _index_add_ref(x, dim, index, source, alpha=1):
    out = np.array(x, copy=True)
    if x.dtype.kind in "iu":       # alpha=-1 on uint8 wraps to 255, as in PyTorch
        alpha = cast_scalar(alpha, x.dtype, True)
    if x.ndim == 0:
        return out + source * alpha
    d = wrap_dim(dim, x.ndim)
    _check_index_bounds(index.reshape(-1), x.shape[d], d, False)
    src = np.moveaxis(np.asarray(source), d, 0) if np.ndim(source) else source
    np.add.at(np.moveaxis(out, d, 0), index.reshape(-1),
              (src * alpha if alpha != 1 else src).astype(out.dtype))
    return out


def _index_add_meta(self, dim, index, source, alpha):
    d = _index1d_check(self, dim, index, "index_add")
    want = list(self.shape)
    if want:
        want[d] = int(np.prod(index.shape))
    if self.ndim and list(source.shape) != want:
        raise ShapeError(f"source tensor shape {list(source.shape)} must match self shape "
                         f"{list(self.shape)} except in dimension {d} (index has "
                         f"{want[d]} entries)")
    return _same(self)


index_add = defop(
    "index_add(Tensor self, int dim, Tensor index, Tensor source, *, Scalar alpha=1) -> Tensor",
    saves=("index",),
    meta=_index_add_meta, reference=_index_add_ref,
    derivative=lambda g, self, dim, index, source, alpha: (
        g, None, index_select(g, dim, index) * alpha if alpha != 1 else
        index_select(g, dim, index)),
    tags=SH, method=True, inplace_variant=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 4, 3), 0, np.array([3, 0, 3]),
                                   S.randn(rng, 3, 3))),
                         S.Sample((S.randn(rng, 2, 5), 1, np.array([4, 2]), S.randn(rng, 2, 2)),
                                  {"alpha": 2.0})],
    torch_ref="torch.index_add",
)


# --- masked ----------------------------------------------------------------------------

def _masked_fill_meta(self, mask, value):
    if mask.dtype is not dtypes.bool_:
        raise DTypeError(f"masked_fill_ only supports boolean masks, but got mask with dtype "
                         f"{mask.dtype}")
    if hasattr(value, "shape") and value.ndim != 0:
        raise ShapeError(f"masked_fill_ only supports a 0-dimensional value tensor, but got "
                         f"tensor with {value.ndim} dimension(s).")
    value_complex = isinstance(value, complex) or getattr(getattr(value, "dtype", None),
                                                          "is_complex", False)
    if value_complex and not self.dtype.is_complex:
        raise DTypeError(f"masked_fill: value cannot be converted to type {self.dtype} "
                         f"without overflow")
    shape = broadcast_shapes(tuple(self.shape), tuple(mask.shape))
    return TensorMeta(shape, self.dtype, str(self.device),
                      pointwise_memory_format([self]) if shape == tuple(self.shape)
                      else contiguous_format)


def _where_value(mask, g, value):
    from .pointwise import where
    return where(mask, g, 0) if hasattr(value, "shape") else None


def _masked_fill_derivative(g, self, mask, value):
    from .pointwise import where
    return where(mask, 0, g), None, _where_value(mask, g, value)


masked_fill = defop(
    "masked_fill(Tensor self, Tensor mask, Tensor value) -> Tensor",
    saves=("mask",),
    meta=_masked_fill_meta,
    reference=lambda x, mask, value: np.where(mask, np.asarray(value).astype(x.dtype), x),
    derivative=_masked_fill_derivative,
    tags=SH, method=True, inplace_variant=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), S.bool_array(rng, 3, 4), -1.5)),
                         S.Sample((S.randn(rng, 3, 4), S.bool_array(rng, 4), S.randn(rng))),
                         S.Sample((S.int_array(rng, 2, 3), S.bool_array(rng, 2, 3), 7))],
    torch_ref="torch.masked_fill",
)


# --- pad -----------------------------------------------------------------------------

_NP_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class _PadModeError(ShapeError, NotImplementedError):
    """An unknown pad mode: PyTorch's NotImplementedError, and ember's ShapeError."""


def _pad_shape(self, pad, mode):
    if len(pad) % 2:
        raise ShapeError("Padding length must be divisible by 2")
    if len(pad) // 2 > self.ndim:
        raise ShapeError(f"Padding length should be less than or equal to two times the input "
                         f"dimension but got padding length {len(pad)} and input of dimension "
                         f"{self.ndim}")
    if mode not in ("constant", *_NP_MODES):
        raise _PadModeError(f"Unrecognised padding mode {mode}")
    shape = list(self.shape)
    for i in range(len(pad) // 2):
        d = self.ndim - 1 - i
        lo, hi = pad[2 * i], pad[2 * i + 1]
        if mode == "reflect" and (lo >= shape[d] or hi >= shape[d]):
            raise ShapeError(f"Argument #4: Padding size should be less than the corresponding "
                             f"input dimension, but got: padding ({lo}, {hi}) at dimension {d} "
                             f"of input {list(self.shape)}")
        if mode == "circular":
            kept = shape[d] - max(-lo, 0) - max(-hi, 0)     # wraps around the cropped input
            if max(lo, hi, 0) > kept or kept <= 0 < shape[d] + lo + hi:
                raise ShapeError("Padding value causes wrapping around more than once.")
        shape[d] = shape[d] + lo + hi
        if mode in ("reflect", "replicate") and shape[d] < 1:
            name = "WHD"[i] if i < 3 else f"dim {d}"
            raise ShapeError(f"input ({name}: {self.shape[d]}) is too small. Calculated output "
                             f"{name}: {shape[d]}")
        if shape[d] < 0:
            raise ShapeError(f"The input size {self.shape[d]}, plus negative padding {lo} and "
                             f"{hi} resulted in a negative output size, which is invalid.")
    return shape


def _pad_index(n, lo, hi, mode):
    """For each output position along one dim, the input position it reads. As PyTorch:
    reflect and replicate index the whole input (negative padding crops what they show),
    circular wraps around the input left after cropping."""
    out = np.arange(n + lo + hi)
    if mode == "circular":
        start = max(-lo, 0)
        kept = n - start - max(-hi, 0)
        return start + (out - max(lo, 0)) % max(kept, 1)
    at = out - lo
    if mode == "replicate":
        return np.clip(at, 0, n - 1)
    at = np.abs(at)                        # reflect about 0, then about n - 1
    return (n - 1) - np.abs((n - 1) - at)


def _pad_ref(x, pad, mode, value):
    if mode == "constant":
        out = x
        widths = [(0, 0)] * x.ndim
        for i in range(len(pad) // 2):
            d = x.ndim - 1 - i
            lo, hi = pad[2 * i], pad[2 * i + 1]
            out = out[_dim_slice(x.ndim, d, slice(max(-lo, 0), out.shape[d] - max(-hi, 0)))]
            widths[d] = (max(lo, 0), max(hi, 0))
        return np.pad(out, widths, constant_values=np.asarray(value or 0).astype(x.dtype))
    out = x
    for i in range(len(pad) // 2):
        d = x.ndim - 1 - i
        out = np.take(out, _pad_index(x.shape[d], pad[2 * i], pad[2 * i + 1], mode), axis=d)
    return out


def _pad_derivative(g, self, pad, mode, value):
    if mode == "constant":
        return pad_op(g, [-p for p in pad])
    return pad_backward(g, list(self.shape), pad, mode)


pad_op = defop(
    "pad(Tensor self, int[] pad, str mode='constant', float? value=None) -> Tensor",
    saves=(),
    meta=lambda self, pad, mode, value: _meta(self, _pad_shape(self, pad, mode)),
    reference=_pad_ref, derivative=_pad_derivative,
    tags=SH,
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 3), [1, 2])),
                         S.Sample((S.randn(rng, 2, 3, 4), [1, 0, -1, 2]), {"value": 0.5}),
                         S.Sample((S.randn(rng, 2, 3, 4), [2, 1, 1, 2], "reflect")),
                         S.Sample((S.randn(rng, 1, 2, 3), [2, 3], "replicate")),
                         S.Sample((S.randn(rng, 1, 2, 3, 4), [1, 2, 3, 0], "circular")),
                         S.Sample((S.randn(rng, 1, 2, 3, 3), [1, 1, 2, 2], "replicate")),
                         S.Sample((S.randn(rng, 1, 2, 6), [-1, 2], "circular")),
                         S.Sample((S.randn(rng, 1, 5, 6), [3, -2, -1, 2], "reflect")),
                         S.Sample((S.randn(rng, 1, 2, 6), [2, -3], "replicate"))],
    torch_ref="torch.nn.functional.pad",
    doc="torch.nn.functional.pad: constant, reflect, replicate and circular modes.",
)


def _pad_backward_ref(g, input_sizes, pad, mode):
    out = g
    for i in range(len(pad) // 2):
        d = g.ndim - 1 - i
        n = input_sizes[d]
        acc_shape = list(out.shape)
        acc_shape[d] = n
        acc = np.zeros(acc_shape, g.dtype)
        np.add.at(np.moveaxis(acc, d, 0), _pad_index(n, pad[2 * i], pad[2 * i + 1], mode),
                  np.moveaxis(out, d, 0))
        out = acc
    return out


def _torch_pad_backward(torch):
    def fn(g, input_sizes, pad, mode):
        with torch.enable_grad():
            x = torch.zeros(input_sizes, dtype=g.dtype, requires_grad=True)
            y = torch.nn.functional.pad(x, pad, mode)
            return torch.autograd.grad(y, x, g, create_graph=True)[0]
    return fn


pad_backward = defop(
    "pad_backward(Tensor grad_output, int[] input_sizes, int[] pad, str mode) -> Tensor",
    saves=(),
    meta=lambda grad_output, input_sizes, pad, mode: _meta(grad_output, input_sizes),
    reference=_pad_backward_ref,
    derivative=lambda g, grad_output, input_sizes, pad, mode: pad_op(g, pad, mode),
    tags=SH,
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 6, 7), [2, 3, 4], [2, 1, 1, 2], "reflect")),
                         S.Sample((S.randn(rng, 1, 2, 8), [1, 2, 3], [2, 3], "replicate")),
                         S.Sample((S.randn(rng, 1, 2, 6, 7), [1, 2, 3, 4], [1, 2, 3, 0],
                                   "circular"))],
    torch_ref=_torch_pad_backward,
    doc="Gradient of the non-constant pad modes: sums each output back to the input "
        "position it was read from.",
)


# --- flip / roll / repeat / tile / tril / triu ------------------------------------------

flip = defop(
    "flip(Tensor self, int[] dims) -> Tensor",
    saves=(),
    meta=lambda self, dims: (wrap_dims(list(dims), self.ndim) if dims else None, _same(self))[1],
    reference=lambda x, dims: np.flip(x, wrap_dims(list(dims), x.ndim)) if dims and x.ndim
    else x.copy(),
    derivative=lambda g, self, dims: flip(g, dims),
    tags=SH, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), [0])),
                         S.Sample((S.randn(rng, 2, 3, 4), [0, 2])),
                         S.Sample((S.randn(rng, 5), [-1]))],
    torch_ref="torch.flip",
)


def _roll_args(x, shifts, dims):
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    if dims and len(shifts) != len(dims):
        raise ShapeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:"
                         f"{len(dims)}")
    if not dims and len(shifts) != 1:
        raise ShapeError("shifts must have one element when no dims are given")
    return shifts, [wrap_dim(d, x.ndim) for d in dims]


def _roll_ref(x, shifts, dims):
    shifts, dims = _roll_args(x, shifts, dims)
    if not dims:
        return np.roll(x.reshape(-1), shifts[0]).reshape(x.shape)
    return np.roll(x, shifts, dims)


roll = defop(
    "roll(Tensor self, int[] shifts, int[] dims=[]) -> Tensor",
    saves=(),
    meta=lambda self, shifts, dims: (_roll_args(self, shifts, dims), _same(self))[1],
    reference=_roll_ref,
    derivative=lambda g, self, shifts, dims: roll(
        g, [-s for s in _roll_args(self, shifts, dims)[0]], dims),
    tags=SH, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 1, 0)),
                         S.Sample((S.randn(rng, 3, 4), [2, -1], [1, 0])),
                         S.Sample((S.randn(rng, 2, 3), 4))],
    torch_ref="torch.roll",
)


def _repeat_shapes(self, repeats):
    repeats = list(repeats)
    if len(repeats) < self.ndim:
        raise ShapeError("Number of dimensions of repeat dims can not be smaller than number of "
                         "dimensions of tensor")
    padded = [1] * (len(repeats) - self.ndim) + list(self.shape)
    return repeats, padded, [r * s for r, s in zip(repeats, padded)]


def _repeat_derivative(g, self, repeats):
    repeats, padded, _ = _repeat_shapes(self, repeats)
    inter = [v for r, s in zip(repeats, padded) for v in (r, s)]
    g = reshape(g, inter)
    from .reduction import sum as sum_
    if inter:
        g = sum_(g, list(range(0, len(inter), 2)))
    return reshape(g, list(self.shape))


repeat = defop(
    "repeat(Tensor self, int[] repeats) -> Tensor",
    saves=(),
    meta=lambda self, repeats: _meta(self, _repeat_shapes(self, repeats)[2]),
    reference=lambda x, repeats: np.tile(x.reshape(_repeat_shapes(x, repeats)[1]),
                                         list(repeats)),
    derivative=_repeat_derivative,
    tags=SH, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 3), [2, 1])),
                         S.Sample((S.randn(rng, 3), [2, 1, 2])),
                         S.Sample((S.randn(rng), [3]))],
    torch_ref=lambda torch: lambda x, r: x.repeat(r),
)


def _tile_reps(self, dims):
    dims = list(dims)
    return [1] * (self.ndim - len(dims)) + dims


tile = defop(
    "tile(Tensor self, int[] dims) -> Tensor",
    saves=(),
    meta=lambda self, dims: repeat.meta(self, _tile_reps(self, dims)),
    reference=lambda x, dims: repeat.reference(x, _tile_reps(x, dims)),
    derivative=lambda g, self, dims: _repeat_derivative(g, self, _tile_reps(self, dims)),
    tags=SH, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 3), [2])),
                         S.Sample((S.randn(rng, 3), [2, 2]))],
    torch_ref="torch.tile",
)


def _tri(name, fn):
    def meta(self, diagonal):
        if self.ndim < 2:
            raise ShapeError(f"{name}: input tensor must have at least 2 dimensions")
        return _same(self)
    op = defop(
        f"{name}(Tensor self, int diagonal=0) -> Tensor",
        saves=(),
        meta=meta, reference=lambda x, diagonal: fn(x, diagonal),
        derivative=lambda g, self, diagonal: op(g, diagonal),
        tags=SH, method=True, inplace_variant=True,
        samples=lambda rng: [S.Sample((S.randn(rng, 4, 4),)),
                             S.Sample((S.randn(rng, 3, 5), 1)),
                             S.Sample((S.randn(rng, 2, 4, 3), -1))],
        torch_ref=f"torch.{name}")
    return op


tril = _tri("tril", np.tril)
triu = _tri("triu", np.triu)


# --- *_scatter: the inverses of the strided views ---------------------------------------

def _scatter_into(view_ref, view_shape, name):
    def meta(self, src, *args):
        want = tuple(view_shape(self, *args))
        if tuple(src.shape) != want:
            raise ShapeError(f"expected src to have a size equal to the slice of self. src "
                             f"size = {list(src.shape)}, slice size = {list(want)}")
        return _same(self)

    def ref(x, src, *args):
        out = np.array(x, copy=True)
        view_ref(out, *args)[...] = src
        return out
    return meta, ref


def _slice_shape(self, dim, start, end, step):
    return _slice_shape_strides(self, dim, start, end, step)[0]


def _select_shape(self, dim, index):
    d, _ = _norm_select(self, dim, index)
    return [s for i, s in enumerate(self.shape) if i != d]


def _diag_shape(self, offset, dim1, dim2):
    return _diag_geometry(self, offset, dim1, dim2)[0]


_m, _r = _scatter_into(_slice_ref, _slice_shape, "slice_scatter")
slice_scatter = defop(
    "slice_scatter(Tensor self, Tensor src, int dim=0, int? start=None, int? end=None, "
    "int step=1) -> Tensor",
    saves=(),
    meta=_m, reference=_r,
    derivative=lambda g, self, src, dim, start, end, step: (
        slice_scatter(g, _zeros(src), dim, start, end, step),
        slice_op(g, dim, start, end, step)),
    tags=SH,
    samples=lambda rng: [S.Sample((S.randn(rng, 5, 4), S.randn(rng, 2, 4), 0, 1, 3)),
                         S.Sample((S.randn(rng, 3, 7), S.randn(rng, 3, 3), 1, 1, None, 2))],
    torch_ref="torch.slice_scatter",
)

_m, _r = _scatter_into(_select_ref, _select_shape, "select_scatter")
select_scatter = defop(
    "select_scatter(Tensor self, Tensor src, int dim, int index) -> Tensor",
    saves=(),
    meta=_m, reference=_r,
    derivative=lambda g, self, src, dim, index: (
        select_scatter(g, _zeros(src), dim, index), select(g, dim, index)),
    tags=SH,
    samples=lambda rng: [S.Sample((S.randn(rng, 5, 4), S.randn(rng, 4), 0, 1)),
                         S.Sample((S.randn(rng, 3, 7), S.randn(rng, 3), -1, -2)),
                         S.Sample((S.randn(rng, 3), S.randn(rng), 0, 2))],
    torch_ref="torch.select_scatter",
)

_m, _r = _scatter_into(_diagonal_ref, _diag_shape, "diagonal_scatter")
diagonal_scatter = defop(
    "diagonal_scatter(Tensor self, Tensor src, int offset=0, int dim1=0, int dim2=1) -> Tensor",
    saves=(),
    meta=_m, reference=_r,
    derivative=lambda g, self, src, offset, dim1, dim2: (
        diagonal_scatter(g, _zeros(src), offset, dim1, dim2), diagonal(g, offset, dim1, dim2)),
    tags=SH,
    samples=lambda rng: [S.Sample((S.randn(rng, 4, 4), S.randn(rng, 4))),
                         S.Sample((S.randn(rng, 3, 5), S.randn(rng, 2), -1)),
                         S.Sample((S.randn(rng, 2, 3, 4), S.randn(rng, 3, 1), 1, 2, 0))],
    torch_ref="torch.diagonal_scatter",
)


# --- advanced indexing: index / index_put --------------------------------------------

def _index_result_shape(self, indices):
    """aten.index's result shape: broadcast advanced indices, moved to the front when
    separated by a full slice (NumPy's rule)."""
    per_dim = []            # per self dim: None (full slice) or the index's broadcast shape
    for k, idx in enumerate(indices):
        if idx is None:
            per_dim.append(None)
            continue
        if _is_bool(idx):
            pos = len(per_dim)
            if idx.ndim == 0:
                raise EmberIndexError("index: 0-dim bool index is not supported here")
            for j in range(idx.ndim):
                if pos + j >= self.ndim or idx.shape[j] != self.shape[pos + j]:
                    raise EmberIndexError(
                        f"The shape of the mask {list(idx.shape)} at index {j} does not match "
                        f"the shape of the indexed tensor {list(self.shape)} at index {pos + j}")
            if not hasattr(type(idx), "__array__"):
                raise TraceError("indexing with a bool mask gives a shape that depends on the "
                                 "mask's values, which do not exist while a function is traced "
                                 f"into a graph (ember.compile){at_user_line()}\n  the same "
                                 "line runs eagerly; for a fixed shape use ember.where(mask, "
                                 "x, other) or x.masked_fill(mask, value)")
            # a device mask's values are read back (a sync, as torch's nonzero on CUDA)
            values = idx._values() if hasattr(idx, "_values") else np.asarray(idx)
            nnz = int(np.count_nonzero(values))
            per_dim.extend([(nnz,)] * idx.ndim)
        elif idx.dtype.category is dtypes.Category.INT:
            per_dim.append(tuple(idx.shape))
        else:
            raise EmberIndexError("tensors used as indices must be long, int, byte or bool "
                                  "tensors")
    if len(per_dim) > self.ndim:
        raise EmberIndexError(f"too many indices for tensor of dimension {self.ndim} (got "
                              f"{len(per_dim)})")
    per_dim += [None] * (self.ndim - len(per_dim))
    adv = [i for i, p in enumerate(per_dim) if p is not None]
    if not adv:
        return tuple(self.shape)
    try:
        bshape = broadcast_shapes(*[per_dim[i] for i in adv])
    except ShapeError:
        raise EmberIndexError("shape mismatch: indexing tensors could not be broadcast "
                              "together with shapes " +
                              ", ".join(str(list(per_dim[i])) for i in adv)) from None
    rest = [self.shape[i] for i in range(self.ndim) if per_dim[i] is None]
    if adv == list(range(adv[0], adv[-1] + 1)):
        return tuple(self.shape[:adv[0]]) + bshape + tuple(self.shape[adv[-1] + 1:])
    return bshape + tuple(rest)


def _np_index(x, indices):
    """NumPy index tuple for aten.index's list (bool masks as their nonzero coordinates),
    with bounds checked like PyTorch."""
    out, pos = [], 0
    for idx in indices:
        if idx is None:
            out.append(slice(None))
            pos += 1
            continue
        a = np.asarray(idx)
        if a.dtype == np.bool_ or a.dtype == np.uint8:
            out.extend(np.nonzero(a.astype(bool)))
            pos += a.ndim
            continue
        a = a.astype(np.int64)
        _check_index_bounds(a, x.shape[pos], pos)
        out.append(a)
        pos += 1
    return tuple(out)


def _index_meta(self, indices):
    return _meta(self, _index_result_shape(self, indices))


index = defop(
    "index(Tensor self, Tensor?[] indices) -> Tensor",
    saves=("indices",),
    meta=_index_meta,
    reference=lambda x, indices: np.array(x[_np_index(x, indices)], copy=True),
    derivative=lambda g, self, indices: (
        index_put(_zeros(self), indices, g, True), [None] * len(indices)),
    tags=SH,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 5, 4), [np.array([0, 4, 2, 0])])),
        S.Sample((S.randn(rng, 3, 4, 5), [None, S.int_array(rng, 2, 3, low=-4, high=4)])),
        S.Sample((S.randn(rng, 3, 4, 5), [S.int_array(rng, 2, 1, low=0, high=3), None,
                                          S.int_array(rng, 4, low=0, high=5)])),
        S.Sample((S.randn(rng, 3, 4, 5), [None, S.int_array(rng, 2, low=0, high=4),
                                          S.int_array(rng, 3, 1, low=0, high=5)])),
        S.Sample((S.randn(rng, 4), [np.array(2)]))],
    torch_ref=lambda torch: torch.ops.aten.index.Tensor,
)


def _index_put_meta(self, indices, values, accumulate):
    if hasattr(values, "shape") and all(i is None or hasattr(type(i), "__array__")
                                        or not _is_bool(i) for i in indices):
        target = _index_result_shape(self, indices)
        try:
            broadcast_shapes(tuple(values.shape), target)
            ok = len(values.shape) <= len(target) or all(
                s == 1 for s in values.shape[:len(values.shape) - len(target)])
        except ShapeError:
            ok = False
        if not ok:
            raise ShapeError(f"shape mismatch: value tensor of shape {list(values.shape)} "
                             f"cannot be broadcast to indexing result of shape {list(target)}")
    return _same(self)


def _index_put_ref(x, indices, values, accumulate):
    out = np.array(x, copy=True)
    idx = _np_index(x, indices)
    vals = np.asarray(values).astype(out.dtype)
    target = out[idx].shape
    extra = vals.ndim - len(target)
    if extra > 0:
        vals = vals.reshape(vals.shape[extra:])
    if accumulate:
        np.add.at(out, idx, np.broadcast_to(vals, target))
    else:
        out[idx] = vals
    return out


def _index_put_derivative(g, self, indices, values, accumulate):
    from .creation import full
    gself = g if accumulate else index_put(g, indices, full([], 0, dtype=g.dtype), False)
    gvals = index(g, indices) if hasattr(values, "shape") else None
    return gself, [None] * len(indices), gvals


index_put = defop(
    "index_put(Tensor self, Tensor?[] indices, Tensor values, bool accumulate=False) -> Tensor",
    saves=("indices",),
    meta=_index_put_meta, reference=_index_put_ref, derivative=_index_put_derivative,
    tags=SH, method=True, inplace_variant=True,
    samples=lambda rng: [
        S.Sample((S.randn(rng, 5, 4), [np.array([0, 4, 2])], S.randn(rng, 3, 4))),
        S.Sample((S.randn(rng, 5, 4), [np.array([0, 4, 0])], S.randn(rng, 4), True)),
        S.Sample((S.randn(rng, 3, 4, 5), [None, np.array([[1], [3]]), np.array([0, 4])],
                  S.randn(rng, 3, 2, 2))),
        S.Sample((S.randn(rng, 3, 4, 5), [np.array([2, 0]), None, np.array([1, 3])],
                  S.randn(rng, 2, 4), True)),
        S.Sample((S.randn(rng, 3, 4), [np.array([1, 2])], S.randn(rng)))],
    torch_ref=lambda torch: torch.ops.aten.index_put,
)


# --- copy ------------------------------------------------------------------------------

def _copy_meta(self, src, non_blocking=False):
    if hasattr(src, "shape"):
        try:
            out = broadcast_shapes(tuple(src.shape), tuple(self.shape))
        except ShapeError:
            out = None
        if out != tuple(self.shape):
            raise ShapeError(f"The size of tensor a ({list(self.shape)}) must match the size of "
                             f"tensor b ({list(src.shape)}): src must broadcast to self")
    return _same(self)


copy = defop(
    "copy(Tensor self, Tensor src, bool non_blocking=False) -> Tensor",
    saves=(),
    meta=_copy_meta,
    reference=lambda x, src, non_blocking: np.array(
        np.broadcast_to(np.asarray(src), x.shape).astype(x.dtype, copy=False), copy=True),
    derivative=lambda g, self, src, non_blocking: (_zeros(self), g),
    tags=SH, inplace_variant=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), S.randn(rng, 4))),
                         S.Sample((S.randn(rng, 2, 3), S.randn(rng, 2, 3).astype(np.float64))),
                         S.Sample((S.int_array(rng, 2, 3), S.randn(rng, 2, 3)), grad=False)],
    torch_ref=lambda torch: torch.ops.aten.copy,
    torch_grad_differs="torch has no derivative for aten::copy (only for copy_)",
    doc="self's shape and dtype with src's values (broadcast and cast); Tensor.copy_ writes "
        "them in place.",
)

_ = NOT_DIFFERENTIABLE
