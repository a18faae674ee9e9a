"""Indexing functions written as registry-op calls: masked_select/masked_scatter, nonzero
(as_tuple), argwhere, repeat_interleave, take/take_along_dim/put, index_fill/index_copy/
index_reduce, bucketize, unique/unique_consecutive (choosing the outputs asked for).

Gradients come from the ops they call (index, index_put, gather, scatter_reduce, ...).
masked_scatter is written without data-dependent shapes (cumsum picks the source
element of each masked position), so it also compiles; masked_select, nonzero, unique
and repeat_interleave with tensor repeats have data-dependent shapes and run eagerly
only (see ir/ops/selection.py).
"""
from __future__ import annotations

import numbers

from ...ir import dtypes
from ...ir.composite import composite
from ...ir.errors import DTypeError, EmberIndexError, ShapeError
from ...ir.ops import OPS_NS as ops
from ...ir.ops.rules import broadcast_shapes, is_tensor_like, wrap_dim
from ...ir.ops.selection import concrete_values
from ...ir.out_arg import resize_out


def _as_tensor(v, like=None):
    if is_tensor_like(v):
        return v
    from ..factories import tensor
    return tensor(v, dtype=None if like is None else like.dtype)


def _require_bool_mask(name, mask):
    if mask.dtype is not dtypes.bool_:
        raise DTypeError(f"{name}: expected BoolTensor for mask")


def _broadcast_pair(name, a, b):
    try:
        shape = list(broadcast_shapes(tuple(a.shape), tuple(b.shape)))
    except ShapeError:
        raise ShapeError(f"{name}: The size of tensor a ({list(a.shape)}) must match the size "
                         f"of tensor b ({list(b.shape)}): they must be broadcastable") from None
    return ops.expand(a, shape), ops.expand(b, shape)


def _flat(t):
    return ops.reshape(t, [-1])


# --- masks -------------------------------------------------------------------------------

@composite(method=True)
def masked_select(input, mask):
    """The elements of input (broadcast with mask) where mask is True, as a 1-D tensor."""
    _require_bool_mask("masked_select", mask)
    concrete_values(mask, "masked_select")
    x, m = _broadcast_pair("masked_select", input, mask)
    return ops.index(_flat(x), [_flat(m)])


def _masked_scatter_values(name, input, mask, source):
    _require_bool_mask(name, mask)
    if source.dtype is not input.dtype:
        raise DTypeError(f"{name}: expected self and source to have same dtypes but got "
                         f"{input.dtype.name} and {source.dtype.name}")
    x, m = _broadcast_pair(name, input, mask)
    flat_mask = _flat(m)
    if hasattr(m, "_array"):
        needed = int(m._values().sum())       # a device mask is read back
        if needed > source.numel():
            raise ShapeError(f"{name}: Number of elements of source < number of ones in mask")
    if source.numel() == 0:
        return x, m, None
    # position k of the masked elements (in row-major order) takes source element k
    slot = ops.cumsum(ops.convert_element_type(flat_mask, dtypes.int64), 0) - 1
    slot = ops.clamp(slot, 0, source.numel() - 1)
    picked = ops.reshape(ops.index_select(_flat(source), 0, slot), list(x.shape))
    return x, m, picked


@composite(method=True)
def masked_scatter(input, mask, source):
    """input with its masked elements (row-major order) replaced by source's first ones."""
    x, m, picked = _masked_scatter_values("masked_scatter", input, mask, source)
    return ops.clone(x) if picked is None else ops.where(m, picked, x)


@composite(function=False, method=True)
def masked_scatter_(self, mask, source):
    if tuple(broadcast_shapes(tuple(self.shape), tuple(mask.shape))) != tuple(self.shape):
        raise ShapeError(f"masked_scatter_: mask of shape {list(mask.shape)} does not "
                         f"broadcast to self's shape {list(self.shape)}")
    _, m, picked = _masked_scatter_values("masked_scatter_", self, mask, source)
    return self if picked is None else ops.copy_(self, ops.where(m, picked, self))


# --- nonzero -----------------------------------------------------------------------------

@composite(method=True, replaces_op=True)
def nonzero(input, *, as_tuple=False, out=None):
    """Coordinates of the nonzero elements: an [n, ndim] tensor, or (as_tuple) one 1-D
    tensor per dim."""
    if out is not None:
        return _nonzero_into(input, as_tuple, out)
    # row-major coordinates: PyTorch lays them out column-major (strides (1, n)); ember's
    # eager results take the meta rule's dense layout, and a transposing copy here would be
    # traced as a graph of its own after ember.compile's break at nonzero
    coords = ops.nonzero(input)
    if not as_tuple:
        return coords
    if input.ndim == 0:          # PyTorch treats a 0-d input as 1-D here: ([0],) or ([],)
        return (ops.full([coords.shape[0]], 0, dtype=dtypes.int64),)
    return tuple(ops.unbind(coords, 1))


def _nonzero_into(input, as_tuple, out):
    """nonzero(out=): out takes the result's shape (PyTorch's warning when it had
    elements)."""
    if as_tuple:
        raise ShapeError("nonzero does not support the out kwarg when as_tuple is True")
    if out.dtype is not dtypes.int64:
        raise DTypeError(f"nonzero: Expected out tensor to have scalar type Long but got "
                         f"scalar type {out.dtype.scalar_type_name}")
    coords = nonzero(input)
    resize_out(out, coords.shape)
    return out.copy_(coords)


@composite(method=True)
def argwhere(input):
    return nonzero(input)


# --- repeat_interleave -------------------------------------------------------------------

@composite(method=True, replaces_op=True)
def repeat_interleave(input, repeats=None, dim=None, *, output_size=None):
    """Each element (or slice along dim) repeated `repeats` times (an int, or one count
    per element). `repeat_interleave(repeats)` alone gives the indices 0,0,1,2,2,..."""
    if repeats is None:
        return ops.repeat_interleave(input, output_size=output_size)
    x = _flat(input) if dim is None else input
    d = 0 if dim is None else wrap_dim(dim, max(input.ndim, 1))
    if x.ndim == 0:
        x = ops.reshape(x, [1])
    if isinstance(repeats, numbers.Integral) or is_tensor_like(repeats) and \
            repeats.ndim == 0 and hasattr(repeats, "_array"):
        return _repeat_each(x, int(repeats), d, output_size)
    repeats = _as_tensor(repeats)
    if repeats.ndim == 1 and repeats.shape[0] not in (1, x.shape[d]):
        raise ShapeError(f"repeat_interleave: repeats must have the same size as input along "
                         f"dim, but got repeats.size(0) = {repeats.shape[0]} and "
                         f"input.size({d}) = {x.shape[d]}")
    if repeats.ndim == 1 and repeats.shape[0] == 1 and x.shape[d] != 1:
        repeats = ops.expand(repeats, [x.shape[d]])
    index = ops.repeat_interleave(repeats, output_size=output_size)
    return ops.index_select(x, d, index)


def _repeat_each(x, count, d, output_size):
    if count < 0:
        raise ShapeError("repeat_interleave: repeats can not be negative")
    if output_size is not None and output_size != x.shape[d] * count:
        raise ShapeError(f"repeat_interleave: allocated size does not match required size "
                         f"({output_size} vs {x.shape[d] * count})")
    shape = list(x.shape)
    spread = ops.unsqueeze(x, d + 1)
    big = shape[:d + 1] + [count] + shape[d + 1:]
    shape[d] *= count
    return ops.reshape(ops.expand(spread, big), shape)


# --- take / put --------------------------------------------------------------------------

def _require_long(name, index):
    if index.dtype is not dtypes.int64:
        raise DTypeError(f"{name}(): Expected a long tensor for index, but got "
                         f"{index.dtype.name}")


@composite(method=True)
def take(input, index):
    """input treated as 1-D, read at `index` (negative indices count from the end)."""
    _require_long("take", index)
    if input.numel() == 0 and index.numel():
        raise EmberIndexError("take(): tried to take from an empty tensor")
    return ops.index(_flat(input), [index])


@composite(method=True)
def take_along_dim(input, indices, dim=None):
    """Values of input at `indices` along dim (input and indices broadcast elsewhere);
    with dim=None, input and indices are flattened."""
    _require_long("take_along_dim", indices)
    if dim is None:             # PyTorch: a gather of the flattened input, no wrapping
        return ops.gather(_flat(input), 0, _flat(indices))
    if input.ndim != indices.ndim:
        raise ShapeError(f"torch.take_along_dim(): input and indices should have the same "
                         f"number of dimensions, but got {input.ndim} dimensions for input, "
                         f"and {indices.ndim} dimensions for indices")
    d = wrap_dim(dim, input.ndim)
    n = input.shape[d]          # along a dim, PyTorch counts negative indices from the end
    indices = ops.where(ops.lt(indices, 0), indices + n, indices)
    in_shape, ix_shape = list(input.shape), list(indices.shape)
    in_shape[d] = ix_shape[d] = 1
    common = list(broadcast_shapes(tuple(in_shape), tuple(ix_shape)))
    want_in, want_ix = list(common), list(common)
    want_in[d], want_ix[d] = input.shape[d], indices.shape[d]
    return ops.gather(ops.expand(input, want_in), d, ops.expand(indices, want_ix))


def _put_values(name, input, index, source, accumulate):
    _require_long(name, index)
    if source.dtype is not input.dtype:
        raise DTypeError(f"{name}(): self ({input.dtype.name}) and source "
                         f"({source.dtype.name}) must have the same scalar type")
    if index.numel() != source.numel():
        raise ShapeError(f"{name}(): Expected source and index to have the same number of "
                         f"elements, but got source.numel() = {source.numel()}, "
                         f"index.numel() = {index.numel()}")
    if input.numel() == 0 and index.numel():
        raise EmberIndexError(f"{name}(): Tried to put elements into an empty tensor")
    flat = ops.index_put(ops.reshape(input, [-1]), [_flat(index)], _flat(source), accumulate)
    return ops.reshape(flat, list(input.shape))


@composite(method=True)
def put(input, index, source, accumulate=False):
    """input treated as 1-D with source written (or added) at `index`."""
    return _put_values("put", input, index, source, accumulate)


@composite(function=False, method=True)
def put_(self, index, source, accumulate=False):
    return ops.copy_(self, _put_values("put_", self, index, source, accumulate))


# --- index_fill / index_copy / index_reduce -----------------------------------------------

def _index_vector(name, index):
    if index.ndim > 1:
        raise EmberIndexError(f"{name}(): Index is supposed to be a vector")
    if index.dtype is not dtypes.int64:
        raise DTypeError(f"{name}(): Expected dtype int64 for index")
    return _flat(index)


def _dim_mask(self, d, index):
    """A bool tensor, True along dim d at `index`, shaped to broadcast against self."""
    n = self.shape[d] if self.ndim else 1
    hits = ops.index_put(ops.full([n], False, dtype=dtypes.bool_, device=index.device), [index],
                         ops.full([], True, dtype=dtypes.bool_))
    return ops.reshape(hits, [n if k == d else 1 for k in range(self.ndim)])


def _index_fill_values(name, input, dim, index, value):
    index = _index_vector(name, index)
    d = wrap_dim(dim, max(input.ndim, 1))
    if is_tensor_like(value):
        if value.ndim != 0:
            raise ShapeError(f"{name}(): Only supports 0-dimensional value tensor. Got a "
                             f"tensor with {value.ndim} dimensions.")
        value = value if value.dtype is input.dtype else ops.convert_element_type(
            value, input.dtype)
    return ops.masked_fill(input, _dim_mask(input, d, index), value)


@composite(method=True)
def index_fill(input, dim, index, value):
    """input with every slice along dim at `index` set to `value`."""
    return _index_fill_values("index_fill", input, dim, index, value)


@composite(function=False, method=True)
def index_fill_(self, dim, index, value):
    return ops.copy_(self, _index_fill_values("index_fill_", self, dim, index, value))


def _index_copy_values(name, input, dim, index, source):
    index = _index_vector(name, index)
    if source.dtype is not input.dtype:
        raise DTypeError(f"{name}(): self and source expected to have the same dtype, but got "
                         f"(self) {input.dtype.name} and (source) {source.dtype.name}")
    if input.ndim == 0:
        return ops.clone(ops.reshape(source, [])) if index.numel() else ops.clone(input)
    d = wrap_dim(dim, input.ndim)
    want = list(input.shape)
    want[d] = index.numel()
    if list(source.shape) != want and not (source.ndim == 0 and want == [1]):
        raise ShapeError(f"{name}(): Source/destination tensor must have same slice shapes. "
                         f"Destination slice shape: {list(input.shape)} at dimension {d} and "
                         f"source slice shape: {list(source.shape)} at dimension {d}.")
    front = ops.movedim(input, d, 0)
    values = ops.movedim(ops.reshape(source, want), d, 0)
    return ops.movedim(ops.index_put(front, [index], values), 0, d)


@composite(method=True)
def index_copy(input, dim, index, source):
    """input with its slices along dim at `index` replaced by source's slices."""
    return _index_copy_values("index_copy", input, dim, index, source)


@composite(function=False, method=True)
def index_copy_(self, dim, index, source):
    return ops.copy_(self, _index_copy_values("index_copy_", self, dim, index, source))


def _index_reduce_values(name, input, dim, index, source, reduce, include_self):
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise ShapeError(f"{name}(): Expected reduce to be one of prod, mean, amax or amin "
                         f"but got {reduce}.")
    index = _index_vector(name, index)
    if input.ndim == 0:
        input1, source1 = ops.reshape(input, [1]), ops.reshape(source, [1])
        out = _index_reduce_values(name, input1, 0, index, source1, reduce, include_self)
        return ops.reshape(out, [])
    d = wrap_dim(dim, input.ndim)
    if source.ndim != input.ndim or source.shape[d] != index.numel():
        raise ShapeError(f"{name}(): Source/destination tensor must have same slice shapes "
                         f"and the source must have index.numel() = {index.numel()} slices "
                         f"along dim {d}, got source {list(source.shape)}, self "
                         f"{list(input.shape)}")
    spread = ops.expand(ops.reshape(index, [-1 if k == d else 1 for k in range(source.ndim)]),
                        list(source.shape))
    return ops.scatter_reduce(input, d, spread, source, reduce, include_self=include_self)


@composite(method=True)
def index_reduce(input, dim, index, source, reduce, *, include_self=True):
    """Slices of source reduced (prod, mean, amax, amin) into input's slices along dim at
    `index`."""
    return _index_reduce_values("index_reduce", input, dim, index, source, reduce,
                                include_self)


@composite(function=False, method=True)
def index_reduce_(self, dim, index, source, reduce, *, include_self=True):
    return ops.copy_(self, _index_reduce_values("index_reduce_", self, dim, index, source,
                                                reduce, include_self))


# --- searchsorted / bucketize ------------------------------------------------------------

@composite()
def bucketize(input, boundaries, *, out_int32=False, right=False):
    """The bucket of each input value among the sorted 1-D boundaries."""
    if boundaries.ndim != 1:
        raise ShapeError(f"bucketize: boundaries tensor must be 1 dimension, but got dim("
                         f"{boundaries.ndim})")
    return ops.searchsorted(boundaries, input, out_int32=out_int32, right=right)


# --- unique ------------------------------------------------------------------------------

def _chosen(values, inverse, counts, return_inverse, return_counts):
    if not return_inverse and not return_counts:
        return values
    out = (values,) + ((inverse,) if return_inverse else ()) + \
        ((counts,) if return_counts else ())
    return out


@composite(method=True, replaces_op=True)
def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """Distinct values (sorted), or distinct slices along dim; optionally the index of
    each input element's value among them and how often each occurs."""
    values, inverse, counts = ops.unique(input, sorted, return_inverse, return_counts, dim)
    return _chosen(values, inverse, counts, return_inverse, return_counts)


@composite(method=True, replaces_op=True)
def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """Values (or slices along dim) with runs of equal neighbours collapsed."""
    values, inverse, counts = ops.unique_consecutive(input, return_inverse, return_counts,
                                                     dim)
    return _chosen(values, inverse, counts, return_inverse, return_counts)
