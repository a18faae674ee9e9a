"""`ember.fx.passes.graph_manipulation` (torch.fx.passes.graph_manipulation's names)."""
from ...frontend.fx.graph_manipulation import (  # noqa: F401
    get_size_of_all_nodes, get_size_of_node, get_tensor_meta, replace_target_nodes_with,
    size_bytes)
