"""ember._dynamo.exc: the exception names torch.export's users catch
(`torch._dynamo.exc.UserError` for a refused `dynamic_shapes` spec or constraint)."""
from ..ir.errors import UserError  # noqa: F401

__all__ = ["UserError"]
