"""`ember.fx.traceback` (torch.fx.traceback's node-meta preservation)."""
from ..frontend.fx.fx_traceback import (annotate, format_stack,  # noqa: F401
                                        get_current_meta, has_preserved_node_meta,
                                        preserve_node_meta, set_current_meta,
                                        set_stack_trace)
