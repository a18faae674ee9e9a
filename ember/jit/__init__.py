"""`import ember.jit` — torch.jit's names (ember/frontend/jit.py): trace, and the
TorchScript decorators and queries with their eager meaning (script returns its
argument unchanged; see docs/fx.md)."""
from ..frontend.jit import (Final, TracerWarning, _overload_method, annotate, export,  # noqa: F401
                           ignore, is_scripting, _script_if_tracing, is_tracing, script, trace, unused)

__all__ = ["Final", "trace", "TracerWarning", "script", "unused", "ignore", "export",
           "_overload_method", "annotate", "is_scripting", "is_tracing", "_script_if_tracing"]
