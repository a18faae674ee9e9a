"""GraphModule: a Module that owns a Graph, the submodules, parameters and buffers
its graph refers to, and forward() generated from the graph as readable Python.

Edit `gm.graph`, then call `gm.recompile()`; `gm.code` shows the source.
GraphModules deep-copy and pickle (the graph travels, the code is regenerated).
"""
from __future__ import annotations

import copy
import linecache
import sys
import traceback

from ...ir.graph import Graph, OpKind
from ..nn.modules.module import Module
from ..tensor import Tensor
from .codegen import python_code

_COUNTER = [0]


def _copy_attr(src, dst: Module, qualname: str) -> None:
    """Install `src`'s `qualname` (an attribute path, or a key when `src` is a dict) on
    `dst` under the same path, creating empty Modules along the way."""
    *path, last = qualname.split(".")
    if isinstance(src, dict):
        value = src[qualname]
    else:
        for part in path:
            src = getattr(src, part)
        value = getattr(src, last)
    for part in path:
        if not hasattr(dst, part):
            setattr(dst, part, Module())
        dst = getattr(dst, part)
    if isinstance(value, Tensor) and not isinstance(value, Module):
        from ..nn.parameter import Parameter
        if isinstance(value, Parameter):
            dst.register_parameter(last, value)
        else:
            dst.register_buffer(last, value)
    else:
        setattr(dst, last, value)


#: the key of `GraphModule.meta` whose {name: value} entries torch sets back as attributes
#: of a deep copy (torchvision's DualGraphModule reads it)
_USER_PRESERVED_ATTRIBUTES_KEY = "_user_preserved_attributes"


class _CodeOnlyModule(Module):
    """torch.fx's helper for deep copies: a Module made from a given `__dict__`, passed as
    the `root` a GraphModule (sub)class copies its attributes from."""

    def __init__(self, body: dict):
        super().__init__()
        self.__dict__ = body


class GraphModule(Module):
    def __new__(cls, *args, **kwargs):
        """Each instance gets its own class (recompile() sets forward on it), made here
        as torch.fx makes it, so a subclass whose __init__ skips GraphModule's (one
        that sets `self.graph` itself) still gets one."""
        base = next(c for c in cls.__mro__ if not c.__dict__.get("_ember_per_instance"))
        per_instance = type(base.__name__, (base,), {"_ember_per_instance": True})
        return super().__new__(per_instance)

    def __init__(self, root, graph: Graph, class_name: str = "GraphModule"):
        super().__init__()
        type(self).__name__ = type(self).__qualname__ = class_name
        for node in graph.nodes:
            if node.op in (OpKind.get_attr, OpKind.call_module):
                if isinstance(root, dict) and node.target not in root:
                    raise RuntimeError(f"Node {node.name} referenced target {node.target} "
                                       "but that target was not provided in ``root``!")
                try:
                    _copy_attr(root, self, node.target)
                except (AttributeError, KeyError):
                    if not (isinstance(root, Module) and node.target.startswith("_tensor_constant")):
                        raise
        self.graph = graph
        self.meta = {}      # torch's free-form dict for passes (deepcopy keeps it)

    @property
    def graph(self) -> Graph:
        return self._graph

    @graph.setter
    def graph(self, g: Graph) -> None:
        self.__dict__["_graph"] = g
        g.owning_module = self
        self.recompile()

    @property
    def code(self) -> str:
        return self._code

    def recompile(self):
        code = python_code(self._graph)
        info = getattr(self._graph._codegen, "pytree_info", None)
        if info is not None:        # the generated code reads them (torch's attributes)
            self.__dict__["_in_spec"] = info.in_spec
            self.__dict__["_out_spec"] = info.out_spec
        self.__dict__["_code"] = code.src
        self.__dict__["_lineno_map"] = code._lineno_map     # generated line -> node index
        self.__dict__["_prologue_start"] = code._prologue_start
        _COUNTER[0] += 1
        filename = f"<ember-fx-{_COUNTER[0]}>"
        fields = getattr(self._graph, "_co_fields", None)
        if fields:      # torch's: the key names the traced function's file and line
            filename += (f" from {fields['co_filename']}:{fields['co_firstlineno']} in "
                         f"{fields['co_name']}")
        lines = (code.src if code.src.endswith("\n") else code.src + "\n").splitlines(True)
        linecache.cache[filename] = (len(code.src), None, lines, filename)
        namespace = dict(code.globals)
        # generated code is ember's: its op calls were checked when the graph was traced
        namespace.setdefault("__name__", "ember.fx.generated")
        exec(compile(code.src, filename, "exec"), namespace)  # noqa: S102 - our own codegen
        type(self).forward = namespace["forward"]
        rewrite = self.__dict__.get("_forward_rewrite")
        if rewrite is not None:     # a forward of its own for this graph (convert_fx's)
            rewrite(self)
        return code

    def __call__(self, *args, **kwargs):
        proxies = _outside_trace_proxies(self, args, kwargs)
        if proxies is not None:
            return _record_graph_into(self._graph, proxies, args, kwargs)
        try:
            return Module.__call__(self, *args, **kwargs)   # (patched while tracing)
        except Exception as error:
            innermost = traceback.extract_tb(error.__traceback__)[-1]
            if not innermost.filename.startswith("<ember-fx-"):
                raise
            # the failing line is in the generated forward, which no file holds: show
            # it in its context, as torch.fx does
            print(_generated_line_report(innermost), file=sys.stderr)
            raise error.with_traceback(None)  # noqa: B904 - reported above

    def __copy__(self):
        copied = GraphModule(self, self._graph)
        copied.meta = getattr(self, "meta", {})
        return copied

    def _replicate_for_data_parallel(self):
        """DataParallel's replica (torch.fx's): a shallow copy sharing the graph's
        parameters and buffers."""
        replica = self.__copy__()
        replica._is_replica = True
        return replica

    def _load_from_state_dict(self, state_dict, prefix, *rest):
        super()._load_from_state_dict(state_dict, prefix, *rest)
        self._refresh_buffer_constants()

    def _refresh_buffer_constants(self) -> None:
        """Nodes whose meta["args_from_buffers"] maps an argument position to a buffer
        hold that buffer's value as a constant (convert_fx's activation scales and zero
        points: the int8 kernels and the compilers read them as numbers, torch keeps them
        as state); after a load the constants take the loaded values."""
        changed = False
        for node in self._graph.nodes:
            slots = node.meta.get("args_from_buffers")
            if not slots:
                continue
            args = list(node.args)
            for index, target in slots.items():
                value = self.get_buffer(target).detach().numpy().reshape(-1)[0]
                value = float(value) if isinstance(args[index], float) else int(value)
                if value != args[index]:
                    args[index], changed = value, True
            node.args = tuple(args)
        if changed:
            self.recompile()

    def add_submodule(self, target: str, m: Module) -> bool:
        """Install `m` at the dotted path `target`, creating empty Modules along the way;
        False when a step of the path exists and is not a Module."""
        *path, name = target.split(".")
        owner = self
        for part in path:
            child = getattr(owner, part, None)
            if child is None:
                child = Module()
                owner.add_module(part, child)
            if not isinstance(child, Module):
                return False
            owner = child
        owner.add_module(name, m)
        return True

    def delete_submodule(self, target: str) -> bool:
        """Remove the submodule at `target`; False when there is none."""
        *path, name = target.split(".")
        owner = self
        for part in path:
            owner = getattr(owner, part, None)
            if not isinstance(owner, Module):
                return False
        if not isinstance(owner._modules.get(name), Module):
            return False
        delattr(owner, name)
        return True

    def delete_all_unused_submodules(self) -> None:
        """Remove every submodule no call_module or get_attr node refers to (the modules
        on the path to one that is used, and all the children of a called one, stay)."""
        used: set[str] = set()
        for node in self._graph.nodes:
            if node.op not in (OpKind.call_module, OpKind.get_attr):
                continue
            parts = node.target.split(".")
            used.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
            if node.op == OpKind.call_module:
                try:
                    called = self.get_submodule(node.target)
                except AttributeError:      # not installed yet (a rewrite in progress)
                    continue
                used.update(f"{node.target}.{name}" for name, _ in called.named_modules()
                            if name)
        for name, _ in list(self.named_modules()):
            if name and name not in used:
                self.delete_submodule(name)

    def print_readable(self, print_output: bool = True, include_stride: bool = False,
                       include_device: bool = False, colored: bool = False,
                       **_options) -> str:
        text = self._readable(type(self).__name__, include_stride, include_device)
        if print_output:
            print(text)
        return text

    def _readable(self, class_name: str, include_stride: bool = False,
                  include_device: bool = False) -> str:
        """The class listing print_readable shows; GraphModule children follow as
        nested classes named after their attribute (torch's layout)."""
        from .codegen import python_code       # verbose: with stack-trace comments
        body = python_code(self.graph, verbose=True, include_stride=include_stride,
                           include_device=include_device).src.strip("\n").rstrip()
        lines = [f"class {class_name}(ember.nn.Module):"]
        lines += [("    " + line).rstrip() for line in body.splitlines()]
        for name, child in self.named_children():
            if isinstance(child, GraphModule):
                nested = child._readable(name, include_stride, include_device)
                nested = nested.rstrip("\n").splitlines()
                lines += [""] + [("    " + line).rstrip() for line in nested]
        return "\n".join(lines) + "\n"

    def to_folder(self, folder: str, module_name: str = "FxModule") -> None:
        """Write `folder` as an importable package: module.py (a Module class named
        `module_name` whose __init__ rebuilds the submodules, parameters and buffers
        and loads their values from weights.safetensors, and whose forward is this
        GraphModule's code) and __init__.py. `import folder; folder.FxModule()` then
        computes what this GraphModule computes, without ember.fx."""
        from .to_folder import write_folder
        write_folder(self, folder, module_name)

    def __reduce__(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("_graph", "_code")}
        return (_rebuild_graph_module, (state, self._graph, type(self).__name__))

    def __deepcopy__(self, memo):
        # the copy is in `memo` before its state is copied, so state that refers back
        # to the module (`gm.meta["self"] = gm`) refers to the copy (torch's)
        copied = GraphModule.__new__(GraphModule)
        memo[id(self)] = copied
        state = copy.deepcopy({k: v for k, v in self.__dict__.items()
                               if k not in ("_graph", "_code")}, memo)
        return _rebuild_graph_module(state, copy.deepcopy(self._graph, memo),
                                     type(self).__name__, into=copied)

    def __str__(self) -> str:
        # torch.fx's layout: the module, the code, a pointer to print_readable
        return super().__str__() + "\n" + self._code + \
            "\n# To see more debug info, please use `graph_module.print_readable()`"


def _generated_line_report(frame: traceback.FrameSummary) -> str:
    """The traceback, then the generated forward's failing line between its
    neighbours, marked (torch.fx's report of an error in generated code)."""
    lines = linecache.getlines(frame.filename)
    at = frame.lineno
    return "\n".join([
        traceback.format_exc(),
        f"Call using an FX-traced Module, line {at} of the traced Module's generated "
        f"forward function:",
        "".join(lines[max(at - 2, 0):at]),
        "~" * len(frame.line or "") + "~~~ <--- HERE",
        "\n".join(lines[at:at + 2])])


def _outside_trace_proxies(gm: GraphModule, args: tuple, kwargs: dict):
    """The tracer of the Proxies among a call's arguments when the call happens outside
    a trace (a graph built with Proxies, torch.fx's inlining idiom) and the graph can be
    replayed onto it: only functions and methods, flat inputs. Else None."""
    from .proxy import _find_tracer
    tracer = _find_tracer((args, kwargs))
    if tracer is None or getattr(tracer, "_patcher", None) is not None:
        return None
    if gm._forward_hooks or gm._forward_pre_hooks:
        return None
    plain = (OpKind.placeholder, OpKind.call_function, OpKind.call_method, OpKind.output)
    if any(n.op not in plain for n in gm._graph.nodes) or \
            getattr(gm._graph._codegen, "pytree_info", None) is not None and \
            gm._graph._codegen.pytree_info.out_spec is not None:
        return None
    return tracer


def _record_graph_into(graph: Graph, tracer, args: tuple, kwargs: dict):
    """Record `graph`'s calls onto the Proxies' graph, node for node, as running its
    code on Proxies records them in torch.fx (where every function it calls records
    itself): the recorded targets and arguments are the graph's own."""
    from .proxy import Proxy
    from ...ir.graph import map_arg
    env: dict = {}
    inputs = list(args)
    for node in graph.nodes:
        if node.op == OpKind.placeholder:
            name = node.target.lstrip("*")
            if inputs:
                env[node] = inputs.pop(0)
            elif name in kwargs:
                env[node] = kwargs[name]
            elif node.args:
                env[node] = node.args[0]
            else:
                raise TypeError(f"forward() missing required argument: '{name}'")
            continue

        def value(n):
            v = env[n]
            return v.node if isinstance(v, Proxy) else v
        node_args, node_kwargs = map_arg(node.args, value), map_arg(node.kwargs, value)
        if node.op == OpKind.output:
            return _proxies_of(node_args[0], tracer)
        env[node] = tracer.create_proxy(node.op.value if hasattr(node.op, "value") else node.op,
                                        node.target, node_args, node_kwargs)
    return None


def _proxies_of(value, tracer):
    from .proxy import Proxy
    from ...ir.graph import Node
    if isinstance(value, Node):
        return Proxy(value, tracer)
    if isinstance(value, (list, tuple)):
        return type(value)(_proxies_of(v, tracer) for v in value)
    if isinstance(value, dict):
        return {k: _proxies_of(v, tracer) for k, v in value.items()}
    return value


def _rebuild_graph_module(state: dict, graph: Graph, class_name: str,
                          into: GraphModule | None = None) -> GraphModule:
    gm = GraphModule.__new__(GraphModule) if into is None else into
    gm.__dict__.update(state)
    type(gm).__name__ = type(gm).__qualname__ = class_name
    gm.graph = graph
    return gm
