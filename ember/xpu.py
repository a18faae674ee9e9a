"""ember.xpu: torch.xpu's availability queries, for device-selection code
(`elif torch.xpu.is_available(): ...`). ember has no Intel GPU backend: none is available."""
from __future__ import annotations

__all__ = ["is_available", "device_count", "empty_cache", "synchronize", "current_device"]


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def empty_cache() -> None:
    """Nothing cached: no XPU memory is ever allocated (torch: a no-op without XPU)."""


def _unavailable(*args, **kwargs):
    raise RuntimeError("ember has no XPU backend: ember.xpu.is_available() is False")


synchronize = current_device = _unavailable
