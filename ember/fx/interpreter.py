"""`ember.fx.interpreter` (torch.fx.interpreter's names)."""
from ..frontend.fx.interpreter import Interpreter, Transformer  # noqa: F401
