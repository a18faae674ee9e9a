"""torch.utils.data.distributed: DistributedSampler (ember.distributed's)."""
from ...distributed.sampler import DistributedSampler  # noqa: F401
