"""Streams, events, the current stream, and memory copies/memset on streams.

`Stream` and `Event` follow torch.cuda's names and semantics: a Stream(priority=0) is a
non-blocking driver stream; `Stream.null(device)` is the legacy default stream (handle
0), which is the current stream until `use_stream` (or ember.cuda.stream) says
otherwise. Events record on a stream, make another stream wait, synchronize the host,
and time the interval between two (enable_timing=True).

Copies: `copy_host_to_device` / `copy_device_to_host` are ordered on a stream and,
unless the host side is pinned (`PinnedBuffer`, cuMemHostAlloc), wait for the stream,
because pageable host memory may be reused by Python as soon as the call returns.
`host_transfers()` counts those copies and stream synchronizations: work that left it
unchanged queued only device work, so a CUDA graph may record it (compile_cuda.py).
"""
from __future__ import annotations

import ctypes
import threading

import numpy as np

from . import driver

_current = threading.local()
_host_transfers = [0]


def host_transfers() -> int:
    """How many host<->device copies and stream synchronizations ran so far (a CUDA graph
    records neither faithfully: a capture cannot wait, and a recorded copy would re-read
    whatever the host buffer holds at replay)."""
    return _host_transfers[0]


def note_host_transfer() -> None:
    _host_transfers[0] += 1


class Stream:
    """A CUDA stream on one device. `handle` is the CUstream as an int (0: legacy default)."""

    def __init__(self, device: int = 0, priority: int = 0, *, _handle=None):
        self.device = device
        self.priority = priority
        if _handle is not None:
            self._stream = _handle
        else:
            cu = driver.bindings()
            driver.context(device)
            flags = cu.CUstream_flags.CU_STREAM_NON_BLOCKING
            self._stream = driver.call("cuStreamCreateWithPriority", flags, priority)
        self._owned = _handle is None

    @classmethod
    def null(cls, device: int = 0) -> "Stream":
        return cls(device, _handle=driver.bindings().CUstream(0))

    @property
    def handle(self) -> int:
        return int(self._stream)

    @property
    def cuda_stream(self) -> int:
        """torch.cuda.Stream.cuda_stream: the raw handle."""
        return self.handle

    def query(self) -> bool:
        """True when all work queued on this stream has finished."""
        driver.context(self.device)
        result = driver.bindings().cuStreamQuery(self._stream)[0]
        return result == driver.bindings().CUresult.CUDA_SUCCESS

    def synchronize(self) -> None:
        note_host_transfer()
        driver.context(self.device)
        driver.call("cuStreamSynchronize", self._stream)

    def wait_event(self, event: "Event") -> None:
        driver.context(self.device)
        driver.call("cuStreamWaitEvent", self._stream, event._event, 0)

    def wait_stream(self, stream: "Stream") -> None:
        self.wait_event(stream.record_event())

    def record_event(self, event: "Event | None" = None) -> "Event":
        event = event or Event()
        event.record(self)
        return event

    def __eq__(self, other) -> bool:
        return isinstance(other, Stream) and (self.device, self.handle) == \
            (other.device, other.handle)

    def __hash__(self):
        return hash((self.device, self.handle))

    def __repr__(self) -> str:
        return f"<ember.cuda.Stream device=cuda:{self.device} cuda_stream={self.handle:#x}>"

    def __del__(self):
        if getattr(self, "_owned", False) and driver._state["cu"] is not None:
            try:
                driver.bindings().cuStreamDestroy(self._stream)
            except Exception:   # noqa: BLE001 - interpreter shutdown: the driver may be gone
                pass


class Event:
    """torch.cuda.Event: record on a stream, wait, synchronize, elapsed_time (ms)."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False,
                 interprocess: bool = False, device: int = 0):
        cu = driver.bindings()
        driver.context(device)
        flags = 0
        if not enable_timing:
            flags |= int(cu.CUevent_flags.CU_EVENT_DISABLE_TIMING)
        if blocking:
            flags |= int(cu.CUevent_flags.CU_EVENT_BLOCKING_SYNC)
        if interprocess:
            flags |= int(cu.CUevent_flags.CU_EVENT_INTERPROCESS)
        self.device = device
        self.enable_timing = enable_timing
        self._event = driver.call("cuEventCreate", flags)
        self._recorded = False

    def record(self, stream: Stream | None = None) -> None:
        stream = stream or current_stream(self.device)
        driver.context(self.device)
        driver.call("cuEventRecord", self._event, stream._stream)
        self._recorded = True

    def wait(self, stream: Stream | None = None) -> None:
        (stream or current_stream(self.device)).wait_event(self)

    def query(self) -> bool:
        driver.context(self.device)
        return driver.bindings().cuEventQuery(self._event)[0] == \
            driver.bindings().CUresult.CUDA_SUCCESS

    def synchronize(self) -> None:
        driver.context(self.device)
        driver.call("cuEventSynchronize", self._event)

    def elapsed_time(self, end_event: "Event") -> float:
        """Milliseconds between this event and `end_event` (both recorded and complete)."""
        if not (self.enable_timing and end_event.enable_timing):
            raise ValueError("elapsed_time: both events must be created with "
                             "enable_timing=True")
        if not (self._recorded and end_event._recorded):
            raise ValueError("elapsed_time: both events must be recorded first")
        driver.context(self.device)
        return float(driver.call("cuEventElapsedTime", self._event, end_event._event))

    def __del__(self):
        if driver._state["cu"] is not None and hasattr(self, "_event"):
            try:
                driver.bindings().cuEventDestroy(self._event)
            except Exception:   # noqa: BLE001 - interpreter shutdown
                pass


# --- the current stream ------------------------------------------------------------------
def _streams() -> dict:
    if not hasattr(_current, "streams"):
        _current.streams = {}
    return _current.streams


_defaults: dict[int, Stream] = {}


def default_stream(device: int = 0) -> Stream:
    stream = _defaults.get(device)
    if stream is None:
        stream = _defaults.setdefault(device, Stream.null(device))
    return stream


def current_stream(device: int = 0) -> Stream:
    return _streams().get(device) or default_stream(device)


def set_stream(stream: Stream) -> None:
    _streams()[stream.device] = stream


class use_stream:  # noqa: N801 - reads as a context manager, like torch.cuda.stream
    """`with use_stream(s):` makes `s` current on its device, then restores the previous."""

    def __init__(self, stream: Stream | None):
        self.stream = stream

    def __enter__(self):
        if self.stream is not None:
            self._previous = _streams().get(self.stream.device)
            set_stream(self.stream)
        return self.stream

    def __exit__(self, *exc):
        if self.stream is not None:
            if self._previous is None:
                _streams().pop(self.stream.device, None)
            else:
                set_stream(self._previous)


# --- copies and memset -------------------------------------------------------------------
class PinnedBuffer:
    """Page-locked host memory (cuMemHostAlloc): copies from/to it are truly asynchronous."""

    def __init__(self, nbytes: int, device: int = 0):
        driver.context(device)
        self.nbytes = nbytes
        self.ptr = int(driver.call("cuMemHostAlloc", max(nbytes, 1), 0))

    def array(self, dtype, shape) -> np.ndarray:
        """A numpy view of the buffer (valid while this object lives)."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        raw = (ctypes.c_byte * max(self.nbytes, 1)).from_address(self.ptr)
        return np.frombuffer(raw, dtype, count).reshape(shape)

    def __del__(self):
        if driver._state["cu"] is not None and getattr(self, "ptr", 0):
            try:
                driver.bindings().cuMemFreeHost(self.ptr)
            except Exception:   # noqa: BLE001 - interpreter shutdown
                pass


def capture_status(stream: "Stream") -> str:
    """'none', 'active' or 'invalidated': whether work queued on `stream` is being recorded
    into a CUDA graph (the stream's device context made current first: this may be the
    process's first driver call)."""
    driver.context(stream.device)
    cu = driver.bindings()
    status = driver.call("cuStreamIsCapturing", stream._stream)
    names = {cu.CUstreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_NONE: "none",
             cu.CUstreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_ACTIVE: "active"}
    return names.get(status, "invalidated")


def copy_host_to_device(dst: int, src: np.ndarray, stream: Stream, pinned: bool = False) -> None:
    """Copy the bytes of C-contiguous `src` to device address `dst`, ordered on `stream`."""
    if not src.flags.c_contiguous:
        raise ValueError("copy_host_to_device needs a C-contiguous host array")
    if src.nbytes == 0:
        return
    note_host_transfer()
    driver.context(stream.device)
    driver.call("cuMemcpyHtoDAsync", dst, src.ctypes.data, src.nbytes, stream._stream)
    if not pinned:
        stream.synchronize()


def copy_device_to_host(dst: np.ndarray, src: int, stream: Stream, pinned: bool = False) -> None:
    """Copy `dst.nbytes` bytes from device address `src` into C-contiguous `dst`."""
    if not dst.flags.c_contiguous:
        raise ValueError("copy_device_to_host needs a C-contiguous host array")
    if dst.nbytes == 0:
        return
    note_host_transfer()
    driver.context(stream.device)
    driver.call("cuMemcpyDtoHAsync", dst.ctypes.data, src, dst.nbytes, stream._stream)
    if not pinned:
        stream.synchronize()


def copy_device_to_device(dst: int, src: int, nbytes: int, stream: Stream) -> None:
    if nbytes:
        driver.context(stream.device)
        driver.call("cuMemcpyDtoDAsync", dst, src, nbytes, stream._stream)


def memset(dst: int, byte: int, nbytes: int, stream: Stream) -> None:
    if nbytes:
        driver.context(stream.device)
        driver.call("cuMemsetD8Async", dst, byte, nbytes, stream._stream)
