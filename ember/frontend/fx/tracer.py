"""Symbolic tracing: run a module's forward on Proxies and record a Graph.

Submodule calls become `call_module` nodes for leaf modules (ember.nn's own
layers, by default) and are traced through otherwise; parameters and buffers a
forward touches become `get_attr` nodes; other tensor constants are stored on the
GraphModule as `_tensor_constant<N>`. Every node records the user's source line.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
import types
from typing import Any, Callable

from ...ir.errors import TraceError, format_frame, user_frame
from ...ir.graph import Graph, Node
from ..nn.modules.module import Module
from ..tensor import Tensor
from ..nn.parameter import Parameter
from .proxy import ParameterProxy, Proxy

_WRAPPED: list[tuple[dict, str]] = []   # (globals of the caller, function name)


def wrap(fn_or_name):
    """Record calls to this function as call_function nodes instead of tracing into it.

    Use at module level: `ember.fx.wrap("my_fn")` or as a decorator `@ember.fx.wrap`.
    """
    frame = inspect.currentframe().f_back
    name = fn_or_name if isinstance(fn_or_name, str) else fn_or_name.__name__
    _WRAPPED.append((frame.f_globals, name))
    return fn_or_name


class Tracer:
    """torch.fx's Tracer: records a forward into a Graph.

    autowrap_modules: calls to the functions of these modules (default: `math`)
        that receive a Proxy are recorded as call_function leaves instead of
        running (math.sqrt(x.shape[-1]) would otherwise need a concrete value).
    autowrap_functions: the same for single functions.
    param_shapes_constant: parameters read during the trace become get_attr
        Proxies; when True their shape queries return the concrete values.
    """

    def __init__(self, autowrap_modules=(math,), autowrap_functions=(),
                 param_shapes_constant: bool = False):
        self.autowrap_functions = tuple(autowrap_functions)
        self.autowrap_modules = tuple(autowrap_modules)
        self.param_shapes_constant = param_shapes_constant
        self.graph: Graph | None = None
        self.root = None
        self.tensor_constants: dict[str, Tensor] = {}
        self._attr_nodes: dict[str, Node] = {}
        self._module_paths: dict[int, str] | None = None
        self._param_paths: dict[int, str] | None = None

    # --- policy hooks (override in subclasses) -------------------------------------------
    def is_leaf_module(self, m: Module, module_qualified_name: str) -> bool:
        cls = type(m)
        return cls.__module__.startswith("ember.") and \
            cls.__name__ not in ("Sequential", "ModuleList", "ModuleDict")

    def path_of_module(self, mod: Module) -> str:
        if self._module_paths is None:      # one walk per trace, not one per call
            self._module_paths = {}
            if isinstance(self.root, Module):
                for name, m in self.root.named_modules(remove_duplicate=False):
                    self._module_paths.setdefault(id(m), name)
        path = self._module_paths.get(id(mod))
        if path is not None:
            return path
        raise TraceError(f"module {type(mod).__name__} is not a submodule of the traced root")

    def call_module(self, m: Module, forward: Callable, args: tuple, kwargs: dict):
        path = self.path_of_module(m)
        if self.is_leaf_module(m, path):
            return self.create_proxy("call_module", path, args, kwargs)
        return forward(*args, **kwargs)

    # --- node creation --------------------------------------------------------------------
    def create_arg(self, value):
        if isinstance(value, Proxy):
            return value.node
        if isinstance(value, Tensor):
            return self._tensor_attr(value)
        if isinstance(value, Module):
            return self.graph.get_attr(self.path_of_module(value))
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*(self.create_arg(v) for v in value))
        if isinstance(value, (list, tuple)):
            return type(value)(self.create_arg(v) for v in value)
        if isinstance(value, dict):
            return {k: self.create_arg(v) for k, v in value.items()}
        if isinstance(value, slice):
            return slice(self.create_arg(value.start), self.create_arg(value.stop),
                         self.create_arg(value.step))
        return value

    def _tensor_attr(self, t: Tensor) -> Node:
        for name, p in self.root.named_parameters(remove_duplicate=False) \
                if isinstance(self.root, Module) else ():
            if p is t:
                return self._get_attr(name)
        for name, b in self.root.named_buffers(remove_duplicate=False) \
                if isinstance(self.root, Module) else ():
            if b is t:
                return self._get_attr(name)
        for name, c in self.tensor_constants.items():
            if c is t:
                return self._get_attr(name)
        name = f"_tensor_constant{len(self.tensor_constants)}"
        self.tensor_constants[name] = t
        return self._get_attr(name)

    def _get_attr(self, qualname: str) -> Node:
        node = self._attr_nodes.get(qualname)
        if node is None or node.graph is not self.graph or node._erased:
            node = self.graph.get_attr(qualname)
            self._attr_nodes[qualname] = node
        return node

    def getattr(self, attr: str, attr_val, parameter_proxy_cache: dict | None = None):
        """What reading `module.attr` gives during the trace (torch.fx's hook).

        Parameters of the traced root become ParameterProxies of one get_attr node
        each; everything else is returned unchanged.
        """
        if not isinstance(attr_val, Parameter) or not isinstance(self.root, Module):
            return attr_val
        if self._param_paths is None:
            self._param_paths = {}
            for name, p in self.root.named_parameters(remove_duplicate=False):
                self._param_paths.setdefault(id(p), name)
        name = self._param_paths.get(id(attr_val))
        if name is None:
            return attr_val
        return ParameterProxy(self._get_attr(name), self, attr_val)

    def create_node(self, kind, target, args, kwargs, name=None) -> Node:
        node = self.graph.create_node(kind, target, self.create_arg(tuple(args)),
                                      self.create_arg(dict(kwargs)), name=name)
        frame = user_frame()
        if frame is not None:
            node.meta["loc"] = format_frame(frame).split("\n")[0]
            node.meta["stack_trace"] = format_frame(frame)
        return node

    def create_proxy(self, kind, target, args, kwargs, name=None) -> Proxy:
        return Proxy(self.create_node(kind, target, args, kwargs, name), self)

    # --- the trace --------------------------------------------------------------------------
    def trace(self, root, concrete_args: dict[str, Any] | None = None) -> Graph:
        self.root = root
        self.graph = Graph()
        self._attr_nodes = {}
        self._module_paths = None
        self._param_paths = None
        fn = root.forward if isinstance(root, Module) else root
        args = self._placeholders(fn, concrete_args or {})
        with self._patched(getattr(fn, "__globals__", {})):
            result = fn(*args)
        self.graph.output(self.create_arg(result))
        return self.graph

    def _placeholders(self, fn, concrete_args: dict) -> list:
        args = []
        for name, param in inspect.signature(fn).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise TraceError(f"cannot trace {fn.__qualname__}: *args/**kwargs parameters "
                                 "are not supported; give them names")
            if name in concrete_args:
                args.append(concrete_args[name])
                continue
            node = self.graph.placeholder(name)
            if param.default is not inspect.Parameter.empty:
                node.args = (param.default,)
            args.append(Proxy(node, self))
        return args

    @contextlib.contextmanager
    def _patched(self, fn_globals: dict):
        tracer = self
        original_call = Module.__call__
        original_getattr = Module.__getattr__

        def module_call(mod, *args, **kwargs):
            return tracer.call_module(mod, functools.partial(original_call, mod), args, kwargs)

        def module_getattr(mod, name):
            return tracer.getattr(name, original_getattr(mod, name))

        patches = [(Module, "__call__", module_call), (Module, "__getattr__", module_getattr)]
        for globals_, name in _WRAPPED + [(getattr(f, "__globals__", {}), f.__name__)
                                          for f in self.autowrap_functions]:
            if name in globals_:
                patches.append((globals_, name, self._wrapped(globals_[name])))
        patches += self._autowrap_module_patches(fn_globals)
        saved = []
        try:
            for owner, name, value in patches:
                if isinstance(owner, dict):
                    saved.append((owner, name, owner[name]))
                    owner[name] = value
                else:
                    saved.append((owner, name, getattr(owner, name)))
                    setattr(owner, name, value)
            yield
        finally:
            for owner, name, value in reversed(saved):
                if isinstance(owner, dict):
                    owner[name] = value
                else:
                    setattr(owner, name, value)

    def _autowrap_module_patches(self, fn_globals: dict) -> list:
        """Patch `module.fn` for each autowrap module, and names the traced code
        imported from them (`from math import sqrt`)."""
        functions = {}
        for module in self.autowrap_modules:
            for name, value in vars(module).items():
                if not name.startswith("_") and isinstance(
                        value, (types.FunctionType, types.BuiltinFunctionType)):
                    functions[id(value)] = (module, name, value)
        patches = [(module, name, self._wrapped(fn)) for module, name, fn in functions.values()]
        for name, value in list(fn_globals.items()):
            if id(value) in functions and not isinstance(value, type):
                patches.append((fn_globals, name, self._wrapped(value)))
        return patches

    def _wrapped(self, fn):
        tracer = self

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if _contains_proxy((args, kwargs)):
                return tracer.create_proxy("call_function", fn, args, kwargs)
            return fn(*args, **kwargs)
        wrapper.__ember_wrapped__ = fn
        return wrapper


def _contains_proxy(value) -> bool:
    if isinstance(value, Proxy):
        return True
    if isinstance(value, (list, tuple)):
        return any(_contains_proxy(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_proxy(v) for v in value.values())
    return False


def symbolic_trace(root, concrete_args: dict | None = None):
    """Trace `root` (a Module or function) into a GraphModule."""
    from .graph_module import GraphModule
    tracer = Tracer()
    graph = tracer.trace(root, concrete_args)
    name = type(root).__name__ if isinstance(root, Module) else root.__name__
    gm = GraphModule(tracer.root if isinstance(root, Module) else Module(), graph, name)
    for cname, value in tracer.tensor_constants.items():
        setattr(gm, cname, value)
    return gm


__all__ = ["Tracer", "symbolic_trace", "wrap"]
