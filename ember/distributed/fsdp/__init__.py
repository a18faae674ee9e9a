"""torch.distributed.fsdp: FSDP2's policy types. ember has no fully sharded data
parallelism (fully_shard / FullyShardedDataParallel); train across processes with
DistributedDataParallel and ZeroRedundancyOptimizer (docs/distributed.md)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OffloadPolicy:
    """No offloading (the default policy)."""


@dataclass(frozen=True)
class CPUOffloadPolicy(OffloadPolicy):
    """Parameters, gradients and optimizer state kept on the CPU between uses."""
    pin_memory: bool = True


@dataclass(frozen=True)
class MixedPrecisionPolicy:
    """The dtypes FSDP computes, reduces gradients and returns outputs in."""
    param_dtype: object = None
    reduce_dtype: object = None
    output_dtype: object = None
    cast_forward_inputs: bool = True


def fully_shard(module, **kwargs):
    raise NotImplementedError(
        "fully_shard (FSDP2): ember.distributed has no fully sharded data parallelism; "
        "use DistributedDataParallel, with ZeroRedundancyOptimizer to shard the "
        "optimizer state")


__all__ = ["CPUOffloadPolicy", "MixedPrecisionPolicy", "OffloadPolicy", "fully_shard"]
