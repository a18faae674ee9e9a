"""Custom autograd functions: `ember.autograd.Function`, as `torch.autograd.Function`.

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y

    Exp.apply(x)

`forward` runs with grad mode off; `apply` records one `<Name>Backward` node whose
inputs are the tensor arguments. With `setup_context`, forward takes no ctx and
setup_context gets the inputs with forward's defaults filled in, as torch binds them.
Inside an open forward-AD dual level, a Function whose inputs carry tangents computes
its outputs' tangents with its `jvp` staticmethod (forward itself runs without
tangents), reading what `ctx.save_for_forward` saved through `ctx.saved_tensors`.
A gradient returned for an input of a smaller shape that it broadcasts from is summed
down to the input's shape (torch's engine does the same). `backward` gets one gradient per forward output and
returns one per forward input (None for non-tensors and inputs that need none). When
`backward` is written with ember ops, `create_graph=True` differentiates through it,
so double backward works; `once_differentiable` opts out.
"""
from __future__ import annotations

import functools
import inspect

from ...ir import autodiff
from ...ir.errors import AutogradError
from ..tensor import Tensor
from . import function_trace, grad_mode
from .engine import Node, NodeName, SavedTensor, edge_of, take_type_name


class FunctionCtx:
    """The `ctx` passed to forward and backward."""

    def __init__(self):
        self._saved: tuple | None = ()
        self._saved_for_forward: tuple = ()
        self._freed = False
        self._non_differentiable: set[int] = set()
        self._dirty: set[int] = set()
        self.materialize_grads = True
        self.needs_input_grad: tuple[bool, ...] = ()
        self._node_name = "Function"

    def save_for_backward(self, *tensors) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError("save_for_backward can only save variables, but argument "
                                f"{tensors.index(t)} is of type {type(t).__name__}")
        self._saved = tuple(SavedTensor(t) if t is not None else None for t in tensors)

    def save_for_forward(self, *tensors) -> None:
        """Tensors `jvp` reads through `ctx.saved_tensors` (torch's save_for_forward)."""
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError("save_for_forward expects all arguments to be tensors; you "
                                "should save non-tensors as attributes on ctx.")
        self._saved_for_forward = tensors

    @property
    def saved_tensors(self) -> tuple:
        if self._freed:
            raise AutogradError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                f"graph are freed when you call .backward() or autograd.grad(); function: "
                f"{self._node_name}. Specify retain_graph=True if you need to backward through "
                "the graph a second time or if you need to access saved tensors after calling "
                "backward.")
        return tuple(s.unpack(_NamedNode(self._node_name)) if s is not None else None
                     for s in self._saved)

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_differentiable.update(id(t) for t in tensors)

    def mark_dirty(self, *tensors) -> None:
        self._dirty.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = bool(value)


class _NamedNode:
    def __init__(self, name):
        self.name = name


class BackwardFunction(Node):
    """The tape node of one `Function.apply` call."""

    def __init__(self, cls, ctx: FunctionCtx, args: tuple, outputs: tuple):
        super().__init__()
        self.cls, self.ctx = cls, ctx
        self.name = NodeName(f"{cls.__name__}Backward")
        take_type_name(self)
        ctx._node_name = self.name
        self.next_functions = tuple(edge_of(a) for a in args)
        self.n_inputs = len(args)
        self.n_outputs = len(outputs)
        self.output_metas = tuple((tuple(o.shape), o.dtype) if isinstance(o, Tensor)
                                  else (None, None) for o in outputs)
        self.input_shapes = tuple(tuple(a.shape) if isinstance(a, Tensor) else None
                                  for a in args)

    def release(self) -> None:
        super().release()
        self.ctx._freed = True
        self.ctx._saved = None

    def apply(self, grads):
        if self.ctx._freed:
            self.ctx.saved_tensors      # raises the freed-graph error
        grads = list(grads)
        if self.ctx.materialize_grads:
            grads = [autodiff.zeros(shape, dtype) if g is None and shape is not None else g
                     for g, (shape, dtype) in zip(grads, self.output_metas)]
        result = self.cls.backward(self.ctx, *grads)
        if not isinstance(result, tuple):
            result = (result,)
        if len(result) != self.n_inputs:
            if len(result) > self.n_inputs and all(r is None for r in result[self.n_inputs:]):
                result = result[:self.n_inputs]
            else:
                raise AutogradError(f"function {self.name} returned an incorrect number of "
                                    f"gradients (expected {self.n_inputs}, got {len(result)})")
        out = []
        for i, (g, (node, _)) in enumerate(zip(result, self.next_functions)):
            if g is not None and node is None:
                g = None        # input that does not require grad: its gradient is dropped
            if g is not None and not isinstance(g, Tensor):
                raise AutogradError(f"function {self.name} returned a gradient of type "
                                    f"{type(g).__name__} for input {i}; expected a Tensor or "
                                    "None")
            if g is not None and tuple(g.shape) != self.input_shapes[i]:
                g = _reduced_to(g, self.input_shapes[i], self.name, i)
            out.append(g)
        return tuple(out)


def _reduced_to(g, shape, name, i):
    """A gradient of a shape `shape` broadcasts to, summed down to `shape`."""
    if not _expandable(shape, tuple(g.shape)):
        raise AutogradError(f"Function {name} returned an invalid gradient at index {i} - got "
                            f"{list(g.shape)} but expected shape compatible with "
                            f"{list(shape)}")
    return autodiff.sum_to_shape(g, shape)


def _expandable(shape, target) -> bool:
    if len(shape) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(reversed(shape), reversed(target)))


_SIGNATURES: dict = {}          # Function class -> inspect.signature(cls.forward)


class _FunctionMeta(type):
    def __init__(cls, name, bases, attrs):
        super().__init__(name, bases, attrs)
        cls._backward_cls = name


class Function(metaclass=_FunctionMeta):
    """Base class of custom differentiable operations (`torch.autograd.Function`)."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("Function objects are not instantiated; call "
                           f"{type(self).__name__}.apply(...) instead")

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward mode "
                                  "AD.")

    vjp = backward

    @staticmethod
    def jvp(ctx, *grad_inputs):
        raise NotImplementedError("You must implement the jvp function for custom "
                                  "autograd.Function to use it with forward mode AD.")

    @staticmethod
    def setup_context(ctx, inputs, output):
        raise NotImplementedError

    @classmethod
    def _uses_setup_context(cls) -> bool:
        return cls.setup_context is not Function.setup_context

    @classmethod
    def _bound_inputs(cls, args, kwargs) -> tuple:
        """forward's arguments as one positional tuple, defaults filled in (what torch
        passes to setup_context as `inputs`)."""
        sig = _SIGNATURES.get(cls)
        if sig is None:
            try:
                sig = _SIGNATURES[cls] = inspect.signature(cls.forward)
            except (TypeError, ValueError):
                return args
        if not kwargs and len(args) == len(sig.parameters):
            return args                     # every argument given positionally
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        return tuple(bound.arguments[p.name] for p in sig.parameters.values()
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))

    @classmethod
    def apply(cls, *args, **kwargs):
        ctx = FunctionCtx()
        uses_setup = cls._uses_setup_context()
        if uses_setup:
            args = cls._bound_inputs(args, kwargs)
        if (uses_setup or not kwargs) and function_trace.applies(cls, args):
            result = function_trace.traced_apply(cls, args)   # one node of the graph
            if result is not None:
                return result
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        fw_mode, tangents = _forward_ad_tangents(args)
        with grad_mode.no_grad(), _without(fw_mode):
            if uses_setup:
                outputs = cls.forward(*args)
                cls.setup_context(ctx, args, outputs)
            else:
                outputs = cls.forward(ctx, *args, **kwargs)
        single = not isinstance(outputs, tuple)
        outs = (outputs,) if single else outputs
        record = grad_mode.is_grad_enabled() and any(ctx.needs_input_grad)
        if record and any(isinstance(a, Tensor) and id(a) in ctx._dirty and a.is_leaf and
                          a.requires_grad for a in args):
            raise AutogradError("a leaf Variable that requires grad has been used in an "
                                f"in-place operation ({cls.__name__} marked it dirty).")
        inputs_by_id = {id(a) for a in args if isinstance(a, Tensor)}
        fixed = []
        for o in outs:
            if isinstance(o, Tensor) and id(o) in inputs_by_id and id(o) not in ctx._dirty:
                alias = Tensor._make(o._array, o._storage, o._base)   # a new output, as
                if id(o) in ctx._non_differentiable:                 # torch's view_as
                    ctx._non_differentiable.add(id(alias))
                o = alias
            fixed.append(o)
        outs = tuple(fixed)
        if record:
            node = BackwardFunction(cls, ctx, args, outs)
            for nr, o in enumerate(outs):
                if not isinstance(o, Tensor):
                    continue
                if id(o) in ctx._non_differentiable or not (
                        o.dtype.is_floating_point or o.dtype.is_complex):
                    o.requires_grad = False
                    continue
                o.requires_grad = True
                o.grad_fn = node
                o._output_nr = nr
        if tangents is not None:
            _set_output_tangents(cls, ctx, fw_mode, tangents, outs)
        return outs[0] if single else outs


# --- forward AD through a Function's jvp -------------------------------------------------
def _forward_ad_tangents(args):
    """(the open dual level's mode, one tangent or None per argument), or (mode, None)
    when no argument carries a tangent."""
    from ...ir import dispatch
    from . import forward_ad
    if not forward_ad._levels or forward_ad._levels[-1] not in dispatch.active_modes():
        return None, None          # no level, or inside a jvp/forward the level sees past
    mode = forward_ad._levels[-1]
    tangents = tuple(forward_ad._tangent(mode, a) for a in args)
    return mode, (tangents if any(t is not None for t in tangents) else None)


class _without:
    """The forward-AD dispatch mode switched off for the block (forward and jvp see plain
    tensors, as in torch)."""

    def __init__(self, mode):
        self.mode = mode

    def __enter__(self):
        if self.mode is not None:
            from ...ir import dispatch
            self._ctx = dispatch.disabled(self.mode)
            self._ctx.__enter__()

    def __exit__(self, *exc):
        if self.mode is not None:
            self._ctx.__exit__(*exc)


def _set_output_tangents(cls, ctx, mode, tangents, outs):
    from . import forward_ad
    if cls.jvp is Function.jvp:
        raise AutogradError(f"{cls.__name__}: to use an autograd.Function with forward-mode "
                            "AD, you must override its jvp staticmethod")
    saved, ctx._saved = ctx._saved, tuple(SavedTensor(t) if t is not None else None
                                          for t in ctx._saved_for_forward)
    try:
        with grad_mode.no_grad(), _without(mode):
            result = cls.jvp(ctx, *tangents)
    finally:
        ctx._saved = saved
    result = result if isinstance(result, tuple) else (result,)
    if len(result) != len(outs):
        raise AutogradError(f"{cls.__name__}.jvp returned {len(result)} tangents for "
                            f"{len(outs)} outputs")
    for o, t in zip(outs, result):
        if isinstance(o, Tensor) and t is not None and id(o) not in ctx._non_differentiable:
            forward_ad._set_tangent(mode, o, t)


def once_differentiable(fn):
    """Run `backward` without building a graph: its result cannot be differentiated again."""
    @functools.wraps(fn)
    def wrapper(ctx, *args):
        with grad_mode.no_grad():
            result = fn(ctx, *args)
        return result
    return wrapper
