"""ember.mps: torch.mps's queries for device-selection code. ember has no Metal backend
(ember.backends.mps.is_available() is False), so there are no MPS devices, and the calls
that need one raise as torch's do without the MPS backend."""
from __future__ import annotations

__all__ = ["device_count", "empty_cache", "synchronize", "current_allocated_memory",
           "manual_seed", "seed"]


def device_count() -> int:
    return 0


def _without_mps(what: str):
    def call(*args, **kwargs):
        raise RuntimeError(f"Cannot execute {what}() without MPS backend.")
    call.__name__ = what
    return call


empty_cache = _without_mps("emptyCache")
synchronize = _without_mps("deviceSynchronize")
current_allocated_memory = _without_mps("getCurrentAllocatedMemory")


def manual_seed(seed: int) -> None:
    """Nothing to seed without an MPS device (torch returns quietly likewise)."""


def seed() -> None:
    """Nothing to seed without an MPS device."""
