"""Interpreter (run a GraphModule node by node, each step overridable) and
Transformer (an Interpreter whose values are Proxies: it builds a new graph)."""
from __future__ import annotations

from ...ir.graph import Graph, Node, OpKind, map_arg
from . import fx_traceback
from .proxy import Proxy
from .tracer import Tracer


def fetch_attr(module, target: str):
    obj = module
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


class Interpreter:
    def __init__(self, module, garbage_collect_values: bool = True, graph: Graph | None = None):
        self.module = module
        # torch's snapshot of the module tree (passes look call_module targets up in it)
        self.submodules = dict(module.named_modules()) \
            if hasattr(module, "named_modules") else {}
        self.graph = graph if graph is not None else module.graph
        self.env: dict[Node, object] = {}
        self.garbage_collect_values = garbage_collect_values
        self._last_use = _last_uses(self.graph) if garbage_collect_values else {}

    def run(self, *args, initial_env: dict | None = None, enable_io_processing: bool = True):
        self.env = dict(initial_env or {})
        if enable_io_processing:        # a pytree graph's structures -> its placeholders
            args = self.graph.process_inputs(*args)
        self.args_iter = iter(args)
        for node in self.graph.nodes:
            if node in self.env:
                continue
            try:
                self.env[node] = self.run_node(node)
            except Exception as err:
                if not getattr(err, "_ember_noted", False):
                    loc = node.meta.get("loc")
                    err.add_note(f"while executing {node.format()}" +
                                 (f" (from {loc})" if loc else ""))
                    err._ember_noted = True
                raise
            for dead in self._last_use.get(node, ()):
                self.env.pop(dead, None)
            if node.op == OpKind.output:
                value = self.env[node]
                return self.graph.process_outputs(value) if enable_io_processing else value
        return None

    def boxed_run(self, args_list: list):
        """Run with the inputs in `args_list`, which is cleared first (the caller's
        references go, so values can be freed as the graph runs)."""
        args_iter = iter(args_list)
        env = {}
        for node in self.graph.nodes:
            if node.op == OpKind.placeholder:
                env[node] = next(args_iter)
        args_list.clear()
        return self.run(initial_env=env)

    def fetch_attr(self, target: str):
        return fetch_attr(self.module, target)

    def run_node(self, node: Node):
        if fx_traceback.should_preserve_node_meta:  # carried to the nodes made meanwhile
            with fx_traceback.set_current_meta(node):
                args, kwargs = self.fetch_args_kwargs_from_env(node)
                return getattr(self, node.op.value)(node.target, args, kwargs)
        args, kwargs = self.fetch_args_kwargs_from_env(node)
        return getattr(self, node.op.value)(node.target, args, kwargs)

    def fetch_args_kwargs_from_env(self, node: Node):
        return (self.map_nodes_to_values(node.args, node),
                self.map_nodes_to_values(node.kwargs, node))

    def map_nodes_to_values(self, args, n: Node):
        """`args` with each Node replaced by its computed value (torch.fx's)."""
        def value(arg: Node):
            if arg not in self.env:
                raise RuntimeError(f"Node {n} referenced nonexistent value {arg}! Run "
                                   "Graph.lint() to diagnose such issues")
            return self.env[arg]
        return map_arg(args, value)

    # --- one method per op kind ------------------------------------------------------------
    def placeholder(self, target, args, kwargs):
        if target.startswith("*"):      # `*args`: all the remaining inputs
            return list(self.args_iter)
        try:
            return next(self.args_iter)
        except StopIteration:
            if args:
                return args[0]
            raise RuntimeError(f"Expected positional argument for parameter {target}, but "
                               "one was not passed in!") from None

    def get_attr(self, target, args, kwargs):
        return self.fetch_attr(target)

    def call_function(self, target, args, kwargs):
        return target(*args, **kwargs)

    def call_method(self, target, args, kwargs):
        self_obj, *rest = args
        return getattr(self_obj, target)(*rest, **kwargs)

    def call_module(self, target, args, kwargs):
        return self.fetch_attr(target)(*args, **kwargs)

    def output(self, target, args, kwargs):
        return args[0]


def _last_uses(graph: Graph) -> dict:
    """node -> values whose last use is that node (freed right after it runs)."""
    last = {}
    for node in graph.nodes:
        for inp in node.all_input_nodes:
            last[inp] = node
    out: dict = {}
    for value, user in last.items():
        out.setdefault(user, []).append(value)
    return out


class Transformer(Interpreter):
    """Re-trace a GraphModule node by node into a new graph (torch.fx's Transformer).

    The values are Proxies of a fresh Tracer, so overriding `call_method`,
    `call_function`, `call_module`, `get_attr` or `run_node` rewrites what they
    record; whatever the override computes on its Proxies is recorded the way
    symbolic_trace records it. `transform()` returns the new GraphModule.
    """

    def __init__(self, module):
        super().__init__(module, garbage_collect_values=False)
        self.new_graph = Graph()
        self.new_graph.set_codegen(self.graph._codegen)     # a pytree signature stays
        self.tracer = Tracer()
        self.tracer.graph = self.new_graph
        self.tracer.root = module

    def placeholder(self, target, args, kwargs):
        node = self.new_graph.placeholder(target)
        if args:
            node.args = args
        return self.tracer.proxy(node)

    def get_attr(self, target, args, kwargs):
        return self.tracer.proxy(self.new_graph.get_attr(target))

    def call_function(self, target, args, kwargs):
        return self.tracer.create_proxy("call_function", target, args, kwargs)

    def call_method(self, target, args, kwargs):
        return self.tracer.create_proxy("call_method", target, args, kwargs)

    def call_module(self, target, args, kwargs):
        return self.tracer.create_proxy("call_module", target, args, kwargs)

    def run_node(self, node: Node):
        result = super().run_node(node)
        # the node made for `node` keeps its meta (as torch's Transformer preserves it)
        kept = node.op not in (OpKind.placeholder, OpKind.output)
        if kept and isinstance(result, Proxy) and result.node.graph is self.new_graph:
            result.node.meta.update(node.meta)
        return result

    def transform(self):
        from .graph_module import GraphModule
        with fx_traceback.preserve_node_meta():    # every node made for a node gets its
            result = self.run(enable_io_processing=False)   # stack trace and module stack (torch's)
        out = self.new_graph.output(self.tracer.create_arg(result))
        old_out = self.graph.output_node
        if old_out is not None:
            out.meta.update(old_out.meta)
        return GraphModule(self.module, self.new_graph)
