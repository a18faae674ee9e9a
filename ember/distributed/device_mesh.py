"""torch.distributed.device_mesh: ranks arranged in an n-d grid, one process group per
line of the grid along each dimension (what DTensor's placements refer to)."""
from __future__ import annotations

import numpy as np

from . import c10d


class DeviceMesh:
    """DeviceMesh(device_type, mesh, *, mesh_dim_names=None): `mesh` holds global ranks
    (any nested list or tensor of ints). Every rank of the job must build the same mesh:
    the groups along each dimension are created collectively."""

    def __init__(self, device_type: str, mesh, *, mesh_dim_names=None, _groups=None):
        self.device_type = device_type
        self._ranks = np.asarray(mesh.tolist() if hasattr(mesh, "tolist") else mesh,
                                 dtype=np.int64)
        self.mesh_dim_names = tuple(mesh_dim_names) if mesh_dim_names else None
        if self.mesh_dim_names and len(self.mesh_dim_names) != self._ranks.ndim:
            raise ValueError(f"DeviceMesh: {len(self.mesh_dim_names)} mesh_dim_names for a "
                             f"{self._ranks.ndim}-d mesh")
        if _groups is not None:          # a sub-mesh: its lines are its parent's
            self._groups = list(_groups)
            return
        if not c10d.is_initialized():
            c10d.init_process_group()
        self._groups = [self._group_along(dim) for dim in range(self._ranks.ndim)]

    def _group_along(self, dim: int):
        """The group of this rank's line along `dim` (every line's group is created, in
        the same order on every rank, as new_group requires)."""
        lines = np.moveaxis(self._ranks, dim, -1).reshape(-1, self._ranks.shape[dim])
        rank, mine = c10d.get_rank(), None
        for line in lines:
            ranks = [int(r) for r in line]
            group = (c10d.group.WORLD if len(ranks) == c10d.get_world_size()
                     and sorted(ranks) == ranks else c10d.new_group(ranks))
            if rank in ranks:
                mine = group
        return mine

    @property
    def mesh(self):
        import ember
        return ember.tensor(self._ranks)

    @property
    def ndim(self) -> int:
        return self._ranks.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._ranks.shape)

    def size(self, mesh_dim: int | None = None) -> int:
        return int(self._ranks.size if mesh_dim is None else self._ranks.shape[mesh_dim])

    def _dim(self, mesh_dim) -> int:
        if isinstance(mesh_dim, str):
            if not self.mesh_dim_names or mesh_dim not in self.mesh_dim_names:
                raise KeyError(f"DeviceMesh has no dimension named {mesh_dim!r} (names: "
                               f"{self.mesh_dim_names})")
            return self.mesh_dim_names.index(mesh_dim)
        return 0 if mesh_dim is None else mesh_dim

    def get_group(self, mesh_dim=None):
        if mesh_dim is None and self.ndim != 1:
            raise RuntimeError(f"DeviceMesh.get_group: the mesh has {self.ndim} dims; "
                               f"name one (mesh_dim=...)")
        return self._groups[self._dim(mesh_dim)]

    def get_all_groups(self) -> list:
        return list(self._groups)

    def get_coordinate(self) -> list[int] | None:
        """This rank's index in the mesh, or None where the rank is not in it."""
        where = np.argwhere(self._ranks == c10d.get_rank())
        return [int(i) for i in where[0]] if len(where) else None

    def get_local_rank(self, mesh_dim=None) -> int:
        coordinate = self.get_coordinate()
        if coordinate is None:
            raise RuntimeError(f"rank {c10d.get_rank()} is not in this DeviceMesh")
        return coordinate[self._dim(mesh_dim)]

    def get_rank(self) -> int:
        return c10d.get_rank()

    def __getitem__(self, names) -> "DeviceMesh":
        """The sub-mesh of the named dims through this rank (mesh["tp"]); its groups
        are this mesh's groups along those dims (no new groups are made)."""
        names = (names,) if isinstance(names, str) else tuple(names)
        dims = [self._dim(name) for name in names]
        coordinate = self.get_coordinate()
        if coordinate is None:
            raise RuntimeError(f"rank {c10d.get_rank()} is not in this DeviceMesh")
        index = tuple(slice(None) if d in dims else coordinate[d] for d in range(self.ndim))
        kept = sorted(dims)
        ranks = np.transpose(self._ranks[index], [kept.index(d) for d in dims])
        return DeviceMesh(self.device_type, ranks, mesh_dim_names=names,
                          _groups=[self._groups[d] for d in dims])

    def __eq__(self, other) -> bool:
        return (isinstance(other, DeviceMesh) and self.device_type == other.device_type
                and np.array_equal(self._ranks, other._ranks))

    def __hash__(self) -> int:
        return hash((self.device_type, self._ranks.tobytes(), self._ranks.shape))

    def __repr__(self) -> str:
        names = f", mesh_dim_names={self.mesh_dim_names}" if self.mesh_dim_names else ""
        return f"DeviceMesh('{self.device_type}', {self._ranks.tolist()}{names})"


def init_device_mesh(device_type: str, mesh_shape, *, mesh_dim_names=None) -> DeviceMesh:
    """A mesh of shape `mesh_shape` over ranks 0..N-1 in order (the default group is
    initialized first if needed)."""
    if not c10d.is_initialized():
        c10d.init_process_group()
    count = int(np.prod(mesh_shape))
    if count != c10d.get_world_size():
        raise RuntimeError(f"init_device_mesh: mesh_shape {tuple(mesh_shape)} has {count} "
                           f"ranks, the world has {c10d.get_world_size()}")
    ranks = np.arange(count).reshape(tuple(mesh_shape))
    return DeviceMesh(device_type, ranks, mesh_dim_names=mesh_dim_names)


__all__ = ["DeviceMesh", "init_device_mesh"]
