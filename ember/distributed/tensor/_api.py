"""torch.distributed.tensor.DTensor: a global tensor laid out over a DeviceMesh.

Each rank holds its local piece (`to_local()`); `placements` say, per mesh dimension,
whether the global tensor is split along a tensor dim (Shard), copied (Replicate) or
the sum of the pieces (Partial). ember's DTensor converts between layouts
(`redistribute`, `full_tensor`, `distribute_tensor`, `from_local`) through the mesh's
process groups; it is not a Tensor subclass, so ops do not run on DTensors directly
(PyTorch shards ops over them): compute on `to_local()` or `full_tensor()`.
"""
from __future__ import annotations

from .. import c10d
from ..device_mesh import DeviceMesh
from .placement_types import Partial, Placement, Replicate, Shard, _StridedShard


def _global_shape(local_shape, mesh: DeviceMesh, placements) -> tuple[int, ...]:
    """The global shape of evenly sharded local pieces (from_local without shape=)."""
    shape = list(local_shape)
    for mesh_dim, placement in enumerate(placements):
        if isinstance(placement, Shard):
            shape[placement.dim % len(shape)] *= mesh.size(mesh_dim)
    return tuple(shape)


def _checked(placements, mesh: DeviceMesh) -> tuple[Placement, ...]:
    placements = tuple(placements)
    if len(placements) != mesh.ndim:
        raise ValueError(f"{len(placements)} placements for a {mesh.ndim}-d DeviceMesh")
    for placement in placements:
        if isinstance(placement, _StridedShard):
            raise NotImplementedError(f"ember's DTensor has no strided sharding "
                                      f"({placement!r})")
    return placements


class DTensor:
    """A distributed tensor: this rank's piece, its mesh, placements and global shape."""

    def __init__(self, local_tensor, device_mesh: DeviceMesh, placements, shape):
        self._local_tensor = local_tensor
        self.device_mesh = device_mesh
        self.placements = _checked(placements, device_mesh)
        self.shape = tuple(shape)

    @classmethod
    def from_local(cls, local_tensor, device_mesh: DeviceMesh | None = None, placements=None,
                   *, run_check: bool = False, shape=None, stride=None) -> "DTensor":
        mesh = device_mesh or _default_mesh()
        placements = _checked(placements or [Replicate()] * mesh.ndim, mesh)
        if shape is None:
            shape = _global_shape(local_tensor.shape, mesh, placements)
        return cls(local_tensor, mesh, placements, shape)

    def to_local(self, *, grad_placements=None):
        return self._local_tensor

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    @property
    def dtype(self):
        return self._local_tensor.dtype

    @property
    def device(self):
        return self._local_tensor.device

    def dim(self) -> int:
        return len(self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def full_tensor(self, *, grad_placements=None):
        """The whole global tensor, on every rank."""
        return self.redistribute(self.device_mesh,
                                 [Replicate()] * self.device_mesh.ndim).to_local()

    def redistribute(self, device_mesh: DeviceMesh | None = None, placements=None, *,
                     async_op: bool = False, forward_dtype=None,
                     backward_dtype=None) -> "DTensor":
        """The same global tensor under `placements` (mesh dims converted one by one,
        last first, as PyTorch orders nested shards)."""
        mesh = device_mesh or self.device_mesh
        if mesh != self.device_mesh:
            raise NotImplementedError("DTensor.redistribute to a different DeviceMesh")
        target = _checked(placements or self.placements, mesh)
        local, current = self._local_tensor, list(self.placements)
        for mesh_dim in reversed(range(mesh.ndim)):
            if current[mesh_dim] != target[mesh_dim]:
                local = _convert(local, mesh, mesh_dim, current[mesh_dim], target[mesh_dim])
                current[mesh_dim] = target[mesh_dim]
        return DTensor(local, mesh, target, self.shape)

    def __repr__(self) -> str:
        return (f"DTensor(local_tensor={self._local_tensor}, device_mesh={self.device_mesh}, "
                f"placements={self.placements})")


def _default_mesh() -> DeviceMesh:
    from ..device_mesh import init_device_mesh
    return init_device_mesh("cpu", (c10d.get_world_size(),))


def _convert(local, mesh: DeviceMesh, mesh_dim: int, source: Placement, target: Placement):
    """One mesh dim's piece from `source` to `target` layout."""
    group = mesh.get_group(mesh_dim)
    if isinstance(source, Partial):
        local = local.clone()
        c10d.all_reduce(local, op=_reduce_op(source.reduce_op), group=group)
        source = Replicate()
    if isinstance(source, Shard):
        local = _gather_shards(local, group, source.dim)
        source = Replicate()
    if isinstance(target, Replicate):
        return local
    if isinstance(target, Shard):
        count, rank = mesh.size(mesh_dim), mesh.get_local_rank(mesh_dim)
        dim = target.dim % local.dim()
        size, start = Shard.local_shard_size_and_offset(local.shape[dim], count, rank)
        return local.narrow(dim, start, size).clone()
    raise NotImplementedError(f"DTensor.redistribute from {source!r} to {target!r}")


def _reduce_op(name: str):
    from ..reduce_op import ReduceOp
    return {"sum": ReduceOp.SUM, "avg": ReduceOp.AVG, "max": ReduceOp.MAX,
            "min": ReduceOp.MIN, "product": ReduceOp.PRODUCT}[name]


def _gather_shards(local, group, dim: int):
    """The concatenation along `dim` of every rank's (possibly uneven) piece."""
    import ember
    count = c10d.get_world_size(group)
    dim = dim % local.dim()
    sizes = [ember.zeros((), dtype=ember.int64) for _ in range(count)]
    c10d.all_gather(sizes, ember.tensor(local.shape[dim], dtype=ember.int64), group=group)
    sizes = [int(size) for size in sizes]
    widest = max(sizes)
    padded = ember.nn.functional.pad(
        local, [0, 0] * (local.dim() - 1 - dim) + [0, widest - local.shape[dim]])
    pieces = [ember.empty_like(padded) for _ in range(count)]
    c10d.all_gather(pieces, padded.contiguous(), group=group)
    return ember.cat([piece.narrow(dim, 0, size) for piece, size in zip(pieces, sizes)], dim)


def distribute_tensor(tensor, device_mesh: DeviceMesh | None = None, placements=None, *,
                      src_data_rank: int | None = 0) -> DTensor:
    """`tensor` (rank src_data_rank's copy is the one used) laid out by `placements`."""
    mesh = device_mesh or _default_mesh()
    placements = _checked(placements or [Replicate()] * mesh.ndim, mesh)
    local = tensor.detach().clone()
    if src_data_rank is not None:
        c10d.broadcast(local, src=src_data_rank)
    whole = DTensor(local, mesh, [Replicate()] * mesh.ndim, tensor.shape)
    return whole.redistribute(mesh, placements)


__all__ = ["DTensor", "distribute_tensor"]
