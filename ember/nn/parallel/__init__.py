"""ember.nn.parallel: DistributedDataParallel (implemented in ember.distributed.ddp)."""
from ...distributed.ddp import DistributedDataParallel  # noqa: F401

__all__ = ["DistributedDataParallel"]
