"""torch.utils.dlpack: from_dlpack / to_dlpack (CPU tensors, sharing memory)."""
from ..frontend.aliases import from_dlpack  # noqa: F401
from ..frontend.dlpack_capsule import DLDeviceType  # noqa: F401

__all__ = ["DLDeviceType", "from_dlpack", "to_dlpack"]


def to_dlpack(tensor):
    """A DLPack capsule of `tensor`'s memory (from_dlpack takes it back)."""
    return tensor.__dlpack__()
