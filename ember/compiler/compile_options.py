"""ember.compile's arguments, checked as torch.compile's are.

    ember.compile(model=None, *, fullgraph=False, dynamic=None, backend="llvm", mode=None,
                  options=None, disable=False)

`check_compile_arguments` refuses what torch.compile refuses (an unknown keyword, mode or
backend, both `mode` and `options`) with the known values listed, and turns a `mode` into
the options ember's backends read:

| mode | effect |
|---|---|
| None, "default" | the default pipeline; CUDA-graph replay where the plan allows it |
| "reduce-overhead" | CUDA-graph replay forced on (backend="triton"; no effect on the CPU) |
| "max-autotune" | as "default" (GEMM tiles are always autotuned on CUDA) |
| "max-autotune-no-cudagraphs" | CUDA-graph replay off |

torch's backend names are accepted: "inductor" (torch's default), "eager" and
"aot_eager" (torch's debugging backends, which run the captured graph without
optimizing it) all mean ember's own compiler (`resolve_backend`): same results, and
graph breaks and `fullgraph=True` behave as with the default.

`fullgraph` and `dynamic` are type-checked. `dynamic`: None makes a dimension symbolic
when its size changes, True from the first call, False never (compile_dynamic.py).
"""
from __future__ import annotations

from ..ir.errors import EmberError

COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune",
                 "max-autotune-no-cudagraphs")
COMPILE_KEYWORDS = ("fullgraph", "dynamic", "backend", "mode", "options", "disable")
# ember's own keyword beyond torch.compile's: the pass pipeline to run
EMBER_KEYWORDS = ("pipeline",)
_MODE_OPTIONS = {"reduce-overhead": {"cuda_graphs": True},
                 "max-autotune-no-cudagraphs": {"cuda_graphs": False}}


#: torch.compile's backend names -> ember's (None: the default backend)
TORCH_BACKEND_NAMES = {"inductor": None, "eager": None, "aot_eager": None}


def resolve_backend(backend, default: str):
    """ember's backend for a torch backend name; anything else unchanged."""
    if isinstance(backend, str) and backend in TORCH_BACKEND_NAMES:
        return TORCH_BACKEND_NAMES[backend] or default
    return backend


class CompileArgumentError(EmberError, ValueError, RuntimeError):
    """An ember.compile argument with a value it does not know (a mode, a backend). Also a
    RuntimeError: torch.compile raises that (InvalidBackend, an unknown mode)."""


def check_compile_arguments(unknown: dict, *, fullgraph, dynamic, backend, mode, options,
                            disable, backends) -> dict:
    """Raise for what torch.compile would refuse; returns the options the mode implies
    merged with `options` (a new dict)."""
    if unknown:
        known = ", ".join(COMPILE_KEYWORDS + EMBER_KEYWORDS)
        raise TypeError(f"compile() got an unexpected keyword argument {next(iter(unknown))!r}"
                        f"; it takes model and the keywords {known}")
    for name, value in (("fullgraph", fullgraph), ("disable", disable)):
        if not isinstance(value, bool):
            raise TypeError(f"compile(): {name} must be a bool, got {value!r}")
    if dynamic not in (None, True, False):
        raise TypeError(f"compile(): dynamic must be None, True or False, got {dynamic!r}")
    from ..backends import registry          # backends packages registered (register_backend)
    if not callable(backend) and (not isinstance(backend, str) or (
            backend not in backends and backend not in registry.COMPILE_BACKENDS)):
        raise CompileArgumentError(f"compile(): unknown backend {backend!r}; expected one of "
                                   f"{list(backends) + list(registry.COMPILE_BACKENDS)} or a "
                                   "callable taking (GraphModule, example_inputs)")
    if mode not in COMPILE_MODES:
        raise CompileArgumentError(f"compile(): unknown mode {mode!r}; expected one of "
                                   f"{list(COMPILE_MODES)}")
    if mode is not None and options is not None:
        raise CompileArgumentError("compile(): either mode or options can be specified, but "
                                   "both can't be specified at the same time")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"compile(): options must be a dict, got {type(options).__name__}")
    return dict(_MODE_OPTIONS.get(mode, {}), **(options or {}))
