"""`import ember.jit` — re-exports ember.frontend.jit (trace, TracerWarning)."""
from .frontend.jit import TracerWarning, trace  # noqa: F401

__all__ = ["trace", "TracerWarning"]
