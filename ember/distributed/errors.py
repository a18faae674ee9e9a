"""torch.distributed's error types, in ember's hierarchy (each also a RuntimeError)."""
from __future__ import annotations

from ..ir.errors import EmberError


class DistError(EmberError, RuntimeError):
    """torch.distributed.DistError: anything the distributed layer refuses or fails at."""


class DistBackendError(DistError):
    """torch.distributed.DistBackendError: the communication engine failed or timed out."""


class DistNetworkError(DistError):
    """torch.distributed.DistNetworkError: a peer could not be reached."""


class DistArgumentError(DistError, ValueError):
    """A collective's arguments do not fit the group (a root outside it, tensor sizes,
    dtypes or list lengths that do not match). PyTorch raises these from its C++
    backends as RuntimeError and from its Python checks as ValueError; this is both, so
    either `except` catches it."""


class DistStoreError(DistError):
    """torch.distributed.DistStoreError: a store operation timed out or was refused."""


class QueueEmptyError(DistStoreError):
    """torch.distributed.QueueEmptyError: `queue_pop(key, block=False)` on an empty queue."""
