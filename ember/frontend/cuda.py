"""ember.cuda: torch.cuda's user API over ember's CUDA runtime (runtime/cuda/).

is_available, device_count, get_device_name, get_device_capability, synchronize,
memory_allocated, memory_reserved, max_memory_allocated, max_memory_reserved,
reset_peak_memory_stats, memory_stats, empty_cache, mem_get_info, Stream, Event,
current_stream, default_stream, set_stream, stream(...) — PyTorch's names, arguments
and meanings. `device` arguments take an int, 'cuda[:n]' or an ember.device;
None means the current device (always 0: ember does not switch devices yet).

Nothing here touches the driver at import time; `is_available()` is False (never an
error) where the `cuda-bindings` package, the driver or a GPU is missing.
"""
from __future__ import annotations

from ..ir.errors import DeviceError
from ..runtime.cuda import driver
from ..runtime.cuda.allocator import device_allocator
from ..runtime.cuda.stream import Event, PinnedBuffer  # noqa: F401 - public names
from ..runtime.cuda import stream as _streams
from .device import device as Device

__all__ = ["is_available", "device_count", "get_device_name", "get_device_capability",
           "synchronize", "memory_allocated", "memory_reserved", "max_memory_allocated",
           "max_memory_reserved", "reset_peak_memory_stats", "memory_stats", "empty_cache",
           "mem_get_info", "Stream", "Event", "current_stream", "default_stream",
           "set_stream", "stream", "current_device", "OutOfMemoryError"]

from ..ir.errors import OutOfMemoryError  # noqa: E402 - torch.cuda.OutOfMemoryError


def is_available() -> bool:
    return driver.is_available()


def device_count() -> int:
    try:
        return driver.device_count()
    except DeviceError:
        return 0


def current_device() -> int:
    return 0


def _index(device=None) -> int:
    if device is None:
        return current_device()
    if isinstance(device, int):
        return device
    dev = Device(device)
    if dev.type != "cuda":
        raise DeviceError(f"Expected a cuda device, but got: {dev}")
    return 0 if dev.index is None else dev.index


def check_device(device) -> None:
    """Raise a DeviceError saying why `device` cannot be used (no GPU, bad index)."""
    index = _index(device)
    if not is_available():
        reason = driver._state["init"]
        why = f": {reason}" if isinstance(reason, Exception) else ""
        raise DeviceError(f"device '{Device(device)}' is not available: no CUDA GPU or driver "
                          f"on this machine (ember.cuda.is_available() is False){why}")
    count = device_count()
    if not 0 <= index < count:
        raise DeviceError(f"CUDA error: invalid device ordinal {index}: this machine has "
                          f"{count} CUDA device(s)")


def get_device_name(device=None) -> str:
    return driver.device_name(_index(device))


def get_device_capability(device=None) -> tuple[int, int]:
    return driver.capability(_index(device))


def synchronize(device=None) -> None:
    driver.synchronize(_index(device))


def mem_get_info(device=None) -> tuple[int, int]:
    return driver.mem_get_info(_index(device))


# --- memory statistics (the caching allocator's) ---------------------------------------
def memory_allocated(device=None) -> int:
    return device_allocator(_index(device)).memory_allocated()


def memory_reserved(device=None) -> int:
    return device_allocator(_index(device)).memory_reserved()


def max_memory_allocated(device=None) -> int:
    return device_allocator(_index(device)).max_memory_allocated()


def max_memory_reserved(device=None) -> int:
    return device_allocator(_index(device)).max_memory_reserved()


def reset_peak_memory_stats(device=None) -> None:
    device_allocator(_index(device)).reset_peak_memory_stats()


def memory_stats(device=None) -> dict:
    return device_allocator(_index(device)).memory_stats()


def empty_cache() -> None:
    """Give cached, unused device memory back to the driver (all devices in use)."""
    from ..runtime.cuda.allocator import _allocators
    for allocator in _allocators.values():
        allocator.empty_cache()


# --- streams ---------------------------------------------------------------------------
class Stream(_streams.Stream):
    """torch.cuda.Stream(device=None, priority=0)."""

    def __init__(self, device=None, priority: int = 0, **kwargs):
        super().__init__(_index(device), priority, **kwargs)


def current_stream(device=None) -> _streams.Stream:
    return _streams.current_stream(_index(device))


def default_stream(device=None) -> _streams.Stream:
    return _streams.default_stream(_index(device))


def set_stream(stream_: _streams.Stream) -> None:
    _streams.set_stream(stream_)


def stream(stream_: _streams.Stream | None):
    """`with ember.cuda.stream(s):` — ops queue on `s` inside the block."""
    return _streams.use_stream(stream_)


# Random numbers for every device come from ember's one default generator (they are drawn
# on the host), so torch.cuda's seeding functions are that generator's: seeding "CUDA"
# with the value already given to ember.manual_seed changes nothing, as in PyTorch.
def manual_seed(seed: int) -> None:
    from .random import manual_seed as seed_default
    seed_default(seed)


manual_seed_all = manual_seed


def seed() -> None:
    from .random import seed as reseed
    reseed()


seed_all = seed


def initial_seed() -> int:
    from .random import initial_seed as default_initial_seed
    return default_initial_seed()


def get_rng_state(device=None):
    from .random import get_rng_state as default_state
    return default_state()


def set_rng_state(new_state, device=None) -> None:
    from .random import set_rng_state as set_default_state
    set_default_state(new_state)


__all__ += ["manual_seed", "manual_seed_all", "seed", "seed_all", "initial_seed",
            "get_rng_state", "set_rng_state"]


def __getattr__(name: str):
    """`ember.cuda.amp` (torch.cuda.amp's deprecated names), loaded on first use."""
    if name == "amp":
        import importlib
        import sys
        amp = importlib.import_module("ember.amp.cuda_amp")
        sys.modules.setdefault("ember.cuda.amp", amp)
        globals()["amp"] = amp
        return amp
    raise AttributeError(f"module 'ember.cuda' has no attribute '{name}'")
