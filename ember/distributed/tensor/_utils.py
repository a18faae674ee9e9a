"""torch.distributed.tensor._utils: where this rank's shard lies in the global tensor."""
from __future__ import annotations

from .placement_types import Shard, _StridedShard


def compute_local_shape_and_global_offset(global_shape, mesh, placements):
    """(local shape, offset of its first element in the global tensor) for this rank of
    `mesh`; a rank outside the mesh holds nothing ((0,)*ndim, ())."""
    coordinate = mesh.get_coordinate()
    if coordinate is None:
        return (0,) * len(global_shape), ()
    shape, offset = list(global_shape), [0] * len(global_shape)
    for mesh_dim, placement in enumerate(placements):
        if isinstance(placement, _StridedShard):
            raise NotImplementedError(
                f"compute_local_shape_and_global_offset: {placement!r} on mesh dim "
                f"{mesh_dim}: ember's DTensor has no strided sharding")
        if isinstance(placement, Shard):
            dim = placement.dim % len(shape)
            size, start = Shard.local_shard_size_and_offset(
                shape[dim], mesh.size(mesh_dim), coordinate[mesh_dim])
            shape[dim] = size
            offset[dim] += start
    return tuple(shape), tuple(offset)
