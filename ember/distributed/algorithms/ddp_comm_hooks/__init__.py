"""torch.distributed.algorithms.ddp_comm_hooks: DDP's gradient communication hooks."""
from . import default_hooks, powerSGD_hook  # noqa: F401
from .default_hooks import allreduce_hook, bf16_compress_hook, fp16_compress_hook  # noqa: F401
