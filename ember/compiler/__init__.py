"""The compiler layer (docs/design.md): drivers that take a model to something runnable.

`export.py` / `export_dynamic.py` (ember.export: a model to an ExportedProgram, with
dynamic dimensions), `aot.py` / `aot_quantized.py` (an ExportedProgram to a packaged
artifact), `native_program.py` / `native_plan.py` (a plan as one generated native entry
point, in an artifact or in process) and `triton_kernels.py` (building every built-in
model's Triton kernels). The in-process compile drivers still live in
ember/frontend/compile*.py (their move here is issue 15's item 7, not done yet).

PyTorch's `torch.compiler` names are here too, since this is `ember.compiler`:
`is_compiling()` is True while ember.compile or ember.export traces the function (model
code uses it to skip checks a trace cannot run), `is_exporting()` while ember.export does.
"""


def is_compiling() -> bool:
    """torch.compiler.is_compiling: True while ember.compile or ember.export traces."""
    from ..frontend.compile_trace import TRACING
    return TRACING["compile"] > 0


def is_dynamo_compiling() -> bool:
    return is_compiling()


def is_exporting() -> bool:
    """torch.compiler.is_exporting: True while ember.export traces."""
    from ..frontend.compile_trace import TRACING
    return TRACING["export"] > 0


def __getattr__(name: str):
    # torch.compiler.reset / disable / list_backends, loaded on first use
    if name in ("reset", "disable", "list_backends", "cudagraph_mark_step_begin"):
        from . import dynamo_names
        return getattr(dynamo_names, name)
    raise AttributeError(f"module 'ember.compiler' has no attribute '{name}'")
