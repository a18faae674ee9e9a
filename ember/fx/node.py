"""`ember.fx.node` (torch.fx.node's names)."""
from ..ir.graph import (Argument, Node, Target, has_side_effect,  # noqa: F401
                        map_aggregate, map_arg)
