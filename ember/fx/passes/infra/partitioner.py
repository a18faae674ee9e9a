"""`ember.fx.passes.infra.partitioner` (torch.fx.passes.infra.partitioner's names)."""
from ....frontend.fx.partition import CapabilityBasedPartitioner, Partition  # noqa: F401
