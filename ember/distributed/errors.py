"""torch.distributed's error types, in ember's hierarchy (each also a RuntimeError)."""
from __future__ import annotations

from ..ir.errors import EmberError


class DistError(EmberError, RuntimeError):
    """torch.distributed.DistError: anything the distributed layer refuses or fails at."""


class DistBackendError(DistError):
    """torch.distributed.DistBackendError: the communication engine failed or timed out."""


class DistNetworkError(DistError):
    """torch.distributed.DistNetworkError: a peer could not be reached."""
