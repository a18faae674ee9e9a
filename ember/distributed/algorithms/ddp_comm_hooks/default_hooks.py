"""The default DDP comm hooks: plain averaging all-reduce, and fp16/bf16 compression.

A hook is `hook(state, bucket) -> Future[Tensor]`; the future's tensor (the bucket's
averaged gradients, flat) is written back into the bucket. Here `state` is the process
group (None: the default group), as in PyTorch's default_hooks.
"""
from __future__ import annotations

from ... import c10d
from ...reduce_op import ReduceOp
from ....ir import dtypes


def _group_size(process_group) -> int:
    return c10d.get_world_size(process_group)


def allreduce_hook(process_group, bucket):
    """Average the bucket: divide by the world size, then all-reduce (SUM), in place."""
    buffer = bucket.buffer()
    buffer.div_(_group_size(process_group))
    work = c10d.all_reduce(buffer, ReduceOp.SUM, group=process_group, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


def _compressed_hook(process_group, bucket, dtype):
    buffer = bucket.buffer()
    compressed = buffer.to(dtype).div_(_group_size(process_group))
    work = c10d.all_reduce(compressed, ReduceOp.SUM, group=process_group, async_op=True)

    def decompress(fut):
        buffer.copy_(fut.value()[0])
        return buffer

    return work.get_future().then(decompress)


def fp16_compress_hook(process_group, bucket):
    """Cast the bucket to float16, average it by all-reduce, cast back (half the bytes)."""
    return _compressed_hook(process_group, bucket, dtypes.float16)


def bf16_compress_hook(process_group, bucket):
    """As fp16_compress_hook with bfloat16 (MPI reduces it in float32, then rounds)."""
    return _compressed_hook(process_group, bucket, dtypes.bfloat16)
