"""SyncBatchNorm: torch.nn.SyncBatchNorm's class.

Model code (timm, torchvision) subclasses or swaps in SyncBatchNorm. In training with
a process group of several processes, the batch statistics are reduced over the group:
that forward lives in the distributed layer (ember/distributed/nn/sync_batchnorm.py),
which registers it here when ember.distributed is imported (the frontend does not
import that layer). Without a group, or in eval mode, it computes exactly BatchNorm,
as PyTorch does when torch.distributed is not initialized.
"""
from __future__ import annotations

from .normalization import _BatchNorm


_GROUP_BATCH_NORM: list = []      # (module, input) -> output or None, from ember.distributed


def register_group_batch_norm(fn) -> None:
    """ember.distributed plugs in the forward that reduces statistics over a group."""
    _GROUP_BATCH_NORM[:] = [fn]


class SyncBatchNorm(_BatchNorm):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, process_group=None,
                 device=None, dtype=None, *, bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats,
                         device=device, dtype=dtype, bias=bias)
        self.process_group = process_group

    def forward(self, input):
        if self.training and _GROUP_BATCH_NORM:
            out = _GROUP_BATCH_NORM[0](self, input)
            if out is not None:             # None: no group of several processes
                return out
        return super().forward(input)

    def _check_input_dim(self, input) -> None:
        if input.ndim < 2:
            raise ValueError(f"expected at least 2D input (got {input.ndim}D input)")

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """Returns `module` with every BatchNorm*d replaced by a SyncBatchNorm (same state)."""
        converted = module
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm) and \
                type(module).__name__.startswith("BatchNorm"):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            if module.affine:
                converted.weight, converted.bias = module.weight, module.bias
            converted.running_mean = module.running_mean
            converted.running_var = module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
            converted.training = module.training
        for name, child in module.named_children():
            converted.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return converted
