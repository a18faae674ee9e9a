"""torch.utils.data's default_collate and default_convert: samples to batches.

default_collate is `collate(batch, collate_fn_map=default_collate_fn_map)`: the element
type picks a function from the map (tensors stack, numbers become tensors, strings stay
a list), else mappings, named tuples and sequences are collated field by field. Scripts
extend it as they extend torch's: add a type to `default_collate_fn_map`, or call
`collate(batch, collate_fn_map={...})` with their own map (torch's
`torch.utils.data._utils.collate` names)."""
from __future__ import annotations

import collections.abc
import copy

import numpy as np

from ...ir.dtypes import float64
from ...ir.registry import OPS
from ..factories import as_tensor, tensor
from ..tensor import Tensor

default_collate_err_msg_format = ("default_collate: batch must contain tensors, numpy arrays, "
                                  "numbers, dicts or lists; found {}")


def _is_text_array(array: np.ndarray) -> bool:
    """Bytes, unicode or object arrays: no tensor holds them."""
    return array.dtype.kind in "SaUO"


def _rebuilt_mapping(template, values: dict):
    """`values` in a mapping of template's kind: a mutable mapping is copied (so a
    defaultdict keeps its factory), another rebuilt from a dict, else a plain dict."""
    try:
        if isinstance(template, collections.abc.MutableMapping):
            clone = copy.copy(template)
            clone.update(values)
            return clone
        return type(template)(values)
    except TypeError:
        return values


def _rebuilt_sequence(template, items: list):
    """`items` in a sequence of template's kind (a list subclass keeps its type)."""
    try:
        if isinstance(template, collections.abc.MutableSequence):
            clone = copy.copy(template)
            for i, item in enumerate(items):
                clone[i] = item
            return clone
        return type(template)(items)
    except TypeError:
        return items


def _lookup(elem, collate_fn_map):
    if collate_fn_map is None:
        return None
    found = collate_fn_map.get(type(elem))
    if found is not None:
        return found
    for kind, fn in collate_fn_map.items():
        if isinstance(elem, kind):
            return fn
    return None


def collate(batch, *, collate_fn_map=None):
    """Collates a list of samples with the functions of `collate_fn_map` for its element
    types (the exact type first, then the first entry it is an instance of), recursing
    into mappings, named tuples and sequences."""
    elem = batch[0]
    fn = _lookup(elem, collate_fn_map)
    if fn is not None:
        return fn(batch, collate_fn_map=collate_fn_map)
    if isinstance(elem, collections.abc.Mapping):
        return _rebuilt_mapping(elem, {key: collate([sample[key] for sample in batch],
                                                    collate_fn_map=collate_fn_map)
                                       for key in elem})
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):     # a named tuple
        return type(elem)(*(collate(field, collate_fn_map=collate_fn_map)
                            for field in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        # each field is the tuple zip gives (a field of strings stays that tuple, as in torch)
        fields = [collate(field, collate_fn_map=collate_fn_map) for field in zip(*batch)]
        return fields if isinstance(elem, tuple) else _rebuilt_sequence(elem, fields)
    raise TypeError(default_collate_err_msg_format.format(type(elem)))


def collate_tensor_fn(batch, *, collate_fn_map=None):
    return OPS["stack"](list(batch), 0)


def collate_numpy_array_fn(batch, *, collate_fn_map=None):
    if _is_text_array(batch[0]):
        raise TypeError(default_collate_err_msg_format.format(batch[0].dtype))
    return collate([as_tensor(array) for array in batch], collate_fn_map=collate_fn_map)


def collate_numpy_scalar_fn(batch, *, collate_fn_map=None):
    return as_tensor(np.array(batch))


def collate_float_fn(batch, *, collate_fn_map=None):
    return tensor(list(batch), dtype=float64)      # Python floats batch as float64


def collate_int_fn(batch, *, collate_fn_map=None):
    return tensor(list(batch))


def collate_str_fn(batch, *, collate_fn_map=None):
    return batch


default_collate_fn_map: dict = {
    Tensor: collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,
    (np.bool_, np.number, np.object_): collate_numpy_scalar_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    str: collate_str_fn,
    bytes: collate_str_fn,
}


def default_collate(batch):
    """Stacks a list of samples into a batch, recursing into tuples, lists and dicts."""
    return collate(batch, collate_fn_map=default_collate_fn_map)


def default_convert(data):
    """What a DataLoader with batch_size=None hands out: NumPy arrays and scalars become
    tensors, inside mappings and sequences too; everything else is left as it is."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, (np.ndarray, np.generic)) and not isinstance(data, (np.str_, np.bytes_)):
        if isinstance(data, np.ndarray) and _is_text_array(data):
            return data
        return as_tensor(data)
    if isinstance(data, collections.abc.Mapping):
        return _rebuilt_mapping(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(value) for value in data))
    if isinstance(data, tuple):
        return [default_convert(value) for value in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuilt_sequence(data, [default_convert(value) for value in data])
    return data
