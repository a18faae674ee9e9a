"""`ember.fx.passes.tools_common` (torch.fx.passes.tools_common's names)."""
from ...frontend.fx.partition import (CALLABLE_NODE_OPS, get_node_target,  # noqa: F401
                                      is_node_output_tensor, legalize_graph,
                                      stable_topological_sort)
