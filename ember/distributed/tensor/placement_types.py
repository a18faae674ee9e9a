"""torch.distributed.tensor's placements: how a DTensor's global tensor lies on one
dimension of its DeviceMesh (split along a tensor dim, copied whole, or summed)."""
from __future__ import annotations

from dataclasses import dataclass


class Placement:
    """One mesh dimension's layout of a DTensor."""

    def is_shard(self, dim: int | None = None) -> bool:
        return False

    def is_replicate(self) -> bool:
        return False

    def is_partial(self, reduce_op: str | None = None) -> bool:
        return False


@dataclass(frozen=True)
class Shard(Placement):
    """Split along tensor dim `dim` into torch.chunk's pieces, one per mesh rank (the last
    ones shorter or empty where the size does not divide)."""
    dim: int

    def is_shard(self, dim: int | None = None) -> bool:
        return dim is None or dim == self.dim

    @staticmethod
    def local_shard_size_and_offset(size_on_dim: int, num_chunks: int,
                                    rank: int) -> tuple[int, int]:
        """(length, start) of chunk `rank` of `size_on_dim` elements in `num_chunks`."""
        full_chunk = -(-size_on_dim // num_chunks)
        start = min(full_chunk * rank, size_on_dim)
        return max(0, min(size_on_dim, start + full_chunk) - start), start

    def __repr__(self) -> str:
        return f"Shard(dim={self.dim})"


@dataclass(frozen=True)
class _StridedShard(Shard):
    """Shard on a dim already split `split_factor` ways by an earlier mesh dimension
    (FSDP over tensor parallelism): each rank holds one piece of every split."""
    split_factor: int = 1

    def __repr__(self) -> str:
        return f"_StridedShard(dim={self.dim}, sf={self.split_factor})"


@dataclass(frozen=True)
class Replicate(Placement):
    """Every rank of the mesh dimension holds the whole tensor."""

    def is_replicate(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "Replicate()"


@dataclass(frozen=True)
class Partial(Placement):
    """Each rank holds a partial value; the global tensor is their reduction."""
    reduce_op: str = "sum"

    def is_partial(self, reduce_op: str | None = None) -> bool:
        return reduce_op is None or reduce_op == self.reduce_op

    def __repr__(self) -> str:
        return f"Partial({self.reduce_op})"


__all__ = ["Placement", "Shard", "Replicate", "Partial"]
