"""ember.signal: torch.signal's namespace (window functions)."""
from . import windows  # noqa: F401
