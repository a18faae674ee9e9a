"""torch.utils.data.sampler's names."""
from ...frontend.data.sampler import (BatchSampler, RandomSampler, Sampler,  # noqa: F401
                                      SequentialSampler, SubsetRandomSampler,
                                      WeightedRandomSampler)
