"""torch.distributed.fsdp: FSDP2's policy types. ember has no fully sharded data
parallelism (fully_shard / FullyShardedDataParallel); train across processes with
DistributedDataParallel and ZeroRedundancyOptimizer (docs/distributed.md)."""
from __future__ import annotations

from dataclasses import dataclass

from ...frontend.nn import Module


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


_NO_FSDP = ("ember.distributed has no fully sharded data parallelism; use "
            "DistributedDataParallel, with ZeroRedundancyOptimizer to shard the optimizer "
            "state")


def fully_shard(module, **kwargs):
    raise NotImplementedError(f"fully_shard (FSDP2): {_NO_FSDP}")


class FullyShardedDataParallel(Module):
    """FSDP1's wrapper type, which libraries test modules against (isinstance); ember
    makes no such modules, and constructing one says so."""

    def __init__(self, module, *args, **kwargs):
        raise NotImplementedError(f"FullyShardedDataParallel: {_NO_FSDP}")


__all__ = ["FullyShardedDataParallel", "CPUOffloadPolicy", "MixedPrecisionPolicy",
           "OffloadPolicy", "fully_shard"]
