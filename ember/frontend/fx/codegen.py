"""Graph -> readable Python source for GraphModule.forward, in torch.fx's style.

    def forward(self, x, bias = 1.0):
        relu = x.relu();  x = None
        mul = relu * 2;  relu = None
        relu_1 = ember.nn.functional.relu(mul, inplace = False);  mul = None
        lin = self.lin(relu_1);  relu_1 = None
        return lin

Python operators print infix (`a * 2`, `-a`, `a[0]`, `a.shape`), methods as method
calls, submodules and attributes through `self`, ember's functions under their
public names (`ember.relu`, `ember.nn.functional.relu`, `ember.linalg.solve`); any
other function is bound to a global of the generated module (`math_sqrt`). After
each statement, the values it used for the last time are released (`; x = None`),
as torch.fx does, so a GraphModule holds no dead intermediate.
"""
from __future__ import annotations

import enum
import keyword
import operator
import re
import types

from ...ir.dtypes import DType
from ...ir.graph import Graph, Node, OpKind, target_name
from ...ir.meta import MemoryFormat
from ...ir.registry import is_op
from .pytree_codegen import CodeGen, _PyTreeCodeGen, codegen_of
from .pytree_codegen import install as install_codegen

INFIX = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/",
         operator.floordiv: "//", operator.mod: "%", operator.pow: "**",
         operator.matmul: "@", operator.and_: "&", operator.or_: "|", operator.xor: "^",
         operator.lshift: "<<", operator.rshift: ">>", operator.eq: "==", operator.ne: "!=",
         operator.lt: "<", operator.le: "<=", operator.gt: ">", operator.ge: ">="}
PREFIX = {operator.neg: "-", operator.pos: "+", operator.invert: "~", operator.not_: "not "}


class PythonCode:
    """torch.fx.graph.PythonCode: the forward's source and the globals it runs in."""
    def __init__(self, src: str, globals_: dict, _lineno_map=None, _prologue_start=0):
        self.src = src
        self.globals = globals_
        self._lineno_map = _lineno_map
        self._prologue_start = _prologue_start


def _attr_path(target: str) -> str:
    """`self.layer1.conv`; parts that are not identifiers (Sequential's "0") via getattr."""
    expr = "self"
    for part in target.split("."):
        plain = part.isidentifier() and not keyword.iskeyword(part)
        expr = f"{expr}.{part}" if plain else f'getattr({expr}, "{part}")'
    return expr


def public_name(obj) -> str | None:
    """`ember.relu`, `ember.nn.functional.relu`, `ember.linalg.solve`: the public path
    under which `obj` (a registry op or one of ember's functions) is reachable."""
    import ember
    if is_op(obj):
        space = {"": "", "nn.functional": "nn.functional."}.get(obj.namespace,
                                                                 obj.namespace + ".")
        path = f"ember.{space}{obj.python_name}"
    else:
        module = getattr(obj, "__module__", None) or ""
        name = getattr(obj, "__qualname__", None)
        if not module.startswith("ember") or not name or "<" in name:
            return None
        path = f"{module}.{name}"
    value = ember
    for part in path.split(".")[1:]:
        value = getattr(value, part, None)
    return path if value is obj else None


def _public_constant(value) -> str | None:
    """`ember.<name>` when `value` is an enum member ember exports under that name."""
    import enum
    import ember
    if not isinstance(value, enum.Enum):
        return None
    for name, candidate in vars(ember).items():
        if candidate is value and not name.startswith("_"):
            return f"ember.{name}"
    return None


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
            return f"ember.{v.name}"
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
            self.globals.setdefault("inf", float("inf"))    # torch.fx's code: `x + inf`
            self.globals.setdefault("nan", float("nan"))
            return str(v)
        if isinstance(v, (int, float, str, bool, complex)) or v is None:
            return repr(v)
        public = _public_constant(v)
        if public is not None:          # ember.strided, ember.contiguous_format, ...
            return public
        if isinstance(v, enum.Enum):    # a user's enum member: `Foo.A`, Foo a global
            return f"{self.global_name_as(type(v), type(v).__name__)}.{v.name}"
        return self.global_name(v)

    def operand(self, v, left_of_pow: bool = False) -> str:
        """A value as an operand of an infix/prefix operator, written as torch.fx writes
        it (`x + -1`), except that a negative constant raised to a power is
        parenthesized (`(-1) ** x`; torch's `-1 ** x` computes -(1 ** x))."""
        text = self.value(v)
        if left_of_pow and isinstance(v, (int, float)) and not isinstance(v, bool) and \
                text.startswith("-"):
            return f"({text})"
        return text

    def global_name(self, obj) -> str:
        for k, existing in self.globals.items():
            if existing is obj:
                return k
        module, plain = getattr(obj, "__module__", None), getattr(obj, "__name__", None)
        if isinstance(module, str) and isinstance(plain, str) and not is_op(obj) and \
                module not in ("builtins", "_operator", "operator"):
            qualified = f"{module}.{plain}"    # torch.fx's: module and name, not qualname
        else:
            qualified = target_name(obj)
        base = qualified.replace(".", "_").replace("<", "").replace(">", "").replace("::", "_")
        name, i = base, 0
        while name in self.globals or name in self.local_names:
            i += 1
            name = f"{base}_{i}"
        self.globals[name] = obj
        return name

    def type_repr(self, t) -> str | None:
        """An annotation as code (`ember.Tensor`, `int`, `typing_Tuple[ember.Tensor,int]`),
        None when it cannot be written (torch.fx's form)."""
        import typing
        import ember
        if t is None or t is type(None):
            return "None"
        if t is ember.Tensor:
            return "ember.Tensor"
        if isinstance(t, type) and t.__module__ == "builtins":
            return t.__qualname__
        if isinstance(t, types.UnionType):      # `float | ember.Tensor | None`
            parts = [self.global_name_as(a, "NoneType") if a is type(None)   # torch's
                     else self.type_repr(a) for a in t.__args__]
            return None if any(p is None for p in parts) else "|".join(parts)
        if isinstance(t, types.GenericAlias):   # PEP 585: `list[str]`, as written
            origin = t.__origin__
            head = origin.__qualname__ if origin.__module__ == "builtins" \
                else self.global_name(origin)
            parts = [self.type_repr(a) for a in typing.get_args(t)]
            if any(p is None for p in parts):
                return None
            return f"{head}[{','.join(parts)}]" if parts else head
        args = typing.get_args(t)
        name = getattr(t, "_name", None)
        generic = name and getattr(typing, name, None) is not None
        if generic and (args or getattr(t, "__origin__", None) is not None):
            head = self.global_name_as(getattr(typing, name), f"typing_{name}")
            if not args:                        # `Tuple[()]` is written `typing_Tuple`
                return head
            parts = [self.type_repr(a) if a is not Ellipsis else "..." for a in args]
            if any(p is None for p in parts):
                return None
            return f"{head}[{','.join(parts)}]"
        if isinstance(t, type):    # torch.fx names a class by module and qualname
            qualified = f"{t.__module__}.{t.__qualname__}"
            return self.global_name_as(t, re.sub(r"[.<>]", lambda m: "_" if m.group() == "."
                                                 else "", qualified))
        return None

    def global_name_as(self, obj, name: str) -> str:
        """Bind `obj` under `name` (or a numbered variant) in the generated globals."""
        for k, existing in self.globals.items():
            if existing is obj:
                return k
        base, i = name, 0
        while name in self.globals or name in self.local_names:
            i += 1
            name = f"{base}_{i}"
        self.globals[name] = obj
        return name

    def call_args(self, node: Node, skip_first: bool = False) -> str:
        args = node.args[1:] if skip_first else node.args
        parts = [self.value(a) for a in args]
        parts += [f"{k} = {self.value(v)}" for k, v in node.kwargs.items()]
        return ", ".join(parts)

    def function_call(self, node: Node) -> str:
        target, args = node.target, node.args
        if target in INFIX and len(args) == 2 and not node.kwargs:
            left = self.operand(args[0], left_of_pow=target is operator.pow)
            return f"{left} {INFIX[target]} {self.operand(args[1])}"
        if target in PREFIX and len(args) == 1 and not node.kwargs:
            return f"{PREFIX[target]}{self.operand(args[0])}"
        if target is operator.getitem and len(args) == 2:
            return f"{self.value(args[0])}[{self.value(args[1])}]"
        if target is getattr and len(args) == 2 and isinstance(args[1], str) and \
                args[1].isidentifier():
            return f"{self.value(args[0])}.{args[1]}"
        path = public_name(target)
        if path is not None:
            return f"{path}({self.call_args(node)})"
        if is_op(target) and "::" in target.name:  # a custom op: its torch.ops-style path
            namespace, name = target.name.split("::")
            return f"ember.ops.{namespace}.{name}({self.call_args(node)})"
        return f"{self.global_name(target)}({self.call_args(node)})"

    def expression(self, node: Node) -> str:
        if node.op == OpKind.get_attr:
            return _attr_path(node.target)
        if node.op == OpKind.call_module:
            return f"{_attr_path(node.target)}({self.call_args(node)})"
        if node.op == OpKind.call_method:
            obj = self.value(node.args[0])
            return f"{obj}.{node.target}({self.call_args(node, skip_first=True)})"
        if node.op == OpKind.call_function:
            return self.function_call(node)
        raise AssertionError(node.op)


#: in-place operators written as augmented assignments (torch.fx's `a *= b;  imul = a`),
#: which rebind the name as Python does where `operator.imul(a, b)` would not
AUGMENTED = {operator.iadd: "+=", operator.isub: "-=", operator.imul: "*=",
             operator.itruediv: "/=", operator.ifloordiv: "//=", operator.imod: "%=",
             operator.ipow: "**=", operator.imatmul: "@=", operator.iand: "&=",
             operator.ior: "|=", operator.ixor: "^=", operator.ilshift: "<<=",
             operator.irshift: ">>="}


def _augmented_assignment(em: "_Emitter", node: Node) -> str | None:
    if node.op != OpKind.call_function or node.kwargs or len(node.args) != 2:
        return None
    try:
        op = AUGMENTED.get(node.target)
    except TypeError:               # an unhashable callable target
        return None
    if op is None or not isinstance(node.args[0], Node):
        return None
    return f"{em.value(node.args[0])} {op} {em.value(node.args[1])}"


def _released_after(graph: Graph) -> dict:
    """node -> the values to release after its statement, in argument order: those it
    used for the last time (never what the output returns), then itself when nothing
    uses it."""
    last_use: dict = {}
    for node in graph.nodes:
        for inp in node.all_input_nodes:
            last_use[inp] = node
    released: dict = {}
    for node in graph.nodes:
        if node.op == OpKind.output:
            continue
        dead = [inp for inp in node.all_input_nodes if last_use[inp] is node]
        if node.op != OpKind.placeholder and not node.users:
            dead.append(node)
        if dead:
            released[node] = dead
    return released


def _stack_trace_summary(trace: str) -> str:
    """`File: model.py:14 in forward, code: y = x + 1` from a node's stack_trace
    (its last `File "...", line N, in fn` entry and the source line under it)."""
    lines = trace.strip("\n").splitlines()
    for i in range(len(lines) - 1, -1, -1):
        match = _FRAME_LINE.match(lines[i].strip())
        if match:
            code = lines[i + 1].strip() if i + 1 < len(lines) else ""
            return f"File: {match.group(1)}:{match.group(2)} in {match.group(3)}, code: {code}"
    return ""


_FRAME_LINE = re.compile(r'File "(.+)", line (\d+), in (.+)$')


def _stack_trace_comments(graph: Graph) -> dict:
    """print_readable's comments (torch.fx's verbose code): `# File: ...` before the
    first node of each new stack trace, `# No stacktrace found for following nodes`
    before the first of a run of nodes without one."""
    comments, previous = {}, None
    for node in graph.nodes:
        if node.op in (OpKind.placeholder, OpKind.output):
            continue
        trace = node.stack_trace
        if trace and trace != previous:
            comments[node] = "# " + _stack_trace_summary(trace)
            previous = trace
        elif not trace and previous != "":
            comments[node] = "# No stacktrace found for following nodes"
            previous = ""
    return comments


class _Source(str):
    """Generated text whose repr is itself: what CodeGen.generate_output's
    `repr(output_args)` writes for a returned value (constants spelled as the code
    spells them)."""
    def __repr__(self) -> str:
        return str(self)


def _output_statement(codegen, em: "_Emitter", value) -> str:
    ours = type(codegen).generate_output in (CodeGen.generate_output,
                                              _PyTreeCodeGen.generate_output)
    return codegen.generate_output(_Source(em.value(value)) if ours else value)


def _meta_annotation(node: Node, include_stride: bool, include_device: bool) -> str | None:
    """The verbose code's annotation of a tensor value (`"f32[2, 3]"`, with strides
    `[3, 1]` and the device when asked), as torch prints its meta: ShapeProp's
    tensor_meta gives shape and dtype only; a traced value (make_fx, jit.trace) all."""
    from ...ir.meta import TensorMeta
    recorded = node.meta.get("tensor_meta")
    if recorded is not None:
        if not hasattr(recorded, "_fields"):    # a tuple of results: no annotation
            return None
        return f'"{recorded.dtype.short}{list(recorded.shape)}"'
    value = node.meta.get("val")
    if not isinstance(value, TensorMeta):
        return None
    text = f"{value.dtype.short}{list(value.shape)}"
    if include_stride:
        text += str(list(value.strides))
    if include_device:
        text += str(value.device)
    return f'"{text}"'


def _transformed_body(transformer, body: list) -> list:
    """Apply an on_generate_code transformer to the body in torch's form (statements
    without indentation, each ending in a newline) and indent the result again."""
    lines = [line[4:] + "\n" if line.startswith("    ") else line + "\n" for line in body]
    text = "".join(transformer(lines))
    return ["    " + line if line else "" for line in text.rstrip("\n").split("\n")]


def python_code(graph: Graph, verbose: bool = False, include_stride: bool = False,
                include_device: bool = False) -> PythonCode:
    codegen = codegen_of(graph)
    em = _Emitter(n.name for n in graph.nodes)
    comments = _stack_trace_comments(graph) if verbose else {}
    params, body, wrapped = [], [], {}
    def shown(node):
        """`: "f32[2, 3]"` (verbose, a tensor's meta; torch's spacing) or ` : T`."""
        if verbose:
            meta = _meta_annotation(node, include_stride, include_device)
            if meta is not None:
                return f": {meta}"
        annotation = em.type_repr(node.type) if node.type is not None else None
        return "" if annotation is None else f" : {annotation}"

    for p in graph.placeholders:
        param = p.target + shown(p)
        params.append(param if not p.args else f"{param} = {em.value(p.args[0])}")
    released = _released_after(graph)
    wrote_code = False
    for index, node in enumerate(graph.nodes):
        if node in comments:
            if wrote_code:
                body.append("")
            body.append("    " + comments[node])
        wrote_code = wrote_code or node.op != OpKind.placeholder or node.name != \
            node.target.lstrip("*")
        body.append(f"    # COUNTER: {index}")     # which node each line comes from
        if node.op == OpKind.placeholder:
            bare = node.target.lstrip("*")  # `*args`: the value is `args`, the node `_args`
            if node.name != bare:           # a parameter named like a builtin: `sum_1 = sum`
                body.append(f"    {node.name} = {bare}")
            continue
        if node.op == OpKind.output:
            body.append("    " + _output_statement(codegen, em, node.args[0]))
            continue
        augmented = _augmented_assignment(em, node)
        line = (f"    {augmented};  {node.name}{shown(node)} = {em.value(node.args[0])}"
                if augmented else f"    {node.name}{shown(node)} = {em.expression(node)}")
        if node.op == OpKind.call_function and node.meta.get("is_wrapped"):
            wrapped.setdefault(em.global_name(node.target))
        dead = released.get(node)
        if dead:
            line += ";  " + " = ".join(n.name for n in dead) + " = None"
        body.append(line)
    if graph.output_node is None:
        body.append("    pass")
    out = graph.output_node
    returns = em.type_repr(out.type) if out is not None and out.type is not None else None
    if codegen._body_transformer is not None:   # graph.on_generate_code's hook
        body = _transformed_body(codegen._body_transformer, body)
    signature = codegen.gen_fn_def(list(params), f" -> {returns}" if returns is not None else "")
    # functions recorded through fx.wrap (and the autowrapped math functions) are
    # wrapped again where the code runs, as torch.fx's code does
    prologue = "\n".join(f'ember.fx._symbolic_trace.wrap("{name}")' for name in wrapped)
    body, lineno_map = _line_to_node_map(body, signature.count("\n") + 1)
    src = "\n" + prologue + "\n\n" + signature + "\n" + "\n".join(body) + "\n    "
    return PythonCode(src, {**em.globals, **dict(codegen.additional_globals())},
                      _lineno_map=lineno_map, _prologue_start=prologue.count("\n") + 4)


_COUNTER_LINE = re.compile(r"^\s*# COUNTER: (\d+)$")


def _line_to_node_map(body: list, first_line: int) -> tuple[list, dict]:
    """Drop the counter lines; map each remaining body line (numbered from the
    signature's first line, torch.fx's `_lineno_map`) to the index of the node that
    wrote it (None before the first node: a transformer's own lines)."""
    kept, mapping, current = [], {}, None
    for line in body:
        found = _COUNTER_LINE.match(line)
        if found:
            current = int(found.group(1))
            continue
        mapping[len(kept) + first_line] = current
        kept.append(line)
    mapping[len(kept) + first_line] = current      # the closing blank line
    return kept, mapping


def install() -> None:
    """`graph.python_code(root_module)`: torch.fx's Graph method (the IR layer cannot
    import this generator, so the method is attached here)."""
    def graph_python_code(graph: Graph, root_module: str = "self", *,
                          verbose: bool = False, include_stride: bool = False,
                          include_device: bool = False, **_options) -> PythonCode:
        return python_code(graph, verbose, include_stride, include_device)
    Graph.python_code = graph_python_code
    install_codegen()
