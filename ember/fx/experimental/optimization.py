"""`ember.fx.experimental.optimization` (torch.fx.experimental.optimization's names)."""
from ...frontend.fx.optimization import (  # noqa: F401
    UnionFind, extract_subgraph, fuse, matches_module_pattern, optimize_for_inference,
    remove_dropout, replace_node_module)
from ...frontend.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval  # noqa: F401
