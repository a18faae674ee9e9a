"""More of torch.cuda's user API (ember.cuda re-exports it): device properties and feature
queries training scripts ask before choosing a dtype (`is_bf16_supported`,
`get_device_properties(0).total_memory`), per-device RNG states, the `device` /
`device_of` context managers, lazy initialization queries, and the legacy
`ember.cuda.FloatTensor` types."""
from __future__ import annotations

from ..ir.errors import DeviceError
from ..runtime.cuda import driver
from .cuda import _index, check_device, device_count, get_rng_state, is_available, \
    set_rng_state


class _CudaDeviceProperties:
    """What torch.cuda.get_device_properties returns: name, major/minor (compute
    capability), total_memory (bytes), multi_processor_count, warp_size, L2_cache_size."""

    def __init__(self, index: int):
        self.name = driver.device_name(index)
        self.major, self.minor = driver.capability(index)
        self.total_memory = driver.total_memory(index)
        self.multi_processor_count = driver.device_attribute("MULTIPROCESSOR_COUNT", index)
        self.warp_size = driver.device_attribute("WARP_SIZE", index)
        self.L2_cache_size = driver.device_attribute("L2_CACHE_SIZE", index)
        self.max_threads_per_multi_processor = driver.device_attribute(
            "MAX_THREADS_PER_MULTIPROCESSOR", index)
        self.is_integrated = driver.device_attribute("INTEGRATED", index)

    def __repr__(self) -> str:
        return (f"_CudaDeviceProperties(name='{self.name}', major={self.major}, "
                f"minor={self.minor}, total_memory={self.total_memory // (1 << 20)}MB, "
                f"multi_processor_count={self.multi_processor_count}, "
                f"L2_cache_size={self.L2_cache_size // (1 << 20)}MB)")


def get_device_properties(device=None) -> _CudaDeviceProperties:
    index = _index(device)
    check_device(f"cuda:{index}")
    return _CudaDeviceProperties(index)


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """bfloat16 runs natively from compute capability 8.0; earlier GPUs emulate it."""
    if not is_available():
        return False
    return driver.capability(0)[0] >= 8 or including_emulation


def is_tf32_supported() -> bool:
    return is_available() and driver.capability(0)[0] >= 8


def is_initialized() -> bool:
    return driver._state["init"] is True


def init() -> None:
    """Initialize CUDA now (it is lazy); raises the reason where no GPU can be used."""
    check_device("cuda:0")


def get_rng_state_all() -> list:
    return [get_rng_state(i) for i in range(device_count())]


def set_rng_state_all(new_states) -> None:
    for i, state in enumerate(new_states):
        set_rng_state(state, i)


class device:  # noqa: N801 - torch.cuda.device is a lower-case context manager
    """`with ember.cuda.device(i):` selects device i for the block; ember runs on device 0,
    so i must be 0 (or -1/None: no change)."""

    def __init__(self, device):
        self.idx = -1 if device is None else _index(device)
        if self.idx not in (-1, 0):
            raise DeviceError(f"ember.cuda.device({self.idx}): ember runs CUDA work on "
                              "device 0 only")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class device_of(device):  # noqa: N801
    """The device of a tensor: `with ember.cuda.device_of(t):` (no-op for CPU tensors)."""

    def __init__(self, obj):
        super().__init__(obj.get_device() if obj.is_cuda else -1)


def ipc_collect() -> None:
    """Nothing to collect: ember shares no CUDA memory between processes."""


def _legacy_cuda_types() -> dict:
    from .aliases import LEGACY_CUDA_TYPES
    return LEGACY_CUDA_TYPES


globals().update(_legacy_cuda_types())
__all__ = ["get_device_properties", "is_bf16_supported", "is_tf32_supported",
           "is_initialized", "init", "get_rng_state_all", "set_rng_state_all", "device",
           "device_of", "ipc_collect", *_legacy_cuda_types()]
