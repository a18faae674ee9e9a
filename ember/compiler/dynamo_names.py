"""torch._dynamo's and torch.compiler's user-facing controls, for ember.compile.

- `reset()` forgets everything every `ember.compile`d function has compiled (plans,
  guards, graph-break records): the next call compiles again, as after
  torch._dynamo.reset().
- `disable(fn)` marks a function to run eagerly: called while ember.compile traces, it
  breaks the graph there (the enclosing call runs eagerly around its compiled
  submodules, as for any graph break; under fullgraph=True it is an error);
  `ember.compile(disable(fn))` runs fn without compiling. `disable(recursive=False)`
  is the same: ember does not compile functions a disabled one calls anyway.
- `config`: ember.compile's knobs under torch._dynamo.config's name
  (`cache_size_limit`); other torch._dynamo.config settings (`suppress_errors`,
  `verbose`, ...) are accepted and have no effect on ember.
- `list_backends`, `register_backend`, `explain` are ember.compile's own.
- `graph_break()` breaks the graph where it is called (a no-op outside compiling).
- `mark_dynamic(t, dim)` / `maybe_mark_dynamic` / `mark_static` record the mark on the
  tensor as torch does (`_dynamo_dynamic_indices`, `_dynamo_weak_dynamic_indices`); a
  call of an ember.compile'd function with marked tensors compiles the marked dims
  symbolic from that first call (compiler/compile_dynamic.py's `marked_dims`; one
  symbol: marked dims of different sizes are compiled per shape), so other sizes do
  not recompile. When the code needs a fixed size there (a Linear's in_features),
  mark_dynamic raises as torch does ("you marked ... as dynamic but your code
  specialized it"), maybe_mark_dynamic compiles that shape.
- `set_stance(stance)` (torch.compiler): "default"; "force_eager" (compiled functions
  run their Python eagerly); "eager_on_recompile" (a call that would compile again
  runs eagerly, compiled entries still serve the calls they fit); "fail_on_recompile"
  (such a call raises). A first compile is not a recompile. Called plainly it sets the
  stance; as `with set_stance(...)` or `@set_stance(...)` it holds for the block or
  the function and restores the previous one.
- `assume_constant_result(fn)`: while ember.compile or ember.export traces, a call
  of fn runs eagerly on the example inputs' values of its arguments and its result
  is a constant of the graph (torch's contract: fn's result does not change between
  calls; a `.item()` inside fn is no data dependence then); outside, the plain call.
- `allow_in_graph(fn)` returns fn: torch puts fn's call in the graph unchanged instead
  of tracing through it; ember's trace records fn's ops into the graph either way, so
  the results are the same. `nested_compile_region(fn)` (a hint that fn's graph may be
  compiled once and reused) likewise returns fn, as a decorator with or without
  arguments.
- `cudagraph_mark_step_begin()` (torch.compiler) is a no-op: ember's CUDA-graph replay
  copies results out of the graph's buffers, so no output is overwritten by the next
  step.
"""
from __future__ import annotations

import functools

from .compile_breaks import explain  # noqa: F401
from .compile_custom import list_backends, register_backend  # noqa: F401
from .compile_guards import config  # noqa: F401
from ..ir.errors import TraceError


def reset() -> None:
    """Drop what every compiled function has compiled; next calls compile afresh."""
    from . import compile_custom
    from .compile_dispatch import reset_all
    reset_all()
    compile_custom.reset_all()


def disable(fn=None, recursive: bool = True, *, reason: str | None = None):
    """`@disable` / `disable(fn)`: fn always runs eagerly, also when a compiled function
    calls it (the graph breaks at the call)."""
    if fn is None:
        return functools.partial(disable, recursive=recursive, reason=reason)

    @functools.wraps(fn)
    def run_eagerly(*args, **kwargs):
        from . import is_compiling
        from .compile_lazy import recording, run_eagerly as between_graphs
        run = recording()
        if run is not None:         # a user backend's graph-break run: break around fn
            return between_graphs(run, fn, args, kwargs)
        if is_compiling():
            why = f" ({reason})" if reason else ""
            raise TraceError(f"called {getattr(fn, '__qualname__', fn)!s}, which is marked "
                             f"torch.compiler.disable{why}")
        return fn(*args, **kwargs)
    run_eagerly._ember_compile_disabled = True
    return run_eagerly


def optimize(backend="inductor", *, nopython: bool = False, guard_export_fn=None,
             guard_fail_fn=None, disable: bool = False, dynamic=None):
    """torch._dynamo.optimize (torch.compile's older spelling): a decorator compiling
    with `backend` (a name or a user's compile backend); nopython=True is
    fullgraph=True."""
    from .compile import compile as compile_fn
    if disable:
        return lambda fn: fn
    return lambda fn: compile_fn(fn, backend=backend, fullgraph=nopython, dynamic=dynamic)


def allow_in_graph(fn):
    """torch.compiler.allow_in_graph: see the module doc (a list of functions too)."""
    if isinstance(fn, (list, tuple)):
        return [allow_in_graph(f) for f in fn]
    if not callable(fn):
        raise TypeError(f"allow_in_graph expects a callable, got {type(fn).__name__}")
    return fn


def nested_compile_region(fn=None, options=None):
    """torch.compiler.nested_compile_region: see the module doc."""
    if fn is None:
        return lambda f: f
    return fn


def assume_constant_result(fn):
    """torch._dynamo.assume_constant_result: see the module doc."""
    from .compile_trace import run_on_examples

    @functools.wraps(fn)
    def constant_result(*args, **kwargs):
        return run_on_examples(fn, args, kwargs)
    return constant_result


def graph_break() -> None:
    from . import is_compiling
    from .compile_lazy import recording
    run = recording()
    if run is not None:             # a user backend's graph-break run: end the graph
        if run.records:
            run.graph_break()
        return
    if is_compiling():
        raise TraceError("torch._dynamo.graph_break() called")


def mark_dynamic(t, index, *, min=None, max=None) -> None:   # noqa: A002 - torch's names
    indices = [index] if isinstance(index, int) else list(index)
    marked = set(getattr(t, "_dynamo_dynamic_indices", set()))
    t._dynamo_dynamic_indices = marked | {i % t.ndim for i in indices}


def maybe_mark_dynamic(t, index) -> None:
    """A hint: ember.compile makes the dim symbolic from the first call when it can,
    and specializes silently when the code needs a fixed size (torch's behaviour)."""
    indices = [index] if isinstance(index, int) else list(index)
    marked = set(getattr(t, "_dynamo_weak_dynamic_indices", set()))
    t._dynamo_weak_dynamic_indices = marked | {i % t.ndim for i in indices}


def mark_static(t, index=None) -> None:
    drop = set(range(t.ndim)) if index is None else {index % t.ndim}
    for name in ("_dynamo_dynamic_indices", "_dynamo_weak_dynamic_indices"):
        marked = set(getattr(t, name, set()))
        setattr(t, name, marked - drop)


def mark_static_address(t, guard: bool = False) -> None:
    """torch's promise that `t` keeps its storage across calls of a compiled function
    (so CUDA graphs need no copy of it): recorded on the tensor as torch records it
    (`_dynamo_static_input_type`); ember's plans read inputs where they are, so the mark
    changes nothing here. Only tensors can be marked, as in torch."""
    if not hasattr(t, "data_ptr") or not hasattr(t, "dtype"):
        raise TypeError(f"mark_static_address expects a tensor but received {type(t)}")
    t._dynamo_static_input_type = "guarded" if guard else "unguarded"


def cudagraph_mark_step_begin() -> None:
    return None


def is_disabled(fn) -> bool:
    return getattr(fn, "_ember_compile_disabled", False)


STANCES = ("default", "force_eager", "eager_on_recompile", "fail_on_recompile")
_STANCE = ["default"]


def current_stance() -> str:
    return _STANCE[0]


class set_stance:      # noqa: N801 - torch.compiler's name; a call, a context and a decorator
    """torch.compiler.set_stance: how ember.compile'd functions behave from now on (or
    within a `with` block / a decorated function)."""

    def __init__(self, stance: str = "default", *, skip_guard_eval_unsafe: bool = False,
                 force_backend=None):
        if stance not in STANCES:
            raise RuntimeError(f"invalid torch.compile stance '{stance}'; expected one of "
                               f"{', '.join(STANCES)}")
        if force_backend is not None and stance != "default":
            raise RuntimeError("force_backend can only be used with the 'default' stance")
        self.stance, self.previous = stance, _STANCE[0]
        _STANCE[0] = stance

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _STANCE[0] = self.previous
        return False

    def __call__(self, fn):
        stance = self.stance
        _STANCE[0] = self.previous          # as a decorator it holds only inside fn

        @functools.wraps(fn)
        def with_stance(*args, **kwargs):
            previous, _STANCE[0] = _STANCE[0], stance
            try:
                return fn(*args, **kwargs)
            finally:
                _STANCE[0] = previous
        return with_stance
