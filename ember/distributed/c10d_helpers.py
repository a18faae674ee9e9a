"""torch.distributed's smaller helpers, written over c10d: sub-group families, the
coalesced collectives, and queries about the launch and the backends."""
from __future__ import annotations

import os

from . import c10d
from .reduce_op import ReduceOp


def new_subgroups_by_enumeration(ranks_per_subgroup_list, timeout=None, backend=None,
                                 pg_options=None, group_desc=None):
    """One new_group per rank list (disjoint lists; every process calls this with the
    same lists). Returns (the sub-group holding this rank or None, all of them)."""
    if not ranks_per_subgroup_list:
        raise ValueError("new_subgroups_by_enumeration: the arg 'ranks_per_subgroup_list' "
                         "cannot be empty")
    seen: dict[int, list] = {}
    for ranks in ranks_per_subgroup_list:
        for rank in ranks:
            if rank in seen:
                raise ValueError(f"new_subgroups_by_enumeration: rank {rank} has appeared "
                                 f"in both subgroup {seen[rank]} and {list(ranks)}")
            seen[rank] = list(ranks)
    me, mine, subgroups = c10d.get_rank(), None, []
    for ranks in ranks_per_subgroup_list:
        subgroup = c10d.new_group(list(ranks), timeout=timeout, backend=backend,
                                  pg_options=pg_options, group_desc=group_desc)
        subgroups.append(subgroup)
        if me in ranks:
            mine = subgroup
    return mine, subgroups


def new_subgroups(group_size=None, group=None, timeout=None, backend=None, pg_options=None,
                  group_desc=None):
    """Cut `group`'s ranks (default WORLD) into consecutive sub-groups of `group_size`
    (PyTorch's default, one per CUDA device, needs CUDA: pass it on the CPU)."""
    if group_size is None:
        raise ValueError("new_subgroups: the default group_size (the number of CUDA devices) "
                         "only takes effect when CUDA is available; pass group_size")
    world = c10d.get_world_size(group)
    if group_size <= 0 or group_size > world or world % group_size:
        raise ValueError(f"new_subgroups: group_size={group_size} must be positive and "
                         f"divide the group's size ({world})")
    ranks = c10d.get_process_group_ranks(group if group is not None else c10d.group.WORLD)
    chunks = [ranks[i:i + group_size] for i in range(0, world, group_size)]
    return new_subgroups_by_enumeration(chunks, timeout, backend, pg_options, group_desc)


def all_reduce_coalesced(tensors, op=ReduceOp.SUM, group=None, async_op: bool = False):
    """all_reduce of each tensor (PyTorch's deprecated coalesced form); one Work."""
    return _coalesced([c10d.all_reduce(t, op, group, async_op=True) for t in tensors],
                      async_op)


def all_gather_coalesced(output_tensor_lists, input_tensor_list, group=None,
                         async_op: bool = False):
    """output_tensor_lists[r][i] = rank r's input_tensor_list[i] (PyTorch's deprecated
    coalesced all_gather: one output list per rank)."""
    size = c10d.get_world_size(group)
    if len(output_tensor_lists) != size or any(
            len(outs) != len(input_tensor_list) for outs in output_tensor_lists):
        raise ValueError(f"all_gather_coalesced: output_tensor_lists must hold world_size "
                         f"({size}) lists of {len(input_tensor_list)} tensors (one per input)")
    works = [c10d.all_gather([outs[i] for outs in output_tensor_lists], t, group,
                             async_op=True)
             for i, t in enumerate(input_tensor_list)]
    return _coalesced(works, async_op)


class _Coalesced:
    """One Work standing for several (wait() waits for all)."""

    def __init__(self, works: list):
        self._works = [w for w in works if w is not None]

    def wait(self, timeout=None) -> bool:
        for w in self._works:
            w.wait(timeout)
        return True

    def is_completed(self) -> bool:
        return all(w.is_completed() for w in self._works)


def _coalesced(works: list, async_op: bool):
    work = _Coalesced(works)
    if async_op:
        return work
    work.wait()
    return None


def supports_complex(reduceOp: ReduceOp) -> bool:
    """Whether `reduceOp` is defined on complex tensors (no ordering, no bit ops)."""
    return reduceOp not in (ReduceOp.MAX, ReduceOp.MIN, ReduceOp.PRODUCT, ReduceOp.BAND,
                            ReduceOp.BOR, ReduceOp.BXOR)


def is_backend_available(backend: str) -> bool:
    name = str(backend).lower()
    if name in ("mpi", "gloo"):
        return c10d.is_mpi_available()
    if name == "nccl":
        return c10d.is_nccl_available()
    return False


def get_default_backend_for_device(device) -> str:
    kind = str(getattr(device, "type", device)).split(":")[0]
    backends = {"cpu": "gloo", "cuda": "nccl"}
    if kind not in backends:
        raise ValueError(f"get_default_backend_for_device: no default backend for device "
                         f"type {kind!r} (ember has 'cpu' and 'cuda')")
    return backends[kind]


def is_torchelastic_launched() -> bool:
    """Started by torchrun (its TORCHELASTIC_RUN_ID), as PyTorch decides it."""
    return os.getenv("TORCHELASTIC_RUN_ID") is not None


def get_node_local_rank(fallback_rank: int | None = None) -> int:
    """This process's rank on its host: LOCAL_RANK (the launcher sets it), else
    `fallback_rank`."""
    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    if fallback_rank is not None:
        return int(fallback_rank)
    raise RuntimeError("LOCAL_RANK is not in the environment: start the processes with "
                       "python -m ember.distributed.run, or pass fallback_rank")
