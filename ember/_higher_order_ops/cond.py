"""torch._higher_order_ops.cond's module path (`from torch._higher_order_ops.cond import
cond`): ember.cond."""
from ..frontend.aliases import cond  # noqa: F401

__all__ = ["cond"]
