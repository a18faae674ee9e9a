"""Lowering of graphs to kernels: llvm/ for the CPU, triton/ for CUDA.

`llvm/` also holds the native building blocks lowering calls into (JIT with a disk
cache, vector math, GEMM, conv2d); see its package docstring."""
