"""torch.utils.data's default_collate and default_convert: samples to batches."""
from __future__ import annotations

import collections.abc

import numpy as np

from ...ir.dtypes import float64
from ...ir.registry import OPS
from ..factories import as_tensor, tensor
from ..tensor import Tensor


def _same_kind(template, items):
    """A container of template's type holding items (a mapping or sequence subclass
    keeps its type, as in torch; one that cannot be rebuilt that way gives dict/list)."""
    try:
        return type(template)(items)
    except TypeError:
        return dict(items) if isinstance(template, collections.abc.Mapping) else list(items)


def default_collate(batch):
    """Stacks a list of samples into a batch, recursing into tuples, lists and dicts."""
    first = batch[0]
    if isinstance(first, Tensor):
        return OPS["stack"](list(batch), 0)
    if isinstance(first, np.ndarray):
        if first.dtype.kind in "OUS":
            raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, "
                            f"numbers, dicts or lists; found object of dtype {first.dtype}")
        return as_tensor(np.stack(batch))
    if isinstance(first, np.number) or (isinstance(first, np.ndarray) and first.ndim == 0):
        return as_tensor(np.array(batch))
    if isinstance(first, float):            # Python floats batch as float64, as in torch
        return tensor(list(batch), dtype=float64)
    if isinstance(first, (bool, int)):
        return tensor(list(batch))
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, collections.abc.Mapping):
        return _same_kind(first, {key: default_collate([sample[key] for sample in batch])
                                  for key in first})
    if isinstance(first, tuple) and hasattr(first, "_fields"):     # namedtuple
        return type(first)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(first, collections.abc.Sequence):
        if any(len(sample) != len(first) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(list(field)) for field in zip(*batch)]
        return fields if isinstance(first, tuple) else _same_kind(first, fields)
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, "
                    f"dicts or lists; found {type(first)}")


def default_convert(data):
    """What a DataLoader with batch_size=None hands out: NumPy arrays become tensors,
    inside mappings and sequences too; everything else is left as it is."""
    if isinstance(data, np.ndarray) and data.dtype.kind not in "OUS":
        return as_tensor(data)
    if isinstance(data, np.number):
        return as_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        return _same_kind(data, {key: default_convert(value) for key, value in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(value) for value in data))
    if isinstance(data, tuple):
        return [default_convert(value) for value in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _same_kind(data, [default_convert(value) for value in data])
    return data
