"""Shape and movement ops. Ops tagged VIEW return numpy views sharing the input's
memory; eager dispatch turns them into tensors sharing the input's storage.

View meta rules also compute the output strides from the input's, so ShapeProp
reports the same strides eager execution produces.
"""
from __future__ import annotations

import math

import numpy as np

from ..symdim import TracedSize

from ..dtypes import int64
from ..errors import DTypeError, EmberIndexError, ShapeError
from ..meta import TensorMeta, check_memory_format_rank, contiguous_format, \
    contiguous_strides, suggest_memory_format, preserve_format
from ..registry import Tag, defop
from . import samples as S
from .rules import wrap_dim, wrap_dims, pointwise_memory_format

VIEW = {Tag.VIEW, Tag.SHAPE}


def flat_storage(arr: np.ndarray) -> np.ndarray:
    """The 1-D array over the whole buffer that `arr` views (its storage)."""
    base = arr
    while True:
        parent = base.base
        # np.lib.stride_tricks.as_strided keeps its source behind a holder object
        if parent is not None and not isinstance(parent, np.ndarray):
            parent = getattr(parent, "base", None)
        if not isinstance(parent, np.ndarray):
            break
        base = parent
    if base.ndim == 1:
        return base
    return base.reshape(-1, order="A")


def storage_offset_of(arr: np.ndarray) -> int:
    if arr.size == 0:
        return 0
    return (arr.ctypes.data - flat_storage(arr).ctypes.data) // arr.itemsize


def view_meta(self, shape, strides) -> TensorMeta:
    return TensorMeta(tuple(shape), self.dtype, str(self.device),
                      suggest_memory_format(tuple(shape), tuple(strides)), tuple(strides))


def infer_size(shape, numel: int) -> tuple[int, ...]:
    # int subclasses stay (a dynamic-shape trace's sizes keep what they are of)
    shape = [s if type(s) is not bool and isinstance(s, int) else int(s) for s in shape]
    if shape.count(-1) > 1:
        raise ShapeError("only one dimension can be inferred")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if known == 0 or numel % known:
            raise ShapeError(f"shape '{shape}' is invalid for input of size {numel}")
        shape[shape.index(-1)] = numel // known
    elif known != numel:
        raise ShapeError(f"shape '{shape}' is invalid for input of size {numel}")
    return tuple(shape)


def _contiguous_meta(self, shape):
    return TensorMeta(shape, self.dtype, str(self.device))


def _view_strides(self, shape):
    """Strides of `self` viewed as `shape`, or None when no view exists (numpy's rule)."""
    probe = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), tuple(self.shape),
                                            tuple(self.stride()))
    try:
        out = probe.reshape(shape, copy=False)
    except (ValueError, AttributeError):
        return None
    strides = tuple(s for s in out.strides)
    if any(isinstance(v, TracedSize) for v in (*self.shape, *self.stride(), *shape)):
        strides = _traced_strides(strides, shape, self.stride())
    return strides


def _traced_strides(strides, shape, old_strides) -> tuple:
    """A view's strides in a dynamic-shape trace: each numpy-computed value as the traced
    size it equals (the contiguous stride of `shape`, else one of the input's strides),
    so the trace knows how it depends on the dynamic sizes; the trace checks the
    result at other sizes."""
    from ..meta import contiguous_strides
    contiguous = contiguous_strides(tuple(shape))
    out = []
    for value, dense in zip(strides, contiguous):
        if isinstance(dense, TracedSize) and int(dense) == value:
            value = dense
        else:
            value = next((o for o in old_strides if isinstance(o, TracedSize) and
                          int(o) == value), value)
        out.append(value)
    return tuple(out)


def _view_meta_rule(self, size):
    shape = infer_size(size, math.prod(self.shape))
    strides = _view_strides(self, shape)
    if strides is None:
        raise ShapeError("view size is not compatible with input tensor's size and stride "
                         "(at least one dimension spans across two contiguous subspaces). "
                         "Use .reshape(...) instead.")
    return view_meta(self, shape, strides)


def _view_reference(x, size):
    shape = infer_size(size, x.size)
    try:
        return x.reshape(shape, copy=False)
    except ValueError:
        raise ShapeError("view size is not compatible with input tensor's size and stride "
                         "(at least one dimension spans across two contiguous subspaces). "
                         "Use .reshape(...) instead.") from None


view = defop(
    "view(Tensor self, int[] size) -> Tensor",
    saves=(),
    meta=_view_meta_rule, reference=_view_reference,
    derivative=lambda g, self, size: reshape(g, list(self.shape)),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), [4, 3])),
                         S.Sample((S.randn(rng, 2, 3, 4), [-1, 4])),
                         S.Sample((S.randn(rng), [1]))],
    torch_ref=lambda torch: lambda x, size: x.view(size),
)


def _reshape_meta(self, shape):
    out = infer_size(shape, math.prod(self.shape))
    strides = _view_strides(self, out)
    return view_meta(self, out, strides) if strides is not None else _contiguous_meta(self, out)


reshape = defop(
    "reshape(Tensor self, int[] shape) -> Tensor",
    saves=(),
    meta=_reshape_meta,
    reference=lambda x, shape: x.reshape(infer_size(shape, x.size)),
    derivative=lambda g, self, shape: reshape(g, list(self.shape)),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), [2, 6])),
                         S.Sample((S.randn(rng, 3, 4).T, [12])),
                         S.Sample((S.randn(rng, 5), [5, 1]))],
    torch_ref="torch.reshape",
    doc="A view when the strides allow one, else a copy (as in PyTorch).",
)


def _permute_meta(self, dims):
    dims = wrap_dims(dims, self.ndim)
    if len(dims) != self.ndim:
        raise ShapeError(f"number of dims don't match in permute: input has {self.ndim} dims, "
                         f"got {len(dims)}")
    stride = self.stride()
    return view_meta(self, [self.shape[d] for d in dims], [stride[d] for d in dims])


permute = defop(
    "permute(Tensor self, int[] dims) -> Tensor",
    saves=(),
    meta=_permute_meta,
    reference=lambda x, dims: np.transpose(x, wrap_dims(dims, x.ndim)),
    derivative=lambda g, self, dims: permute(g, list(np.argsort(wrap_dims(dims, self.ndim)))),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 3, 4), [2, 0, 1])),
                         S.Sample((S.randn(rng, 3, 4), [-1, 0]))],
    torch_ref="torch.permute",
)


def _transpose_dims(ndim, dim0, dim1):
    order = list(range(ndim))
    if ndim:
        a, b = wrap_dim(dim0, ndim), wrap_dim(dim1, ndim)
        order[a], order[b] = order[b], order[a]
    return order


transpose = defop(
    "transpose(Tensor self, int dim0, int dim1) -> Tensor",
    saves=(),
    meta=lambda self, dim0, dim1: _permute_meta(self, _transpose_dims(self.ndim, dim0, dim1)),
    reference=lambda x, dim0, dim1: np.transpose(x, _transpose_dims(x.ndim, dim0, dim1)),
    derivative=lambda g, self, dim0, dim1: transpose(g, dim0, dim1),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 3, 4), 0, 2)),
                         S.Sample((S.randn(rng, 3, 4), -1, -2))],
    torch_ref="torch.transpose",
)


def _expand_shape(self, size):
    size = list(size)
    if len(size) < self.ndim:
        raise ShapeError(f"the number of sizes provided ({len(size)}) must be greater or equal "
                         f"to the number of dimensions in the tensor ({self.ndim})")
    lead = len(size) - self.ndim
    out, strides = [], []
    in_strides = tuple(self.stride())
    for i, want in enumerate(size):
        if i < lead:
            if want < 0:
                raise ShapeError(f"the expanded size of the tensor (-1) isn't allowed in a "
                                 f"leading, non-existing dimension {i}")
            out.append(want)
            strides.append(0)
            continue
        have = self.shape[i - lead]
        if want == -1:
            want = have
        if have != want and have != 1:
            raise ShapeError(f"The expanded size of the tensor ({want}) must match the existing "
                             f"size ({have}) at non-singleton dimension {i}.  Target sizes: "
                             f"{size}.  Tensor sizes: {list(self.shape)}")
        out.append(want)
        strides.append(in_strides[i - lead] if have == want else 0)
    return out, strides


def _expand_reference(x, size):
    shape, strides = _expand_shape(_ArrayMeta(x), size)
    item = x.itemsize
    return np.lib.stride_tricks.as_strided(x, shape, [s * item for s in strides])


class _ArrayMeta:
    """A numpy array seen through the shape-rule interface (strides in elements)."""

    def __init__(self, a: np.ndarray):
        self.a = a
        self.shape = a.shape
        self.ndim = a.ndim

    def stride(self):
        return tuple(s // self.a.itemsize for s in self.a.strides)


expand = defop(
    "expand(Tensor self, int[] size) -> Tensor",
    saves=(),
    meta=lambda self, size: view_meta(self, *_expand_shape(self, size)),
    reference=_expand_reference,
    derivative=lambda g, self, size: g,        # fit_grad sums back to self's shape
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 1), [3, 4])),
                         S.Sample((S.randn(rng, 4), [2, 3, -1])),
                         S.Sample((S.randn(rng), [2]))],
    torch_ref=lambda torch: lambda x, size: x.expand(size),
)


def _restride(x, shape, strides):
    """A view of x with PyTorch's exact strides (numpy picks its own for size-1 dims)."""
    return np.lib.stride_tricks.as_strided(x, tuple(shape), tuple(s * x.itemsize
                                                                  for s in strides))


def _unsqueeze_shape_strides(self, dim):
    d = wrap_dim(dim, self.ndim + 1)
    shape, strides = list(self.shape), list(self.stride())
    new_stride = shape[d] * strides[d] if d < self.ndim else 1
    shape.insert(d, 1)
    strides.insert(d, new_stride)
    return shape, strides


unsqueeze = defop(
    "unsqueeze(Tensor self, int dim) -> Tensor",
    saves=(),
    meta=lambda self, dim: view_meta(self, *_unsqueeze_shape_strides(self, dim)),
    reference=lambda x, dim: _restride(x, *_unsqueeze_shape_strides(_ArrayMeta(x), dim)),
    derivative=lambda g, self, dim: reshape(g, list(self.shape)),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 1)),
                         S.Sample((S.randn(rng, 3), -1)), S.Sample((S.randn(rng), 0))],
    torch_ref="torch.unsqueeze",
)


def _squeeze_dims(self, dim):
    if dim is None:
        return tuple(i for i, s in enumerate(self.shape) if s == 1)
    if isinstance(dim, (list, tuple)) and not dim:
        return ()       # PyTorch: an empty dim list squeezes nothing (wrap_dims reads "all")
    dims = wrap_dims(dim if isinstance(dim, (list, tuple)) else [dim], self.ndim) \
        if self.ndim else ()
    return tuple(d for d in dims if self.shape[d] == 1)


def _squeeze_meta(self, dim):
    drop = _squeeze_dims(self, dim)
    keep = [i for i in range(self.ndim) if i not in drop]
    return view_meta(self, [self.shape[i] for i in keep], [self.stride()[i] for i in keep])


squeeze = defop(
    "squeeze(Tensor self, int[]? dim=None) -> Tensor",
    meta=_squeeze_meta,
    reference=lambda x, dim: np.squeeze(x, _squeeze_dims(_ArrayMeta(x), dim)),
    derivative=lambda g, self, dim: reshape(g, list(self.shape)),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 1, 4),)),
                         S.Sample((S.randn(rng, 1, 4, 1), 0)),
                         S.Sample((S.randn(rng, 3, 4), 1))],
    torch_ref="torch.squeeze",
)


def _as_strided_reference(x, size, stride, storage_offset):
    flat = flat_storage(x)
    offset = storage_offset_of(x) if storage_offset is None else storage_offset
    # an empty view reads nothing: any offset fits, as in torch
    needed = 0 if any(n == 0 for n in size) else \
        offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if needed > flat.size:
        raise ShapeError(f"setStorage: sizes {list(size)}, strides {list(stride)}, storage "
                         f"offset {offset} require {needed} elements, but the storage has "
                         f"{flat.size}")
    return np.lib.stride_tricks.as_strided(flat[offset:], tuple(size),
                                           tuple(s * x.itemsize for s in stride))


def _as_strided_grad(g, self, size, stride, storage_offset):
    """Each element of self receives the sum of g over the output positions that read its
    storage slot: overlapping windows (stride 0, stride < size) add up."""
    from .creation import full
    from .joining import index, index_put
    flat = _positions(list(size), list(stride), storage_offset)
    if math.prod(self.shape) == 0:
        return full(list(self.shape), 0, dtype=g.dtype)
    geometry = _view_geometry(self)
    if geometry is None:                 # self fills its storage from 0 in order
        zeros = full([math.prod(self.shape)], 0, dtype=g.dtype)
        return reshape(index_put(zeros, [flat], reshape(g, [-1]), True), list(self.shape))
    # self is a view (a partial one, or strided): the gradient of the storage, read at
    # the positions self's elements occupy; storage outside self gets none
    own_offset, own_strides = geometry
    own = _positions(list(self.shape), own_strides, own_offset)
    span = lambda shape, strides, off: off + 1 + sum(  # noqa: E731
        (n - 1) * st for n, st in zip(shape, strides))
    length = max(span(self.shape, own_strides, own_offset),
                 span(size, stride, storage_offset) if all(n > 0 for n in size) else 0)
    storage_grad = index_put(full([length], 0, dtype=g.dtype), [flat], reshape(g, [-1]), True)
    return reshape(index(storage_grad, [own]), list(self.shape))


def _positions(size, stride, storage_offset):
    """The storage index of each element of a strided view, flattened in order."""
    from .creation import arange, full
    flat = full([], storage_offset, dtype=int64)
    for k, (n, st) in enumerate(zip(size, stride)):
        steps = arange(0, n, dtype=int64) * st
        flat = flat + reshape(steps, [n if j == k else 1 for j in range(len(size))])
    return reshape(expand(flat, list(size)), [-1])


def _own_offset(self) -> int:
    """as_strided's default storage_offset: self's own (0 for traced values)."""
    return self.storage_offset() if callable(getattr(self, "storage_offset", None)) else 0


def _view_geometry(self):
    """(storage offset, strides) of `self` when it is not its storage read from 0 in
    order, else None. Traced values (no storage offset) count as contiguous from 0."""
    if not callable(getattr(self, "storage_offset", None)):
        return None
    offset, strides = self.storage_offset(), tuple(self.stride())
    if offset == 0 and strides == contiguous_strides(tuple(self.shape)):
        return None
    return offset, strides


as_strided = defop(
    "as_strided(Tensor self, int[] size, int[] stride, int? storage_offset=None) -> Tensor",
    meta=lambda self, size, stride, storage_offset: view_meta(self, size, stride),
    reference=_as_strided_reference,
    derivative=lambda g, self, size, stride, storage_offset: _as_strided_grad(
        g, self, size, stride, _own_offset(self) if storage_offset is None else storage_offset),
    tags=VIEW, method=True,     # saves self: the rule reads its storage offset
    samples=lambda rng: [S.Sample((S.randn(rng, 4, 4), [2, 2], [4, 1], 5)),
                         S.Sample((S.randn(rng, 9), [3, 3], [3, 1])),
                         S.Sample((S.randn(rng, 6), [2, 3], [1, 1])),      # overlapping
                         S.Sample((S.randn(rng, 5), [2, 2, 2], [1, 1, 2], 0))],
    torch_ref="torch.as_strided",
)


def _storage_offset(t) -> int:
    """A tensor's offset into its storage; traced values (no storage) count as 0."""
    get = getattr(t, "storage_offset", None)
    return get() if callable(get) else 0


def _strided_positions(size, stride, offset, like):
    """int64 tensor of `size`: the storage position each element of that geometry reads."""
    pos = full([], offset, dtype=int64, device=like.device)
    for d, (n, st) in enumerate(zip(size, stride)):
        steps = arange(0, n, dtype=int64, device=like.device) * st
        pos = unsqueeze(pos, -1) + reshape(steps, [1] * d + [n])
    return reshape(pos, [-1])


def _storage_extent(size, stride, offset) -> int:
    if any(n == 0 for n in size):
        return offset
    return offset + 1 + sum((n - 1) * st for n, st in zip(size, stride))


def _as_strided_grad(g, self, size, stride, storage_offset):
    """PyTorch's storage-level rule: add g into a zero storage at the output's positions
    (overlapping outputs add up), then read the input's own positions back (its storage
    offset included); a storage element the input shows several times (an expanded
    input) gives each copy an equal share."""
    in_size, in_stride = list(self.shape), list(self.stride())
    in_offset = _storage_offset(self)
    out_offset = in_offset if storage_offset is None else storage_offset
    extent = max(_storage_extent(size, stride, out_offset),
                 _storage_extent(in_size, in_stride, in_offset))
    out_pos = _strided_positions(size, stride, out_offset, g)
    in_pos = _strided_positions(in_size, in_stride, in_offset, g)
    storage = index_add(full([extent], 0, dtype=g.dtype, device=g.device), 0, out_pos,
                        reshape(g, [-1]))
    grad = index_select(storage, 0, in_pos)
    if any(st == 0 and n > 1 for n, st in zip(in_size, in_stride)) or \
            _storage_extent(in_size, in_stride, 0) < math.prod(in_size):
        ones = full([in_pos.shape[0]], 1, dtype=g.dtype, device=g.device)
        copies = index_add(full([extent], 0, dtype=g.dtype, device=g.device), 0, in_pos, ones)
        grad = grad / index_select(copies, 0, in_pos)
    return reshape(grad, in_size)


def _as_strided_scatter_reference(x, src, size, stride, storage_offset):
    out = np.array(x, order="K", copy=True)
    target = np.lib.stride_tricks.as_strided(flat_storage(out)[storage_offset or 0:],
                                             tuple(size), tuple(s * out.itemsize for s in stride))
    target[...] = src
    return out


def _as_strided_scatter_meta(self, src, size, stride, storage_offset):
    offset = storage_offset or 0
    needed = 0 if any(n == 0 for n in size) else \
        offset + 1 + sum((n - 1) * s for n, s in zip(size, stride))
    if needed > math.prod(self.shape):
        raise ShapeError(f"setStorage: sizes {list(size)}, strides {list(stride)}, storage "
                         f"offset {offset} require {needed} elements, but the storage has "
                         f"{math.prod(self.shape)}")
    if tuple(src.shape) != tuple(size):
        raise ShapeError(f"expected src to have a size equal to the slice of self. src size = "
                         f"{list(src.shape)}, slice size = {list(size)}")
    return TensorMeta(tuple(self.shape), self.dtype, str(self.device),
                      pointwise_memory_format([self]))


as_strided_scatter = defop(
    "as_strided_scatter(Tensor self, Tensor src, int[] size, int[] stride, "
    "int? storage_offset=None) -> Tensor",
    meta=_as_strided_scatter_meta,
    reference=_as_strided_scatter_reference,
    derivative=lambda g, self, src, size, stride, storage_offset: (
        as_strided_scatter(g, zeros_like(src), size, stride, storage_offset),
        as_strided(contiguous(g), size, stride, storage_offset)),
    tags={Tag.SHAPE}, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 4, 4), S.randn(rng, 2, 2), [2, 2], [4, 1], 5)),
                         S.Sample((S.randn(rng, 3, 3), S.randn(rng, 2, 2), [2, 2], [1, 2]))],
    torch_ref="torch.as_strided_scatter",
    torch_grad_differs="torch 2.13 returns the gradient w.r.t. self masked the wrong way "
                       "round (ones inside the scattered window); ours matches finite "
                       "differences: ones outside it",
)


def _clone_meta(self, memory_format=preserve_format):
    check_memory_format_rank(self.shape, memory_format)
    fmt = pointwise_memory_format([self]) if memory_format in (None, preserve_format) \
        else memory_format
    return TensorMeta(tuple(self.shape), self.dtype, str(self.device), fmt)


clone = defop(
    "clone(Tensor self, *, MemoryFormat? memory_format=None) -> Tensor",
    saves=(),
    meta=_clone_meta,
    reference=lambda x, memory_format: np.array(x, copy=True),
    derivative=lambda g, self, memory_format: g,
    tags={Tag.SHAPE}, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4),)),
                         S.Sample((S.randn(rng, 2, 3, 4, 5),),
                                  {"memory_format": "channels_last"})],
    torch_ref="torch.clone",
)

contiguous = defop(
    "contiguous(Tensor self, *, MemoryFormat memory_format='contiguous_format') -> Tensor",
    saves=(),
    meta=lambda self, memory_format: _clone_meta(self, memory_format),
    reference=lambda x, memory_format: np.array(x, copy=True),
    derivative=lambda g, self, memory_format: g,
    tags={Tag.SHAPE}, method=False,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4).T,))],
    torch_ref=lambda torch: lambda x, **kw: x.contiguous(**kw),
    doc="Graph form of Tensor.contiguous (which returns self when already contiguous).",
)

from .creation import arange, full, zeros_like  # noqa: E402 - derivative rules use it
from ..dtypes import int64  # noqa: E402


# --- strided views: select, slice, narrow, diagonal, unfold, split, ... ---------------

def _zeros(self):
    """Zeros shaped like `self` (a tensor or the metadata saved for it)."""
    from .creation import full
    return full(list(self.shape), 0, dtype=self.dtype)


def _dim_slice(ndim, dim, item):
    return (slice(None),) * dim + (item, Ellipsis)


def _norm_select(self, dim, index):
    if self.ndim == 0:
        raise EmberIndexError("select() cannot be applied to a 0-dim tensor.")
    d = wrap_dim(dim, self.ndim)
    size = self.shape[d]
    if not -size <= index < size:
        raise EmberIndexError(f"index {index} is out of bounds for dimension {d} with size {size}")
    return d, index % size


def _select_meta(self, dim, index):
    d, _ = _norm_select(self, dim, index)
    st = list(self.stride())
    return view_meta(self, [s for i, s in enumerate(self.shape) if i != d],
                     [s for i, s in enumerate(st) if i != d])


def _select_ref(x, dim, index):
    d, i = _norm_select(_ArrayMeta(x), dim, index)
    return x[_dim_slice(x.ndim, d, i)]


select = defop(
    "select(Tensor self, int dim, int index) -> Tensor",
    saves=(),
    meta=_select_meta, reference=_select_ref,
    derivative=lambda g, self, dim, index: select_scatter(_zeros(self), g, dim, index),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 1, 2)),
                         S.Sample((S.randn(rng, 5), 0, -1)),
                         S.Sample((S.randn(rng, 2, 3, 4), -1, 0))],
    torch_ref="torch.select",
)


def _norm_slice(self, dim, start, end, step):
    if self.ndim == 0:
        raise EmberIndexError("slice() cannot be applied to a 0-dim tensor.")
    if step is None:
        step = 1
    if step <= 0:
        raise ShapeError("slice step must be positive")
    d = wrap_dim(dim, self.ndim)
    n = self.shape[d]
    start = 0 if start is None else start
    end = n if end is None else end
    if start < 0:
        start += n
    if end < 0:
        end += n
    start = min(max(start, 0), n)
    end = min(max(end, start), n)
    return d, start, end, step


def _slice_shape_strides(self, dim, start, end, step):
    d, start, end, step = _norm_slice(self, dim, start, end, step)
    shape, st = list(self.shape), list(self.stride())
    shape[d] = (end - start + step - 1) // step
    st[d] = st[d] * step
    return shape, st


def _slice_ref(x, dim, start, end, step):
    d, start, end, step = _norm_slice(_ArrayMeta(x), dim, start, end, step)
    out = x[_dim_slice(x.ndim, d, slice(start, end, step))]
    if out.size == 0:        # numpy normalizes empty strides; keep PyTorch's
        strides = list(x.strides)
        strides[d] *= step
        out = np.lib.stride_tricks.as_strided(out, out.shape, strides)
    return out


slice_op = defop(
    "slice(Tensor self, int dim=0, int? start=None, int? end=None, int step=1) -> Tensor",
    saves=(),
    meta=lambda self, dim, start, end, step: view_meta(
        self, *_slice_shape_strides(self, dim, start, end, step)),
    reference=_slice_ref,
    derivative=lambda g, self, dim, start, end, step: slice_scatter(
        _zeros(self), g, dim, start, end, step),
    tags=VIEW,
    samples=lambda rng: [S.Sample((S.randn(rng, 5, 4), 0, 1, 4)),
                         S.Sample((S.randn(rng, 3, 7), 1, -6, None, 2)),
                         S.Sample((S.randn(rng, 6), 0, None, 100, 3)),
                         S.Sample((S.randn(rng, 2, 3), 1, -1, 100))],
    torch_ref=lambda torch: lambda x, *a: torch.ops.aten.slice.Tensor(x, *a),
)


def _narrow_args(self, dim, start, length):
    if self.ndim == 0:
        raise ShapeError("narrow() cannot be applied to a 0-dim tensor.")
    if not isinstance(start, int) or isinstance(start, bool):
        raise DTypeError("start must be an 0-dim integral Tensor.")
    d = wrap_dim(dim, self.ndim)
    n = self.shape[d]
    if not -n <= start <= n:
        raise EmberIndexError(f"start out of range (expected to be in range of [{-n}, {n}], "
                              f"but got {start})")
    if length < 0:
        raise ShapeError("narrow(): length must be non-negative.")
    if start < 0:
        start += n
    if start + length > n:
        raise ShapeError(f"start ({start}) + length ({length}) exceeds dimension size ({n}).")
    return d, start, start + length


narrow = defop(
    "narrow(Tensor self, int dim, int start, int length) -> Tensor",
    saves=(),
    meta=lambda self, dim, start, length: view_meta(
        self, *_slice_shape_strides(self, *_narrow_args(self, dim, start, length), 1)),
    reference=lambda x, dim, start, length: _slice_ref(
        x, *_narrow_args(_ArrayMeta(x), dim, start, length), 1),
    derivative=lambda g, self, dim, start, length: slice_scatter(
        _zeros(self), g, *_narrow_args(self, dim, start, length), 1),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 5, 4), 0, 1, 3)),
                         S.Sample((S.randn(rng, 3, 7), -1, -4, 2))],
    torch_ref="torch.narrow",
)


t = defop(
    "t(Tensor self) -> Tensor",
    saves=(),
    meta=lambda self: _permute_meta(self, list(range(self.ndim))[::-1]) if self.ndim <= 2
    else _raise(ShapeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                           f"{self.ndim}D")),
    reference=lambda x: x.T,
    derivative=lambda g, self: t(g),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4),)), S.Sample((S.randn(rng, 5),)),
                         S.Sample((S.randn(rng),))],
    torch_ref="torch.t",
)


def _raise(err):
    raise err


def _flatten_shape(self, start_dim, end_dim):
    if self.ndim == 0:
        return [1]
    s, e = wrap_dim(start_dim, self.ndim), wrap_dim(end_dim, self.ndim)
    if s > e:
        raise ShapeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = list(self.shape)
    return shape[:s] + [math.prod(shape[s:e + 1])] + shape[e + 1:]


flatten = defop(
    "flatten(Tensor self, int start_dim=0, int end_dim=-1) -> Tensor",
    saves=(),
    meta=lambda self, start_dim, end_dim: _reshape_meta(self, _flatten_shape(self, start_dim,
                                                                             end_dim)),
    reference=lambda x, start_dim, end_dim: x.reshape(_flatten_shape(x, start_dim, end_dim)),
    derivative=lambda g, self, start_dim, end_dim: reshape(g, list(self.shape)),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 3, 4),)),
                         S.Sample((S.randn(rng, 2, 3, 4, 5), 1, 2)),
                         S.Sample((S.randn(rng, 3, 4).T, 0, 1)),
                         S.Sample((S.randn(rng),))],
    torch_ref="torch.flatten",
)


def _unflatten_shape(self, dim, sizes):
    d = wrap_dim(dim, self.ndim)
    sizes = infer_size(sizes, self.shape[d])
    shape = list(self.shape)
    return shape[:d] + list(sizes) + shape[d + 1:]


unflatten = defop(
    "unflatten(Tensor self, int dim, int[] sizes) -> Tensor",
    saves=(),
    meta=lambda self, dim, sizes: _reshape_meta(self, _unflatten_shape(self, dim, sizes)),
    reference=lambda x, dim, sizes: x.reshape(_unflatten_shape(x, dim, sizes)),
    derivative=lambda g, self, dim, sizes: reshape(g, list(self.shape)),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 12), 1, [3, -1])),
                         S.Sample((S.randn(rng, 6, 5), 0, [2, 3]))],
    torch_ref="torch.unflatten",
)


def _movedim_dims(dims, ndim, which):
    dims = [dims] if isinstance(dims, int) else list(dims)
    wrapped = [wrap_dim(d, ndim) for d in dims]
    if len(set(wrapped)) != len(wrapped):
        raise ShapeError(f"movedim: repeated dim in `{which}` ({dims})")
    return wrapped


def _movedim_order(ndim, source, destination):
    src = _movedim_dims(source, ndim, "source")
    dst = _movedim_dims(destination, ndim, "destination")
    if len(src) != len(dst):
        raise ShapeError(f"movedim: Invalid source or destination dims: source ({list(src)} dims)"
                         f" should contain the same number of dims as destination "
                         f"({list(dst)} dims)")
    if ndim == 0:                 # a 0-d tensor takes dim 0 / -1 and stays as it is
        return []
    order = [-1] * ndim
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(i for i in range(ndim) if i not in src)
    return [o if o >= 0 else next(rest) for o in order]


movedim = defop(
    "movedim(Tensor self, int[] source, int[] destination) -> Tensor",
    saves=(),
    meta=lambda self, source, destination: _permute_meta(
        self, _movedim_order(self.ndim, source, destination)),
    reference=lambda x, source, destination: np.transpose(
        x, _movedim_order(x.ndim, source, destination)),
    derivative=lambda g, self, source, destination: movedim(g, destination, source),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 3, 4), 0, 2)),
                         S.Sample((S.randn(rng, 2, 3, 4, 5), [0, 3], [2, 0]))],
    torch_ref="torch.movedim",
)


def _alias_of_transpose(name):
    return defop(
        f"{name}(Tensor self, int dim0, int dim1) -> Tensor",
        saves=(),
        meta=lambda self, dim0, dim1: _permute_meta(self, _transpose_dims(self.ndim, dim0, dim1)),
        reference=lambda x, dim0, dim1: np.transpose(x, _transpose_dims(x.ndim, dim0, dim1)),
        derivative=lambda g, self, dim0, dim1: transpose(g, dim0, dim1),
        tags=VIEW, method=True,
        samples=lambda rng: [S.Sample((S.randn(rng, 2, 3, 4), 0, 2))],
        torch_ref=f"torch.{name}", doc="Alias of transpose.")


swapaxes = _alias_of_transpose("swapaxes")
swapdims = _alias_of_transpose("swapdims")


def _diag_geometry(self, offset, dim1, dim2):
    d1, d2 = wrap_dim(dim1, self.ndim), wrap_dim(dim2, self.ndim)
    if d1 == d2:
        raise ShapeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    shape, st = list(self.shape), list(self.stride())
    if offset >= 0:
        n = max(min(shape[d1], shape[d2] - offset), 0)
        off = offset * st[d2] if n else 0
    else:
        n = max(min(shape[d1] + offset, shape[d2]), 0)
        off = -offset * st[d1] if n else 0
    keep = [i for i in range(self.ndim) if i not in (d1, d2)]
    return ([shape[i] for i in keep] + [n], [st[i] for i in keep] + [st[d1] + st[d2]],
            off, d1, d2)


def _diagonal_ref(x, offset, dim1, dim2):
    shape, strides, off, d1, d2 = _diag_geometry(_ArrayMeta(x), offset, dim1, dim2)
    if off:   # move the start with basic slicing (a view), then restride
        if offset >= 0:
            x = x[_dim_slice(x.ndim, d2, slice(offset, None))]
        else:
            x = x[_dim_slice(x.ndim, d1, slice(-offset, None))]
    return np.lib.stride_tricks.as_strided(x, shape, [s * x.itemsize for s in strides])


diagonal = defop(
    "diagonal(Tensor self, int offset=0, int dim1=0, int dim2=1) -> Tensor",
    saves=(),
    meta=lambda self, offset, dim1, dim2: view_meta(
        self, *_diag_geometry(self, offset, dim1, dim2)[:2]),
    reference=_diagonal_ref,
    derivative=lambda g, self, offset, dim1, dim2: diagonal_scatter(
        _zeros(self), g, offset, dim1, dim2),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 4, 4),)),
                         S.Sample((S.randn(rng, 3, 5), 2)),
                         S.Sample((S.randn(rng, 3, 5), -1)),
                         S.Sample((S.randn(rng, 2, 3, 4), 1, 2, 0))],
    torch_ref="torch.diagonal",
)


def _unfold_geometry(self, dimension, size, step):
    shape, st = list(self.shape), list(self.stride())
    if self.ndim == 0:
        shape, st, d = [1], [1], 0
    else:
        d = wrap_dim(dimension, self.ndim)
    if size > shape[d]:
        raise ShapeError(f"maximum size for tensor at dimension {d} is {shape[d]} but size is "
                         f"{size}")
    if size < 0:
        raise ShapeError(f"size is {size} but must be >= 0")
    if step <= 0:
        raise ShapeError(f"step is {step} but must be > 0")
    n = (shape[d] - size) // step + 1
    new_shape = shape[:d] + [n] + shape[d + 1:] + [size]
    new_st = st[:d] + [st[d] * step] + st[d + 1:] + [st[d]]
    if self.ndim == 0:
        return [size], [1]
    return new_shape, new_st


unfold = defop(
    "unfold(Tensor self, int dimension, int size, int step) -> Tensor",
    saves=(),
    meta=lambda self, dimension, size, step: view_meta(
        self, *_unfold_geometry(self, dimension, size, step)),
    reference=lambda x, dimension, size, step: np.lib.stride_tricks.as_strided(
        x, *[(s if i == 0 else [v * x.itemsize for v in s]) for i, s in
             enumerate(_unfold_geometry(_ArrayMeta(x), dimension, size, step))]),
    derivative=lambda g, self, dimension, size, step: unfold_backward(
        g, list(self.shape), dimension, size, step),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 7), 0, 3, 2)),
                         S.Sample((S.randn(rng, 3, 8), 1, 2, 3)),
                         S.Sample((S.randn(rng, 5, 2), 0, 2, 1))],
    torch_ref=lambda torch: lambda x, *a: x.unfold(*a),
)


def _unfold_backward_ref(g, input_sizes, dim, size, step):
    out = np.zeros(tuple(input_sizes), g.dtype)
    if len(input_sizes) == 0:
        return out + g.reshape(-1)[:1].reshape(()) if g.size else out
    d = wrap_dim(dim, len(input_sizes))
    n = g.shape[d]
    gm = np.moveaxis(g, (d, g.ndim - 1), (0, 1))          # [n, size, ...rest]
    om = np.moveaxis(out, d, 0)
    for i in range(n):
        om[i * step:i * step + size] += gm[i]
    return out


unfold_backward = defop(
    "unfold_backward(Tensor grad_in, int[] input_sizes, int dim, int size, int step) -> Tensor",
    saves=(),
    meta=lambda grad_in, input_sizes, dim, size, step: TensorMeta(
        tuple(input_sizes), grad_in.dtype, str(grad_in.device)),
    reference=_unfold_backward_ref,
    derivative=lambda g, grad_in, input_sizes, dim, size, step: unfold(g, dim, size, step),
    tags={Tag.SHAPE},
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 3), [7], 0, 3, 2)),
                         S.Sample((S.randn(rng, 3, 3, 2), [3, 8], 1, 2, 3)),
                         S.Sample((S.randn(rng, 4, 2, 2), [5, 2], 0, 2, 1))],
    torch_ref=lambda torch: torch.ops.aten.unfold_backward,
)


def _unbind_meta(self, dim):
    d = wrap_dim(dim, self.ndim)
    return [_select_meta(self, d, i) for i in range(self.shape[d])]


unbind = defop(
    "unbind(Tensor self, int dim=0) -> Tensor[]",
    saves=(),
    meta=_unbind_meta,
    reference=lambda x, dim: [_select_ref(x, dim, i) for i in range(x.shape[wrap_dim(dim, x.ndim)])],
    derivative=lambda g, self, dim: _stack(list(g), dim),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4),)), S.Sample((S.randn(rng, 2, 3, 2), -1))],
    torch_ref="torch.unbind",
)


def _split_bounds(self, split_size, dim):
    d = wrap_dim(dim, self.ndim)
    n = self.shape[d]
    if isinstance(split_size, (list, tuple)):
        if sum(split_size) != n:
            raise ShapeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                             f"(input tensor's size at dimension {d}), but got split_sizes="
                             f"{list(split_size)}")
        bounds, at = [], 0
        for s in split_size:
            bounds.append((at, at + s))
            at += s
        return d, bounds
    if split_size <= 0 and n:
        raise ShapeError(f"split_size can only be 0 if dimension size is 0, but got dimension "
                         f"size of {n}")
    if n == 0:
        return d, [(0, 0)]
    return d, [(i, min(i + split_size, n)) for i in range(0, n, split_size)]


def _split_meta(self, split_size, dim):
    d, bounds = _split_bounds(self, split_size, dim)
    return [view_meta(self, *_slice_shape_strides(self, d, a, b, 1)) for a, b in bounds]


split = defop(
    "split(Tensor self, int[] split_size, int dim=0) -> Tensor[]",
    saves=(),
    meta=_split_meta,
    reference=lambda x, split_size, dim: [
        _slice_ref(x, d, a, b, 1) for d, bs in [_split_bounds(_ArrayMeta(x), split_size, dim)]
        for a, b in bs],
    derivative=lambda g, self, split_size, dim: _cat(list(g), dim),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 7, 3), 3)),
                         S.Sample((S.randn(rng, 3, 6), [1, 2, 3], 1)),
                         S.Sample((S.randn(rng, 4, 2), 2, -2))],
    torch_ref="torch.split",
)


def _chunk_size(self, chunks, dim):
    if chunks <= 0:
        raise ShapeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    n = self.shape[wrap_dim(dim, self.ndim)]
    return max(-(-n // chunks), 1) if n else 1


chunk = defop(
    "chunk(Tensor self, int chunks, int dim=0) -> Tensor[]",
    saves=(),
    meta=lambda self, chunks, dim: _split_meta(self, _chunk_size(self, chunks, dim), dim),
    reference=lambda x, chunks, dim: [
        _slice_ref(x, d, a, b, 1) for d, bs in
        [_split_bounds(_ArrayMeta(x), _chunk_size(_ArrayMeta(x), chunks, dim), dim)]
        for a, b in bs],
    derivative=lambda g, self, chunks, dim: _cat(list(g), dim),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 7, 3), 3)),
                         S.Sample((S.randn(rng, 3, 6), 4, 1))],
    torch_ref="torch.chunk",
)


def _as_meta(name, shape_of_other, deriv):
    return defop(
        f"{name}(Tensor self, Tensor other) -> Tensor",
        saves=(),
        meta=lambda self, other: OPS_BY_NAME[name.replace("_as", "")].meta(
            self, list(other.shape)),
        reference=lambda x, other: OPS_BY_NAME[name.replace("_as", "")].reference(
            x, list(other.shape)),
        derivative=deriv,
        tags=VIEW, method=True,
        samples=shape_of_other, torch_ref=lambda torch: lambda x, o: getattr(x, name)(o))


OPS_BY_NAME = {"expand": expand, "view": view, "reshape": reshape}
expand_as = _as_meta("expand_as", lambda rng: [
    S.Sample((S.randn(rng, 3, 1), S.randn(rng, 2, 3, 4)))], lambda g, self, other: (g, None))
view_as = _as_meta("view_as", lambda rng: [
    S.Sample((S.randn(rng, 3, 4), S.randn(rng, 2, 6)))],
    lambda g, self, other: (reshape(g, list(self.shape)), None))
reshape_as = _as_meta("reshape_as", lambda rng: [
    S.Sample((S.randn(rng, 3, 4).T, S.randn(rng, 12)))],
    lambda g, self, other: (reshape(g, list(self.shape)), None))


def _stack(tensors, dim):
    from .joining import stack
    return stack(tensors, dim)


def index_add(*a, **k):
    from .joining import index_add as op
    return op(*a, **k)


def index_select(*a, **k):
    from .joining import index_select as op
    return op(*a, **k)


def _cat(tensors, dim):
    from .joining import cat
    return cat(tensors, dim)


def slice_scatter(*a, **k):
    from .joining import slice_scatter as op
    return op(*a, **k)


def select_scatter(*a, **k):
    from .joining import select_scatter as op
    return op(*a, **k)


def diagonal_scatter(*a, **k):
    from .joining import diagonal_scatter as op
    return op(*a, **k)
