"""The CPU backend: LLVM IR through llvmlite, compiled for the host and cached on disk.

Building blocks (standalone, each with its own tests in tests/codegen/):
- target.py   the host CPU, its ISA (AVX-512 / AVX2+FMA / portable), `EMBER_ISA` override
- jit.py      IR -> O3 object code -> ctypes function pointers (`compile_ir`)
- cache.py    object code on disk, keyed by IR + CPU + features + llvmlite version
- irutil.py   llvmlite.ir helpers (loops, vectors, intrinsics) shared by emitters
- vecmath.py  inlined vector exp/log/tanh/sigmoid/erf/gelu with tested ulp bounds
- unary.py    elementwise kernels from one vecmath emitter
- gemm.py     packed, register-blocked float32 GEMM, threaded over row/column blocks
- conv.py     conv2d (NCHW/NHWC) by im2col onto the GEMM
- emit.py     kernel descriptions (codegen/kernel.py) -> vectorized LLVM

Native kernels that split across cores take `(begin, end, worker, ...)` first, the
signature `ember.runtime.threads.ThreadPool.parallel_for` calls them with.
"""
