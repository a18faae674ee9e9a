"""`ember.fx.experimental.const_fold` (torch.fx.experimental.const_fold's names)."""
from ...frontend.fx.const_fold import (FoldedGraphModule,  # noqa: F401
                                       get_unique_attr_name_in_module, split_const_subgraphs)
