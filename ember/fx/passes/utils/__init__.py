"""`ember.fx.passes.utils` (torch.fx.passes.utils' module locations)."""
from . import matcher_utils, fuser_utils  # noqa: F401
