"""`ember.fx.passes.split_utils` (torch.fx.passes.split_utils' split_by_tags)."""
from ...frontend.fx.split_utils import split_by_tags  # noqa: F401
