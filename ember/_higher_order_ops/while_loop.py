"""torch._higher_order_ops.while_loop's module path (`from torch._higher_order_ops.while_loop
import while_loop`, as torch's own tests import it): ember.while_loop."""
from ..frontend.aliases import while_loop  # noqa: F401

__all__ = ["while_loop"]
