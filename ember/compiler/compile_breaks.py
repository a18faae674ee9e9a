"""Graph breaks: what `ember.compile` does with code it cannot trace, and `explain`.

Tracing stops where Python needs a tensor's value (`if t.sum() > 0`, `while`, `.item()`,
`.tolist()`, `.numpy()`, `bool(t)`, `int(t)`) or meets something it cannot record (an
attribute traced tensors lack, an op without a meta rule, an in-place update of an
input on a gradient path). torch.compile splits the function's bytecode there; ember
cannot resume a Python frame half-way, so it splits at *module* boundaries instead:

- the call runs the function eagerly (so every branch is taken on real values and
  the result is eager's), and
- each module it calls is compiled on its own, with its own guards and cache: for a
  compiled nn.Module its direct children; for a function the modules it called before
  the break and those in its closure or globals. A module that breaks too does the
  same one level down, so the compiled pieces are as large as tracing allows.

While the function runs, each such module's `forward` is replaced by its compiled
version (and restored after), so hooks registered on the module still run eagerly
around it. The break is logged at INFO on logger "ember.compile", with the reason and
the user's line. `fullgraph=True` raises a TraceError at the first break instead.

`ember.compile.explain(fn, *args, **kwargs)` (or `explain(fn)(*args, **kwargs)`) runs fn
once through a fresh compile and reports the graphs compiled and the breaks, with
reasons and lines, as torch._dynamo.explain does.
"""
from __future__ import annotations

import linecache
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

from ..ir.errors import _STDLIB_DIRS, EMBER_DIR, TraceError
from ..ir.graph import Graph
from ..ir.symdim import _USER_LIKE
from .compile_guards import log


@dataclass
class GraphBreak:
    reason: str
    location: str | None          # 'file.py:12 in forward'
    source: str | None            # the user's line

    def __str__(self) -> str:
        where = f" at {self.location}" if self.location else ""
        line = f"\n      {self.source}" if self.source else ""
        return f"{self.reason}{where}{line}"


def graph_break(err: BaseException, dispatcher) -> GraphBreak:
    """Describe why tracing stopped; raise instead under fullgraph=True."""
    frame = _user_frame_of(err)
    found = GraphBreak(_reason(err), _where(frame), (frame.line or "").strip() or None
                       if frame is not None else None)
    if dispatcher.compiled.fullgraph:
        detail = str(err).replace("SymbolicTensor", "Tensor")
        raise TraceError(f"ember.compile(fullgraph=True): {dispatcher.name} cannot be "
                         f"compiled as one graph: {type(err).__name__}: {detail}\n"
                         f"  without fullgraph=True the graph breaks there and that part "
                         f"runs eagerly") from err
    log.info("ember.compile: graph break in %s: %s", dispatcher.name, found)
    return found


def _reason(err: BaseException) -> str:
    text = str(err).split("\n")[0].strip()
    text = text.replace("'SymbolicTensor' object", "a traced Tensor")
    text = text.replace("SymbolicTensor", "traced Tensor")
    return text if isinstance(err, TraceError) else f"{type(err).__name__}: {text}"


def _user_frame_of(err: BaseException):
    """The innermost frame of the exception's traceback in the user's code."""
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        name = frame.filename
        if name.startswith(EMBER_DIR) or name.startswith(_STDLIB_DIRS) or name.startswith("<"):
            continue
        if os.sep + "site-packages" + os.sep in name:
            continue
        return frame
    return None


def _where(frame) -> str | None:
    if frame is None:
        return None
    return f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"


# --- running around a break ---------------------------------------------------------------------
@dataclass
class BreakEntry:
    """An entry that runs the function eagerly, its modules compiled (module docstring)."""
    graph_break: GraphBreak
    modules: list
    kind: str = "eager"

    def stale(self) -> str | None:
        return None

    def run(self, dispatcher, leaves: list, args, kwargs):
        with compiled_modules(dispatcher, self.modules):
            return dispatcher.fn(*args, **kwargs)


class compiled_modules:
    """Within the block, each module's forward is its compiled version."""

    def __init__(self, dispatcher, modules: list):
        self.dispatcher, self.modules = dispatcher, modules
        self.saved: list = []

    def __enter__(self):
        for module in self.modules:
            self.saved.append((module, module.__dict__.get("forward", _MISSING)))
            module.forward = _compiled_child(self.dispatcher, module)
        return self

    def __exit__(self, *exc):
        for module, old in reversed(self.saved):
            if old is _MISSING:
                del module.__dict__["forward"]
            else:
                module.forward = old
        self.saved.clear()


_MISSING = object()


def _compiled_child(dispatcher, module):
    from .compile import CompiledFunction
    child = dispatcher.children.get(id(module))
    if child is None or child.fn.__self__ is not module:
        parent = dispatcher.compiled
        forward = type(module).forward.__get__(module)      # the class's, not the patch
        child = CompiledFunction(forward, parent.backend_name, parent.pipeline,
                                 parent.options, dynamic=parent.dynamic)
        dispatcher.children[id(module)] = child
    return child


def modules_of_function(fn, called: list) -> list:
    """Modules called by a function: those its trace reached, then those named in its
    closure or its globals (by the names its code uses), each once."""
    from ..frontend.nn.modules.module import Module
    found = list(called)
    code = getattr(fn, "__code__", None)
    candidates: list = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            candidates.append(cell.cell_contents)
        except ValueError:            # an empty cell
            continue
    if code is not None:
        module_globals = getattr(fn, "__globals__", {})
        candidates.extend(module_globals[n] for n in code.co_names if n in module_globals)
    for value in candidates:
        if isinstance(value, Module) and all(value is not m for m in found):
            found.append(value)
    return found


# --- explain ---------------------------------------------------------------------------------
@dataclass
class ExplainOutput:
    """What compiling fn did on these arguments (torch._dynamo.explain's fields)."""
    graphs: list[Graph] = field(default_factory=list)
    graph_break_count: int = 0
    break_reasons: list[GraphBreak] = field(default_factory=list)
    ops_per_graph: list[list] = field(default_factory=list)     # each graph's op targets
    out: Any = None

    @property
    def graph_count(self) -> int:
        return len(self.graphs)

    def __str__(self) -> str:
        lines = [f"Graph Count: {self.graph_count}",
                 f"Graph Break Count: {self.graph_break_count}",
                 f"Op Count: {sum(len(ops) for ops in self.ops_per_graph)}",
                 "Break Reasons:"]
        lines += [f"  Break Reason {i + 1}: {b}" for i, b in enumerate(self.break_reasons)]
        return "\n".join(lines)


_SINKS: list[ExplainOutput] = []


def record_event(dispatcher, entry) -> None:
    """Called for every entry compiled; explain() collects them."""
    if not _SINKS:
        return
    sink = _SINKS[-1]
    if entry.kind == "eager":
        sink.graph_break_count += 1
        sink.break_reasons.append(entry.graph_break)
    else:
        sink.graphs.append(entry.graph)
        sink.ops_per_graph.append(_ops_of(entry.graph))


def explain(fn, *args, **kwargs):
    """Run `fn(*args, **kwargs)` through a fresh ember.compile; returns ExplainOutput.
    Without arguments, returns a function taking them (torch's explain(fn)(*args)).

    A function that reads a tensor's value in Python (`if t.sum() < 0`, `.item()`) is
    counted as torch.compile splits it: it runs once eagerly, its op calls grouped into
    one graph per stretch between such reads (`_Segments`), each read a break. Other
    breaks (something tracing cannot record) are counted as ember runs them: the
    function eagerly around its compiled modules."""
    if not args and not kwargs:
        return lambda *a, **k: explain(fn, *a, **k)
    from .compile import CompiledFunction, compile
    target = fn.fn if isinstance(fn, CompiledFunction) else fn
    output = ExplainOutput()
    _SINKS.append(output)
    try:
        try:
            output.out = compile(target, fullgraph=True)(*args, **kwargs)
            return output
        except TraceError as err:
            value_read = _VALUE_READ_TEXT in str(err)
        output.graphs.clear()
        output.ops_per_graph.clear()
        if value_read:      # the function runs once: eagerly, its graphs recorded
            _explain_by_segments(output, target, args, kwargs)
            return output
    finally:
        _SINKS.pop()
    _SINKS.append(output)
    try:
        output.out = compile(target)(*args, **kwargs)
    finally:
        _SINKS.pop()
    return output


# what tracing says where Python needs a traced tensor's value (bool(), .item(), ...)
_VALUE_READ_TEXT = "needs the value of a traced tensor"


def _explain_by_segments(output: ExplainOutput, target, args, kwargs) -> None:
    """Run target once eagerly under _Segments; fill output as torch counts (it lists
    every break's reason but counts a break where a graph follows it: a branch that
    only returns makes no graph)."""
    segments = _Segments()
    with segments:
        output.out = target(*args, **kwargs)
    graphs = segments.graphs
    output.break_reasons = segments.breaks
    output.graph_break_count = sum(1 for after in graphs[1:] if _ops_of(after))
    output.graphs = [g for g in graphs if _ops_of(g)]
    output.ops_per_graph = [_ops_of(g) for g in output.graphs]


def _ops_of(graph: Graph) -> list:
    return [n.target for n in graph.nodes if n.op.value == "call_function"]


# reading a tensor's value in Python: where torch.compile's graph ends (a break)
_VALUE_READS = {"__bool__": "bool()", "item": ".item()", "tolist": ".tolist()",
                "__int__": "int()", "__float__": "float()", "__index__": "an index",
                "numpy": ".numpy()"}


class _Segments:
    """While active, every eager op call is recorded into the current graph, and a
    value read from the user's code ends it (a break, with the user's line)."""

    def __init__(self):
        self.graphs: list[Graph] = [Graph()]
        self.breaks: list[GraphBreak] = []
        self.values: dict[int, Any] = {}        # id(tensor) -> its node in the graph
        self.saved: dict = {}

    def handle(self, op, args: tuple):
        from ..ir import dispatch
        with dispatch.disabled(self):
            result = dispatch.dispatch(op, args)
        self._record(op, args, result)
        return result

    def _record(self, op, args, result) -> None:
        from ..frontend.tensor import Tensor
        from ..ir.graph import OpKind
        graph = self.graphs[-1]

        def node_of(value):
            if not isinstance(value, Tensor):
                return value
            entry = self.values.get(id(value))
            if entry is None or entry[0] is not graph or entry[2] is not value:
                node = graph.create_node(OpKind.placeholder, f"arg{len(graph.placeholders)}")
                entry = self.values[id(value)] = (graph, node, value)
            return entry[1]
        node = graph.create_node(OpKind.call_function, op,
                                 tuple(_map_values(a, node_of) for a in args))
        for value in (result if isinstance(result, (tuple, list)) else (result,)):
            if isinstance(value, Tensor):
                self.values[id(value)] = (graph, node, value)

    def _read(self, name: str, method):
        segments = self

        def read(tensor, *a, **k):
            caller = sys._getframe(1).f_code.co_filename
            # ember's layers (nn modules) are torch's Python: their reads break too
            users = not caller.startswith(EMBER_DIR) or caller.startswith(_USER_LIKE)
            if users and segments.graphs[-1].nodes:
                frame = sys._getframe(1)
                line = linecache.getline(caller, frame.f_lineno).strip() or None
                segments.breaks.append(GraphBreak(
                    f"data-dependent control flow: {_VALUE_READS[name]} reads a "
                    "tensor's value in Python",
                    f"{os.path.basename(caller)}:{frame.f_lineno} in {frame.f_code.co_name}",
                    line))
                segments.graphs.append(Graph())
            return method(tensor, *a, **k)
        return read

    def __enter__(self):
        from ..frontend.tensor import Tensor
        from ..ir import dispatch
        for name in _VALUE_READS:
            self.saved[name] = Tensor.__dict__[name]
            setattr(Tensor, name, self._read(name, self.saved[name]))
        self._mode = dispatch.enabled(self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        from ..frontend.tensor import Tensor
        self._mode.__exit__(*exc)
        for name, method in self.saved.items():
            setattr(Tensor, name, method)
        return False


def _map_values(value, fn):
    if isinstance(value, (list, tuple)):
        return type(value)(_map_values(v, fn) for v in value)
    return fn(value)
