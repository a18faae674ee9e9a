"""torch.utils.hooks: RemovableHandle, what every register_*_hook returns."""
from ..frontend.nn.modules.module import RemovableHandle  # noqa: F401

__all__ = ["RemovableHandle"]
