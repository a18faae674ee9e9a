"""`ember.fx.experimental.optimization` (torch.fx.experimental.optimization's names)."""
from ...frontend.fx.optimization import fuse, matches_module_pattern, replace_node_module  # noqa: F401
