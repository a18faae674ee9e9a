"""Shape and movement ops. Ops tagged VIEW return numpy views sharing the input's
memory; eager dispatch turns them into tensors sharing the input's storage.

View meta rules also compute the output strides from the input's, so ShapeProp
reports the same strides eager execution produces.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..meta import TensorMeta, contiguous_format, suggest_memory_format, preserve_format
from ..registry import Tag, defop
from . import samples as S
from .rules import wrap_dim, wrap_dims, pointwise_memory_format

VIEW = {Tag.VIEW, Tag.SHAPE}


def flat_storage(arr: np.ndarray) -> np.ndarray:
    """The 1-D array over the whole buffer that `arr` views (its storage)."""
    base = arr
    while isinstance(base.base, np.ndarray):
        base = base.base
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
    shape = [int(s) for s in shape]
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
    return tuple(s for s in out.strides)


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
    reference=lambda x, dim: np.expand_dims(x, wrap_dim(dim, x.ndim + 1)),
    derivative=lambda g, self, dim: reshape(g, list(self.shape)),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 1)),
                         S.Sample((S.randn(rng, 3), -1)), S.Sample((S.randn(rng), 0))],
    torch_ref="torch.unsqueeze",
)


def _squeeze_dims(self, dim):
    if dim is None:
        return tuple(i for i, s in enumerate(self.shape) if s == 1)
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
    needed = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
    if any(n == 0 for n in size):
        needed = offset
    if needed > flat.size:
        raise ShapeError(f"setStorage: sizes {list(size)}, strides {list(stride)}, storage "
                         f"offset {offset} require {needed} elements, but the storage has "
                         f"{flat.size}")
    return np.lib.stride_tricks.as_strided(flat[offset:], tuple(size),
                                           tuple(s * x.itemsize for s in stride))


as_strided = defop(
    "as_strided(Tensor self, int[] size, int[] stride, int? storage_offset=None) -> Tensor",
    meta=lambda self, size, stride, storage_offset: view_meta(self, size, stride),
    reference=_as_strided_reference,
    derivative=lambda g, self, size, stride, storage_offset: as_strided_scatter(
        zeros_like(self, memory_format=contiguous_format), g, size, stride,
        storage_offset or 0),
    tags=VIEW, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 4, 4), [2, 2], [4, 1], 5)),
                         S.Sample((S.randn(rng, 9), [3, 3], [3, 1]))],
    torch_ref="torch.as_strided",
)


def _as_strided_scatter_reference(x, src, size, stride, storage_offset):
    out = np.array(x, order="K", copy=True)
    target = np.lib.stride_tricks.as_strided(flat_storage(out)[storage_offset or 0:],
                                             tuple(size), tuple(s * out.itemsize for s in stride))
    target[...] = src
    return out


as_strided_scatter = defop(
    "as_strided_scatter(Tensor self, Tensor src, int[] size, int[] stride, "
    "int? storage_offset=None) -> Tensor",
    meta=lambda self, src, size, stride, storage_offset: TensorMeta(
        tuple(self.shape), self.dtype, str(self.device), pointwise_memory_format([self])),
    reference=_as_strided_scatter_reference,
    derivative=lambda g, self, src, size, stride, storage_offset: (
        as_strided_scatter(g, zeros_like(src), size, stride, storage_offset),
        as_strided(contiguous(g), size, stride, storage_offset)),
    tags={Tag.SHAPE}, method=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 4, 4), S.randn(rng, 2, 2), [2, 2], [4, 1], 5))],
    torch_ref="torch.as_strided_scatter",
    torch_grad_differs="torch 2.13 returns the gradient w.r.t. self masked the wrong way "
                       "round (ones inside the scattered window); ours matches finite "
                       "differences: ones outside it",
)


def _clone_meta(self, memory_format=preserve_format):
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

from .creation import zeros_like  # noqa: E402 - derivative rules use it
