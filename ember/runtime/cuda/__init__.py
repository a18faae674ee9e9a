"""The CUDA runtime: NVIDIA's driver API through `cuda.bindings` (never torch, never Triton).

- driver.py: error-checked driver calls, the primary context, device queries
- allocator.py: the caching allocator's policy (PyTorch's: rounded sizes, small/large pools,
  block splitting and merging, per-stream free lists, statistics, retry on OOM) over an
  injectable raw-memory backend (cuMemAlloc on a GPU, host memory in CPU tests)
- stream.py: streams, events, the current stream; copies and memset
- module.py: cubins loaded with cuModuleLoadData and launched from their metadata

Importing this package imports nothing from `cuda.bindings`; the first driver call does,
so ember imports and runs on machines without a GPU or the bindings.
"""
