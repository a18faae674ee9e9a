"""ember.utils.data: torch.utils.data (implemented in ember/frontend/data/).

Datasets (Dataset, IterableDataset, TensorDataset, ConcatDataset, ChainDataset,
StackDataset, Subset, random_split), samplers, default_collate / default_convert and
the DataLoader, whose num_workers run in the loading process (frontend/data/dataloader.py
says how). The submodules dataset, sampler, dataloader and distributed are torch's."""
import importlib

from ...frontend.data import (BatchSampler, ChainDataset, ConcatDataset,  # noqa: F401
                              DataLoader, Dataset, IterableDataset, RandomSampler, Sampler,
                              SequentialSampler, StackDataset, Subset, SubsetRandomSampler,
                              TensorDataset, WeightedRandomSampler, default_collate,
                              default_convert, get_worker_info, random_split)
from . import dataloader, dataset, sampler  # noqa: F401

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "ChainDataset",
           "StackDataset", "Subset", "random_split", "Sampler", "SequentialSampler",
           "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler",
           "default_collate", "default_convert", "get_worker_info", "DataLoader",
           "DistributedSampler"]


def __getattr__(name: str):
    # DistributedSampler lives with ember.distributed, loaded only when asked for
    if name in ("DistributedSampler", "distributed"):
        # import_module, not `from . import`: that form looks the name up on this package
        # first, which would call this hook again without end
        distributed = importlib.import_module(f"{__name__}.distributed")
        return distributed if name == "distributed" else distributed.DistributedSampler
    raise AttributeError(f"module 'ember.utils.data' has no attribute '{name}'")
