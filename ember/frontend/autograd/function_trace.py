"""A custom autograd.Function inside a traced function (ember.compile, ember.func).

Eagerly, `Function.apply` records one tape node that calls the class's `backward`.
While a function is traced into a graph the tape does not exist, and recording the
forward's own ops would let the graph's autodiff differentiate them, ignoring the
Function's `backward` (a straight-through estimator's gradient would be round()'s
zero). As torch's transforms do, the Function stays one node here: on first use with a
given argument signature the class becomes a registry op (through the custom-op
machinery of ember.library, frontend/custom_op.py) whose

- meta traces `forward` on the inputs' metadata (a forward written in ember ops),
- kernel runs `forward` on the real values,
- derivative runs `setup_context` (or, for a forward that takes ctx, forward itself
  again) and `backward`, with grads of unused outputs materialized as zeros,
- vmap rule is the class's `vmap` staticmethod when it has one (one call per example
  otherwise, which is what generate_vmap_rule computes),

so the graph autodiff, forward-mode and vmap passes all see the Function as torch's
transforms do; forward-mode AD uses the class's `jvp` staticmethod (with what
`save_for_forward` saved), or derives the tangent from `backward` without one.
"""
from __future__ import annotations

import itertools

from ...ir.symbolic import SymbolicTensor
from ..tensor import Tensor

_OPS: dict = {}          # (class, argument signature) -> the op
_COUNTER = itertools.count()


def applies(cls, args) -> bool:
    """A user's Function called on a traced tensor. ember's own Functions (BatchNorm's
    and max-pool's eager kernels, checkpoint, hooks) compute their forward's derivative
    exactly, so their forward ops stay visible to the compiler."""
    return not cls.__module__.startswith("ember.") and is_traced_call(args)


def is_traced_call(args) -> bool:
    """Whether some argument is a traced tensor (the call is being recorded)."""
    return any(isinstance(a, SymbolicTensor) or isinstance(a, (list, tuple)) and
               any(isinstance(x, SymbolicTensor) for x in a) for a in args)


def traced_apply(cls, args: tuple):
    """`cls.apply(*args)` recorded as one node of the graph being built; None where an
    argument has no schema type (the caller then traces the forward as before)."""
    signature = tuple(_type_of(a) for a in args)
    if any(t is None for t in signature):
        return None
    key = (cls, signature, tuple(_restorer(a) for a in args))
    op = _OPS.get(key)
    if op is None:
        op = _OPS[key] = _make_op(cls, signature, key[2], args)
    if op is False:
        return None
    result = op(*args)
    return tuple(result) if isinstance(result, list) else result


def _type_of(value):
    if isinstance(value, (Tensor, SymbolicTensor)):
        return "Tensor"
    if value is None:
        return "Tensor?"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return "int[]"
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (Tensor, SymbolicTensor)) for v in value):
        return "Tensor[]"
    return None


def _restorer(value):
    """How a kernel argument goes back to what forward was given (a tuple stays one)."""
    return tuple if isinstance(value, tuple) else None


def _restore(values, restorers):
    return tuple(r(v) if r is not None and isinstance(v, list) else v
                 for v, r in zip(values, restorers))


def _make_op(cls, signature, restorers, args):
    from ..custom_op import CustomOpDef  # lazy: custom_op imports autograd
    uses_setup = cls._uses_setup_context()

    def forward(*values):
        from .function import FunctionCtx
        values = _restore(values, restorers)
        if uses_setup:
            return cls.forward(*values)
        return cls.forward(FunctionCtx(), *values)

    fake = _fake(forward)
    returns = _returns_of(fake, args)
    if returns is None:
        return False
    names = [f"a{i}" for i in range(len(signature))]
    schema = "(" + ", ".join(f"{t} {n}" for t, n in zip(signature, names)) + ") -> " + \
        returns
    qualname = f"autograd_function::{cls.__name__}_{next(_COUNTER)}"
    op = CustomOpDef(qualname, forward, schema, ())
    op.register_fake(fake)
    op.register_autograd(_backward(cls), setup_context=_setup(cls, forward, restorers))
    if cls.jvp is not _base_jvp():
        op._opdef.jvp = _jvp(cls, op._opdef, restorers)
    vmap = getattr(cls, "vmap", None)
    if vmap is not None and getattr(vmap, "__func__", vmap) is not _base_vmap():
        op.register_vmap(lambda info, in_dims, *values: vmap(
            info, in_dims, *_restore(values, restorers)))
    return op._opdef


def _fake(forward):
    """The op's fake: forward traced on the metadata; a forward that needs values
    (NumPy inside) runs eagerly on ones of the inputs' shapes and dtypes instead, its
    results giving the output metadata (the real kernel's results are checked against
    it on every call, so a value-dependent shape fails loudly)."""
    from ...ir.errors import TraceError

    def fake(*values):
        try:
            return forward(*values)
        except TraceError:
            return _run_on_ones(forward, values)
    return fake


def _run_on_ones(forward, values):
    from ...ir import dispatch
    from ..factories import ones
    from . import grad_mode
    modes = dispatch.active_modes()
    with dispatch.disabled(modes[0]) if modes else _nothing(), grad_mode.no_grad():
        real = [ones(tuple(v.meta.shape), dtype=v.meta.dtype)
                if isinstance(v, SymbolicTensor) else v for v in values]
        return forward(*real)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _base_jvp():
    from .function import Function
    return Function.jvp


def _jvp(cls, opdef, restorers):
    """The forward-mode rule: the class's jvp staticmethod, given one tangent per forward
    input (None for non-tensors and inputs without one) and a ctx whose saved_tensors
    are what setup_context saved with save_for_forward."""
    schema = opdef.schema

    def jvp(in_tangents, out=None, **kwargs):
        inputs = _restore(tuple(kwargs[a.name] for a in schema.args), restorers)
        tangents, it = [], iter(in_tangents)
        for i in range(len(schema.args)):
            tangents.append(next(it) if i in schema.tensor_arg_indices else None)
        ctx = _JvpContext()
        if cls._uses_setup_context():
            cls.setup_context(ctx, inputs, out)
        else:
            cls.forward(ctx, *inputs)
        ctx.saved_tensors = ctx.saved_for_forward
        if any(isinstance(t, SymbolicTensor) for t in tangents):
            result = _functional(lambda *ts: cls.jvp(ctx, *ts), tangents)
            return result if len(result) > 1 else result[0]
        result = cls.jvp(ctx, *tangents)
        return tuple(result) if isinstance(result, (tuple, list)) else result
    return jvp


class _JvpContext:
    """The ctx a Function's jvp reads: save_for_forward's tensors as saved_tensors."""

    saved_tensors: tuple = ()
    saved_for_forward: tuple = ()
    needs_input_grad: tuple = ()

    def save_for_backward(self, *tensors) -> None:
        pass

    def save_for_forward(self, *tensors) -> None:
        self.saved_for_forward = tensors

    def mark_non_differentiable(self, *tensors) -> None:
        pass

    def mark_dirty(self, *tensors) -> None:
        pass

    def set_materialize_grads(self, value) -> None:
        pass


def _base_vmap():
    from .function import Function
    return getattr(Function, "vmap", None)


def _returns_of(forward, args):
    """The return schema ('Tensor' or '(Tensor, ...)') from tracing forward on the
    inputs' metadata, or None where forward returns anything else."""
    from ...ir.meta import meta_of
    from ...ir.symbolic import GraphBuilder
    from . import grad_mode
    builder = GraphBuilder(record_locations=False)
    symbolic = [builder.placeholder(f"a{i}", a.meta if isinstance(a, SymbolicTensor)
                                    else meta_of(a))
                if isinstance(a, (Tensor, SymbolicTensor)) else a
                for i, a in enumerate(args)]
    try:
        with builder, grad_mode.no_grad():
            out = forward(*symbolic)
    except Exception:  # noqa: BLE001 - a forward that cannot be traced: left as before
        return None
    if isinstance(out, (Tensor, SymbolicTensor)):
        return "Tensor"
    if isinstance(out, tuple) and out and all(isinstance(o, (Tensor, SymbolicTensor))
                                              for o in out):
        return "(" + ", ".join("Tensor" for _ in out) + ")"
    return None


def _setup(cls, forward, restorers):
    def setup_context(ctx, inputs, output):
        _as_function_ctx(ctx)
        ctx._outputs = tuple(output) if isinstance(output, (tuple, list)) else (output,)
        inputs = _restore(inputs, restorers)
        # in a graph every differentiable tensor input may be asked for its gradient
        ctx.needs_input_grad = tuple(_differentiable(a) for a in inputs)
        if cls._uses_setup_context():
            cls.setup_context(ctx, inputs, output)
        else:                               # forward(ctx, ...) fills ctx: run it again
            cls.forward(ctx, *inputs)
    return setup_context


def _differentiable(value) -> bool:
    if isinstance(value, SymbolicTensor):
        return value.meta.dtype.is_floating_point or value.meta.dtype.is_complex
    if isinstance(value, Tensor):
        return value.requires_grad
    return False


def _backward(cls):
    def backward(ctx, *grads):
        grads = tuple(g if g is not None else _zeros_like(o)
                      for g, o in zip(grads, ctx._outputs))
        if any(isinstance(g, SymbolicTensor) for g in grads):
            return _functional_backward(cls, ctx, grads)
        return cls.backward(ctx, *grads)
    return backward


def _functional_backward(cls, ctx, grads):
    """cls.backward recorded into the graph being built with its in-place updates
    functionalized (`result[idx] = g` on a fresh zeros tensor, as backwards write them)."""
    return _functional(lambda *gs: cls.backward(ctx, *gs), grads)


def _functional(fn, values):
    """fn(*values) recorded into the graph being built with its in-place updates
    functionalized: traced into a graph of its own over the symbolic values (the others
    fixed), made functional, and inlined. Returns fn's results as a tuple (None kept)."""
    from ...ir.symbolic import call_graph
    from ..func.tracing import trace
    from ..fx.functionalize_graph import functionalize_graph
    positions = [i for i, v in enumerate(values) if isinstance(v, SymbolicTensor)]
    slots = []

    def run(*symbolic):
        full = list(values)
        for i, v in zip(positions, symbolic):
            full[i] = v
        result = fn(*full)
        result = result if isinstance(result, tuple) else (result,)
        slots[:] = [r is not None for r in result]
        return tuple(r for r in result if r is not None)
    traced = trace(run, [values[i].meta for i in positions])
    functionalize_graph(traced.graph)
    results = iter(call_graph(traced.graph, [values[i] for i in positions] +
                              list(traced.captured), traced.constants))
    return tuple(next(results) if present else None for present in slots)


def _zeros_like(out):
    from ...ir import autodiff
    return autodiff.zeros(tuple(out.shape), out.dtype)


def _as_function_ctx(ctx):
    """The custom-op ctx given what Function code calls on its ctx."""
    ctx.save_for_forward = lambda *tensors: None
    ctx.mark_dirty = lambda *tensors: None
    ctx.set_materialize_grads = lambda value: None
    ctx.saved_tensors = ()
