"""DistributedSampler: each rank reads its own 1/world_size slice of a dataset.

PyTorch keeps it at torch.utils.data.distributed.DistributedSampler; ember exports it
from ember.distributed until ember.utils.data exists. The index arithmetic (padding by
repetition, or dropping the tail, then every world_size-th index from `rank`) is
PyTorch's, and so is the shuffled order: `torch.randperm(n)` from a CPU generator
seeded with seed + epoch (see `torch_randperm`), so a script gets exactly the indices,
per rank and epoch, that it got under torch.
"""
from __future__ import annotations

import math

import numpy as np

from . import c10d

_SMALL_N = (2**32 - 1) // 20      # torch draws 32-bit numbers below this, 64-bit above


def torch_randperm(n: int, seed: int) -> list[int]:
    """torch.randperm(n, generator=torch.Generator().manual_seed(seed)) on the CPU.

    PyTorch's CPU generator is a Mersenne Twister (mt19937) seeded with the low 32 bits
    of the seed (the standard init_genrand, as numpy's legacy RandomState seeds it);
    randperm starts from 0..n-1 and swaps i with i + (draw % (n - i)) for each i < n-1,
    one 32-bit draw each.
    """
    if n >= _SMALL_N:
        raise NotImplementedError(f"DistributedSampler: shuffling {n} samples (torch draws "
                                  f"64-bit numbers from {_SMALL_N} samples up) is not "
                                  "supported yet")
    draws = np.random.RandomState(seed & 0xFFFFFFFF).randint(
        0, 2**32, size=max(n - 1, 0), dtype=np.uint32)
    perm = list(range(n))
    for i, z in enumerate((draws % np.arange(n, 1, -1, dtype=np.uint32)).tolist()):
        perm[i], perm[i + z] = perm[i + z], perm[i]
    return perm


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
            indices = torch_randperm(n, self.seed + self.epoch)
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
