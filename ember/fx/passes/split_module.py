"""`ember.fx.passes.split_module` (torch.fx.passes.split_module's names)."""
from ...frontend.fx.split_module import split_module  # noqa: F401
