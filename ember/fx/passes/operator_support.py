"""`ember.fx.passes.operator_support` (torch.fx.passes.operator_support's names)."""
from ...frontend.fx.partition import (OperatorSupport, OperatorSupportBase,  # noqa: F401
                                      OpSupports, any_chain, chain, create_op_support)

__all__ = ["OperatorSupportBase", "OperatorSupport", "create_op_support", "chain",
           "OpSupports", "any_chain"]
