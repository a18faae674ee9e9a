"""`ember.fx.experimental.normalize` (torch.fx.experimental.normalize's names)."""
from ...frontend.fx.normalize import NormalizeArgs, NormalizeOperators  # noqa: F401
