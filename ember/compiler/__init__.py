"""The compiler layer (docs/design.md): drivers that take a model to something runnable.

It is the top layer: it imports frontend, passes, codegen, runtime and ir; none of them
imports it (tests/ir/test_layer_imports.py). `compile.py` and the `compile_*.py` modules
are ember.compile and ember.compile_train_step (guards, tracing, a call's dispatch,
dynamic shapes, graph breaks, compiled autograd, training steps, the CUDA backend,
custom backends); `export.py` / `export_dynamic.py` (ember.export: a model to an ExportedProgram, with
dynamic dimensions), `aot.py` / `aot_quantized.py` (an ExportedProgram to a packaged
artifact), `native_program.py` / `native_plan.py` (a plan as one generated native entry
point, in an artifact or in process) and `triton_kernels.py` (building every built-in
model's Triton kernels).

PyTorch's `torch.compiler` names are here too, since this is `ember.compiler`:
`is_compiling()` is True while ember.compile or ember.export traces the function (model
code uses it to skip checks a trace cannot run), `is_exporting()` while ember.export does.
"""


def is_compiling() -> bool:
    """torch.compiler.is_compiling: True while ember.compile or ember.export traces
    (a user backend's graph-break run records: compile_lazy.py)."""
    from .compile_lazy import recording
    from .compile_trace import TRACING
    return TRACING["compile"] > 0 or recording() is not None


def is_dynamo_compiling() -> bool:
    return is_compiling()


def is_exporting() -> bool:
    """torch.compiler.is_exporting: True while ember.export traces."""
    from .compile_trace import TRACING
    return TRACING["export"] > 0


def __getattr__(name: str):
    # torch.compiler.reset / disable / list_backends, loaded on first use
    if name in ("reset", "disable", "list_backends", "cudagraph_mark_step_begin",
                "set_stance", "allow_in_graph", "nested_compile_region",
                "assume_constant_result"):
        from . import dynamo_names
        return getattr(dynamo_names, name)
    raise AttributeError(f"module 'ember.compiler' has no attribute '{name}'")
