"""`ember.compile(model, backend=compiler_fn)`: a user's compile backend, as torch.compile
calls one.

A compile backend is a callable `compiler_fn(gm, example_inputs) -> callable`: `gm` is the
model traced into an fx GraphModule (`ember.fx.symbolic_trace`: one node per op, custom
ops included), `example_inputs` the tensors of the call that triggered compilation; what
it returns runs the graph (returning `gm.forward` itself is the "eager" backend). Pass the
callable itself, or a name registered with `register_backend` (torch._dynamo's
`register_backend(compiler_fn=None, name=None)`, also a decorator; `list_backends()`).

The backend is called again for inputs with new shapes, dtypes or devices (torch.compile
re-invokes it when its guards fail); calls with inputs seen before reuse what it returned.
Keyword arguments are not graph inputs of the one-graph form: pass tensors positionally
(a model run with graph breaks takes them).

Graph breaks: a model fx cannot trace as one graph (`if b.sum() < 0:`, `int(t)`,
iterating a tensor, ...) or whose graph reads a value into Python (`.item()`,
`.tolist()`) runs with deferred execution instead (compile_lazy.py): its op calls are
recorded into segments that end where Python needs a value, the backend is called once
per distinct segment (an fx GraphModule of that stretch, its tensors as inputs), and
the model's Python goes on with the results its callables return. So the backend sees
the graphs torch.compile hands it, e.g. 3 for the "Custom Backends" tutorial's `bar`
called with a positive then a negative `b`. `fullgraph=True` raises the tracer's error
(naming the user's line) instead. ember's own backends break graphs differently
(compile_breaks.py: the function runs eagerly around its compiled modules).
"""
from __future__ import annotations

import contextlib
import operator
import weakref
from typing import Callable

from ..backends import registry
from ..ir.registry import OPS, Promotion, Tag, is_op
from ..ir.errors import EmberError, TraceError
from ..frontend.tensor import Tensor, is_tensor
from .compile_side_effects import PythonGuard, PythonState
from .compile_guards import log


def register_backend(compiler_fn: Callable | None = None, name: str | None = None,
                     tags=()):
    """Register `compiler_fn` under `name` (default: its __name__) for
    ember.compile(backend=name); usable as a decorator, with or without arguments."""
    def register(fn: Callable) -> Callable:
        key = name or fn.__name__
        if key in registry.COMPILE_BACKENDS and registry.COMPILE_BACKENDS[key] is not fn:
            raise RuntimeError(f"register_backend: duplicate name: {key}")
        registry.COMPILE_BACKENDS[key] = fn
        return fn
    return register(compiler_fn) if compiler_fn is not None else register


def list_backends(exclude_tags=()) -> list[str]:
    """Names ember.compile(backend=...) accepts: ember's own, torch's "inductor" (which
    means ember's default; its debug backends "eager" and "aot_eager" are left out, as
    torch leaves them out by default), then registered ones."""
    from .compile import COMPILE_BACKENDS
    return sorted(set(COMPILE_BACKENDS) | {"inductor"} | set(registry.COMPILE_BACKENDS))


def lookup_backend(backend) -> Callable:
    if callable(backend):
        return backend
    found = registry.COMPILE_BACKENDS.get(backend)
    if found is None:
        raise EmberError(f"compile(): unknown backend {backend!r}; registered: "
                         f"{list_backends()}")
    return found


class CustomBackendFunction:
    """What ember.compile returns for a user's backend: traces once, compiles per input
    signature, forwards attribute access to the model (parameters(), train(), ...).
    A model that does not trace as one graph runs with graph breaks (compile_lazy.py)."""

    def __init__(self, model, backend, fullgraph: bool = False):
        self.model = model
        self.compiler_fn = lookup_backend(backend)
        self.backend_name = backend if isinstance(backend, str) else \
            getattr(backend, "__name__", repr(backend))
        self.fullgraph = fullgraph
        self._forget()
        _LIVE.add(self)
        from .compile import keep_function_names
        keep_function_names(self, model)

    def _forget(self) -> None:
        """Nothing compiled yet (torch._dynamo.reset())."""
        self.graph_module = None
        self.compiled: dict[tuple, Callable] = {}
        self.breaks = False                 # True: runs segment by segment
        self.segments: dict[tuple, Callable] = {}
        self.skip = False                   # True: runs eagerly (compile_lazy.py)
        self.python_guard = None            # compile_side_effects.PythonGuard of the graph

    def __call__(self, *args, **kwargs):
        from .dynamo_names import current_stance
        if current_stance() == "force_eager":     # set_stance: the backend is not called
            return self.model(*args, **kwargs)
        if self.python_guard is not None and self.python_guard.changed() is not None:
            self._forget()          # a global or attribute the graph baked in changed
        if self.graph_module is None and not self.breaks:
            self.python_guard = PythonGuard(self.model, is_tensor)
            self._trace()
        if self.skip:           # a graph break in its loop: torch runs such a frame eagerly
            return self.model(*args, **kwargs)
        if self.breaks:
            from .compile_lazy import LazyRun
            return LazyRun(self)(self.model, args, kwargs)
        if kwargs:
            raise TypeError(f"ember.compile(backend={self.backend_name!r}): pass the inputs "
                            f"positionally (got keyword arguments {sorted(kwargs)})")
        key = tuple(_signature(a) for a in args)
        fn = self.compiled.get(key)
        if fn is None:
            # a graph without op calls (a function of shapes only) is not handed to the
            # backend: torch.compile compiles no graph there either
            fn = self._backend(self.graph_module, list(args)) if _has_calls(
                self.graph_module) else self.graph_module.forward
            self.compiled[key] = fn
        return fn(*args)

    def _trace(self) -> None:
        """The whole model as one graph; where that fails (or the graph reads a value
        into Python), graph breaks, unless fullgraph=True."""
        from ..frontend.fx.tracer import symbolic_trace
        from ..frontend.random import default_generator
        from .compile_trace import tracing
        state = default_generator.numpy.bit_generator.state
        python_state = PythonState(self.model)
        try:
            with tracing("compile"), _printing_breaks():
                gm = symbolic_trace(self.model)
        except Exception as err:        # noqa: BLE001 - any: Python the tracer cannot record
            python_state.restore()
            if self.fullgraph:
                raise
            log.info("ember.compile(backend=%r): %s does not trace as one graph (%s: %s); "
                     "running it with graph breaks", self.backend_name, _name_of(self.model),
                     type(err).__name__, str(err).split("\n")[0])
            self.breaks = True
            return
        finally:        # code that ran for real while tracing draws nothing for the call
            default_generator.numpy.bit_generator.state = state
        changed = python_state.changed()
        if changed and not self.fullgraph:
            # Python side effects a graph would not replay: run the Python every call
            python_state.restore()
            log.info("ember.compile(backend=%r): %s changes Python state (%s); running it "
                     "with graph breaks", self.backend_name, _name_of(self.model),
                     ", ".join(changed))
            self.breaks = True
            return
        # torch breaks the graph at these; under fullgraph=True it captures them
        if not self.fullgraph and any(_breaks_graph(n) for n in gm.graph.nodes):
            self.breaks = True
            return
        self.graph_module = gm

    def run_segment(self, key: tuple, graph_of: Callable, inputs: list):
        """Run one segment of a model with graph breaks: the backend's callable for a
        segment with this key (where it began — torch keeps one cache per frame and
        resume point — and its ops, constants and wiring) and input signature, compiled
        at its first sight from the GraphModule of `graph_of()`."""
        from ..frontend.fx.graph_module import GraphModule
        from ..frontend.nn.modules.module import Module
        full_key = (key, tuple(_signature(t) for t in inputs))
        fn = self.segments.get(full_key)
        if fn is None:
            fn = self._backend(GraphModule(Module(), graph_of()), list(inputs))
            self.segments[full_key] = fn
        return fn(*inputs)

    def _backend(self, gm, example_inputs: list) -> Callable:
        fn = self.compiler_fn(gm, example_inputs)
        if not callable(fn):
            raise EmberError(f"compile backend {self.backend_name!r} returned "
                             f"{type(fn).__name__}, not a callable that runs the graph")
        return fn

    def __getattr__(self, name: str):
        if name in ("model", "compiler_fn", "backend_name", "graph_module", "compiled",
                    "fullgraph", "breaks", "segments", "skip", "python_guard"):
            raise AttributeError(name)
        return getattr(self.model, name)


# Tensor methods that read a value into Python: torch.compile breaks the graph there
_VALUE_READ_METHODS = ("item", "tolist", "numpy")
_COMPARISONS = {operator.lt, operator.le, operator.gt, operator.ge, operator.eq,
                operator.ne, operator.invert, operator.and_, operator.or_}


def _has_calls(gm) -> bool:
    return any(node.op in ("call_function", "call_method", "call_module")
               for node in gm.graph.nodes)


def _name_of(model) -> str:
    return getattr(model, "__qualname__", None) or type(model).__name__


def _breaks_graph(node) -> bool:
    """A traced node where torch.compile breaks the graph: a value read into Python
    (`.item()`), an op whose output shape depends on values (`nonzero`, `unique`), or
    indexing with a boolean mask the function computed (`x[x > 0]`)."""
    if node.op == "call_method" and node.target in _VALUE_READ_METHODS:
        return True
    op = _op_of(node)
    if op is not None and op.has_tag(Tag.DYNAMIC_SHAPE):
        return True
    if node.op == "call_function" and node.target is operator.getitem:
        index = node.args[1]
        return any(_is_mask(i) for i in (index if isinstance(index, (tuple, list))
                                         else (index,)))
    return False


def _is_mask(value) -> bool:
    if not hasattr(value, "op") or not hasattr(value, "target"):
        return False
    if value.op == "call_function" and value.target in _COMPARISONS:
        return True
    op = _op_of(value)
    return op is not None and op.promotion is Promotion.ALWAYS_BOOL


def _op_of(node):
    """The registry op a traced call_function/call_method node calls, if any."""
    if node.op == "call_function":
        return node.target if is_op(node.target) else None
    if node.op == "call_method" and isinstance(node.target, str):
        return OPS.get(node.target)
    return None


@contextlib.contextmanager
def _printing_breaks():
    """While the model is traced as one graph, printing a traced value (`print(x)`,
    an f-string) stops the trace: torch.compile breaks its graph there."""
    from ..frontend.fx.proxy import Proxy
    saved = {name: Proxy.__dict__.get(name) for name in ("__repr__", "__str__", "__format__")}

    def printed(self, *args):
        raise TraceError("printing a traced tensor needs its value")
    for name in saved:
        setattr(Proxy, name, printed)
    try:
        yield
    finally:
        for name, method in saved.items():
            if method is None:
                delattr(Proxy, name)
            else:
                setattr(Proxy, name, method)


_LIVE: "weakref.WeakSet[CustomBackendFunction]" = weakref.WeakSet()


def reset_all() -> None:
    """torch._dynamo.reset(): every function compiled with a user's backend calls the
    backend again at its next call."""
    for compiled in list(_LIVE):
        compiled._forget()


def _signature(value):
    if isinstance(value, Tensor):
        return ("tensor", tuple(value.shape), value.dtype, value._storage.device,
                value.requires_grad)
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(_signature(v) for v in value))
    return (type(value), value) if isinstance(value, (int, float, bool, str, type(None))) \
        else (type(value), id(value))
