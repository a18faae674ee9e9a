"""Lowering of graphs to kernels: llvm/ for the CPU, triton/ for CUDA."""
