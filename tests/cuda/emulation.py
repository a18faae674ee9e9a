"""Run ember's CUDA frontend path on the CPU: "device" memory is host memory.

For CI, which has no GPU. What is real: the caching allocator (over a HostBackend),
DeviceArray/DeviceStorage tensors, views, plan building (build_graph -> lower_group ->
Triton source, the GEMM/conv problem selection), the host fallback, in-place copies,
autograd across devices. What is replaced: host<->device copies become memmoves, and a
launch runs the generated Triton kernel under Triton's interpreter (TRITON_INTERPRET=1
must be set before triton is imported) on torch tensors that alias the block's memory,
instead of compiling a cubin and calling cuLaunchKernel (tests/cuda/test_gpu.py covers
those on a GPU); a triton_op's user kernel runs the same way (interpreted_user_kernel).
"""
from __future__ import annotations

import contextlib
import ctypes

import numpy as np


class _HostStream:
    handle = 0
    device = 0

    def synchronize(self):
        pass


def _host_array(ptr: int, count: int, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    raw = (ctypes.c_char * (max(count, 1) * dtype.itemsize)).from_address(ptr)
    return np.frombuffer(raw, dtype, max(count, 1))


class _HostPinned:
    """PinnedBuffer under emulation: plain host memory (what cuMemHostAlloc would lock)."""

    def __init__(self, nbytes: int, device: int = 0):
        self._bytes = np.zeros(max(nbytes, 1), np.uint8)
        self.nbytes, self.ptr = nbytes, self._bytes.ctypes.data


def _counted(copy, *args):
    """A host<->device copy, counted as the runtime's copies are (stream.host_transfers)."""
    from ember.runtime.cuda import stream
    stream.note_host_transfer()
    copy(*args)


def _torch_view(ptr: int, count: int, dtype):
    """A torch tensor aliasing `count` elements at ptr (bfloat16, which torch.from_numpy
    refuses, through its 16-bit pattern)."""
    import torch
    arr = _host_array(ptr, count, dtype)
    if arr.dtype.name == "bfloat16":
        return torch.from_numpy(arr.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(arr)


def interpreted_launch(generated, tensors, index):
    """eager_cuda.launch on host memory: Triton's interpreter over aliasing torch tensors."""
    from ember.codegen.triton import cache
    from ember.frontend.devices import data_ptr
    from ember import Tensor
    buffers = [_torch_view(data_ptr(t), t._array.extent(), t._array.dtype)
               if isinstance(t, Tensor) else t for t in tensors]    # numbers: scalar arguments
    cache.launch(generated, buffers)


def interpreted_user_kernel(kernel, grid, values, constexprs, options, index):
    """triton_launch.run_kernel on host memory: the user's @triton.jit kernel under Triton's
    interpreter, ember CUDA tensors passed as torch tensors aliasing their memory."""
    from ember import Tensor
    from ember.frontend.devices import data_ptr
    args = {n: _torch_view(data_ptr(v), v._array.extent(), v._array.dtype)
            if isinstance(v, Tensor) else v for n, v in values.items()}
    kernel[grid](**args, **options)


@contextlib.contextmanager
def emulated_cuda(capacity: int = 512 << 20):
    """Inside: device 'cuda:0' exists and lives in host memory; yields the allocator."""
    import pytest
    from ember.frontend import cuda as cuda_api, cudnn_conv, eager_cuda, triton_launch
    from ember.runtime.cuda import allocator as A, stream as S
    stream = _HostStream()
    alloc = A.CachingAllocator(A.HostBackend(capacity))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(A._allocators, 0, alloc)
        mp.setattr(cuda_api, "check_device", lambda device: None)
        mp.setattr(S, "current_stream", lambda device=0: stream)
        mp.setattr(S, "copy_host_to_device",
                   lambda dst, src, s, pinned=False: _counted(ctypes.memmove, dst,
                                                              src.ctypes.data, src.nbytes))
        mp.setattr(S, "copy_device_to_host",
                   lambda dst, src, s, pinned=False: _counted(ctypes.memmove, dst.ctypes.data,
                                                              src, dst.nbytes))
        mp.setattr(S, "copy_device_to_device",
                   lambda dst, src, nbytes, s: ctypes.memmove(dst, src, nbytes))
        mp.setattr(S, "memset", lambda dst, byte, nbytes, s: ctypes.memset(dst, byte, nbytes))
        mp.setattr(S, "PinnedBuffer", _HostPinned)
        # cuDNN cannot read host memory: where its library loads (the GPU machine running a
        # CPU-side tool or test), emulated convolutions still take ember's Triton routes
        mp.setattr(cudnn_conv, "usable", lambda: False)
        mp.setattr(eager_cuda, "launch", interpreted_launch)
        mp.setattr(triton_launch, "run_kernel", interpreted_user_kernel)
        mp.setattr(eager_cuda, "_PLANS", {})
        from collections import OrderedDict
        from ember.frontend import eager_cuda_media      # device tables of the old allocator
        mp.setattr(eager_cuda_media, "_TABLES", OrderedDict())
        mp.setattr(eager_cuda_media, "_BASES", OrderedDict())
        yield alloc
