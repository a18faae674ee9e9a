"""`ember.fx.graph` (torch.fx.graph's names)."""
from ..ir.graph import Graph  # noqa: F401
