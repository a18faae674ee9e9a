"""Proxy: a stand-in for a Tensor during symbolic tracing.

Every registry op reached with a Proxy argument is recorded through the dispatch
point (Proxy's value handler outranks Tensor's), so Tensor methods and operators
need no per-op code here: `methods.install(Proxy)` gives Proxy the same methods.
Control flow that needs a concrete value (`bool`, `len`, iteration) raises a
TraceError naming the user's line.
"""
from __future__ import annotations

import operator

from ...ir import dispatch
from ...ir.errors import TraceError, format_frame, user_frame
from ...ir.graph import Node


class Proxy:
    def __init__(self, node: Node, tracer):
        self.node = node
        self.tracer = tracer

    def __repr__(self) -> str:
        return f"Proxy({self.node.name})"

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
        self.tracer.create_proxy("call_function", operator.setitem, (self, index, value), {})

    # --- concrete values: not available while tracing ------------------------------------
    def _concrete(self, what: str):
        frame = user_frame()
        where = f"\n  at {format_frame(frame)}" if frame else ""
        raise TraceError(
            f"symbolically traced variables cannot be used as inputs to control flow "
            f"({what} of {self.node.name}){where}\n  hint: pass the value through "
            "`concrete_args`, or make the module that branches a leaf module "
            "(Tracer.is_leaf_module), or use ember.jit.trace, which specializes on the "
            "example inputs")

    def __bool__(self):
        self._concrete("bool()")

    def __len__(self):
        self._concrete("len()")

    def __iter__(self):
        # `a, b = proxy` works when the node's arity is known (multi-output ops)
        arity = _output_arity(self.node)
        if arity is not None:
            return (self[i] for i in range(arity))
        self._concrete("iteration")

    def __index__(self):
        self._concrete("use as an index")

    def __int__(self):
        self._concrete("int()")

    def __float__(self):
        self._concrete("float()")

    def keys(self):
        self._concrete("keys()")


class Attribute(Proxy):
    """`proxy.attr`: recorded lazily, so `x.size()` becomes one call_method node."""

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


def _output_arity(node: Node) -> int | None:
    target = node.target
    schema = getattr(target, "schema", None)
    if schema is not None and schema.returns_tuple:
        return len(schema.returns)
    return None


def _record_op(op, args: tuple):
    """Value handler: record a registry op call whose arguments include a Proxy."""
    tracer = _find_tracer(args)
    call_args, call_kwargs = op.schema.unbind(args)
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
    from ..methods import install as install_methods
    install_methods(Proxy)          # op methods and operators, recorded via dispatch
    dispatch.register_value_handler(Proxy, _record_op, priority=10)
    # contiguous() depends on a concrete layout: record it as the method call it is
    Proxy.contiguous = lambda self, *a, **k: self.tracer.create_proxy(
        "call_method", "contiguous", (self,) + a, k)
