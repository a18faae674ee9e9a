"""ember.utils: torch.utils' namespaces (checkpoint, benchmark)."""
from . import checkpoint  # noqa: F401
