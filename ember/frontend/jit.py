"""ember.jit.trace: record a function or module while it runs eagerly
(torch.jit.trace semantics), into the same IR that ember.fx produces.

The recorder is a dispatch *mode* (`ir.dispatch.enabled`): every op call runs
eagerly (the mode re-dispatches with itself disabled) and is appended to a
Graph, each result tensor remembered as the node that made it. Inputs become
placeholders, parameters and buffers of a traced module become get_attr nodes
under their qualified names, and any other tensor met on the way (closures,
tensors made outside ops) becomes a `_tensor_constant<N>` get_attr. Python
control flow simply runs, so the graph is specialized to the example inputs'
path; converting a tensor to a Python value (item(), bool(), int(), ...) during
the trace warns with a TracerWarning naming the user's line, because that is
where a specialization happens. Ops whose results no longer feed anything
(the condition of a branch) are removed.
"""
from __future__ import annotations

import contextlib
import inspect
import operator
import os
import sys
import warnings

from ..ir import dispatch
from ..ir.errors import EMBER_DIR, TraceError, format_frame, user_frame
from ..ir.graph import Graph, Node
from ..ir.meta import meta_of
from .nn.modules.module import Module
from .tensor import Tensor

# Tensor -> Python conversions (method -> how the user wrote it): each one
# specializes the trace on a data value
_CONVERSIONS = {"item": ".item()", "tolist": ".tolist()", "numpy": ".numpy()",
                "__bool__": "bool()", "__int__": "int()", "__float__": "float()",
                "__index__": "use as an index"}


class TracerWarning(UserWarning):
    """The trace might not generalize to other inputs (torch.jit.TracerWarning)."""


class _JitRecorder:
    """A dispatch mode recording every op call (run eagerly) into `self.graph`."""

    def __init__(self, root: Module | None):
        self.graph = Graph()
        self.root = root
        self.constants: dict[str, Tensor] = {}
        self._nodes: dict[int, Node] = {}      # id(tensor) -> node that produced it
        self._alive: list = []                 # keep traced tensors alive: ids stay unique
        self._attr_names = _attribute_names(root)

    def handle(self, op, bound: tuple):
        with dispatch.disabled(self):
            result = dispatch.dispatch(op, bound)
        args, kwargs = op.schema.unbind(self._to_nodes(bound))
        node = self.graph.call_function(op, args, kwargs)
        node.meta["val"] = _metas(result)
        frame = user_frame()
        if frame is not None:
            node.meta["loc"] = format_frame(frame).split("\n")[0]
        self._define(result, node)
        return result

    # --- values <-> nodes ----------------------------------------------------------------
    def bind(self, tensor: Tensor, node: Node) -> None:
        self._nodes[id(tensor)] = node
        self._alive.append(tensor)

    def _define(self, result, node: Node) -> None:
        if isinstance(result, Tensor):
            self.bind(result, node)
        elif isinstance(result, (tuple, list)):
            for i, item in enumerate(result):
                if isinstance(item, Tensor):      # one getitem node per tensor result
                    getter = self.graph.call_function(operator.getitem, (node, i))
                    getter.meta["val"] = meta_of(item)
                    getter.meta["loc"] = node.meta.get("loc")
                    self.bind(item, getter)

    def _to_nodes(self, value):
        if isinstance(value, Tensor):
            return self.node_of(value)
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*(self._to_nodes(v) for v in value))
        if isinstance(value, (list, tuple)):
            return type(value)(self._to_nodes(v) for v in value)
        if isinstance(value, dict):
            return {k: self._to_nodes(v) for k, v in value.items()}
        return value

    def node_of(self, tensor: Tensor) -> Node:
        node = self._nodes.get(id(tensor))
        if node is None:
            node = self._attribute(tensor)
            self.bind(tensor, node)
        return node

    def _attribute(self, tensor: Tensor) -> Node:
        """A get_attr for a parameter/buffer of the root, or a new tensor constant."""
        name = self._attr_names.get(id(tensor))
        if name is None:
            name = f"_tensor_constant{len(self.constants)}"
            self.constants[name] = tensor
        first_op = _first_computation(self.graph)
        where = self.graph.inserting_before(first_op) if first_op is not None \
            else self.graph.inserting_after()      # inputs, then attributes, then ops
        with where:
            node = self.graph.get_attr(name)
        node.meta["val"] = meta_of(tensor)
        return node


def _attribute_names(root: Module | None) -> dict[int, str]:
    names: dict[int, str] = {}
    if root is None:
        return names
    for name, p in root.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), name)
    for name, b in root.named_buffers(remove_duplicate=False):
        names.setdefault(id(b), name)
    return names


def _first_computation(graph: Graph) -> Node | None:
    return next((n for n in graph.nodes if n.op not in ("placeholder", "get_attr")), None)


def _metas(result):
    """TensorMeta(s) of an op's result; namedtuples become plain tuples."""
    if isinstance(result, Tensor):
        return meta_of(result)
    if isinstance(result, (tuple, list)):
        items = [_metas(r) for r in result]
        return items if isinstance(result, list) else tuple(items)
    return result


# --- conversions and aliases while tracing --------------------------------------------------
def _called_from_user() -> bool:
    """True when the conversion was written by the user, not made inside ember."""
    caller = sys._getframe(2).f_code.co_filename
    return not os.path.abspath(caller).startswith(EMBER_DIR)


def _warning_conversion(spelling: str, original):
    def conversion(self, *args, **kwargs):
        if _called_from_user():
            frame = user_frame()
            where = f" at {format_frame(frame).splitlines()[0]}" if frame else ""
            warnings.warn(f"Converting a tensor to a Python value ({spelling}){where} while "
                          "tracing: the value is recorded as a constant, so this trace "
                          "might not generalize to other inputs", TracerWarning, stacklevel=2)
        return original(self, *args, **kwargs)
    return conversion


@contextlib.contextmanager
def _patched_tensor(recorder: _JitRecorder):
    """Warn on conversions; `detach()` (not an op) is the same value in the graph."""
    saved = {name: getattr(Tensor, name) for name in (*_CONVERSIONS, "detach")}
    original_detach = saved["detach"]

    def detach(self):
        out = original_detach(self)
        recorder.bind(out, recorder.node_of(self))
        return out

    try:
        for name, spelling in _CONVERSIONS.items():
            setattr(Tensor, name, _warning_conversion(spelling, saved[name]))
        Tensor.detach = detach
        yield
    finally:
        for name, value in saved.items():
            setattr(Tensor, name, value)


# --- the entry point --------------------------------------------------------------------------
def trace(fn_or_module, example_inputs, *, check_trace: bool = False):
    """Run `fn_or_module(*example_inputs)` eagerly and return a GraphModule of what ran.

    Data-dependent Python control flow is specialized to the path the example
    inputs take (torch.jit.trace semantics). `check_trace` re-runs the result on
    the example inputs and raises TraceError when it disagrees with eager.
    """
    from .fx.graph_module import GraphModule
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    root = fn_or_module if isinstance(fn_or_module, Module) else None
    recorder = _JitRecorder(root)
    names = _input_names(fn_or_module, len(inputs))
    for name, value in zip(names, inputs):
        _check_input(name, value)
        node = recorder.graph.placeholder(name)
        node.meta["val"] = meta_of(value)
        recorder.bind(value, node)
    with _patched_tensor(recorder), dispatch.enabled(recorder):
        result = fn_or_module(*inputs)
    recorder.graph.output(recorder._to_nodes(result))
    recorder.graph.eliminate_dead_code()
    gm = GraphModule(root if root is not None else Module(), recorder.graph,
                     _class_name(fn_or_module))
    for name, value in recorder.constants.items():
        gm.register_buffer(name, value)
    if root is not None:
        _keep_unread_state(root, gm)
    if check_trace:
        _check(gm, fn_or_module, inputs)
    return gm


def _keep_unread_state(root: Module, gm) -> None:
    """torch.jit.trace keeps the whole module: its state_dict has the entries the run
    never read too (an eval BatchNorm's num_batches_tracked), so a traced module's
    state_dict loads into the model and back."""
    from .fx.graph_module import _copy_attr
    have = {name for name, _ in gm.named_parameters()} | \
        {name for name, _ in gm.named_buffers()}
    persistent = set(root.state_dict(keep_vars=True))
    for name, _ in [*root.named_parameters(), *root.named_buffers()]:
        if name not in have and name in persistent:
            _copy_attr(root, gm, name)


def _input_names(fn, count: int) -> list[str]:
    target = fn.forward if isinstance(fn, Module) else fn
    try:
        params = [p for p in inspect.signature(target).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:count]]
    return names + [f"arg{i}" for i in range(len(names), count)]


def _check_input(name: str, value) -> None:
    if not isinstance(value, Tensor):
        raise TraceError(f"ember.jit.trace: example input {name!r} is a "
                         f"{type(value).__name__}; only Tensors can be traced inputs "
                         "(close over other values, or use ember.fx.symbolic_trace with "
                         f"concrete_args){_at_user()}")


def _at_user() -> str:
    frame = user_frame()
    return f"\n  at {format_frame(frame)}" if frame else ""


def _class_name(fn) -> str:
    return type(fn).__name__ if isinstance(fn, Module) else getattr(fn, "__name__", "traced")


def _check(gm, fn, inputs) -> None:
    import numpy as np
    want, got = fn(*inputs), gm(*inputs)
    flat_want, flat_got = _flatten(want), _flatten(got)
    same = len(flat_want) == len(flat_got) and all(
        np.allclose(np.asarray(a.detach()._array), np.asarray(b.detach()._array),
                    rtol=1e-5, atol=1e-6, equal_nan=True)
        for a, b in zip(flat_want, flat_got))
    if not same:
        raise TraceError("ember.jit.trace(check_trace=True): the traced graph disagrees "
                         f"with eager on the example inputs{_at_user()}")


def _flatten(value) -> list:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _flatten(v)]
    return []


# --- TorchScript's decorators and queries ------------------------------------------------------
# ember has no TorchScript compiler: code runs as Python (and compiles with ember.compile),
# so these keep torch.jit's names and eager meaning for code written against it.
def script(obj, *args, **kwargs):
    """Returns `obj` (a Module or function) unchanged: ember runs it as the Python it is.
    torch.jit.script's result runs the same computation; for a graph, use
    ember.jit.trace or ember.fx.symbolic_trace, and ember.compile to compile it.
    A module is marked as a ScriptModule (isinstance, and `.save(path)` as torch's
    scripted modules have it)."""
    if isinstance(obj, Module):
        obj._ember_jit_kind = "module"      # jit_api's mark
    return obj


def _script_if_tracing(fn):
    """Decorator (torch.jit._script_if_tracing): script `fn` when a trace calls it. Since
    script returns its argument, the function is called as it is, traced or not."""
    return script(fn)


def _mark(fn, how: str):
    try:
        fn._ember_jit = how
    except (AttributeError, TypeError):    # a builtin or a bound method: nothing to mark
        pass
    return fn


def unused(fn):
    """Decorator: leave a method out of scripting (it still runs eagerly)."""
    return _mark(fn, "unused")


def ignore(drop=False, **kwargs):
    """Decorator (`@ignore` or `@ignore(drop=True)`): the function stays Python."""
    if callable(drop):
        return _mark(drop, "ignore")
    return lambda fn: _mark(fn, "ignore")


def export(fn):
    """Decorator: a method to compile besides forward (here: it is already callable)."""
    return _mark(fn, "export")


def _overload_method(fn):
    """Declares an overload of a method (for TorchScript's type checks); returns it."""
    return _mark(fn, "overload")


def annotate(the_type, the_value):
    """Type hint for TorchScript; returns the value."""
    return the_value


def is_scripting() -> bool:
    """False: nothing here runs as TorchScript (torch.jit.is_scripting outside script)."""
    return False


def is_tracing() -> bool:
    """True while ember.jit.trace is recording (torch.jit.is_tracing)."""
    return any(isinstance(mode, _JitRecorder) for mode in dispatch.active_modes())


# TorchScript's attribute annotation; eagerly it is typing's own Final (as in torch.jit)
from typing import Final  # noqa: E402

__all__ = ["Final", "trace", "TracerWarning", "script", "unused", "ignore", "export",
           "_overload_method", "annotate", "is_scripting", "is_tracing", "_script_if_tracing"]
