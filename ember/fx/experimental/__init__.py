"""`ember.fx.experimental` (torch.fx.experimental's module locations)."""
from . import const_fold, optimization, proxy_tensor  # noqa: F401
