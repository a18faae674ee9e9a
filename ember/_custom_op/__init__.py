"""ember._custom_op: torch._custom_op, the older home of custom-op helpers that code
still reaches for (`torch._custom_op.impl.get_ctx()` in a fake function)."""
from . import impl  # noqa: F401
