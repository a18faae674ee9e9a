"""Tensor.__getitem__ / __setitem__: PyTorch's (NumPy's) indexing, built from ops.

Basic indices (ints, slices with positive steps, None, Ellipsis) become the view ops
`select`, `slice` and `unsqueeze`, so the result shares storage and autograd sees
ordinary op calls. Advanced indices (integer/bool tensors, lists, arrays, Python bools)
are collected with the dims they apply to and handed to the `index` op in one call,
which applies NumPy's rule (separated advanced indices move to the front). Writes go
through `copy_` of the basic view, or `index_put_` on it when there are advanced
indices, so they bump versions and rebase autograd history like any in-place op.
"""
from __future__ import annotations

import operator
import warnings

import numpy as np

from ..ir import dtypes
from ..ir.errors import EmberIndexError, user_stacklevel
from ..ir.ops import OPS_NS as ops
from .tensor import Tensor


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_tensor(v) -> bool:
    """A Tensor, or a tensor being traced into a graph (same indexing semantics)."""
    return isinstance(v, Tensor) or getattr(v, "is_symbolic", False)


def _as_index_tensor(v) -> Tensor:
    from .factories import tensor
    if _is_tensor(v):
        t = v
    else:
        arr = np.asarray(v)
        if arr.size == 0 and arr.dtype.kind not in "biu":
            arr = arr.astype(np.int64)
        t = tensor(arr)
    if t.dtype.category > dtypes.Category.INT:
        raise EmberIndexError("tensors used as indices must be long, int, byte or bool tensors")
    if t.dtype is dtypes.uint8:
        warnings.warn("indexing with dtype ember.uint8 is now deprecated, please use a dtype "
                      "ember.bool instead.", UserWarning, stacklevel=user_stacklevel())
    return t


def _sequence_as_tuple(index) -> bool:
    """torch's (and old NumPy's) rule for a list index: one holding a tensor, a sequence,
    a slice, None or Ellipsis is read as a tuple of indices (`t[[0, slice(None)]]` is
    `t[0, :]`), with a deprecation warning; a list of numbers is one index tensor."""
    if not isinstance(index, list) or len(index) >= 32:
        return False
    return any(_is_tensor(v) or v is None or v is Ellipsis or isinstance(
        v, (slice, list, tuple, np.ndarray)) for v in index)


def _normalize(index) -> list:
    """The index as a list of items: int, slice, None, Ellipsis, bool, or Tensor."""
    if _sequence_as_tuple(index):
        warnings.warn("Using a non-tuple sequence for multidimensional indexing is "
                      "deprecated; use x[tuple(seq)] instead of x[seq]. A later version "
                      "will read it as a tensor index, x[tensor(seq)], which will result "
                      "either in an error or a different result", UserWarning,
                      stacklevel=user_stacklevel())
        index = tuple(index)
    if not isinstance(index, tuple):
        index = (index,)
    items = []
    for v in index:
        if v is None or v is Ellipsis or isinstance(v, slice):
            items.append(v)
        elif isinstance(v, (bool, np.bool_)):
            items.append(bool(v))
        elif _is_int(v):
            items.append(int(v))
        elif getattr(v, "is_symbolic", False):
            items.append(_traced_index(v))
        elif isinstance(v, Tensor):
            if v.ndim == 0 and v.dtype is dtypes.bool_:
                items.append(bool(v.item()))
            elif v.ndim == 0 and v.dtype.category <= dtypes.Category.INT and \
                    v.dtype is not dtypes.bool_:
                items.append(int(v.item()))
            else:
                items.append(_as_index_tensor(v))
        elif isinstance(v, (list, tuple, np.ndarray)):
            items.append(_as_index_tensor(v))
        elif hasattr(v, "__index__"):
            items.append(operator.index(v))
        else:
            raise EmberIndexError(f"only integers, slices (`:`), ellipsis (`...`), None and "
                                  f"long or byte Variables are valid indices (got "
                                  f"{type(v).__name__})")
    return items


def _traced_index(v):
    """A traced index tensor stays a tensor: a 0-d integer one indexes like an int (NumPy's
    rule for a 0-d index array), a 0-d bool one would give a value-dependent shape."""
    if v.ndim == 0 and v.dtype is dtypes.bool_:
        from ..ir.errors import TraceError, at_user_line
        raise TraceError("indexing with a 0-d bool tensor computed inside a function being "
                         "traced into a graph (ember.compile) gives a shape that depends on its "
                         f"value; the same line runs eagerly{at_user_line()}")
    return _as_index_tensor(v)


def _consumed(item) -> int:
    if item is None or item is Ellipsis or isinstance(item, bool):
        return 0
    if _is_tensor(item) and item.dtype is dtypes.bool_:
        return item.ndim
    return 1


def _slice_bound(v):
    # an int stays itself (operator.index would strip a traced size's polynomial)
    if v is None or type(v) is not bool and isinstance(v, int):
        return v
    return operator.index(v)


def _apply_basic(t: Tensor, index):
    """(view after the basic indices, [(dim, index tensor)] of the advanced ones)."""
    items = _normalize(index)
    if sum(1 for i in items if i is Ellipsis) > 1:
        raise EmberIndexError("an index can only have a single ellipsis ('...')")
    used = sum(_consumed(i) for i in items)
    if used > t.ndim:
        raise EmberIndexError(f"too many indices for tensor of dimension {t.ndim}")
    result, dim, advanced = t, 0, []
    real_dim = 0                 # the dim of `t` the item applies to (for messages)
    for item in items:
        if item is None:
            result = ops.unsqueeze(result, dim)
            dim += 1
        elif item is Ellipsis:
            dim += t.ndim - used
            real_dim += t.ndim - used
        elif isinstance(item, bool):
            from .factories import tensor
            result = ops.unsqueeze(result, dim)
            advanced.append((dim, tensor([item])))
            dim += 1
        elif isinstance(item, int):
            size = result.shape[dim]
            if not -size <= item < size:
                raise EmberIndexError(f"index {item} is out of bounds for dimension {real_dim} "
                                      f"with size {size}")
            result = ops.select(result, dim, item)
            real_dim += 1
        elif isinstance(item, slice):
            step = 1 if item.step is None else operator.index(item.step)
            if step <= 0:
                raise ValueError("step must be greater than zero")
            result = ops.slice(result, dim, _slice_bound(item.start), _slice_bound(item.stop),
                               step)
            dim += 1
            real_dim += 1
        else:                                   # an index tensor
            if item.dtype is dtypes.bool_ or item.dtype is dtypes.uint8:
                mask = item if item.dtype is dtypes.bool_ else item.to(dtypes.bool_)
                for j in range(mask.ndim):
                    if mask.shape[j] != result.shape[dim + j]:
                        raise EmberIndexError(
                            f"The shape of the mask {list(mask.shape)} at index {j} does not "
                            f"match the shape of the indexed tensor {list(result.shape)} at "
                            f"index {dim + j}")
                advanced.append((dim, mask))
                dim += mask.ndim
                real_dim += mask.ndim
            else:
                advanced.append((dim, item))
                dim += 1
                real_dim += 1
    return result, advanced


def _indices_list(advanced) -> list:
    """aten.index's `Tensor?[] indices`: one entry per dim up to the last indexed one
    (a bool mask's entry covers as many dims as it has)."""
    out, pos = [], 0
    for dim, idx in advanced:
        out.extend([None] * (dim - pos))
        out.append(idx)
        pos = dim + (idx.ndim if idx.dtype is dtypes.bool_ else 1)
    return out


def getitem(t: Tensor, index):
    result, advanced = _apply_basic(t, index)
    if advanced:
        return ops.index(result, _indices_list(advanced))
    if result is t:                  # x[...], x[()]: an alias, as in PyTorch
        return ops.view(t, list(t.shape))
    return result


def _as_value(t: Tensor, value) -> Tensor:
    from .factories import tensor
    if not _is_tensor(value):
        return tensor(np.asarray(value), dtype=t.dtype)
    if value.dtype != t.dtype:
        value = value.to(t.dtype)
    return value


def _strip_leading_ones(value: Tensor, ndim: int) -> Tensor:
    """PyTorch drops a value's leading size-1 dims beyond the target's rank."""
    if value.ndim <= ndim:
        return value
    extra = value.ndim - ndim
    if any(s != 1 for s in value.shape[:extra]):
        return value                 # the op reports the shape mismatch
    return ops.reshape(value, list(value.shape[extra:]))


def setitem(t: Tensor, index, value) -> None:
    value = _as_value(t, value)
    target, advanced = _apply_basic(t, index)
    if _traced_mask_fill(target, advanced, value):
        return
    if advanced:
        indices = _indices_list(advanced)
        shape = _indexed_shape(target, indices)
        target.index_put_(indices, _strip_leading_ones(value, len(shape)))
        return
    target.copy_(_strip_leading_ones(value, target.ndim))


def _traced_mask_fill(target, advanced, value) -> bool:
    """`y[mask] = v` with one bool mask and a one-element value, while tracing or on a
    device: as masked_fill_ (index_put_ needs the number of True elements, a value the
    trace lacks and a device would read back to the host). True when done."""
    traced = getattr(target, "is_symbolic", False) or \
        any(getattr(idx, "is_symbolic", False) for _, idx in advanced)
    on_device = not traced and getattr(getattr(target, "_storage", None), "device",
                                       "cpu") != "cpu"
    if not (traced or on_device) or len(advanced) != 1 or \
            advanced[0][1].dtype is not dtypes.bool_ or value.numel() != 1:
        return False
    dim, mask = advanced[0]
    if on_device:
        if tuple(mask.shape) != tuple(target.shape[dim:dim + mask.ndim]):
            return False                 # index_put_ reports the shape mismatch
        if mask.device != target.device:
            mask = mask.to(target.device)      # a CPU mask may index a CUDA tensor
    trailing = target.ndim - dim - mask.ndim
    if trailing:
        mask = ops.reshape(mask, list(mask.shape) + [1] * trailing)
    target.masked_fill_(mask, ops.reshape(value, []))
    return True


def _indexed_shape(target: Tensor, indices) -> tuple:
    from ..ir.ops.joining import _index_result_shape
    return _index_result_shape(target, indices)
