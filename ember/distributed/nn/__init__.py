"""ember.distributed.nn: RemoteModule (torch.distributed.nn.RemoteModule)."""
from .remote_module import RemoteModule  # noqa: F401
from . import sync_batchnorm  # noqa: F401,E402 - plugs the group forward into nn.SyncBatchNorm

__all__ = ["RemoteModule"]
