"""Layers PyTorch keeps for older model code: DataParallel (one device: it calls the
module; its state_dict keys gain the 'module.' prefix that checkpoints carry), NLLLoss2d
(NLLLoss under its old name), CrossMapLRN2d (LocalResponseNorm on 4-D input)."""
from __future__ import annotations

from .loss import NLLLoss
from .module import Module
from .normalization_extra import LocalResponseNorm


class DataParallel(Module):
    """torch.nn.DataParallel. ember runs the module on one device (the first of
    device_ids, else where its parameters live): single-process data parallelism over
    several GPUs is DistributedDataParallel's job (ember.distributed)."""

    def __init__(self, module, device_ids=None, output_device=None, dim: int = 0) -> None:
        super().__init__()
        self.module = module
        self.device_ids = list(device_ids) if device_ids is not None else []
        self.output_device = output_device if output_device is not None else \
            (self.device_ids[0] if self.device_ids else None)
        self.dim = dim

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


class NLLLoss2d(NLLLoss):
    """Deprecated in PyTorch: NLLLoss handles any number of spatial dimensions."""


class CrossMapLRN2d(LocalResponseNorm):
    """Local response normalization across channels of a 4-D input (the Lua-Torch layer)."""

    def forward(self, input):
        if input.ndim != 4:
            raise ValueError(f"CrossMapLRN2d: Expected input to be 4D, got {input.ndim}D "
                             f"instead.")
        return super().forward(input)
