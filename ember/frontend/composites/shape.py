"""Shape and view functions written as registry-op calls: broadcast_to/tensors/shapes,
meshgrid, tensor_split and its h/v/dsplit forms, diag/diag_embed/diagflat/block_diag,
rot90, fliplr/flipud, atleast_Nd, column_stack/dstack, cartesian_prod/combinations,
ravel, sum_to_size, the T/mT/H/mH attributes, the `*_copy` variants, fill/fill_/zero_,
and the strided empty factories.

Where PyTorch returns a view (broadcast_to, meshgrid, the splits, atleast_Nd, ravel,
T, mT), the result is made by view ops only, so it shares the input's storage.
`*_copy` variants are the view followed by `contiguous` (a copy).
"""
from __future__ import annotations

import itertools
import math
import numbers

import numpy as np

from ...ir import dtypes
from ...ir.composite import composite
from ...ir.errors import DTypeError, EmberIndexError, ShapeError
from ...ir.ops import OPS_NS as ops
from ...ir.ops.rules import broadcast_shapes as _broadcast_shapes, is_tensor_like, \
    result_dtype, wrap_dim, wrap_dims
from ..tensor import Size


def _tensor_list(name, tensors) -> list:
    """The sequence argument of column_stack/dstack: one tensor is PyTorch's TypeError."""
    if is_tensor_like(tensors):
        raise TypeError(f"{name}(): argument 'tensors' (position 1) must be tuple of "
                        f"Tensors, not Tensor")
    return _tensor_args(name, [tensors])


def _tensor_args(name, tensors) -> list:
    """`f(a, b)` and `f([a, b])` both mean the list [a, b] (PyTorch's varargs functions)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tensors[0]
    tensors = list(tensors)
    for i, t in enumerate(tensors):
        if not is_tensor_like(t):
            raise TypeError(f"{name}(): expected Tensor as element {i} in argument 0, but got "
                            f"{type(t).__name__}")
    return tensors


def _copy(t):
    return ops.contiguous(t)


def _zeros(shape, dtype):
    return ops.full(list(shape), 0, dtype=dtype)


# --- broadcasting -----------------------------------------------------------------------

@composite(method=True)
def broadcast_to(input, size):
    """`input` expanded to `size` (a view; -1 keeps a dim)."""
    return ops.expand(input, list(size))


@composite()
def broadcast_shapes(*shapes):
    """The shape `broadcast_tensors` would give tensors of these shapes."""
    as_tuples = []
    for s in shapes:
        if isinstance(s, numbers.Integral):
            s = (int(s),)
        as_tuples.append(tuple(int(d) for d in s))
        if any(d < 0 for d in as_tuples[-1]):
            raise RuntimeError(f"Trying to create tensor with negative dimension "
                               f"{min(as_tuples[-1])}: {list(as_tuples[-1])}")
    try:
        return Size(_broadcast_shapes(*as_tuples))
    except ShapeError:
        raise RuntimeError("Shape mismatch: objects cannot be broadcast to a single shape.  "
                           "Mismatch is between " + " and ".join(
                               str(list(s)) for s in as_tuples)) from None


@composite()
def broadcast_tensors(*tensors):
    """Every tensor expanded to the common shape (views)."""
    tensors = _tensor_args("broadcast_tensors", tensors)
    shape = _broadcast_shapes(*(tuple(t.shape) for t in tensors))
    return tuple(ops.expand(t, list(shape)) for t in tensors)


@composite()
def meshgrid(*tensors, indexing: str | None = None):
    """Coordinate grids from 1-D tensors: 'ij' (matrix, the default) or 'xy' (Cartesian)
    indexing. Each grid is an expanded view of its input."""
    tensors = _tensor_args("meshgrid", tensors)
    indexing = "ij" if indexing is None else indexing
    if indexing not in ("ij", "xy"):
        raise ValueError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but "
                         f"received: {indexing}")
    if not tensors:
        raise ValueError("meshgrid expects a non-empty TensorList")
    for t in tensors:
        if t.ndim > 1:
            raise ShapeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but "
                             f"got: {t.ndim}D")
        if t.dtype is not tensors[0].dtype:
            raise DTypeError("meshgrid expects all tensors to have the same dtype")
    swap = indexing == "xy" and len(tensors) >= 2
    order = list(range(len(tensors)))
    if swap:
        order[0], order[1] = 1, 0
    shape = [tensors[i].numel() for i in order]
    grids = []
    for i, t in enumerate(tensors):
        axis = order.index(i)
        view = ops.reshape(t, [1] * axis + [-1] + [1] * (len(tensors) - axis - 1))
        grids.append(ops.expand(view, shape))
    return tuple(grids)


# --- splitting --------------------------------------------------------------------------

def _split_points(input, indices_or_sections, dim):
    """Boundaries [(start, end), ...] of tensor_split along wrapped `dim`."""
    n = input.shape[dim]
    if is_tensor_like(indices_or_sections):
        t = indices_or_sections
        if t.dtype is not dtypes.int64 or t.ndim > 1:
            raise DTypeError("tensor_split expected tensor_indices_or_sections to have long "
                             "dtype and be 0-D or 1-D, but got "
                             f"{t.dtype.name} with {t.ndim} dims")
        indices_or_sections = t.item() if t.ndim == 0 else [int(v) for v in t.tolist()]
    if isinstance(indices_or_sections, numbers.Integral):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {sections}")
        small, extra = divmod(n, sections)
        bounds, at = [], 0
        for i in range(sections):
            size = small + (1 if i < extra else 0)
            bounds.append((at, at + size))
            at += size
        return bounds
    points = [0] + [int(i) for i in indices_or_sections] + [n]
    clamp = [min(max(p + n if p < 0 else p, 0), n) for p in points]
    return [(a, max(a, b)) for a, b in zip(clamp[:-1], clamp[1:])]


@composite(method=True)
def tensor_split(input, indices_or_sections=None, dim=0, *, indices=None, sections=None,
                 tensor_indices_or_sections=None):
    """Views of `input` split into N nearly equal sections, or at the given indices.
    torch's overloads name the second argument `indices`, `sections` or
    `tensor_indices_or_sections`; any one of them may be given by keyword."""
    given = [v for v in (indices_or_sections, indices, sections, tensor_indices_or_sections)
             if v is not None]
    if len(given) != 1:
        raise TypeError("tensor_split() received an invalid combination of arguments: "
                        "expected one of indices, sections or tensor_indices_or_sections")
    indices_or_sections = given[0]
    if input.ndim == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a "
                           "tensor with 0 dims")
    d = wrap_dim(dim, input.ndim)
    return tuple(ops.slice(input, d, a, b) for a, b in
                 _split_points(input, indices_or_sections, d))


def _hvd_split(name, input, indices_or_sections, dim, min_dims):
    if not isinstance(indices_or_sections, (numbers.Integral, list, tuple)) and \
            not hasattr(indices_or_sections, "tolist"):
        raise TypeError(f"{name}() received an invalid combination of arguments: "
                        f"indices_or_sections must be an int or a sequence of ints, got "
                        f"{type(indices_or_sections).__name__}")
    if input.ndim < min_dims:
        raise RuntimeError(f"torch.{name} requires a tensor with at least {min_dims} "
                           f"dimension{'s' if min_dims > 1 else ''}, but got a tensor with "
                           f"{input.ndim} dimensions!")
    if isinstance(indices_or_sections, numbers.Integral):
        n = input.shape[dim]
        if indices_or_sections == 0 or n % indices_or_sections:
            raise RuntimeError(f"torch.{name} attempted to split along dimension {dim}, but "
                               f"the size of the dimension {n} is not divisible by the "
                               f"split_size {indices_or_sections}!")
    return tensor_split(input, indices_or_sections, dim)


@composite(method=True)
def hsplit(input, indices_or_sections):
    dim = 1 if input.ndim > 1 else 0
    return _hvd_split("hsplit", input, indices_or_sections, dim, 1)


@composite(method=True)
def vsplit(input, indices_or_sections):
    return _hvd_split("vsplit", input, indices_or_sections, 0, 2)


@composite(method=True)
def dsplit(input, indices_or_sections):
    return _hvd_split("dsplit", input, indices_or_sections, 2, 3)


@composite(method=True)
def split_with_sizes(input, split_sizes, dim=0):
    return tuple(ops.split(input, [int(s) for s in split_sizes], dim))


@composite(method=True)
def unsafe_split(input, split_size, dim=0):
    return tuple(ops.split(input, split_size, dim))


@composite(method=True)
def unsafe_split_with_sizes(input, split_sizes, dim=0):
    return tuple(ops.split(input, [int(s) for s in split_sizes], dim))


@composite(method=True)
def unsafe_chunk(input, chunks, dim=0):
    return tuple(ops.chunk(input, chunks, dim))


# --- diagonals --------------------------------------------------------------------------

@composite(method=True)
def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """A tensor whose (dim1, dim2) diagonal at `offset` holds input's last dim, zeros
    elsewhere."""
    nd = input.ndim + 1
    d1, d2 = wrap_dim(dim1, nd), wrap_dim(dim2, nd)
    if d1 == d2:
        raise ShapeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    size = (input.shape[-1] if input.ndim else 1) + abs(offset)
    rest = iter(input.shape[:-1])
    shape = [size if i in (d1, d2) else next(rest) for i in range(nd)]
    src = input if input.ndim else ops.reshape(input, [1])
    zeros = ops.full(list(shape), 0, dtype=input.dtype, device=input.device)
    return ops.diagonal_scatter(zeros, src, offset, d1, d2)


@composite(method=True)
def diag(input, diagonal=0):
    """A 1-D input as the `diagonal`-th diagonal of a square matrix; a 2-D input's
    `diagonal`-th diagonal (a copy)."""
    if input.ndim == 1:
        return diag_embed(input, diagonal, 0, 1)
    if input.ndim == 2:
        return _copy(ops.diagonal(input, diagonal, 0, 1))
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")


@composite(method=True)
def diagflat(input, offset=0):
    return diag_embed(ops.reshape(input, [-1]), offset, 0, 1)


@composite()
def block_diag(*tensors):
    """The tensors (0-, 1- or 2-D) along the diagonal of one matrix, zeros elsewhere."""
    tensors = _tensor_args("block_diag", tensors)
    mats = []
    for i, t in enumerate(tensors):
        if t.ndim > 2:
            raise RuntimeError(f"torch.block_diag: Input tensors must have 2 or fewer "
                               f"dimensions. Input {i} has {t.ndim} dimensions")
        mats.append(ops.reshape(t, [1, -1] if t.ndim < 2 else list(t.shape)))
    dtype = result_dtype(tensors) if tensors else dtypes.get_default_dtype()
    if not mats:
        return _zeros([1, 0], dtype)
    total_cols = sum(m.shape[1] for m in mats)
    rows, left = [], 0
    for m in mats:
        right = total_cols - left - m.shape[1]
        m = m if m.dtype is dtype else ops.convert_element_type(m, dtype)
        rows.append(ops.cat([_zeros([m.shape[0], left], dtype), m,
                             _zeros([m.shape[0], right], dtype)], 1))
        left += m.shape[1]
    return ops.cat(rows, 0)


# --- flips and rotations ----------------------------------------------------------------

@composite(method=True)
def rot90(input, k=1, dims=(0, 1)):
    """Rotate by 90 degrees k times in the plane of `dims` (from the first axis towards
    the second)."""
    dims = list(dims)
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {input.ndim}")
    d0, d1 = wrap_dim(dims[0], input.ndim), wrap_dim(dims[1], input.ndim)
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and "
                           f"dim1 = {d1}")
    k = k % 4
    if k == 1:
        return ops.transpose(ops.flip(input, [d1]), d0, d1)
    if k == 2:
        return ops.flip(input, [d0, d1])
    if k == 3:
        return ops.transpose(ops.flip(input, [d0]), d0, d1)
    return ops.clone(input)


@composite(method=True)
def fliplr(input):
    if input.ndim < 2:
        raise RuntimeError("Input must be >= 2-d.")
    return ops.flip(input, [1])


@composite(method=True)
def flipud(input):
    if input.ndim < 1:
        raise RuntimeError("Input must be >= 1-d.")
    return ops.flip(input, [0])


# --- atleast_Nd, stacking, products of index sets ---------------------------------------

def _atleast(name, tensors, view_one):
    if len(tensors) == 1 and is_tensor_like(tensors[0]):
        return view_one(tensors[0])
    return tuple(view_one(t) for t in _tensor_args(name, tensors))


def _at_least_1d(t):
    return ops.reshape(t, [1]) if t.ndim == 0 else t


def _at_least_2d(t):
    if t.ndim == 0:
        return ops.reshape(t, [1, 1])
    return ops.unsqueeze(t, 0) if t.ndim == 1 else t


def _at_least_3d(t):
    if t.ndim == 0:
        return ops.reshape(t, [1, 1, 1])
    if t.ndim == 1:
        return ops.unsqueeze(ops.unsqueeze(t, 0), 2)
    return ops.unsqueeze(t, 2) if t.ndim == 2 else t


@composite()
def atleast_1d(*tensors):
    return _atleast("atleast_1d", tensors, _at_least_1d)


@composite()
def atleast_2d(*tensors):
    return _atleast("atleast_2d", tensors, _at_least_2d)


@composite()
def atleast_3d(*tensors):
    return _atleast("atleast_3d", tensors, _at_least_3d)


@composite()
def column_stack(tensors):
    """Tensors side by side as columns: 0-D and 1-D ones become columns first."""
    tensors = _tensor_list("column_stack", tensors)
    if not tensors:
        raise RuntimeError("column_stack expects a non-empty TensorList")
    cols = [ops.reshape(t, [t.numel(), 1]) if t.ndim <= 1 else t for t in tensors]
    return ops.hstack(cols)


@composite()
def dstack(tensors):
    tensors = _tensor_list("dstack", tensors)
    if not tensors:
        raise RuntimeError("dstack expects a non-empty TensorList")
    return ops.cat([_at_least_3d(t) for t in tensors], 2)


@composite()
def cartesian_prod(*tensors):
    """Every combination of one element from each 1-D tensor, as rows."""
    tensors = _tensor_args("cartesian_prod", tensors)
    for t in tensors:
        if t.ndim != 1:
            raise RuntimeError(f"Expect a 1D vector, but got shape {list(t.shape)}")
    if len(tensors) == 1:
        return tensors[0]
    grids = meshgrid(*tensors, indexing="ij")
    return ops.stack([ops.reshape(g, [-1]) for g in grids], 1)


@composite()
def combinations(input, r=2, with_replacement=False):
    """Length-r combinations of a 1-D tensor's elements (itertools' order), as rows."""
    if input.ndim != 1:
        raise RuntimeError(f"Expect a 1D vector, but got shape {list(input.shape)}")
    if r < 0:
        raise RuntimeError(f"Expect a non-negative number, but got {r}")
    if r == 0:
        return _zeros([0], input.dtype)
    pick = itertools.combinations_with_replacement if with_replacement else \
        itertools.combinations
    rows = np.array(list(pick(range(input.shape[0]), r)), dtype=np.int64).reshape(-1, r)
    from ..factories import tensor
    return ops.stack([ops.index_select(input, 0, tensor(rows[:, j], device=input.device))
                      for j in range(r)], 1)


# --- reshaping, reductions to a size ----------------------------------------------------

@composite(method=True)
def ravel(input):
    """input flattened to 1-D: a view when the strides allow one, else a copy."""
    return ops.reshape(input, [-1])


def _is_expandable_to(shape, target) -> bool:
    if len(shape) > len(target):
        return False
    lead = len(target) - len(shape)
    return all(s == t or s == 1 for s, t in zip(shape, target[lead:]))


@composite(function=False, method=True)
def sum_to_size(self, *size):
    """self summed down to `size` (which self must be expandable from)."""
    size = list(size[0]) if len(size) == 1 and isinstance(size[0], (list, tuple)) \
        else list(size)
    if not _is_expandable_to(tuple(size), tuple(self.shape)):
        raise RuntimeError(f"size {{{', '.join(map(str, size))}}} is not expandable to size "
                           f"{{{', '.join(map(str, self.shape))}}}.")
    if size and list(self.shape) == size:      # PyTorch returns self, except for size []
        return self
    lead = self.ndim - len(size)
    dims = list(range(lead)) + [lead + i for i, s in enumerate(size)
                                if s == 1 and self.shape[lead + i] != 1]
    return ops.reshape(ops.sum(self, dims or list(range(self.ndim)), True), size)


@composite(method=True)
def narrow_copy(input, dim, start, length):
    if input.ndim and dim >= input.ndim:   # torch: a RuntimeError here (IndexError below)
        raise RuntimeError(f"narrow_copy(): Dimension out of range (expected to be in range "
                           f"of [{-input.ndim}, {input.ndim - 1}], but got {dim})")
    return _copy(ops.narrow(input, dim, start, length))


# --- transposed views -------------------------------------------------------------------

@composite("T", function=False, attribute=True)
def _T(self):
    """All dims reversed (a view)."""
    return ops.permute(self, list(range(self.ndim))[::-1])


@composite("mT", function=False, attribute=True)
def _mT(self):
    """The last two dims swapped (a view): the transposes of a batch of matrices."""
    if self.ndim < 2:
        raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. "
                           f"Got {self.ndim}-D tensor.")
    return ops.transpose(self, -2, -1)


def _conj_if_complex(t):
    return ops.conj(t) if t.dtype.is_complex else t


@composite("H", function=False, attribute=True)
def _H(self):
    """The conjugate transpose of a matrix (a view for real dtypes)."""
    if self.ndim not in (0, 2):
        raise RuntimeError(f"tensor.H is only supported on matrices (2-D tensors). Got "
                           f"{self.ndim}-D tensor.")
    return _conj_if_complex(ops.permute(self, list(range(self.ndim))[::-1]))


@composite("mH", function=False, attribute=True)
def _mH(self):
    """The conjugate transposes of a batch of matrices (a view for real dtypes)."""
    if self.ndim < 2:
        raise RuntimeError(f"tensor.mH is only supported on matrices or batches of matrices. "
                           f"Got {self.ndim}-D tensor.")
    return _conj_if_complex(ops.transpose(self, -2, -1))


@composite(method=True)
def adjoint(input):
    return _mH(input)


# --- the *_copy variants: the view op, then a copy --------------------------------------

@composite()
def alias_copy(input):
    return _copy(input)


@composite()
def as_strided_copy(input, size, stride, storage_offset=None):
    return _copy(ops.as_strided(input, list(size), list(stride), storage_offset))


@composite()
def diagonal_copy(input, offset=0, dim1=0, dim2=1):
    return _copy(ops.diagonal(input, offset, dim1, dim2))


@composite()
def expand_copy(input, size, *, implicit=False):
    return _copy(ops.expand(input, list(size)))


@composite()
def permute_copy(input, dims):
    return _copy(ops.permute(input, list(dims)))


@composite()
def squeeze_copy(input, dim=None):
    return _copy(ops.squeeze(input, dim))


@composite()
def t_copy(input):
    return _copy(ops.t(input))


@composite()
def transpose_copy(input, dim0, dim1):
    return _copy(ops.transpose(input, dim0, dim1))


@composite()
def unbind_copy(input, dim=0):
    return tuple(_copy(t) for t in ops.unbind(input, dim))


@composite()
def unfold_copy(input, dimension, size, step):
    return _copy(ops.unfold(input, dimension, size, step))


@composite()
def unsqueeze_copy(input, dim):
    return _copy(ops.unsqueeze(input, dim))


@composite()
def view_copy(input, size):
    if isinstance(size, dtypes.DType) or not isinstance(size, (list, tuple)) and \
            size in (float, int, bool, complex):
        raise NotImplementedError("view_copy(input, dtype) (a bitcast) is not supported")
    return _copy(ops.view(input, list(size)))


@composite()
def split_with_sizes_copy(input, split_sizes, dim=0):
    return tuple(_copy(t) for t in ops.split(input, [int(s) for s in split_sizes], dim))


@composite()
def split_copy(input, split_size, dim=0):
    return tuple(_copy(t) for t in ops.split(input, split_size, dim))


# --- filling ----------------------------------------------------------------------------

def _fill_value(self, value):
    if is_tensor_like(value):
        if value.ndim != 0:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor "
                               f"with {value.ndim} dimensions.")
        return value if value.dtype is self.dtype else ops.convert_element_type(value,
                                                                                self.dtype)
    return value


@composite()
def fill(input, value):
    """A new tensor shaped and typed like input, every element `value` (a number or a 0-D
    tensor, whose gradient is the sum of the output's)."""
    value = _fill_value(input, value)
    everywhere = ops.full([], True, dtype=dtypes.bool_)
    return ops.masked_fill(input, everywhere, value)      # input's gradient: zeros


@composite(method=True)
def fill_(input, value):
    """Write `value` into every element of input, in place."""
    value = _fill_value(input, value)
    if not is_tensor_like(value):
        value = ops.full([], value, dtype=input.dtype)
    return ops.copy_(input, value)


@composite(method=True)
def zero_(input):
    return ops.copy_(input, ops.full([], 0, dtype=input.dtype))


# --- index sets and coordinates ---------------------------------------------------------

def _tri_indices(row, col, offset, dtype, device, lower):
    from ..factories import tensor
    if row < 0 or col < 0:
        raise RuntimeError(f"row must be non-negative, got {row}" if row < 0 else
                           f"col must be non-negative, got {col}")
    r, c = np.indices((row, col)).reshape(2, -1)
    keep = (c - r <= offset) if lower else (c - r >= offset)
    return tensor(np.stack([r[keep], c[keep]]), dtype=dtype, device=device)


@composite()
def tril_indices(row, col, offset=0, *, dtype=dtypes.int64, device=None, layout=None):
    """Coordinates (2 x N, row-major order) of the lower triangle of a row x col matrix."""
    return _tri_indices(row, col, offset, dtype, device, True)


@composite()
def triu_indices(row, col, offset=0, *, dtype=dtypes.int64, device=None, layout=None):
    """Coordinates (2 x N, row-major order) of the upper triangle of a row x col matrix."""
    return _tri_indices(row, col, offset, dtype, device, False)


@composite()
def unravel_index(indices, shape):
    """Flat indices as a tuple of coordinate tensors into a tensor of `shape`."""
    if not is_tensor_like(indices):
        from ..factories import tensor
        indices = tensor(indices)
    if indices.dtype.category > dtypes.Category.INT or indices.dtype is dtypes.bool_:
        raise TypeError(f"expected 'indices' to be integer dtype, but got {indices.dtype}")
    shape = [int(shape)] if isinstance(shape, numbers.Integral) else [int(s) for s in shape]
    if any(s < 0 for s in shape):
        raise ValueError("'shape' cannot have negative values, but got "
                         f"{tuple(shape)}")
    total = math.prod(shape)
    if hasattr(indices, "_array"):
        arr = indices._array
        if arr.size and (arr.min() < -total or arr.max() >= total):
            raise RuntimeError("'indices' must be in range [-{0}, {1})"
                               .format(total, total))
    flat = ops.convert_element_type(indices, dtypes.int64)
    flat = ops.remainder(flat, total) if total else flat
    coords = []
    for size in reversed(shape):
        coords.append(ops.remainder(flat, size) if size else flat)
        flat = ops.floor_divide(flat, size) if size else flat
    return tuple(reversed(coords))


# --- strided empty tensors --------------------------------------------------------------

def _strided_empty(size, stride, dtype, device, requires_grad):
    from ..factories import empty
    size, stride = [int(s) for s in size], [int(s) for s in stride]
    if len(size) != len(stride):
        raise RuntimeError(f"mismatch in length of strides and shape")
    needed = 0 if 0 in size else 1 + sum((n - 1) * s for n, s in zip(size, stride))
    storage = empty(needed, dtype=dtype, device=device)
    out = ops.as_strided(storage, size, stride, 0)
    if requires_grad:
        out = out.detach().requires_grad_(True)
    return out


@composite()
def empty_strided(size, stride, *, dtype=None, layout=None, device=None,
                  requires_grad=False, pin_memory=False):
    """An uninitialized tensor with exactly these strides."""
    return _strided_empty(size, stride, dtype, device, requires_grad)


@composite(function=False, method=True)
def new_empty_strided(self, size, stride, *, dtype=None, layout=None, device=None,
                      requires_grad=False, pin_memory=False):
    return _strided_empty(size, stride, dtype or self.dtype, device or self.device,
                          requires_grad)


@composite()
def empty_permuted(size, physical_layout, *, dtype=None, layout=None, device=None,
                   requires_grad=False, pin_memory=False):
    """An uninitialized tensor of `size` whose dims lie in memory in the order
    `physical_layout` (outermost first)."""
    from ..factories import empty
    size, order = [int(s) for s in size], [int(d) for d in physical_layout]
    if sorted(order) != list(range(len(size))):
        raise RuntimeError(f"Number of dimensions in size does not match the length of the "
                           f"physical_layout; or physical_layout is not a permutation: "
                           f"{order}")
    out = ops.permute(empty([size[d] for d in order], dtype=dtype, device=device),
                      list(np.argsort(order)))
    if requires_grad:
        out = out.detach().requires_grad_(True)
    return out
