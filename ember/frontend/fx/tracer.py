"""Symbolic tracing: run a module's forward on Proxies and record a Graph, node for
node what torch.fx.symbolic_trace records for the same program.

- Tensor methods are `call_method` nodes and Python operators `operator.*` calls
  (proxy.py).
- Calls of ember's public functions — `ember.relu`, `ember.nn.functional.relu`,
  `ember.linalg.solve`, ... — are `call_function` nodes whose target is that
  function, with the arguments as written: while tracing, those namespaces (and the
  traced code's own imports of their functions) hold recorders in their place, as
  torch's functions record themselves through `__torch_function__`.
- Submodule calls are `call_module` nodes for leaf modules (ember.nn's own layers,
  not Sequential) and are traced through otherwise; parameters read through a
  module become one cached `get_attr` node each; buffers and other tensors become a
  `get_attr` per use (tensor constants are stored as `_tensor_constant<N>`).
- Node names follow torch.fx's (`add`, `add_1`, `sum_1`, `my_linear`).

Every node records the user's source line. The registry-op form the compiler
works on is made from this by the normalize pass (ember/passes/normalize.py).
"""
from __future__ import annotations

import builtins
import contextlib
import dataclasses
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
from ...ir.registry import is_op
from .fx_traceback import copy_current_meta, has_preserved_node_meta
from .proxy import _ITERATION, PROXYABLE_CLASSES, ParameterProxy, Proxy, _find_tracer

_WRAPPED: list[tuple[dict, str]] = []   # (globals of the caller, function name)


def wrap(fn_or_name):
    """Record calls to this function as call_function nodes instead of tracing into it.

    Use at module level: `ember.fx.wrap("my_fn")` or as a decorator `@ember.fx.wrap`.
    """
    frame = inspect.currentframe().f_back
    name = fn_or_name if isinstance(fn_or_name, str) else fn_or_name.__name__
    if not any(g is frame.f_globals and n == name for g, n in _WRAPPED):
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

    #: the method of a Module root that trace() records (torch.fx's attribute)
    traced_func_name = "forward"
    #: fill each node's `stack_trace` with the user's line (torch.fx's switch; off by
    #: default, as there; ember records `meta["loc"]` for its own errors regardless)
    record_stack_traces = False

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
        self._patcher: _Patcher | None = None
        self._replacements: dict = {}
        self.module_stack: dict = {}        # path -> (qualified name, module type)
        self._module_calls: dict[str, int] = {}

    # --- policy hooks (override in subclasses) -------------------------------------------
    def is_leaf_module(self, m: Module, module_qualified_name: str) -> bool:
        """ember.nn's own layers are leaves (torch.fx: torch.nn's), Sequential is not;
        user modules, built-in models and GraphModules are traced through."""
        module = type(m).__module__
        return module.startswith(_NN_MODULES) and not isinstance(m, _containers())

    def to_bool(self, obj: Proxy) -> bool:
        """`bool(proxy)` (an `if` on a traced value): refused, naming the user's line."""
        obj._concrete("bool()")

    def iter(self, obj: Proxy):
        """Iterating a Proxy of unknown length: refused."""
        obj._concrete("iteration", _ITERATION)

    def keys(self, obj: Proxy):
        """`f(**proxy)` asks for keys: refused as an iteration, as torch.fx reports it."""
        obj._concrete("keys() (** unpacking)", _ITERATION)

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
        # nodes recorded inside the call carry meta["nn_module_stack"]: the modules
        # being called, outermost first (a module's second call is keyed `path@1`)
        calls = self._module_calls.get(path, 0)
        key = f"{path}@{calls}" if calls else path
        self._module_calls[path] = calls + 1
        self.module_stack[key] = (path, type(m))
        try:
            if self.is_leaf_module(m, path):
                return self.create_proxy("call_module", path, args, kwargs)
            if self._patcher is not None:       # names its forward imported get recorded too
                self._patcher.patch_globals(getattr(type(m).forward, "__globals__", {}),
                                            self._replacements)
                self._patcher.patch_attributes(m, self._replacements)
            return forward(*args, **kwargs)
        finally:
            self.module_stack.pop(key, None)

    def __deepcopy__(self, memo):
        """A copy whose autowrap modules are shared (modules cannot be deep-copied;
        torch.fx's Tracer copies them the same way)."""
        import copy
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            shallow = key in ("autowrap_modules", "autowrap_functions", "_replacements",
                              "_patcher")
            new.__dict__[key] = copy.copy(value) if shallow else copy.deepcopy(value, memo)
        return new

    # --- node creation --------------------------------------------------------------------
    def create_arg(self, value):
        if isinstance(value, Proxy):
            return value.node
        hook = getattr(value, "__fx_create_arg__", None)
        if hook is not None and not isinstance(value, type):   # torch.fx's protocol
            return hook(self)
        if type(value) in PROXYABLE_CLASSES:     # built outside the trace: a constant
            return self.graph.get_attr(self._store_constant(value))
        if isinstance(value, Tensor):
            return self._tensor_attr(value)
        if isinstance(value, Module):
            return self.graph.get_attr(self.path_of_module(value))
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return self._named_tuple_arg(value)
        if isinstance(value, (list, tuple)):
            return type(value)(self.create_arg(v) for v in value)
        if isinstance(value, dict):
            for key in value:
                if isinstance(key, Proxy):      # a node cannot be a dictionary key
                    raise TraceError(f"Keys for dictionaries used as an argument cannot "
                                     f"contain a Node. Got key: {key.node.name}")
            return {k: self.create_arg(v) for k, v in value.items()}
        if isinstance(value, slice):
            return slice(self.create_arg(value.start), self.create_arg(value.stop),
                         self.create_arg(value.step))
        if isinstance(value, range):
            return range(self.create_arg(value.start), self.create_arg(value.stop),
                         self.create_arg(value.step))
        if dataclasses.is_dataclass(value) and not isinstance(value, type) and \
                not type(value).__module__.startswith("ember."):    # (ember's dtypes are)
            # built by a node of its class from its fields (torch.fx's), so a module
            # returning a dataclass of traced values generates code that builds it
            fields = {f.name: self.create_arg(getattr(value, f.name))
                      for f in dataclasses.fields(value)}
            return self.create_node("call_function", type(value), (), fields)
        return value

    def _named_tuple_arg(self, value):
        """A NamedTuple argument is built by a node of its class (torch.fx's Tracer),
        so the graph's code constructs it."""
        args = tuple(self.create_arg(v) for v in value)
        return self.create_node("call_function", type(value), args, {})

    def _tensor_attr(self, t: Tensor) -> Node:
        """A get_attr node for a tensor used as an argument: the root's parameter or
        buffer of that identity, else a `_tensor_constant<N>`. As in torch.fx, each use
        gets its own node (only parameters read through the module are cached)."""
        return self.graph.get_attr(self._tensor_qualname(t))

    def _tensor_qualname(self, t: Tensor) -> str:
        if isinstance(self.root, Module):
            for name, p in self.root.named_parameters(remove_duplicate=False):
                if p is t:
                    return name
            for name, b in self.root.named_buffers(remove_duplicate=False):
                if b is t:
                    return name
            name = _tensor_attribute_path(self.root, t)
            if name is not None:
                return name
        for name, c in self.tensor_constants.items():
            if c is t:
                return name
        i = len(self.tensor_constants)
        while hasattr(self.root, f"_tensor_constant{i}"):
            i += 1
        name = f"_tensor_constant{i}"
        self.tensor_constants[name] = t
        if isinstance(self.root, Module):   # as torch.fx: `GraphModule(tracer.root, graph)`
            object.__setattr__(self.root, name, t)     # of a Tracer's graph finds it
        return name

    def _store_constant(self, value) -> str:
        """Keep a proxyable-class instance on the root as `_<class>_constant_<i>`."""
        i = 0
        base = f"_{type(value).__name__}_constant_"
        while hasattr(self.root, f"{base}{i}"):
            i += 1
        setattr(self.root, f"{base}{i}", value)
        return f"{base}{i}"

    def _get_attr(self, qualname: str) -> Node:
        node = self._attr_nodes.get(qualname)
        if node is None or node.graph is not self.graph or node._erased:
            # through create_proxy, as torch.fx: a Tracer subclass overriding it sees
            # parameter reads too (torchvision's feature extraction names them there)
            node = self.create_proxy("get_attr", qualname, (), {}).node
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

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None) -> Node:
        node = self.graph.create_node(kind, target, self.create_arg(tuple(args)),
                                      self.create_arg(dict(kwargs)), name=name,
                                      type_expr=type_expr)
        frame = user_frame()
        if frame is not None:
            node.meta["loc"] = format_frame(frame).split("\n")[0]
            if self.record_stack_traces and kind not in ("placeholder", "output"):
                node.meta["stack_trace"] = _user_stack_trace(frame)
        return node

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None,
                     proxy_factory_fn=None) -> Proxy:
        node = self.create_node(kind, target, args, kwargs, name, type_expr)
        if has_preserved_node_meta():
            copy_current_meta(node)
        elif self.module_stack:
            node.meta["nn_module_stack"] = dict(self.module_stack)
        return proxy_factory_fn(node) if proxy_factory_fn is not None else self.proxy(node)

    def proxy(self, node: Node) -> Proxy:
        """The Proxy a new node is wrapped in (torch.fx's hook: a subclass returns its
        own Proxy type)."""
        return Proxy(node, self)

    # --- the trace --------------------------------------------------------------------------
    def trace(self, root, concrete_args: dict[str, Any] | None = None) -> Graph:
        # a function is traced against an empty Module (torch.fx's), which keeps the
        # constants the trace stores, so `GraphModule(tracer.root, graph)` finds them
        self.root = root if isinstance(root, Module) else Module()
        self._traces_a_module = isinstance(root, Module)
        self.graph = Graph(tracer_cls=type(self))
        self._attr_nodes = {}
        self._module_paths = None
        self._param_paths = None
        self._parameter_proxy_cache = {}    # torch's third getattr argument
        self.module_stack, self._module_calls = {}, {}
        if isinstance(root, Module) and not hasattr(root, self.traced_func_name):
            raise AssertionError(f"traced_func_name={self.traced_func_name} doesn't exist in "
                                 f"{type(root).__name__}")
        fn = getattr(root, self.traced_func_name) if isinstance(root, Module) else root
        code = getattr(fn, "__code__", None)
        if code is not None:    # the generated code's file names the traced function's
            self.graph._co_fields = {"co_name": code.co_name, "co_filename": code.co_filename,
                                     "co_firstlineno": code.co_firstlineno}
        _refuse_self_in_star_args(root, fn)
        annotations = _annotations(fn)
        global _tracing_depth
        _tracing_depth += 1
        try:
            star_call = self._star_args_placeholders(fn, concrete_args)
            if isinstance(concrete_args, tuple) and star_call is None:
                concrete_args = _concrete_args_by_name(fn, concrete_args)
            pytree_call = star_call or self._pytree_placeholders(fn, concrete_args or {})
            if pytree_call is not None:
                fn, args = pytree_call
                annotations = {}
            else:
                fn, args = self._placeholders(fn, concrete_args or {}, annotations)
            with self._patched(getattr(fn, "__globals__", {})):
                result = fn(*args)
        finally:
            _tracing_depth -= 1
        # through create_node, as torch.fx makes the output (tracer hooks see it)
        self.create_node("output", "output", (self.create_arg(result),), {},
                         type_expr=annotations.get("return"))
        return self.graph

    def _placeholders(self, fn, concrete_args: dict,
                      annotations: dict | None = None) -> tuple[Callable, list]:
        """One placeholder per parameter, and the function to call with them. A
        concrete argument still gets one (named `<name>_1`, as torch.fx names it)
        guarded by an assertion that callers pass the value the trace was specialized
        to. `*args` and `**kwargs` become one placeholder each (targets `*args`,
        `**kwargs`, node names `_args`, `_kwargs`): the function is called through a
        copy whose code takes them as plain positional parameters, so `args[0]` and
        `kwargs["foo"]` record getitem nodes, as in torch.fx."""
        params = list(inspect.signature(fn).parameters.values())
        if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            fn, params = _with_plain_varargs(fn, params)
        args = []
        for param in params:
            name = param.name
            if param.kind == param.VAR_POSITIONAL:
                args.append(self.create_proxy("placeholder", f"*{name}", (), {}))
                continue
            if param.kind == param.VAR_KEYWORD:
                args.append(self.create_proxy("placeholder", f"**{name}", (), {}))
                continue
            # through create_proxy, as torch.fx makes placeholders (tracer hooks see them)
            default = () if param.default is inspect.Parameter.empty else (param.default,)
            if name in concrete_args:     # torch.fx: `<name>_1`, keeping the default
                proxy = self.create_proxy("placeholder", f"{name}_1", default, {},
                                          name=f"{name}_1")
                if isinstance(concrete_args[name], PHBase):
                    _transfer_placeholder_attributes(concrete_args[name], proxy.node)
                    args.append(proxy)
                    continue
                self._guard_concrete(name, proxy, concrete_args[name])
                args.append(concrete_args[name])
                continue
            # the node is named from the target, as torch.fx names it (`A` -> node `a`,
            # the code then reads `a = A`)
            args.append(self.create_proxy("placeholder", name, default, {},
                                          type_expr=(annotations or {}).get(name)))
        return fn, args

    def _star_args_placeholders(self, fn, concrete_args):
        """torch.fx's form for `forward(self, *args, **kwargs)` traced with a tuple of
        concrete arguments: one placeholder `input_<i>` per item, passed as `*args`."""
        if not isinstance(concrete_args, tuple) or not concrete_args:
            return None
        params = list(inspect.signature(fn).parameters.values())
        if not params or any(p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
            return None
        args = []
        for i, value in enumerate(concrete_args):
            proxy = self.create_proxy("placeholder", f"input_{i}", (), {})
            if isinstance(value, PHBase):
                _transfer_placeholder_attributes(value, proxy.node)
            args.append(proxy)
        return fn, args

    def _pytree_placeholders(self, fn, concrete_args: dict):
        """torch.fx's pytree inputs: when a concrete argument is a dict/list/tuple (with
        `PH` leaves to keep traced), each leaf of it is a placeholder (`d_1`, `d_2`,
        ...; a non-PH leaf guarded as a concrete argument is), other parameters one
        each, and the graph gets a `_PyTreeCodeGen` so the GraphModule keeps the
        user's signature. The function is then called with the rebuilt structures
        and its result flattened (the output spec). None when no argument is a tree."""
        from ..func.pytree import flatten, unflatten
        from .pytree_codegen import _PyTreeCodeGen, _PyTreeInfo
        if not any(flatten(v)[1].kind != "leaf" for v in concrete_args.values()):
            return None
        params = list(inspect.signature(fn).parameters.values())
        if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            return None     # *args/**kwargs: the ordinary placeholders
        names = [p.name for p in params]
        leaves, in_spec = flatten(tuple(concrete_args.get(n, PH) for n in names))
        flat_args = []
        for name, spec in zip(names, in_spec.children):
            count = spec.num_leaves
            values, leaves = leaves[:count], leaves[count:]
            if spec.kind == "leaf" and name not in concrete_args:
                flat_args.append(self.create_proxy("placeholder", name, (), {}, name=name))
                continue
            for i, value in enumerate(values, 1):
                proxy = self.create_proxy("placeholder", f"{name}_{i}", (), {},
                                          name=f"{name}_{i}")
                if isinstance(value, PHBase):
                    _transfer_placeholder_attributes(value, proxy.node)
                else:
                    self._guard_concrete(name, proxy, value)
                flat_args.append(proxy if isinstance(value, PHBase) else value)
        recorded_spec, recorded_names = in_spec, names
        if self._traces_a_module:           # torch's record of a forward counts `self`
            leaf = flatten(None)[1]
            recorded_spec = type(in_spec)(in_spec.kind, (leaf,) + tuple(in_spec.children),
                                          in_spec.context)
            recorded_names = ["self"] + names
        codegen = _PyTreeCodeGen(_PyTreeInfo(recorded_names, recorded_spec, None))
        self.graph._codegen = codegen

        def flat_fn(*args):
            result = fn(*unflatten(in_spec, args))
            out, out_spec = flatten(result)
            codegen.pytree_info = codegen.pytree_info._replace(out_spec=out_spec)
            return out
        return flat_fn, flat_args

    def _guard_concrete(self, name: str, proxy: Proxy, value) -> None:
        message = f"{name} has been specialized to have value {value} but got another value"
        if value is None:
            self.create_proxy("call_function", _assert_is_none, (proxy, message), {})
        elif isinstance(value, (bool, int, float, str)):
            from ..asserts import _assert
            self.create_proxy("call_function", _assert, (proxy == value, message), {})

    @contextlib.contextmanager
    def _patched(self, fn_globals: dict):
        tracer = self
        original_call = Module.__call__
        original_getattr = Module.__getattr__

        def module_call(mod, *args, **kwargs):
            return tracer.call_module(mod, functools.partial(original_call, mod), args, kwargs)

        def module_getattr(mod, name):
            return tracer.getattr(name, original_getattr(mod, name),
                                  tracer._parameter_proxy_cache)

        patcher = _Patcher()
        self._replacements = self._autowrap_replacements()
        try:
            patcher.set(Module, "__call__", module_call)
            patcher.set(Module, "__getattr__", module_getattr)
            for globals_, name in _WRAPPED + [(getattr(f, "__globals__", {}), f.__name__)
                                              for f in self.autowrap_functions]:
                if name in globals_:
                    patcher.set(globals_, name, self._wrapped(globals_[name]))
                elif hasattr(builtins, name):     # wrap("len"): shadow the builtin there
                    patcher.set(globals_, name, self._wrapped(getattr(builtins, name)))
            for module in self.autowrap_modules:
                patcher.patch_globals(vars(module), self._replacements)
            self._replacements.update(public_function_recorders(patcher))
            patcher.patch_globals(fn_globals, self._replacements)
            if isinstance(self.root, Module):
                patcher.patch_attributes(self.root, self._replacements)
            self._patcher = patcher
            yield
        finally:
            self._patcher = None
            patcher.restore()

    def _autowrap_replacements(self) -> dict:
        """id(function) -> leaf wrapper, for each public function of the autowrap
        modules: patched in the modules and in the traced code's globals
        (`from math import sqrt`)."""
        replacements = {}
        for module in self.autowrap_modules:
            for name, value in vars(module).items():
                if not name.startswith("_") and isinstance(
                        value, (types.FunctionType, types.BuiltinFunctionType)):
                    replacements[id(value)] = self._wrapped(value)
        return replacements

    def _wrapped(self, fn):
        tracer = self

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if _contains_proxy((args, kwargs)):
                proxy = tracer.create_proxy("call_function", fn, args, kwargs)
                # the generated code re-registers the function with wrap(), so that
                # tracing the GraphModule again keeps it a leaf (torch.fx's mark)
                proxy.node.meta["is_wrapped"] = True
                return proxy
            return fn(*args, **kwargs)
        wrapper.__ember_wrapped__ = fn
        return wrapper


def _user_stack_trace(innermost) -> str:
    """torch.fx's node.stack_trace: the user's frames from the first `forward` down to
    the line that made the node (helpers it called included), formatted as a
    traceback; the innermost user frame alone when no `forward` is on the stack."""
    import traceback
    from ...ir.errors import is_user_frame
    frames = traceback.extract_stack()
    first = next((i for i, f in enumerate(frames) if f.name == "forward" and
                  is_user_frame(f)), None)
    kept = [f for f in frames[first:] if is_user_frame(f)] if first is not None else []
    if not kept:
        kept = [innermost]
    return "".join(traceback.StackSummary.from_list(kept).format()).strip()


def _refuse_self_in_star_args(root, fn) -> None:
    if isinstance(root, Module) and inspect.ismethod(fn):
        params = list(inspect.signature(fn.__func__).parameters.values())
        if params and params[0].kind == inspect.Parameter.VAR_POSITIONAL:
            raise RuntimeError("``self`` argument cannot be part of *args expansion!")


def _concrete_args_by_name(fn, values: tuple) -> dict:
    """A tuple of concrete arguments names the parameters in order (torch.fx's)."""
    names = [p.name for p in inspect.signature(fn).parameters.values()
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(names) != len(values):
        raise RuntimeError(f"Tracing expected {len(names)} arguments but got {len(values)} "
                           "concrete arguments")
    return dict(zip(names, values))


class PHBase:
    """torch.fx's PH: in concrete_args, "this argument stays a traced input". Users
    subclass it to tag inputs: a subclass instance's data attributes are copied onto
    the placeholder node it becomes."""

    def __repr__(self) -> str:
        return "PH"


_PHBase = PHBase
PH = PHBase()


class PHWithMeta(PHBase):
    """A PH carrying a key that finds its placeholder node afterwards (torch.fx's)."""

    def __init__(self, ph_key: str | None = None):
        super().__init__()
        self.ph_key = ph_key


def _transfer_placeholder_attributes(ph: PHBase, node: Node) -> None:
    if ph is PH:
        return
    for attr in dir(ph):
        value = getattr(ph, attr)
        if not callable(value) and not attr.startswith("__") and not hasattr(node, attr):
            setattr(node, attr, value)


class GraphAppendingTracer(Tracer):
    """Records onto an existing graph: `Proxy(graph.placeholder("x"),
    GraphAppendingTracer(graph))` builds a graph by running ordinary code on Proxies,
    outside any trace (torch.fx's name). Tensors used as arguments become
    `_tensor_constant<N>` get_attr nodes, listed in `tensor_constants`."""

    def __init__(self, graph: Graph):
        super().__init__()
        self.graph = graph
        self._attr_nodes = {}

    def _named_tuple_arg(self, value):
        # torch.fx's TracerBase: the NamedTuple itself, its fields turned to arguments
        return type(value)(*(self.create_arg(v) for v in value))


class _Patcher:
    """Attribute and global-dict assignments for the duration of one trace, undone in
    reverse order (only where the value is still the one the patcher set)."""

    def __init__(self):
        self._saved: list = []
        self._globals_seen: set[int] = set()

    def set(self, owner, name: str, value) -> None:
        if isinstance(owner, dict):
            self._saved.append((owner, name, owner.get(name, _MISSING), value))
            owner[name] = value
        else:
            self._saved.append((owner, name, owner.__dict__.get(name, _MISSING), value))
            setattr(owner, name, value)

    def patch_globals(self, globals_: dict, replacements: dict) -> None:
        """Replace, in one module's globals, every value that has a replacement."""
        if id(globals_) in self._globals_seen:
            return
        self._globals_seen.add(id(globals_))
        for name, value in list(globals_.items()):
            replacement = replacements.get(id(value))
            if replacement is not None and not isinstance(value, type):
                self.set(globals_, name, replacement)

    def patch_attributes(self, obj, replacements: dict) -> None:
        """Replace a module's attributes that hold a public function (`self.act =
        F.relu`, captured before tracing): torch records such a call as the function,
        through `__torch_function__`, as it records a call by name."""
        for name, value in list(vars(obj).items()):
            replacement = replacements.get(id(value))
            if replacement is not None and not isinstance(value, type):
                self.set(obj, name, replacement)

    def restore(self) -> None:
        for owner, name, original, value in reversed(self._saved):
            if isinstance(owner, dict):
                if owner.get(name) is value and original is _MISSING:
                    del owner[name]
                elif owner.get(name) is value:
                    owner[name] = original
            elif original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self._saved.clear()


_MISSING = object()

# --- public functions recorded at the call, as torch.fx records torch's functions -----------
# Never recorded: they do not compute on tensors (`is_tensor(proxy)` is False, as in torch)
_NOT_RECORDED = frozenset({"is_tensor", "is_storage", "compile", "compile_train_step", "save",
                           "load", "save_weights", "load_weights", "set_printoptions",
                           "manual_seed", "seed", "set_default_dtype", "get_default_dtype",
                           "set_grad_enabled", "is_grad_enabled", "set_rng_state",
                           "get_rng_state", "promote_types", "can_cast", "typename"})
_RECORDERS: dict[int, tuple] = {}       # id(function) -> (function, recorder)


def _public_namespaces() -> list:
    """The modules whose functions torch.fx would record by name: ember,
    ember.nn.functional, ember.linalg, ember.fft."""
    import ember
    from ember import fft, linalg
    from ember.nn import functional
    return [ember, functional, linalg, fft]


def _is_recorded_function(name: str, value) -> bool:
    private = name.startswith("_") and name != "_assert"     # torch._assert is recorded
    if private or name in _NOT_RECORDED or isinstance(value, type):
        return False
    if is_op(value):
        return True
    return isinstance(value, types.FunctionType) and \
        getattr(value, "__module__", "").startswith("ember")


def _recorder(fn):
    entry = _RECORDERS.get(id(fn))
    if entry is None or entry[0] is not fn:
        entry = (fn, _RecordedCall(fn))
        _RECORDERS[id(fn)] = entry
    return entry[1]


class _RecordedCall:
    """Stands in for a public function while tracing: a call with a Proxy among its
    arguments becomes one call_function node (target: the function itself, args and
    kwargs as written); any other call runs the function."""
    __slots__ = ("fn", "__wrapped__")

    def __init__(self, fn):
        self.fn = fn
        self.__wrapped__ = fn

    def __call__(self, *args, **kwargs):
        tracer = _find_tracer((args, kwargs))
        if tracer is None:
            return self.fn(*args, **kwargs)
        args, kwargs = _torch_call_form(self.fn, args, kwargs)
        return tracer.create_proxy("call_function", self.fn, args, kwargs)

    def __getattr__(self, name: str):
        if name in _RecordedCall.__slots__:     # not yet set (a copy being built)
            raise AttributeError(name)
        return getattr(self.fn, name)


def _functional_name(fn) -> str | None:
    """fn's name when it is ember.nn.functional's function of that name."""
    from ember.nn import functional
    name = getattr(fn, "__name__", None)
    found = getattr(functional, name, None) if name else None
    found = found.fn if isinstance(found, _RecordedCall) else found   # while tracing
    return name if found is fn else None


def _torch_call_form(fn, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The arguments of a torch.nn.functional call as torch.fx records them: its
    Python-level functionals pass some parameters positionally and the rest, defaults
    included, as keywords (`relu(x, inplace = False)`; functional_forms.py). Calls of
    other functions, or with arguments the form has no place for, stay as written."""
    from .functional_forms import FORMS
    name = _functional_name(fn)
    form = FORMS.get(name) if name is not None else None
    if form is None:
        return args, kwargs
    positional, keywords = form
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return args, kwargs
    if set(bound.arguments) - set(positional) - set(keywords):
        return args, kwargs
    bound.apply_defaults()
    values = bound.arguments
    if any(p not in values for p in positional + keywords):
        return args, kwargs
    return tuple(values[p] for p in positional), {k: values[k] for k in keywords}


def public_function_recorders(patcher: _Patcher) -> dict:
    """Patch every public function of ember's namespaces with its recorder; return
    id(function) -> recorder, for patching the traced code's own imports too."""
    replacements = {}
    for module in _public_namespaces():
        namespace = vars(module)
        for name, value in list(namespace.items()):
            if isinstance(value, _RecordedCall) or not _is_recorded_function(name, value):
                continue
            recorder = _recorder(value)
            replacements[id(value)] = recorder
            patcher.set(namespace, name, recorder)
    return replacements


def _annotations(fn) -> dict:
    """The parameter and return annotations that are types (a string annotation,
    from `from __future__ import annotations`, is resolved in the function's
    globals when it can be, else left out): placeholders and the output record them
    as their `type`, and the generated code shows them, as torch.fx does."""
    func = getattr(fn, "__func__", fn)
    found = {}
    for name, value in getattr(func, "__annotations__", {}).items():
        if isinstance(value, str):
            try:
                value = eval(value, getattr(func, "__globals__", {}))  # noqa: S307
            except Exception:       # a name only a type checker knows: no annotation
                continue
        found[name] = value
    return found


def _tensor_attribute_path(root: Module, t: Tensor) -> str | None:
    """`sub.t` when a module under `root` holds `t` as a plain attribute (neither
    parameter nor buffer): torch.fx reads it with a get_attr of that path."""
    for prefix, module in root.named_modules():
        for key, value in vars(module).items():
            if value is t:
                return f"{prefix}.{key}" if prefix else key
    return None


def _with_plain_varargs(fn, params: list) -> tuple[Callable, list]:
    """A copy of `fn` whose `*args`/`**kwargs` (and keyword-only parameters) are
    plain positional parameters, in the code's own order (positional, keyword-only,
    *args, **kwargs), with the parameters in that order."""
    bound_self = getattr(fn, "__self__", None)
    func = getattr(fn, "__func__", fn)
    code = func.__code__
    count = code.co_argcount + code.co_kwonlyargcount + \
        bool(code.co_flags & inspect.CO_VARARGS) + bool(code.co_flags & inspect.CO_VARKEYWORDS)
    flat = code.replace(co_argcount=count, co_kwonlyargcount=0, co_posonlyargcount=0,
                        co_flags=code.co_flags & ~(inspect.CO_VARARGS | inspect.CO_VARKEYWORDS))
    plain = types.FunctionType(flat, func.__globals__, func.__name__, None, func.__closure__)
    if bound_self is not None:
        plain = types.MethodType(plain, bound_self)
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
             inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_POSITIONAL,
             inspect.Parameter.VAR_KEYWORD)
    ordered = sorted(params, key=lambda p: kinds.index(p.kind))
    return plain, ordered


#: how many symbolic traces are running (nested traces count each)
_tracing_depth = 0


def is_fx_tracing() -> bool:
    """Whether a symbolic trace is running (torch.fx's `is_fx_tracing`): code that
    must behave differently while traced (skip a data-dependent check) asks this."""
    return _tracing_depth > 0


def _assert_is_none(value, message: str) -> None:
    """The guard a `concrete_args={name: None}` trace records (torch.fx's)."""
    assert value is None, message


def _containers() -> tuple:
    from ..nn.modules.container import Sequential
    return (Sequential,)


_NN_MODULES = ("ember.frontend.nn.", "ember.nn.")


def _contains_proxy(value) -> bool:
    if isinstance(value, Proxy):
        return True
    if isinstance(value, (list, tuple)):
        return any(_contains_proxy(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_proxy(v) for v in value.values())
    return False


def symbolic_trace(root, concrete_args: dict | None = None):
    """Trace `root` (a Module or function) into a GraphModule, recording what
    torch.fx.symbolic_trace records for the same program."""
    from .graph_module import GraphModule
    tracer = Tracer()
    graph = tracer.trace(root, concrete_args)
    name = type(root).__name__ if isinstance(root, Module) else root.__name__
    gm = GraphModule(tracer.root, graph, name)
    for cname, value in tracer.tensor_constants.items():
        setattr(gm, cname, value)
    return gm


__all__ = ["Tracer", "GraphAppendingTracer", "PH", "symbolic_trace", "wrap", "is_fx_tracing"]
