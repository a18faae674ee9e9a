"""Error-checked calls into the CUDA driver API (`cuda.bindings.driver`).

Every call goes through `call(name, *args)`: a CUresult other than CUDA_SUCCESS becomes
a DeviceError naming the call and the driver's error name (`cuMemAlloc failed:
CUDA_ERROR_OUT_OF_MEMORY (out of memory)`); the result's remaining values come back
(one value unwrapped, several as a tuple).

The bindings are imported on first use, so ember imports without them. The context is
the device's primary context (the one the CUDA runtime and PyTorch share), retained once
per device and made current on the calling thread before any call that needs it.
"""
from __future__ import annotations

import threading

from ...ir.errors import DeviceError

_state = {"cu": None, "init": None, "contexts": {}}
_lock = threading.RLock()   # context() calls init() while holding it
_current = threading.local()


class DriverCallError(DeviceError):
    """A failed driver call; `code` is the CUresult's name (CUDA_ERROR_...)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def bindings():
    """The `cuda.bindings.driver` module, imported on first use."""
    cu = _state["cu"]
    if cu is None:
        try:
            from cuda.bindings import driver as cu
        except ImportError as err:
            raise DeviceError("CUDA is not available: the `cuda-bindings` package is not "
                              f"installed ({err}); pip install cuda-bindings") from None
        _state["cu"] = cu
    return cu


def _error_name(cu, result) -> tuple[str, str]:
    err, name = cu.cuGetErrorName(result)
    err2, text = cu.cuGetErrorString(result)
    name = name.decode() if err == cu.CUresult.CUDA_SUCCESS else str(result)
    text = text.decode() if err2 == cu.CUresult.CUDA_SUCCESS else ""
    return name, text


def call(name: str, *args):
    """`cuda.bindings.driver.<name>(*args)`, raising DriverCallError on failure."""
    cu = bindings()
    try:
        out = getattr(cu, name)(*args)
    except (RuntimeError, OSError, TypeError, ValueError) as err:
        # no driver library (a machine without a GPU), or arguments the binding refuses
        raise DriverCallError(f"{name} failed: {type(err).__name__}: {err}",
                              type(err).__name__) from None
    result, values = out[0], out[1:]
    if result != cu.CUresult.CUDA_SUCCESS:
        code, text = _error_name(cu, result)
        raise DriverCallError(f"{name} failed: {code} ({text})", code)
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def init() -> None:
    """cuInit once per process; the first failure is remembered and raised again."""
    with _lock:
        if _state["init"] is None:
            try:
                call("cuInit", 0)
                _state["init"] = True
            except DeviceError as err:
                _state["init"] = err
    if _state["init"] is not True:
        raise _state["init"]


def is_available() -> bool:
    """True when the bindings import, the driver initializes and a device exists."""
    try:
        return device_count() > 0
    except DeviceError:
        return False


def device_count() -> int:
    init()
    return int(call("cuDeviceGetCount"))


def context(index: int = 0):
    """Retain device `index`'s primary context (once) and make it current on this thread."""
    init()
    ctx = _state["contexts"].get(index)
    if ctx is None:
        with _lock:
            ctx = _state["contexts"].get(index)
            if ctx is None:
                count = device_count()
                if not 0 <= index < count:
                    raise DeviceError(f"CUDA device {index} does not exist: this machine has "
                                      f"{count} device(s)")
                dev = call("cuDeviceGet", index)
                ctx = call("cuDevicePrimaryCtxRetain", dev)
                _state["contexts"][index] = ctx
    if getattr(_current, "index", None) != index:
        call("cuCtxSetCurrent", ctx)
        _current.index = index
    return ctx


def device_attribute(attribute: str, index: int = 0) -> int:
    """cuDeviceGetAttribute by the enum's short name (e.g. 'MULTIPROCESSOR_COUNT')."""
    cu = bindings()
    context(index)
    attr = getattr(cu.CUdevice_attribute, f"CU_DEVICE_ATTRIBUTE_{attribute}")
    return int(call("cuDeviceGetAttribute", attr, call("cuDeviceGet", index)))


def device_name(index: int = 0) -> str:
    context(index)
    raw = call("cuDeviceGetName", 256, call("cuDeviceGet", index))
    return raw.split(b"\0", 1)[0].decode()


def capability(index: int = 0) -> tuple[int, int]:
    return (device_attribute("COMPUTE_CAPABILITY_MAJOR", index),
            device_attribute("COMPUTE_CAPABILITY_MINOR", index))


def total_memory(index: int = 0) -> int:
    context(index)
    return int(call("cuDeviceTotalMem", call("cuDeviceGet", index)))


def mem_get_info(index: int = 0) -> tuple[int, int]:
    """(free, total) bytes on the device, as the driver sees them."""
    context(index)
    free, total = call("cuMemGetInfo")
    return int(free), int(total)


def synchronize(index: int = 0) -> None:
    context(index)
    call("cuCtxSynchronize")


class relaxed_capture:  # noqa: N801 - reads as a context manager
    """Inside, this thread's calls that a stream capture in global or thread-local mode
    would refuse (cuMemAlloc, cuModuleLoadData) are allowed: the caching allocator and
    the kernel loader run during a capture as PyTorch's allocator does (its
    CUDAStreamCaptureModeGuard). The thread's previous mode is restored on exit."""

    def __enter__(self):
        cu = bindings()
        self._previous = call("cuThreadExchangeStreamCaptureMode",
                              cu.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED)
        return self

    def __exit__(self, *exc):
        call("cuThreadExchangeStreamCaptureMode", self._previous)
        return False
