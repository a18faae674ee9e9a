"""ember.cuda: torch.cuda's user API over ember's CUDA runtime (runtime/cuda/).

is_available, device_count, get_device_name, get_device_capability, synchronize,
memory_allocated, memory_reserved, max_memory_allocated, max_memory_reserved,
reset_peak_memory_stats, memory_stats, empty_cache, mem_get_info, Stream, Event,
current_stream, default_stream, set_stream, stream(...), CUDAGraph, graph(...),
graph_pool_handle — PyTorch's names, arguments
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
           "set_stream", "stream", "StreamContext", "current_device", "OutOfMemoryError"]

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


class StreamContext(_streams.use_stream):
    """torch.cuda.StreamContext(stream): the context manager `ember.cuda.stream` returns;
    `s` is the current stream of its device inside the block (None: no change)."""


def stream(stream_: _streams.Stream | None) -> StreamContext:
    """`with ember.cuda.stream(s):` — ops queue on `s` inside the block."""
    return StreamContext(stream_)


# --- CUDA graphs (torch.cuda.CUDAGraph, torch.cuda.graph) --------------------------------
class CUDAGraph:
    """torch.cuda.CUDAGraph: record the kernels that ops queue on a side stream once, then
    `replay()` them with one launch. As in PyTorch, replay reads and writes the very
    tensors used during capture (copy new inputs into the static input tensors first);
    memory allocated during capture comes from the graph's private pool and stays
    reserved while the graph lives. Work that must reach the host while capturing (a host
    fallback, `.item()`, copies from or to CPU tensors) makes the capture fail."""

    def __init__(self, keep_graph: bool = False):
        self._capture = None
        self._graph = None
        self._pool = None

    def capture_begin(self, pool=None, capture_error_mode: str = "global") -> None:
        from ..runtime.cuda.graph import MODES, Capture
        if capture_error_mode not in MODES:
            raise ValueError(f"capture_error_mode must be one of {sorted(MODES)}, got "
                             f"{capture_error_mode!r}")
        if self._capture is not None or self._graph is not None:
            raise RuntimeError("this CUDAGraph was already captured; call reset() first")
        stream_ = current_stream()
        if stream_.handle == 0:
            raise RuntimeError("CUDA graphs must be captured on a non-default stream. "
                               "(However, after capture, it's ok to replay them on the "
                               "default stream.)")
        self._capture = Capture(stream_, pool, capture_error_mode)
        self._pool = self._capture.pool

    def capture_end(self) -> None:
        if self._capture is None:
            raise RuntimeError("capture_end() without capture_begin()")
        capture, self._capture = self._capture, None
        self._graph = capture.end()

    def _abandon(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.abandon()

    def replay(self) -> None:
        if self._graph is None:
            raise RuntimeError("replay() needs a captured graph (capture it first)")
        self._graph.launch(current_stream(self._graph.device))

    def reset(self) -> None:
        """Drop the graph (its private pool is released once no graph shares it)."""
        self._abandon()
        self._graph = None

    def pool(self):
        """This graph's memory pool id: pass it to another capture to share the pool."""
        if self._pool is None:
            raise RuntimeError("pool() needs a capture to have begun")
        return self._pool


def is_current_stream_capturing() -> bool:
    """torch.cuda.is_current_stream_capturing: True inside a capture on the current stream
    (False where there is no GPU)."""
    if not is_available():
        return False
    from ..runtime.cuda.stream import capture_status
    return capture_status(current_stream()) == "active"


def graph_pool_handle():
    """torch.cuda.graph_pool_handle: a pool id for captures that should share memory."""
    return device_allocator(_index(None)).new_private_pool()


class graph:  # noqa: N801 - torch.cuda.graph is a lower-case context manager
    """`with ember.cuda.graph(g):` captures the ops in the block into CUDAGraph `g`, on
    `stream` (default: one side stream per process, as PyTorch's), after synchronizing
    the device. Replay with `g.replay()`."""
    default_capture_stream = None

    def __init__(self, cuda_graph: CUDAGraph, pool=None, stream=None,
                 capture_error_mode: str = "global"):
        if stream is None:
            if graph.default_capture_stream is None:
                graph.default_capture_stream = Stream()
            stream = graph.default_capture_stream
        self.cuda_graph, self.pool, self.capture_error_mode = cuda_graph, pool, \
            capture_error_mode
        self._stream_ctx = _streams.use_stream(stream)

    def __enter__(self):
        synchronize()
        self._stream_ctx.__enter__()
        try:
            self.cuda_graph.capture_begin(self.pool, self.capture_error_mode)
        except BaseException:
            self._stream_ctx.__exit__(None, None, None)
            raise
        return self.cuda_graph

    def __exit__(self, kind, value, tb):
        try:
            if kind is None:
                self.cuda_graph.capture_end()
            else:
                self.cuda_graph._abandon()
        finally:
            self._stream_ctx.__exit__(kind, value, tb)
        return False


__all__ += ["CUDAGraph", "graph", "graph_pool_handle", "is_current_stream_capturing"]


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


from .cuda_info import *  # noqa: E402,F401,F403 - device properties, is_bf16_supported, ...
from .cuda_info import __all__ as _info_names  # noqa: E402

__all__ += _info_names
