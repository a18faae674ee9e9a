"""`ember.fx.node` (torch.fx.node's names)."""
from ..ir.graph import (Argument, Node, Target, _format_arg,  # noqa: F401
                        has_side_effect, map_aggregate, map_arg)
