"""ember.backends.cudnn: torch.backends.cudnn's switches.

ember generates its own convolution kernels and never calls cuDNN, so is_available() is
False and version() None, as on a PyTorch build without cuDNN. The flags that training
scripts set (`torch.backends.cudnn.benchmark = True`, `.allow_tf32`, `.deterministic`)
are plain module attributes with PyTorch's defaults; nothing in ember reads them
(determinism is ember.use_deterministic_algorithms).
"""
from __future__ import annotations

enabled = True
benchmark = False
benchmark_limit = None     # torch: None where cuDNN is absent
deterministic = False
allow_tf32 = True


def is_available() -> bool:
    """False: ember does not use cuDNN."""
    return False


def version():
    """None: no cuDNN library is loaded."""
    return None
