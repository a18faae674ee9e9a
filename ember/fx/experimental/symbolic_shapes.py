"""`ember.fx.experimental.symbolic_shapes` (torch.fx.experimental.symbolic_shapes'
helpers for concrete and symbolic sizes)."""
from ...frontend.fx.symbolic_shapes import *  # noqa: F401,F403
from ...frontend.fx.symbolic_shapes import __all__  # noqa: F401
