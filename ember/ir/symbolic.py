"""Building graphs by calling ops on symbolic values: the IR-level tracer.

Passes that *generate* code (the autograd pass running derivative rules, vmap
running batching rules, decompositions) should write it the way users do — as op
calls and operators — and get nodes. `GraphBuilder` makes that work: while it is
active (a dispatch *mode*), every op call is recorded into its graph instead of
running. Values are `SymbolicTensor`s: a Node plus its TensorMeta, computed from
the op's meta rule at record time, so `.shape`/`.dtype` are always known and a
wrong shape fails at the line that made it.

Real Tensors met on the way (closures, module parameters) become `get_attr`
constants held in `builder.constants`. Factory calls (`full`, `zeros`) are
recorded too, because the builder sees every call, not only calls on symbolic
values.

`call_graph(graph, args, constants)` is the converse: it runs a graph by calling
its ops on whatever values it is given. Given Tensors it computes eagerly; given
SymbolicTensors of an outer builder it inlines the graph there. That one property
is what lets graph transforms nest (vmap of grad of f).

This module lives in `ir` and imports no other layer; `frontend.methods` attaches
the Tensor methods and operators to SymbolicTensor at import time.
"""
from __future__ import annotations

import contextlib
import operator
import sys
from typing import Any, Callable

from . import determinism, dispatch
from .errors import TraceError, format_frame, user_frame
from .graph import Graph, Node, OpKind, map_arg
from .meta import HasMeta, TensorMeta
from .registry import Tag


class SymbolicTensor(HasMeta):
    """A tensor-valued node of a graph under construction, with its metadata."""
    # __dict__: user code may set attributes on a tensor it was handed (torch allows it)
    __slots__ = ("node", "meta", "__weakref__", "__dict__")

    def __init__(self, node: Node, meta: TensorMeta):
        self.node = node
        self.meta = meta

    is_symbolic = True
    # the class user code sees (ember.Tensor, set by ember/__init__): see __class__
    public_class: type | None = None

    @property
    def __class__(self):
        """`isinstance(x, torch.Tensor)` in a traced forward takes eager's branch: Python's
        isinstance falls back to `__class__`, which is the public Tensor class when user
        code asks. ember's own code, which tells traced values from real ones, sees the
        real class (type(x) is always the real one)."""
        public = SymbolicTensor.public_class
        if public is not None and not _from_ember(sys._getframe(1)):
            return public
        return SymbolicTensor

    def __repr__(self) -> str:
        # users see this (print inside a compiled function): Tensor's vocabulary
        return f"Tensor(traced %{self.node.name}: {self.meta.dtype.short}{list(self.meta.shape)})"

    # concrete values do not exist while building a graph
    def _concrete(self, what: str):
        frame = user_frame()
        where = f"\n  at {format_frame(frame)}" if frame else ""
        raise TraceError(
            f"{what} needs the value of a traced tensor ({self.node.format()}), which does not "
            f"exist while a function is traced into a graph (ember.compile, vmap, ...){where}"
            f"\n  the same line runs eagerly: call it outside the compiled function, or compile "
            f"the code before and after it separately")

    def __bool__(self):
        self._concrete("bool()")

    def __int__(self):
        self._concrete("int()")

    def __float__(self):
        self._concrete("float()")

    def __index__(self):
        self._concrete("use as an index")

    def __len__(self) -> int:
        if not self.meta.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.meta.shape[0]

    def detach(self) -> "SymbolicTensor":
        """Graphs carry no autograd history: detaching is the identity."""
        return self

    def item(self):
        from .unbacked import UnbackedValue, items_allowed
        if items_allowed() and self.meta.numel() == 1:      # ember.export: see ir/unbacked
            return UnbackedValue(self, not self.meta.dtype.is_floating_point)
        self._concrete(".item()")

    def tolist(self):
        self._concrete(".tolist()")

    def numpy(self):
        self._concrete(".numpy()")


def _from_ember(frame) -> bool:
    name = frame.f_globals.get("__name__", "") if frame is not None else ""
    return name == "ember" or name.startswith("ember.")


def _is_tensor_value(value) -> bool:
    """A real tensor (frontend Tensor) without importing frontend: it has storage."""
    return hasattr(value, "_array") and hasattr(value, "dtype")


class GraphBuilder:
    """A dispatch mode that records every op call into `self.graph`.

    with GraphBuilder() as b:
        x = b.placeholder("x", TensorMeta((3,), float32))
        y = (x * 2).sin()
        b.output(y)
    b.graph   # placeholder x; mul; sin; output
    """

    def __init__(self, graph: Graph | None = None, *, record_locations: bool = True):
        self.graph = graph if graph is not None else Graph()
        self.constants: dict[str, Any] = {}
        self.record_locations = record_locations
        self._constant_nodes: dict[int, Node] = {}
        self._ctx = None

    # --- mode protocol -----------------------------------------------------------------
    def __enter__(self) -> "GraphBuilder":
        self._ctx = dispatch.enabled(self)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        ctx, self._ctx = self._ctx, None
        ctx.__exit__(*exc)

    def handle(self, op, bound: tuple):
        return self.record(op, bound)

    # --- values ------------------------------------------------------------------------
    def placeholder(self, name: str, meta: TensorMeta) -> SymbolicTensor:
        node = self.graph.placeholder(name)
        node.meta["val"] = meta
        return SymbolicTensor(node, meta)

    def wrap(self, node: Node) -> Any:
        """A SymbolicTensor (or a tuple of them) for an existing node with meta['val']."""
        return _wrap_node(node, node.meta["val"], self.graph)

    def constant(self, tensor) -> SymbolicTensor:
        """A real Tensor as a get_attr node; the tensor is kept in `constants`."""
        node = self._constant_nodes.get(id(tensor))
        if node is None:
            name = f"_constant{len(self.constants)}"
            self.constants[name] = tensor
            with self.graph.inserting_after(self._last_leading_input()):
                node = self.graph.get_attr(name)
            node.meta["val"] = _meta_of_tensor(tensor)
            self._constant_nodes[id(tensor)] = node
        return SymbolicTensor(node, node.meta["val"])

    def _last_leading_input(self) -> Node | None:
        """Constants go after the placeholders and earlier constants, in creation order."""
        last = None
        for node in self.graph.nodes:
            if node.op not in (OpKind.placeholder, OpKind.get_attr):
                break
            last = node
        return last

    def output(self, result) -> Node:
        return self.graph.output(map_arg(_to_args(self, result), lambda n: n))

    # --- recording ---------------------------------------------------------------------
    def record(self, op, bound: tuple):
        if Tag.NONDETERMINISTIC in getattr(op, "tags", ()):   # nor may compiled code hide it
            determinism.alert_not_deterministic(op.name)
        target = op.functional if op.functional is not None else op
        metas = target.meta(*_metas(self, bound))
        args, kwargs = op.schema.unbind(_to_args(self, bound))
        node = self.graph.call_function(op, args, kwargs)
        node.meta["val"] = metas
        if self.record_locations:
            frame = user_frame()
            if frame is not None:
                node.meta["loc"] = format_frame(frame).split("\n")[0]
        result = _wrap_node(node, metas, self.graph)
        # a Tensor[] result (split, chunk, unbind) is a tuple, as eager ops return it
        # (torch's too): an exported program's result structure follows what it returns
        return tuple(result) if type(result) is list else result


def _wrap_node(node: Node, metas, graph: Graph):
    if isinstance(metas, TensorMeta):
        return SymbolicTensor(node, metas)
    if isinstance(metas, (tuple, list)):
        items = []
        for i, m in enumerate(metas):
            with graph.inserting_after(node if not items else items[-1].node):
                item = graph.call_function(operator.getitem, (node, i))
            item.meta["val"] = m
            items.append(SymbolicTensor(item, m))
        return _rebuild(metas, items)
    return metas


def _rebuild(like, items: list):
    """A list/tuple/namedtuple of the same type as `like` holding `items`."""
    if hasattr(like, "_fields"):
        return type(like)(*items)
    return type(like)(items) if isinstance(like, list) else tuple(items)


def _metas(builder: GraphBuilder, value):
    if isinstance(value, SymbolicTensor):
        return value.meta
    if _is_tensor_value(value):
        return _meta_of_tensor(value)
    if isinstance(value, (list, tuple)):
        return _rebuild(value, [_metas(builder, v) for v in value])
    return value


def _to_args(builder: GraphBuilder, value):
    """Replace symbolic values by their nodes and real tensors by constants."""
    if isinstance(value, SymbolicTensor):
        if value.node.graph is not builder.graph:
            raise TraceError(f"{value!r} belongs to another graph than the one being built")
        return value.node
    if _is_tensor_value(value):
        return builder.constant(value).node
    if isinstance(value, (list, tuple)):
        return _rebuild(value, [_to_args(builder, v) for v in value])
    if isinstance(value, dict):
        return {k: _to_args(builder, v) for k, v in value.items()}
    return value


def _meta_of_tensor(tensor) -> TensorMeta:
    from .meta import meta_of
    return meta_of(tensor)


# --- running a graph on values -----------------------------------------------------------
def call_graph(graph: Graph, args, constants: dict | None = None,
               call_module: Callable | None = None):
    """Run `graph` by calling its targets on `args` (Tensors: eager; symbolic: inline).

    Handles placeholder, get_attr (from `constants`), call_function and call_method;
    `call_module(target, args, kwargs)` handles call_module nodes when given.
    """
    constants = constants or {}
    env: dict[Node, Any] = {}
    inputs = iter(args)
    for node in graph.nodes:
        fetch = lambda n: env[n]   # noqa: E731
        if node.op == OpKind.placeholder:
            try:
                env[node] = next(inputs)
            except StopIteration:
                if not node.args:
                    raise TraceError(f"call_graph: no value for placeholder {node.name}") from None
                env[node] = node.args[0]
        elif node.op == OpKind.get_attr:
            env[node] = _fetch_constant(constants, node.target)
        elif node.op == OpKind.call_function:
            env[node] = node.target(*map_arg(node.args, fetch), **map_arg(node.kwargs, fetch))
        elif node.op == OpKind.call_method:
            self_, *rest = map_arg(node.args, fetch)
            env[node] = getattr(self_, node.target)(*rest, **map_arg(node.kwargs, fetch))
        elif node.op == OpKind.call_module:
            if call_module is None:
                raise TraceError(f"call_graph: {node.name} calls module {node.target!r}; "
                                 "pass call_module= to run it")
            env[node] = call_module(node.target, map_arg(node.args, fetch),
                                    map_arg(node.kwargs, fetch))
        else:
            return map_arg(node.args[0], fetch)
    return None


def _fetch_constant(constants: dict, target: str):
    if target in constants:
        return constants[target]
    obj: Any = constants
    for part in target.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


@contextlib.contextmanager
def building(graph: Graph | None = None):
    """`with building() as b:` — shorthand for a GraphBuilder used as a context."""
    with GraphBuilder(graph) as builder:
        yield builder


def build_graph(fn: Callable, metas, names=None) -> tuple[Graph, dict]:
    """Trace `fn` over placeholders with the given TensorMetas; returns (graph, constants)."""
    names = names or [f"arg{i}" for i in range(len(metas))]
    with GraphBuilder() as builder:
        inputs = [builder.placeholder(n, m) for n, m in zip(names, metas)]
        builder.output(fn(*inputs))
    return builder.graph, builder.constants
