"""ember.serialization: torch.serialization's names for ember.save/ember.load and the
allowlist of globals a weights-only load may unpickle (add_safe_globals, safe_globals).
The implementation is frontend/serialization.py."""
from __future__ import annotations

from .frontend.serialization import (WeightsOnlyError, add_safe_globals,  # noqa: F401
                                     clear_safe_globals, get_safe_globals,
                                     get_unsafe_globals_in_checkpoint, load, safe_globals,
                                     save)

__all__ = ["save", "load", "add_safe_globals", "get_safe_globals", "clear_safe_globals",
           "safe_globals", "get_unsafe_globals_in_checkpoint", "WeightsOnlyError"]
