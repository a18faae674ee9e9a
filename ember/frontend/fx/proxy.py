"""Proxy: a stand-in for a Tensor during symbolic tracing, recording as torch.fx does.

- `x.relu()` records `call_method "relu"`: a Proxy has no Tensor methods; reading
  an attribute gives an `Attribute` proxy, which records `getattr` only when used as
  a value (`x.shape`) and `call_method` when called.
- `a * 2`, `1 - a`, `-a`, `a[i]` record `call_function` on `operator.mul`,
  `operator.sub`, `operator.neg`, `operator.getitem`: the Python operator itself.
  In-place operators (`a += 1`) fall back to the plain one, as in torch.fx.
- Functions (`ember.relu(x)`, `ember.nn.functional.relu(x)`) are recorded by the
  tracer at the call (tracer.py patches the public namespaces while it traces).
  An op call that reaches the dispatch point with a Proxy argument anyway — a real
  tensor's method or operator applied to a Proxy (`const + x`), or an op reached
  through a reference the tracer did not patch — is recorded here: as the method
  call when a Tensor method was the way in, as a call of the op otherwise.

The registry-op form the compiler works on comes from the normalize pass
(ember/passes/normalize.py), never from here. Control flow that needs a concrete
value (`bool`, `len`, iteration of unknown length) raises a TraceError naming the
user's line.
"""
from __future__ import annotations

import dis
import operator
import sys

from ...ir import dispatch
from ...ir.errors import TraceError, format_frame, user_frame
from ...ir.graph import Node
from ...ir.operators import BINARY, UNARY


# torch.fx's wording, which users' tests match on; ember adds the line and a hint
_CONTROL_FLOW = "symbolically traced variables cannot be used as inputs to control flow"
_ITERATION = ("Proxy object cannot be iterated. This can be attempted when the Proxy is used "
              "in a loop or as a *args or **kwargs function argument")
_LEN = ("'len' is not supported in symbolic tracing by default. If you want this call to be "
        "recorded, please call ember.fx.wrap('len') at module scope")


class Proxy:
    def __init__(self, node: Node, tracer=None):
        if tracer is None:      # torch.fx: a Proxy of a bare graph appends to that graph
            from .tracer import GraphAppendingTracer
            tracer = GraphAppendingTracer(node.graph)
        self.node = node
        self.tracer = tracer

    def __repr__(self) -> str:
        return f"Proxy({self.node.name})"

    __hash__ = object.__hash__      # __eq__ records a node; identity stays the hash

    # --- attribute access and calls recorded as nodes -------------------------------------
    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return Attribute(self, name)

    def __call__(self, *args, **kwargs):
        return self.tracer.create_proxy("call_method", "__call__", (self,) + args, kwargs)

    def __getitem__(self, index):
        return self.tracer.create_proxy("call_function", operator.getitem, (self, index), {})

    def __setitem__(self, index, value):
        # beyond torch.fx (whose Proxy refuses item assignment): recorded as a call
        self.tracer.create_proxy("call_function", operator.setitem, (self, index, value), {})

    # --- concrete values: not available while tracing ------------------------------------
    def _concrete(self, what: str, message: str = _CONTROL_FLOW, error=TraceError):
        frame = user_frame()
        where = f"\n  at {format_frame(frame)}" if frame else ""
        raise error(
            f"{message} ({what} of {self.node.name}){where}\n  hint: pass the value through "
            "`concrete_args`, or make the module that branches a leaf module "
            "(Tracer.is_leaf_module), or use ember.jit.trace, which specializes on the "
            "example inputs")

    # bool(), iteration and ** unpacking ask the tracer (torch.fx's hooks: a Tracer
    # subclass may override to_bool/iter/keys to decide them)
    def __bool__(self):
        return self.tracer.to_bool(self)

    def __len__(self):
        self._concrete("len()", _LEN)

    def __iter__(self):
        # `a, b = proxy`: the unpacking instruction says how many items (as torch.fx
        # reads it); a multi-output op's schema says it too
        count = _unpack_count(sys._getframe(1))
        if count is None:
            count = _output_arity(self.node)
        if count is not None:
            return (self[i] for i in range(count))
        return self.tracer.iter(self)

    # torch's Proxy has no conversions, so Python raises TypeError there: ours is one too
    def __index__(self):
        self._concrete("use as an index", error=ConversionTraceError)

    def __int__(self):
        self._concrete("int()", error=ConversionTraceError)

    def __float__(self):
        self._concrete("float()", error=ConversionTraceError)

    def keys(self):
        return self.tracer.keys(self)


class ConversionTraceError(TraceError, TypeError):
    """int(), float() or indexing with a traced value: a TraceError, and the TypeError
    torch.fx users catch (torch's Proxy has no such conversions)."""
    __module__ = "ember.fx.proxy"


def _record_operator(fn, reflected: bool = False):
    if reflected:
        def method(self, other):
            return self.tracer.create_proxy("call_function", fn, (other, self), {})
    else:
        def method(self, other):
            return self.tracer.create_proxy("call_function", fn, (self, other), {})
    return method


def _record_unary(fn):
    def method(self):
        return self.tracer.create_proxy("call_function", fn, (self,), {})
    return method


def _install_operators(cls) -> None:
    for row in BINARY:
        setattr(cls, row.dunder, _record_operator(row.fn))
        if row.reflected:
            setattr(cls, row.dunder.replace("__", "__r", 1), _record_operator(row.fn, True))
    for fn, _ in UNARY:
        setattr(cls, f"__{fn.__name__}__", _record_unary(fn))


_install_operators(Proxy)


class Attribute(Proxy):
    """`proxy.attr`: recorded lazily, so `x.size()` becomes one call_method node and an
    attribute that is never used (`x.dtype` for a check) records nothing."""

    def __init__(self, root: Proxy, attr: str):
        self.root = root
        self.attr = attr
        self.tracer = root.tracer
        self._node = None

    @property
    def node(self):
        if self._node is None:
            self._node = self.tracer.create_proxy("call_function", getattr,
                                                  (self.root, self.attr), {}).node
        return self._node

    def __call__(self, *args, **kwargs):
        return self.tracer.create_proxy("call_method", self.attr, (self.root,) + args, kwargs)


class ParameterProxy(Proxy):
    """A parameter read during tracing: a get_attr node that still knows its Parameter.

    With `Tracer(param_shapes_constant=True)`, shape queries (`shape`, `size()`,
    `dim()`, `ndim`, `numel()`, `nelement()`) answer from the parameter itself, so
    code that computes with a weight's shape traces to constants (torch.fx's
    ParameterProxy). Otherwise they are recorded like on any Proxy.
    """

    def __init__(self, node: Node, tracer, param):
        super().__init__(node, tracer)
        self.param = param

    def _constant_shapes(self) -> bool:
        return self.tracer.param_shapes_constant

    @property
    def shape(self):
        return self.param.shape if self._constant_shapes() else Attribute(self, "shape")

    @property
    def ndim(self):
        return self.param.ndim if self._constant_shapes() else Attribute(self, "ndim")

    def size(self, dim=None):
        if self._constant_shapes():
            return self.param.size() if dim is None else self.param.size(dim)
        return Attribute(self, "size")(*(() if dim is None else (dim,)))

    def dim(self):
        return self.param.dim() if self._constant_shapes() else Attribute(self, "dim")()

    def numel(self):
        return self.param.numel() if self._constant_shapes() else Attribute(self, "numel")()

    nelement = numel


def annotate(val, type_):
    """Give a traced value a type (torch.fx.annotate): the node's `type`, shown in
    the generated code. Outside tracing, returns `val` unchanged."""
    if isinstance(val, Proxy):
        if val.node.type is not None:
            raise RuntimeError(f"Tried to annotate a value that already had a type on it! "
                               f"Existing type is {val.node.type} and new type is {type_}.")
        val.node.type = type_
    return val


PROXYABLE_CLASSES: dict = {}     # classes made with ProxyableClassMeta (an ordered set)


class ProxyableClassMeta(type):
    """A metaclass whose classes trace like functions (torch.fx's): constructing one
    from Proxy arguments records a call_function node whose target is the class,
    and the result is a Proxy, so methods called on it record call_method nodes.
    An instance built from concrete values is an ordinary object (stored as a
    get_attr constant when passed to a recorded call)."""

    def __init__(cls, name, bases, attrs):
        PROXYABLE_CLASSES.setdefault(cls)
        super().__init__(name, bases, attrs)

    def __call__(cls, *args, **kwargs):
        tracer = _find_tracer((args, kwargs))
        if tracer is not None:
            return tracer.create_proxy("call_function", cls, args, kwargs)
        return super().__call__(*args, **kwargs)


def _unpack_count(frame) -> int | None:
    """n when `frame` is executing `a1, ..., an = <the proxy>`, else None."""
    for instruction in dis.get_instructions(frame.f_code):
        if instruction.offset == frame.f_lasti:
            return instruction.argval if instruction.opname == "UNPACK_SEQUENCE" else None
    return None


def _output_arity(node: Node) -> int | None:
    schema = getattr(node.target, "schema", None)
    if schema is not None and schema.returns_tuple:
        return len(schema.returns)
    return None


def _record_op(op, args: tuple):
    """Value handler: an op call with a Proxy among its arguments that no patched
    function recorded. A real tensor's method or operator (`const + x`) records the
    method call, as torch.fx does; anything else records a call of the op."""
    tracer = _find_tracer(args)
    call_args, call_kwargs = op.schema.unbind(args)
    first = call_args[0] if call_args else None
    if op.method and op.namespace == "" and first is not None and \
            not isinstance(first, Proxy) and hasattr(first, "_array"):
        return tracer.create_proxy("call_method", op.python_name, call_args, call_kwargs)
    return tracer.create_proxy("call_function", op, call_args, call_kwargs)


def _find_tracer(value):
    if isinstance(value, Proxy):
        return value.tracer
    if isinstance(value, (list, tuple)):
        for v in value:
            t = _find_tracer(v)
            if t is not None:
                return t
    if isinstance(value, dict):
        return _find_tracer(list(value.values()))
    return None


def install() -> None:
    dispatch.register_value_handler(Proxy, _record_op, priority=10)
