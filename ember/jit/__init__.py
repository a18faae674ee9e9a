"""`import ember.jit` — torch.jit's names (ember/frontend/jit.py, frontend/jit_api.py):
trace, trace_module, save/load (ember's own format), freeze, fork/wait, and the
TorchScript decorators and queries with their eager meaning (script returns its
argument unchanged; see docs/fx.md)."""
from ..frontend.jit import (Final, TracerWarning, _overload_method, annotate, export,  # noqa: F401
                           ignore, is_scripting, _script_if_tracing, is_tracing, script, unused)
from ..frontend.jit_api import (Attribute, Error, RecursiveScriptModule,  # noqa: F401
                               ScriptFunction, ScriptModule, TopLevelTracedModule,
                               TracedModule, enable_onednn_fusion, fork, freeze, fuser,
                               interface, load, onednn_fusion_enabled, optimize_for_inference,
                               optimized_execution, run_frozen_optimizations, save,
                               script_method, set_fusion_strategy, trace_module, wait)
from ..frontend.jit_api import jit_isinstance as isinstance  # noqa: A001 - torch.jit.isinstance
from ..frontend.jit_api import trace

script_if_tracing = _script_if_tracing

__all__ = ["Final", "trace", "TracerWarning", "script", "unused", "ignore", "export",
           "_overload_method", "annotate", "is_scripting", "is_tracing", "_script_if_tracing",
           "script_if_tracing", "trace_module", "save", "load", "freeze",
           "optimize_for_inference", "ScriptModule", "ScriptFunction", "fork", "wait",
           "interface", "Attribute", "Error", "isinstance", "set_fusion_strategy",
           "enable_onednn_fusion", "onednn_fusion_enabled", "optimized_execution", "fuser",
           "script_method", "run_frozen_optimizations"]
