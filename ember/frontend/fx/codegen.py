"""Graph -> readable Python source for GraphModule.forward.

Registry ops print as `ember.<name>(...)`, getitem/getattr as `x[i]` / `x.attr`,
method calls as `x.view(...)`, submodules as `self.layer1(...)`; every other
function is bound to a global name in the generated module's namespace.
"""
from __future__ import annotations

import keyword
import operator

from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, OpKind, target_name
from ...ir.meta import MemoryFormat
from ...ir.registry import is_op


class PythonCode:
    def __init__(self, src: str, globals_: dict):
        self.src = src
        self.globals = globals_


def _attr_path(target: str) -> str:
    """`self.layer1.conv`; parts that are not identifiers (Sequential's "0") via getattr."""
    expr = "self"
    for part in target.split("."):
        plain = part.isidentifier() and not keyword.iskeyword(part)
        expr = f"{expr}.{part}" if plain else f"getattr({expr}, {part!r})"
    return expr


class _Emitter:
    def __init__(self, local_names=()):
        import ember
        self.globals: dict = {"ember": ember, "operator": operator}
        # a global named like a node (op fft_rfft, node fft_rfft) would be shadowed by it
        self.local_names = set(local_names)

    def value(self, v) -> str:
        if isinstance(v, Node):
            return v.name
        if isinstance(v, DType):
            return f"ember.{v.name if v.name != 'bool' else 'bool'}"
        if isinstance(v, MemoryFormat):
            return f"ember.{v.value}"
        if isinstance(v, (list, tuple)):
            if isinstance(v, tuple) and hasattr(v, "_fields"):
                return self.global_name(type(v)) + "(" + ", ".join(self.value(x) for x in v) + ")"
            inner = ", ".join(self.value(x) for x in v)
            if isinstance(v, tuple):
                return f"({inner},)" if len(v) == 1 else f"({inner})"
            return f"[{inner}]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k!r}: {self.value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, slice):
            return f"slice({self.value(v.start)}, {self.value(v.stop)}, {self.value(v.step)})"
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return f"float({str(v)!r})"
        if isinstance(v, (int, float, str, bool, complex)) or v is None:
            return repr(v)
        return self.global_name(v)

    def global_name(self, obj) -> str:
        for k, existing in self.globals.items():
            if existing is obj:
                return k
        base = target_name(obj).replace(".", "_").replace("<", "").replace(">", "") \
            .replace("::", "_")
        name, i = base, 0
        while name in self.globals or name in self.local_names:
            i += 1
            name = f"{base}_{i}"
        self.globals[name] = obj
        return name

    def call_args(self, node: Node, skip_first: bool = False) -> str:
        args = node.args[1:] if skip_first else node.args
        parts = [self.value(a) for a in args]
        parts += [f"{k}={self.value(v)}" for k, v in node.kwargs.items()]
        return ", ".join(parts)

    def function_call(self, node: Node) -> str:
        target = node.target
        if target is operator.getitem:
            return f"{self.value(node.args[0])}[{self.value(node.args[1])}]"
        if target is getattr and len(node.args) == 2 and isinstance(node.args[1], str):
            return f"{self.value(node.args[0])}.{node.args[1]}"
        if is_op(target):
            import ember
            if getattr(ember, target.python_name, None) is target:
                return f"ember.{target.python_name}({self.call_args(node)})"
            if "::" in target.name:     # a custom op: torch.ops-style path, as fx prints it
                namespace, name = target.name.split("::")
                return f"ember.ops.{namespace}.{name}({self.call_args(node)})"
        return f"{self.global_name(target)}({self.call_args(node)})"

    def line(self, node: Node) -> str:
        if node.op == OpKind.get_attr:
            return f"{node.name} = {_attr_path(node.target)}"
        if node.op == OpKind.call_module:
            return f"{node.name} = {_attr_path(node.target)}({self.call_args(node)})"
        if node.op == OpKind.call_method:
            obj = self.value(node.args[0])
            return f"{node.name} = {obj}.{node.target}({self.call_args(node, skip_first=True)})"
        if node.op == OpKind.call_function:
            return f"{node.name} = {self.function_call(node)}"
        if node.op == OpKind.output:
            return f"return {self.value(node.args[0])}"
        raise AssertionError(node.op)


def python_code(graph: Graph) -> PythonCode:
    em = _Emitter(n.name for n in graph.nodes)
    params = []
    for p in graph.placeholders:
        params.append(p.name if not p.args else f"{p.name}={em.value(p.args[0])}")
    body = []
    for node in graph.nodes:
        if node.op == OpKind.placeholder:
            continue
        loc = node.meta.get("loc")
        text = em.line(node)
        body.append(f"    {text}" + (f"  # {loc}" if loc and node.op != OpKind.output else ""))
    if not any(n.op == OpKind.output for n in graph.nodes):
        body.append("    return None")
    src = "def forward(self" + "".join(f", {p}" for p in params) + "):\n" + "\n".join(body) + "\n"
    return PythonCode(src, em.globals)
