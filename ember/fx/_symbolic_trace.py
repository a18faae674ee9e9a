"""`ember.fx._symbolic_trace` (torch.fx._symbolic_trace's names: code generated for a
`concrete_args={name: None}` trace calls `_assert_is_none` under this path)."""
from ..frontend.fx.tracer import (PH, PHBase, PHWithMeta, Tracer, _assert_is_none, is_fx_tracing,  # noqa: F401
                                  symbolic_trace, wrap)

_assert_is_none.__module__ = __name__
