"""torch.nn.attention's kernel selection for scaled_dot_product_attention.

`sdpa_kernel(backends)` and `torch.backends.cuda`'s `sdp_kernel(...)` /
`enable_flash_sdp(...)` / `flash_sdp_enabled()` (and the math, mem-efficient and cuDNN
pairs) keep PyTorch's state: which backends may run. ember's
scaled_dot_product_attention has one implementation per device (its own fused
kernel on CUDA, the composite on the CPU), computing what every PyTorch backend
computes up to rounding, so the state is kept and reported but does not select a
kernel. A selection that allows no backend at all is refused, as in PyTorch.
"""
from __future__ import annotations

import contextlib
import enum


class SDPBackend(enum.IntEnum):
    ERROR = -1
    MATH = 0
    FLASH_ATTENTION = 1
    EFFICIENT_ATTENTION = 2
    CUDNN_ATTENTION = 3
    OVERRIDEABLE = 4


_ENABLED = {SDPBackend.MATH: True, SDPBackend.FLASH_ATTENTION: True,
            SDPBackend.EFFICIENT_ATTENTION: True, SDPBackend.CUDNN_ATTENTION: True,
            SDPBackend.OVERRIDEABLE: True}


def enabled(backend: SDPBackend) -> bool:
    return _ENABLED[backend]


def set_enabled(backend: SDPBackend, on: bool) -> None:
    _ENABLED[backend] = bool(on)


@contextlib.contextmanager
def _selected(allowed: set):
    if not allowed:
        raise RuntimeError("sdpa_kernel: no scaled_dot_product_attention backend is enabled")
    saved = dict(_ENABLED)
    try:
        for backend in _ENABLED:
            _ENABLED[backend] = backend in allowed
        yield
    finally:
        _ENABLED.update(saved)


def sdpa_kernel(backends, set_priority: bool = False):
    """Within the block only `backends` (an SDPBackend or a list of them) may run."""
    chosen = {backends} if isinstance(backends, SDPBackend) else set(backends)
    return _selected(chosen)


def sdp_kernel(enable_flash: bool = True, enable_math: bool = True,
               enable_mem_efficient: bool = True, enable_cudnn: bool = True):
    """torch.backends.cuda.sdp_kernel (PyTorch's older spelling of sdpa_kernel)."""
    flags = {SDPBackend.FLASH_ATTENTION: enable_flash, SDPBackend.MATH: enable_math,
             SDPBackend.EFFICIENT_ATTENTION: enable_mem_efficient,
             SDPBackend.CUDNN_ATTENTION: enable_cudnn}
    return _selected({b for b, on in flags.items() if on} | {SDPBackend.OVERRIDEABLE})


__all__ = ["SDPBackend", "sdpa_kernel"]

from . import flex_attention  # noqa: E402,F401 - torch.nn.attention.flex_attention
