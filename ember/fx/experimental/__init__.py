"""`ember.fx.experimental` (torch.fx.experimental's module locations)."""
from . import optimization  # noqa: F401
