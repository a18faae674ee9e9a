"""`ember.fx.annotate` (torch.fx.annotate's function)."""
from ..frontend.fx.proxy import annotate  # noqa: F401
