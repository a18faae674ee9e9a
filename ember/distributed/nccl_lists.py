"""The list forms of the collectives on CUDA tensors (nccl groups), through flat tensors.

NCCL's collectives take one contiguous buffer per side. A list of tensors is stacked
into one flat CUDA tensor (ember ops on the caller's stream), the flat collective runs
on the group's communication stream, and the caller's stream waits for it before the
pieces are copied out, so every copy is ordered after the collective, as in PyTorch's
NCCL process group. Gather and scatter use all-gather and broadcast: every rank moves
the whole buffer (simple and correct; NCCL's own gather/scatter are newer than the
NCCL versions this must run with).
"""
from __future__ import annotations

from .errors import DistError


def _stack(tensors):
    """torch.stack by cat of one-row views (cat has a CUDA kernel for any count)."""
    from ..ir.registry import OPS
    return OPS["cat"]([t.contiguous().view((1,) + tuple(t.shape)) for t in tensors])


def _empty_like_stacked(like, n: int):
    from ..frontend.factories import empty
    return empty((n,) + tuple(like.shape), dtype=like.dtype, device=like.device)


def _copy_pieces(work, flat, tensors) -> None:
    """After `work` (on the caller's stream), copy flat[i] into tensors[i]."""
    work.wait()
    for i, t in enumerate(tensors):
        t.copy_(flat[i].view(tuple(t.shape)))
    work._outputs = list(tensors)


def all_gather(engine, tensor_list, tensor):
    flat = _empty_like_stacked(tensor, engine.size)
    work = engine.all_gather_tensor(flat, tensor.contiguous())
    _copy_pieces(work, flat, tensor_list)
    return work


def gather(engine, gather_list, tensor, root: int):
    flat = _empty_like_stacked(tensor, engine.size)
    work = engine.all_gather_tensor(flat, tensor.contiguous())
    if engine.rank == root:
        _copy_pieces(work, flat, gather_list)
    return work


def scatter(engine, tensor, scatter_list, root: int):
    flat = _stack(scatter_list) if engine.rank == root else \
        _empty_like_stacked(tensor, engine.size)
    work = engine.broadcast(flat, root)
    _copy_pieces(work, flat[engine.rank:engine.rank + 1], [tensor])
    return work


def reduce_scatter(engine, output, input_list, op):
    return engine.reduce_scatter_tensor(output, _stack(input_list), op)


def all_to_all(engine, output_list, input_list):
    from ..ir.registry import OPS
    if len({t.dtype for t in list(output_list) + list(input_list)}) != 1:
        raise DistError("all_to_all: every tensor must have the same dtype")
    from ..frontend.factories import empty
    flat_in = OPS["cat"]([t.contiguous().view(-1) for t in input_list])
    flat_out = empty(sum(t.numel() for t in output_list), dtype=flat_in.dtype,
                     device=flat_in.device)
    work = engine.all_to_all_tensor(flat_out, flat_in, [t.numel() for t in output_list],
                                    [t.numel() for t in input_list])
    work.wait()
    start = 0
    for t in output_list:
        t.copy_(flat_out[start:start + t.numel()].view(tuple(t.shape)))
        start += t.numel()
    work._outputs = list(output_list)
    return work
