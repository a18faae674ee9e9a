"""The device's memory: buffers that live apart from ember's CPU tensors.

A handle is an integer; the bytes behind it are a CuPy array in GPU memory when CuPy is
installed and finds a GPU, else a NumPy array held here (`EMBER_NUMDEV_MEMORY=numpy` or
`=cupy` forces one). ember never sees these arrays:
it asks for copies through `to_host` and writes through `from_host`, exactly as it would
with memory on an accelerator.
"""
from __future__ import annotations

import itertools
import os

import numpy as np


def _array_module():
    choice = os.environ.get("EMBER_NUMDEV_MEMORY", "auto")
    if choice not in ("auto", "numpy", "cupy"):
        raise ValueError(f"EMBER_NUMDEV_MEMORY must be auto, numpy or cupy, got {choice!r}")
    if choice == "numpy":
        return np
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
        reason = "CuPy finds no GPU"
    except Exception as err:                    # no CuPy, or no CUDA driver
        reason = f"CuPy is not usable ({type(err).__name__})"
    if choice == "cupy":
        raise RuntimeError(f"EMBER_NUMDEV_MEMORY=cupy: {reason}")
    return np


xp = _array_module()


class DeviceMemory:
    """Allocations by handle, with counters a test can read."""

    def __init__(self):
        self.buffers: dict[int, object] = {}
        self._ids = itertools.count(1)
        self.allocations = 0
        self.bytes_to_host = 0
        self.bytes_from_host = 0

    def allocate(self, nbytes: int) -> int:
        handle = next(self._ids)
        self.buffers[handle] = xp.zeros(nbytes, xp.uint8)
        self.allocations += 1
        return handle

    def free(self, handle: int) -> None:
        self.buffers.pop(handle, None)

    def to_host(self, handle: int) -> np.ndarray:
        data = self.buffers[handle]
        self.bytes_to_host += data.nbytes
        return data.get() if xp is not np else data.copy()

    def from_host(self, handle: int, data: np.ndarray) -> None:
        buffer = self.buffers[handle]
        buffer[...] = xp.asarray(data[:buffer.size])
        self.bytes_from_host += buffer.nbytes

    def typed(self, handle: int, dtype, offset: int, shape, strides):
        """The buffer as a strided array of `dtype` (element strides), no copy."""
        buffer = self.buffers[handle]
        itemsize = np.dtype(dtype).itemsize
        flat = buffer[:(buffer.size // itemsize) * itemsize].view(dtype)
        return xp.lib.stride_tricks.as_strided(flat[offset:], tuple(shape),
                                               tuple(s * itemsize for s in strides))

    def adopt(self, array) -> int:
        """A new buffer holding a dense array's bytes (a kernel's result)."""
        array = xp.ascontiguousarray(array)
        handle = next(self._ids)
        self.buffers[handle] = array.reshape(-1).view(xp.uint8).copy()
        self.allocations += 1
        return handle


MEMORY = DeviceMemory()
