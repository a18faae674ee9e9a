"""ember.distributed.algorithms: DDP communication hooks and the Join context manager."""
from .join import Join, Joinable, JoinHook  # noqa: F401
