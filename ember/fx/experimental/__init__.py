"""`ember.fx.experimental` (torch.fx.experimental's module locations)."""
from . import optimization, proxy_tensor  # noqa: F401
