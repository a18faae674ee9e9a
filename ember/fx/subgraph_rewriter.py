"""`ember.fx.subgraph_rewriter` (torch.fx.subgraph_rewriter's names)."""
from ..frontend.fx.subgraph_rewriter import (Match, ReplacedPatterns,  # noqa: F401
                                             replace_pattern, replace_pattern_with_filters)
