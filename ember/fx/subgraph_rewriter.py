"""`ember.fx.subgraph_rewriter` (torch.fx.subgraph_rewriter's names)."""
from ..frontend.fx.subgraph_rewriter import *  # noqa: F401,F403
from ..frontend.fx.subgraph_rewriter import replace_pattern  # noqa: F401
