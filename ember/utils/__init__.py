"""ember.utils: torch.utils' namespaces (checkpoint, benchmark)."""
from . import checkpoint  # noqa: F401
from . import data  # noqa: F401
