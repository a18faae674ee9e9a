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

import os
import traceback
from dataclasses import dataclass, field
from typing import Any

from ..ir.errors import _STDLIB_DIRS, EMBER_DIR, TraceError
from ..ir.graph import Graph
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
    ops_per_graph: list[int] = field(default_factory=list)
    out: Any = None

    @property
    def graph_count(self) -> int:
        return len(self.graphs)

    def __str__(self) -> str:
        lines = [f"Graph Count: {self.graph_count}",
                 f"Graph Break Count: {self.graph_break_count}",
                 f"Op Count: {sum(self.ops_per_graph)}", "Break Reasons:"]
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
        sink.ops_per_graph.append(entry.stats.original_ops)


def explain(fn, *args, **kwargs):
    """Run `fn(*args, **kwargs)` through a fresh ember.compile; returns ExplainOutput.
    Without arguments, returns a function taking them (torch's explain(fn)(*args))."""
    if not args and not kwargs:
        return lambda *a, **k: explain(fn, *a, **k)
    from .compile import CompiledFunction, compile
    target = fn.fn if isinstance(fn, CompiledFunction) else fn
    output = ExplainOutput()
    _SINKS.append(output)
    try:
        output.out = compile(target)(*args, **kwargs)
    finally:
        _SINKS.pop()
    return output
