"""Text -> Graph, through a lark grammar: the inverse of `printer.print_graph`.

`parse(text)` returns a Graph equal (`graphs_equal`) to the one that printed the
text. Errors are `ParseError`s carrying line:column and what was expected, or
naming an undefined value or an unknown op at its position. `#` starts a comment,
so golden files can carry `# CHECK:` lines.
"""
from __future__ import annotations

import functools
import importlib
import math

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, \
    UnexpectedToken

from . import dtypes
from .errors import ParseError
from .graph import Graph, Node, OpKind
from .meta import MemoryFormat, TensorMeta, contiguous_format
from .symdim import SymDim, parse_size  # noqa: F401

GRAMMAR = r"""
start: graph
graph: "graph" "(" [param ("," param)*] ")" ":" stmt* ret
param: REF [":" type] ["=" value]
stmt: REF "=" rhs [":" type] [loc]
ret: "return" value
rhs: "placeholder"                                  -> placeholder
   | "get_attr" STRING                              -> get_attr
   | "call_function" STRING "(" [args] ")"          -> call_function
   | "call_method" STRING "(" [args] ")"            -> call_method
   | "call_module" STRING "(" [args] ")"            -> call_module
   | "fused" STRING NAME "(" [args] ")" "{" graph "}"   -> fused
   | NAME "(" [args] ")"                            -> call_op
   | NAME "::" NAME "(" [args] ")"                  -> call_custom_op
args: arg ("," arg)*
arg: value
   | NAME "=" value                                 -> kwarg
?value: REF                                         -> ref
   | SIGNED_NUMBER                                  -> number
   | STRING                                         -> string
   | "-" NAME                                       -> neg_name
   | NAME                                           -> name
   | "[" [value ("," value)*] "]"                   -> list
   | "(" ")"                                        -> empty_tuple
   | "(" value "," ")"                              -> tuple
   | "(" value ("," value)+ [","] ")"               -> tuple
   | "{" [pair ("," pair)*] "}"                     -> dict
   | "py_slice" "(" value "," value "," value ")"   -> slice
   | "complex" "(" value "," value ")"              -> complex
   | "sym" "(" STRING ")"                           -> sym
pair: STRING ":" value
type: NAME "[" [dim ("," dim)*] "]" ["{" NAME "}"] ["@" STRING]   -> tensor_type
    | "(" [type ("," type)*] [","] ")"                             -> tuple_type
    | "[" [type ("," type)*] "]"                                   -> list_type
    | "?"                                                          -> unknown_type
loc: "loc" "(" STRING ")"
dim: INT | SYMDIM
SYMDIM: /-?([0-9]+\*)?s[0-9]+(\*s[0-9]+)*([+-]([0-9]+\*)?(s[0-9]+\*)*(s[0-9]+|[0-9]+))*/
REF: "%" /[A-Za-z0-9_.]+/
NAME: /[A-Za-z_][A-Za-z0-9_.]*/
STRING: /"(\\.|[^"\\])*"/
COMMENT: /#[^\n]*/
%import common.SIGNED_NUMBER
%import common.INT
%import common.WS
%ignore WS
%ignore COMMENT
"""


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", propagate_positions=True)


def parse(text: str) -> Graph:
    """Parse textual IR into a Graph (the inverse of print_graph)."""
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        raise ParseError(_describe(err, text)) from None
    return _Builder(text).build(tree.children[0])


def _describe(err: UnexpectedInput, text: str) -> str:
    line, col = getattr(err, "line", "?"), getattr(err, "column", "?")
    if isinstance(err, UnexpectedToken) and err.token.type == "$END":
        what = f"unexpected end of input; expected one of {sorted(err.expected)}"
    elif isinstance(err, UnexpectedToken):
        expected = sorted(err.expected)
        what = f"unexpected {err.token.type} {err.token.value!r}; expected one of {expected}"
    elif isinstance(err, UnexpectedCharacters):
        what = f"unexpected character {text[err.pos_in_stream]!r}"
        if err.allowed:
            what += f"; expected one of {sorted(err.allowed)}"
    elif isinstance(err, UnexpectedEOF):
        what = f"unexpected end of input; expected one of {sorted(err.expected)}"
    else:
        what = str(err).splitlines()[0]
    context = err.get_context(text).rstrip() if hasattr(err, "get_context") else ""
    return f"{line}:{col}: {what}\n{context}"


_NAMED_CONSTANTS = {"None": None, "True": True, "False": False, "inf": math.inf,
                    "nan": math.nan}


class _Builder:
    def __init__(self, text: str):
        self.text = text
        self.graph = Graph()
        self.values: dict[str, Node] = {}

    def error(self, item, message: str) -> ParseError:
        meta = getattr(item, "meta", None) or item
        line = getattr(meta, "line", "?")
        col = getattr(meta, "column", "?")
        return ParseError(f"{line}:{col}: {message}")

    def build(self, tree: Tree) -> Graph:
        for child in tree.children:
            if child is None:
                continue
            if child.data == "param":
                self._param(child)
            elif child.data == "stmt":
                self._stmt(child)
            elif child.data == "ret":
                self.graph.output(self.value(child.children[0]))
        return self.graph

    def _param(self, tree: Tree) -> None:
        ref, typ, default = tree.children
        node = self.graph.create_node(OpKind.placeholder, ref[1:], name=ref[1:])
        if default is not None:
            node.args = (self.value(default),)
        self._define(ref, node)
        if typ is not None:
            node.meta["val"] = self.type(typ)

    def _define(self, ref: Token, node: Node) -> None:
        if ref[1:] in self.values:
            raise self.error(ref, f"value {ref} is defined twice")
        self.values[ref[1:]] = node

    def _stmt(self, tree: Tree) -> None:
        ref, rhs, typ, loc = tree.children
        node = self._fused(rhs) if rhs.data == "fused" else self._rhs(rhs, ref)
        self._define(ref, node)
        if typ is not None:
            node.meta["val"] = self.type(typ)
        if loc is not None:
            node.meta["loc"] = _unquote(loc.children[0])

    def _rhs(self, rhs: Tree, ref: Token) -> Node:
        kind = rhs.data
        if kind == "placeholder":
            return self.graph.create_node(OpKind.placeholder, ref[1:], name=ref[1:])
        if kind == "get_attr":
            return self.graph.get_attr(_unquote(rhs.children[0]))
        args, kwargs = self._args(rhs.children[-1])
        if kind == "call_op":
            return self.graph.call_function(self._op(rhs.children[0]), args, kwargs)
        if kind == "call_custom_op":     # 'mylib::op': a custom op, looked up by its full name
            namespace, name = rhs.children[0], rhs.children[1]
            qualified = Token("NAME", f"{namespace}::{name}", namespace.start_pos,
                              namespace.line, namespace.column)
            return self.graph.call_function(self._op(qualified), args, kwargs)
        target = _unquote(rhs.children[0])
        if kind == "call_function":
            return self.graph.call_function(self._function(rhs.children[0], target), args,
                                            kwargs)
        return self.graph.create_node(OpKind(kind), target, args, kwargs)

    def _fused(self, rhs: Tree) -> Node:
        from .fused import KINDS, FusedGroup
        name, kind, arg_tree, body = rhs.children
        if str(kind) not in KINDS:
            raise self.error(kind, f"unknown fused group kind {str(kind)!r}; expected one of "
                                   f"{list(KINDS)}")
        args, kwargs = self._args(arg_tree)
        group = FusedGroup(_unquote(name), _Builder(self.text).build(body), str(kind))
        return self.graph.call_function(group, args, kwargs)

    def _op(self, name: Token):
        from .registry import OPS
        from . import ops  # noqa: F401 - registers every op
        if str(name) not in OPS:
            raise self.error(name, f"unknown op {str(name)!r}")
        return OPS[str(name)]

    def _function(self, token: Token, path: str):
        module, _, attr = path.rpartition(".")
        try:
            obj = importlib.import_module(module or "builtins")
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError):
            raise self.error(token, f"cannot resolve function {path!r}") from None
        return obj

    def _args(self, tree: Tree | None):
        args, kwargs = [], {}
        if tree is None:
            return tuple(args), kwargs
        for arg in tree.children:
            if arg.data == "kwarg":
                kwargs[str(arg.children[0])] = self.value(arg.children[1])
            else:
                if kwargs:
                    raise self.error(arg, "positional argument after keyword argument")
                args.append(self.value(arg.children[0]))
        return tuple(args), kwargs

    def value(self, tree):
        kind = tree.data
        kids = tree.children
        if kind == "ref":
            name = kids[0][1:]
            if name not in self.values:
                raise self.error(kids[0], f"use of undefined value %{name}")
            return self.values[name]
        if kind == "number":
            text = str(kids[0])
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "string":
            return _unquote(kids[0])
        if kind == "name":
            return self._name(kids[0])
        if kind == "neg_name":
            return -self._name(kids[0])
        if kind == "list":
            return [self.value(k) for k in kids if k is not None]
        if kind == "empty_tuple":
            return ()
        if kind == "tuple":
            return tuple(self.value(k) for k in kids if k is not None)
        if kind == "dict":
            return {_unquote(p.children[0]): self.value(p.children[1])
                    for p in kids if p is not None}
        if kind == "slice":
            return slice(*(self.value(k) for k in kids))
        if kind == "sym":
            return parse_size(_unquote(tree.children[0]))
        if kind == "complex":
            return complex(self.value(kids[0]), self.value(kids[1]))
        raise self.error(tree, f"unknown value form {kind}")

    def _name(self, token: Token):
        text = str(token)
        if text in _NAMED_CONSTANTS:
            return _NAMED_CONSTANTS[text]
        try:
            return dtypes.dtype_from_name(text)
        except Exception:  # noqa: BLE001 - fall through to memory formats
            pass
        try:
            return MemoryFormat(text)
        except ValueError:
            raise self.error(token, f"unknown name {text!r} (not a dtype, memory format, "
                                    "True/False/None, inf or nan)") from None

    def type(self, tree: Tree):
        kind = tree.data
        if kind == "unknown_type":
            return None
        if kind == "tuple_type":
            return tuple(self.type(k) for k in tree.children if k is not None)
        if kind == "list_type":
            return [self.type(k) for k in tree.children if k is not None]
        name, *rest = tree.children
        try:
            dtype = dtypes.dtype_from_name(str(name))
        except Exception:  # noqa: BLE001
            raise self.error(name, f"unknown dtype {str(name)!r}") from None
        dims = [_dim(t.children[0]) for t in rest if isinstance(t, Tree) and t.data == "dim"]
        names = [t for t in rest if isinstance(t, Token) and t.type == "NAME"]
        strings = [t for t in rest if isinstance(t, Token) and t.type == "STRING"]
        fmt = MemoryFormat(str(names[0])) if names else contiguous_format
        device = _unquote(strings[0]) if strings else "cpu"
        return TensorMeta(tuple(dims), dtype, device, fmt)


def _dim(token):
    """A type's size: an integer, or a symbolic size (ir/symdim.py)."""
    return int(token) if token.type == "INT" else parse_size(str(token))


def _unquote(token) -> str:
    text = str(token)
    return text[1:-1].encode().decode("unicode_escape") if text.startswith('"') else text


def graphs_equal(a: Graph, b: Graph) -> bool:
    """Structural equality: same ops, targets, args (by position), kwargs and types."""
    if len(a) != len(b):
        return False
    index_a = {n: i for i, n in enumerate(a.nodes)}
    index_b = {n: i for i, n in enumerate(b.nodes)}
    from .graph import map_arg
    for na, nb in zip(a.nodes, b.nodes):
        if na.op != nb.op or _target_key(na) != _target_key(nb):
            return False
        if map_arg((na.args, na.kwargs), lambda n: ("%", index_a[n])) != \
                map_arg((nb.args, nb.kwargs), lambda n: ("%", index_b[n])):
            return False
        if _tensor_types(na.meta.get("val")) != _tensor_types(nb.meta.get("val")):
            return False
    return True


def _tensor_types(val):
    from .printer import has_tensor_type
    return val if has_tensor_type(val) else None


def _target_key(node: Node):
    if node.op == OpKind.placeholder:
        return "placeholder"
    return node.target if node.op == OpKind.call_function else str(node.target)
