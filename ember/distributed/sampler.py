"""DistributedSampler: each rank reads its own 1/world_size slice of a dataset.

PyTorch keeps it at torch.utils.data.distributed.DistributedSampler; ember exports it
from ember.distributed until ember.utils.data exists. The index arithmetic (padding by
repetition, or dropping the tail, then every world_size-th index from `rank`) is
PyTorch's; the shuffled order comes from ember's generator seeded with seed + epoch,
so it is the same on every rank but not the same permutation torch would draw.
"""
from __future__ import annotations

import math

from . import c10d


class DistributedSampler:
    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None:
            num_replicas = c10d.get_world_size()
        if rank is None:
            rank = c10d.get_rank()
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.shuffle, self.seed = shuffle, seed

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            from ..frontend.random import Generator
            from ..frontend.factories import randperm
            g = Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = randperm(n, generator=g).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
            padding = self.total_size - len(indices)
            if padding <= len(indices):
                indices += indices[:padding]
            else:
                indices += (indices * math.ceil(padding / len(indices)))[:padding]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle differently each epoch (the same way on every rank)."""
        self.epoch = epoch
