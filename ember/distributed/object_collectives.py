"""Collectives of picklable Python objects: all_gather_object, broadcast_object_list,
gather_object, scatter_object_list.

As in PyTorch, objects are pickled to bytes, the byte counts are exchanged first, and
the bytes travel as uint8 tensors padded to the largest, through the ordinary tensor
collectives (so the group's timeout applies). Unpickling runs arbitrary code: only
exchange objects with processes you trust.
"""
from __future__ import annotations

import pickle

import numpy as np

from ..frontend.tensor import Tensor
from . import c10d


def _to_bytes(obj) -> np.ndarray:
    return np.frombuffer(pickle.dumps(obj), dtype=np.uint8)


def _from_bytes(buf: np.ndarray, size: int):
    return pickle.loads(buf[:size].tobytes())


def _tensor(arr: np.ndarray) -> Tensor:
    return Tensor._adopt(np.ascontiguousarray(arr))


def all_gather_object(object_list: list, obj, group=None) -> None:
    """object_list[r] = rank r's `obj`, on every rank."""
    size = c10d.get_world_size(group)
    if len(object_list) != size:
        raise ValueError(f"all_gather_object: object_list must have world_size ({size}) "
                         f"entries, got {len(object_list)}")
    data = _to_bytes(obj)
    sizes = _tensor(np.zeros(size, np.int64))
    c10d.all_gather_into_tensor(sizes, _tensor(np.array([data.size], np.int64)), group=group)
    longest = int(sizes._array.max())
    padded = np.zeros(longest, np.uint8)
    padded[:data.size] = data
    gathered = _tensor(np.zeros(size * longest, np.uint8))
    c10d.all_gather_into_tensor(gathered, _tensor(padded), group=group)
    rows = gathered._array.reshape(size, longest)
    for r in range(size):
        object_list[r] = _from_bytes(rows[r], int(sizes._array[r]))


def gather_object(obj, object_gather_list=None, dst=None, group=None, group_dst=None) -> None:
    """On `dst`, object_gather_list[r] = rank r's `obj` (the others pass None)."""
    everyone = [None] * c10d.get_world_size(group)
    all_gather_object(everyone, obj, group)   # simple and ordered; objects are small
    me = c10d.get_rank(group)
    root = group_dst if group_dst is not None else _group_rank(group, dst, "gather_object")
    if me == root:
        if object_gather_list is None or len(object_gather_list) != len(everyone):
            raise ValueError("gather_object: the destination must pass object_gather_list "
                             f"with world_size ({len(everyone)}) entries")
        object_gather_list[:] = everyone


def broadcast_object_list(object_list: list, src=None, group=None, device=None,
                          group_src=None) -> None:
    """Every rank's object_list becomes the one of `src` (same length on every rank)."""
    root_global = src if group_src is None else c10d.get_global_rank(
        group or c10d.group.WORLD, group_src)
    me = c10d.get_rank()
    data = _to_bytes(list(object_list)) if me == root_global else np.zeros(0, np.uint8)
    size = _tensor(np.array([data.size], np.int64))
    c10d.broadcast(size, root_global, group=group)
    buf = _tensor(data if me == root_global else np.zeros(int(size._array[0]), np.uint8))
    c10d.broadcast(buf, root_global, group=group)
    received = _from_bytes(buf._array, int(size._array[0]))
    if len(received) != len(object_list):
        raise ValueError(f"broadcast_object_list: object_list has {len(object_list)} "
                         f"entries here and {len(received)} on the source rank")
    object_list[:] = received


def scatter_object_list(scatter_object_output_list: list, scatter_object_input_list=None,
                        src=None, group=None, group_src=None) -> None:
    """scatter_object_output_list[0] = src's scatter_object_input_list[my group rank]."""
    if not isinstance(scatter_object_output_list, list) or not scatter_object_output_list:
        raise ValueError("Expected argument scatter_object_output_list to be a list of size "
                         "at least 1.")
    holder = [scatter_object_input_list]
    broadcast_object_list(holder, src, group, group_src=group_src)
    inputs = holder[0]
    me = c10d.get_rank(group)
    if inputs is None or len(inputs) <= me:
        raise ValueError("scatter_object_list: the source must pass one object per rank")
    scatter_object_output_list[0] = inputs[me]


def _group_rank(group, global_rank, fn: str) -> int:
    if global_rank is None:
        raise ValueError(f"{fn}: dst (or group_dst) is required")
    if group is None:
        return global_rank
    return c10d.get_group_rank(group, global_rank)


def send_object_list(object_list: list, dst=None, group=None, device=None,
                     group_dst=None) -> None:
    """Send a list of picklable objects to `dst`: the byte count first, then the bytes."""
    data = _to_bytes(list(object_list))
    c10d.send(_tensor(np.array([data.size], np.int64)), dst, group=group, group_dst=group_dst)
    c10d.send(_tensor(data), dst, group=group, group_dst=group_dst)


def recv_object_list(object_list: list, src=None, group=None, device=None,
                     group_src=None) -> int:
    """Fill `object_list` with the objects `src` sent (any rank if src is None); returns
    the sender's rank. The list must have as many entries as were sent."""
    size = _tensor(np.zeros(1, np.int64))
    sender = c10d.recv(size, src, group=group, group_src=group_src)
    # the bytes come from whoever sent the count (src=None must not match another sender)
    buf = _tensor(np.zeros(int(size._array[0]), np.uint8))
    c10d.recv(buf, sender if group_src is None else None, group=group,
              group_src=group_src)
    received = _from_bytes(buf._array, int(size._array[0]))
    if len(received) != len(object_list):
        raise ValueError(f"recv_object_list: object_list has {len(object_list)} entries "
                         f"and rank {sender} sent {len(received)}")
    object_list[:] = received
    return sender
