"""torch.distributed._composable.fsdp: the older home of torch.distributed.fsdp's FSDP2
names."""
from ...fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard  # noqa: F401
