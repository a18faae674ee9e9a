"""The device's memory: buffers that live apart from ember's CPU tensors.

A handle is an integer; the bytes behind it are a NumPy array held here (or a CuPy array
on a GPU when `EMBER_NUMDEV_CUPY=1` and CuPy finds one). ember never sees these arrays:
it asks for copies through `to_host` and writes through `from_host`, exactly as it would
with memory on an accelerator.
"""
from __future__ import annotations

import itertools
import os

import numpy as np


def _array_module():
    if os.environ.get("EMBER_NUMDEV_CUPY") == "1":
        try:
            import cupy
            if cupy.cuda.runtime.getDeviceCount() > 0:
                return cupy
        except Exception:                       # no CuPy or no GPU: host memory
            pass
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
