"""torch.distributed.tensor: DTensor, its placements and DeviceMesh (see _api.py for
what ember's DTensor does and does not do)."""
from ..device_mesh import DeviceMesh, init_device_mesh  # noqa: F401
from ._api import DTensor, distribute_tensor  # noqa: F401
from .placement_types import Partial, Placement, Replicate, Shard  # noqa: F401

__all__ = ["DTensor", "DeviceMesh", "Partial", "Placement", "Replicate", "Shard",
           "distribute_tensor", "init_device_mesh"]
