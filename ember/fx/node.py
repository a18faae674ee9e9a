"""`ember.fx.node` (torch.fx.node's names)."""
from ..ir.graph import Argument, Node, Target, map_aggregate, map_arg  # noqa: F401
