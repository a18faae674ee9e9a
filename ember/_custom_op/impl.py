"""torch._custom_op.impl: `get_ctx` is torch.library.get_ctx (a fake function's context)."""
from ..library import get_ctx  # noqa: F401

__all__ = ["get_ctx"]
