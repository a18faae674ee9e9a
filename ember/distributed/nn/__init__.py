"""ember.distributed.nn: RemoteModule (torch.distributed.nn.RemoteModule)."""
from .remote_module import RemoteModule  # noqa: F401

__all__ = ["RemoteModule"]
