"""The Triton backend (CUDA GPUs): kernel descriptions -> Triton source -> cubins.

- source.py: descriptions (codegen/kernel.py) -> `@triton.jit` functions + launch metadata
- gemm.py: GEMM (TF32 / IEEE fp32 / fp16 / bf16) and NHWC implicit-GEMM conv2d with a fused
  epilogue taken from a lowered anchor group
- conv_wgrad.py: conv2d weight gradients as a split-K implicit GEMM and an in-order sum
- autotune.py: block configurations, timed on a GPU, cached on disk
- compile.py: ahead-of-time compilation to cubin with JSON launch metadata
- cache.py: generated sources on disk (triton.jit needs real files)
- mathlib.py: the scalar functions generated kernels call (libdevice, or interpreter fallbacks)

Importing this package imports nothing from Triton; the submodules that need it do.
See docs/triton.md.
"""
