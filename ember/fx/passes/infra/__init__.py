"""`ember.fx.passes.infra` (torch.fx.passes.infra's module locations)."""
from . import pass_base, pass_manager, partitioner  # noqa: F401
