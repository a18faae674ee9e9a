"""Page-locked ("pinned") host memory for CPU tensors: Tensor.pin_memory() / is_pinned(),
as in PyTorch.

`pin_memory()` copies a CPU tensor into a PinnedBuffer (cuMemHostAlloc) and returns a CPU
tensor over it; its views are pinned too. A host-to-device copy from pinned memory asked
with `non_blocking=True` (`.to("cuda", non_blocking=True)`, `.cuda(non_blocking=True)`,
`copy_`) is queued on the current stream without waiting for it, so the CPU can prepare
the next batch while the copy runs; any other copy waits for its stream (always correct:
Python may reuse a pageable buffer at once). As in PyTorch, writing to the pinned source
before the copy is done is the caller's race; the device tensor keeps the source's buffer
alive until it dies itself.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from ..ir.errors import DeviceError
from .autograd.function import Function
from .tensor import Tensor

_STATE = threading.local()


class _PinnedHost:
    """The bytes of one PinnedBuffer as a numpy array interface: arrays made from it keep
    it (and so the page-locked memory) alive, and mark their storage as pinned."""

    def __init__(self, buffer, nbytes: int):
        self.buffer = buffer
        self.__array_interface__ = {"shape": (nbytes,), "typestr": "|u1", "version": 3,
                                    "data": (buffer.ptr, False)}


def _pinned_storage(arr: np.ndarray) -> bool:
    base = arr
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, _PinnedHost)


def is_pinned(t: Tensor, device=None) -> bool:
    """Whether t's storage is page-locked host memory (CUDA tensors: False, as in torch)."""
    return t._storage.device == "cpu" and _pinned_storage(t._storage.data)


def pin_memory(t: Tensor, device=None) -> Tensor:
    """A copy of CPU tensor t in page-locked memory (t itself when it is already pinned)."""
    if t._storage.device != "cpu":
        raise DeviceError(f"cannot pin '{t.type()}' only dense CPU tensors can be pinned")
    if is_pinned(t):
        return t
    from . import cuda as cuda_api
    cuda_api.check_device("cuda")
    return _Pin.apply(t)


def _pinned_copy(t: Tensor) -> Tensor:
    from ..runtime.cuda import stream
    values = np.ascontiguousarray(t._values())
    raw = np.asarray(_PinnedHost(stream.PinnedBuffer(values.nbytes, 0), values.nbytes))
    host = raw.view(values.dtype).reshape(values.shape)
    host[...] = values
    return Tensor._adopt(host)


class _Pin(Function):
    """pin_memory as an autograd node (a copy: the gradient passes through), as in torch."""

    @staticmethod
    def forward(ctx, t):
        return _pinned_copy(t)

    @staticmethod
    def backward(ctx, grad):
        return grad


@contextlib.contextmanager
def non_blocking_copies(enabled: bool):
    """Inside (enabled): host-to-device copies from pinned memory do not wait."""
    previous = getattr(_STATE, "non_blocking", False)
    _STATE.non_blocking = bool(enabled)
    try:
        yield
    finally:
        _STATE.non_blocking = previous


def copy_without_waiting(host: np.ndarray) -> bool:
    """Whether a host-to-device copy of `host` may return before it is done: the caller
    asked for non_blocking and the bytes are in pinned memory."""
    return getattr(_STATE, "non_blocking", False) and _pinned_storage(host)
