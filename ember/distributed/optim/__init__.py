"""ember.distributed.optim: ZeroRedundancyOptimizer, DistributedOptimizer."""
from .distributed_optimizer import DistributedOptimizer  # noqa: F401
from .zero_redundancy_optimizer import ZeroRedundancyOptimizer  # noqa: F401

__all__ = ["DistributedOptimizer", "ZeroRedundancyOptimizer"]
