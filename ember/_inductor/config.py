"""torch._inductor.config's common settings, accepted so tuning scripts run unchanged.

ember.compile's code generator is not Inductor and reads none of these: GEMM tiles
are always autotuned on CUDA, kernels are cached on disk, CUDA-graph replay follows
`mode=` (docs/compile.md). Setting one has no effect on what ember computes.
"""
import types as _types

coordinate_descent_tuning = False
max_autotune = False
max_autotune_gemm = False
epilogue_fusion = True
freezing = False
fx_graph_cache = True
force_fuse_int_mm_with_mul = False
use_mixed_mm = False
triton = _types.SimpleNamespace(cudagraphs=False, unique_kernel_names=False,
                                cudagraph_trees=True)
cpp = _types.SimpleNamespace(threads=-1, simdlen=None)
