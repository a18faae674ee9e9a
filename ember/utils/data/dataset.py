"""torch.utils.data.dataset's names."""
from ...frontend.data.dataset import (ChainDataset, ConcatDataset, Dataset,  # noqa: F401
                                      IterableDataset, StackDataset, Subset, TensorDataset,
                                      random_split)
