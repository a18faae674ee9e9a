"""ember.utils: torch.utils' namespaces (checkpoint)."""
from . import checkpoint  # noqa: F401
