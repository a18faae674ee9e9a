"""ember.nn.parallel: DistributedDataParallel (implemented in ember.distributed.ddp)."""
from ...distributed.ddp import DistributedDataParallel  # noqa: F401
from ...frontend.nn.modules.legacy_layers import DataParallel  # noqa: F401

__all__ = ["DistributedDataParallel", "DataParallel"]
