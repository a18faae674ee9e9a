"""torch.library.custom_op for ember: a user function becomes a registry op.

Public as `ember.library` (which re-exports this module); it lives in the frontend
because autograd uses it too (a user's autograd.Function inside a traced function).

    @ember.library.custom_op("mylib::scaled_sin", mutates_args=())
    def scaled_sin(x: ember.Tensor, scale: float) -> ember.Tensor:
        return ember.sin(x) * scale                       # the real kernel

    @scaled_sin.register_fake
    def _(x, scale):
        return ember.empty_like(x)                         # shapes/dtypes only

    scaled_sin.register_autograd(backward, setup_context=setup_context)

The op is an ordinary `OpDef` named "mylib::scaled_sin" (schema inferred from the
annotations), so everything that reads the registry handles it: eager calls, the
autograd tape and the graph autograd pass (through the registered formula), fx and
compile tracing (one node; the fake function gives its shapes), compiled plans (the
op runs as an external call on the plan's arrays), the profiler ("mylib::scaled_sin"
rows). Custom ops are opaque to the compiler: nothing fuses into them.

Errors say what was wrong in PyTorch's words: an op defined twice, a fake function
whose result disagrees with the real kernel's, a backward through an op with no
autograd formula, tracing an op with no fake function.
"""
from __future__ import annotations

import collections.abc
import contextlib
import inspect
import threading
import typing
from typing import Callable, Sequence

import numpy as np

from .autograd import grad_mode
from .tensor import VALUE_READS, Tensor
from ..ir.errors import AutogradError, EmberError, TraceError
from ..ir.meta import TensorMeta, meta_of
from ..ir.registry import OPS, Tag, defop
from ..ir.symbolic import GraphBuilder, SymbolicTensor

__all__ = ["custom_op", "CustomOpDef", "register_fake", "register_autograd", "register_kernel",
           "register_vmap", "infer_schema", "Library", "get_ctx"]

_SCALAR_TYPES = {int: "int", float: "float", bool: "bool", str: "str"}


class CustomOpError(EmberError, RuntimeError):
    """A custom op defined or used wrongly."""


def infer_schema(fn: Callable, *, mutates_args: Sequence[str] = (), op_name: str = "") -> str:
    """PyTorch's schema text for `fn` from its annotations: '(Tensor x, float s) -> Tensor'."""
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    args = []
    for name, param in sig.parameters.items():
        if param.kind == param.KEYWORD_ONLY and "*" not in args:
            args.append("*")
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise CustomOpError(f"custom_op {op_name}: *args and **kwargs are not supported "
                                f"(parameter {name!r})")
        if name not in hints:
            raise CustomOpError(f"custom_op {op_name}: parameter {name!r} needs a type "
                                "annotation (Tensor, int, float, bool, str, list[...], Optional)")
        text = f"{_type_text(hints[name], op_name, name)} {name}"
        if param.default is not param.empty:
            text += f"={_default_text(param.default)}"
        args.append(text)
    returns = hints.get("return", inspect.Signature.empty)
    return f"({', '.join(args)}) -> {_return_text(returns, op_name)}"


def _type_text(hint, op_name: str, name: str) -> str:
    origin, params = typing.get_origin(hint), typing.get_args(hint)
    if hint is Tensor:
        return "Tensor"
    if hint in _SCALAR_TYPES:
        return _SCALAR_TYPES[hint]
    if origin in (list, tuple, collections.abc.Sequence):
        inner = params[0] if params else None
        return f"{_type_text(inner, op_name, name)}[]"
    if origin is typing.Union and set(params) <= {int, float, bool, complex}:
        return "Scalar"                     # torch.types.Number
    if origin is typing.Union and type(None) in params and len(params) == 2:
        inner = next(p for p in params if p is not type(None))
        return f"{_type_text(inner, op_name, name)}?"
    raise CustomOpError(f"custom_op {op_name}: unsupported annotation {hint!r} for parameter "
                        f"{name!r}; use Tensor, int, float, bool, str, list[...] or Optional")


def _default_text(value) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_default_text(v) for v in value) + "]"
    return repr(value)


def _return_text(hint, op_name: str) -> str:
    if typing.get_origin(hint) is tuple and typing.get_args(hint):
        return "(" + ", ".join(_one_return(a, op_name) for a in typing.get_args(hint)) + ")"
    return _one_return(hint, op_name)


def _one_return(hint, op_name: str) -> str:
    """Tensor, a list of Tensors, or a Python scalar (torch's allowed return types)."""
    if hint is Tensor:
        return "Tensor"
    if typing.get_origin(hint) in (list, collections.abc.Sequence) and \
            typing.get_args(hint) == (Tensor,):
        return "Tensor[]"
    if hint in _SCALAR_TYPES and hint is not str:
        return _SCALAR_TYPES[hint]
    raise CustomOpError(f"custom_op {op_name}: the return annotation must be Tensor, "
                        f"List[Tensor], int, float, bool or a tuple of those, got {hint!r}")


class _Context:
    """The `ctx` of setup_context/backward: save_for_backward, saved_tensors,
    needs_input_grad, mark_non_differentiable, attributes."""

    saved_tensors: tuple = ()
    needs_input_grad: tuple = ()

    def save_for_backward(self, *tensors) -> None:
        self.saved_tensors = tensors

    def mark_non_differentiable(self, *tensors) -> None:
        """Accepted as torch's: integer outputs never get gradients here anyway, and a
        float output's gradient is what backward is given."""

    def set_materialize_grads(self, value: bool) -> None:
        self.materialize_grads = bool(value)


class CustomOpDef:
    """What custom_op returns: callable like the op, with the register_* methods."""

    def __init__(self, qualname: str, fn: Callable, schema: str, mutates_args):
        self._qualname, self._init_fn = qualname, fn
        self._kernels: dict[str, Callable] = {}
        self._fake: Callable | None = None
        self._fake_is_default = False        # triton_op: its own function, replaceable
        self._backward: Callable | None = None
        self._setup_context: Callable | None = None
        self._eager_result = None            # (operand arrays, kernel result) of the meta
        namespace, name = qualname.split("::")
        self._opdef = defop(f"{qualname}{schema[schema.index('('):]}", meta=self._meta,
                            reference=self._reference, derivative=self._derivative,
                            namespace=namespace, python_name=name)
        self._opdef.custom = self

    # --- the op ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._qualname

    @property
    def op(self):
        return self._opdef

    @property
    def _opoverload(self):
        """torch's CustomOpDef._opoverload: the registered op (ember.ops.<ns>.<name>)."""
        return self._opdef

    def __call__(self, *args, **kwargs):
        return self._opdef(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<CustomOpDef({self._qualname})>"

    # --- registration -------------------------------------------------------------------
    def register_fake(self, fn: Callable) -> Callable:
        """The shape/dtype function: called with traced tensors, returns like the op."""
        if self._fake is not None and not self._fake_is_default:
            raise CustomOpError(f"register_fake({self._qualname}): a fake function is already "
                                "registered for this op")
        self._fake, self._fake_is_default = fn, False
        return fn

    def register_autograd(self, backward: Callable, *, setup_context: Callable | None = None):
        """backward(ctx, *grads) -> one gradient per input (None for non-tensors);
        setup_context(ctx, inputs, output) saves what backward needs."""
        self._backward, self._setup_context = backward, setup_context

    def register_vmap(self, fn: Callable | None = None):
        """torch's vmap rule, `fn(info, in_dims, *args) -> (output, out_dims)`; kept for
        ember.func.vmap (see docs/func: ops without a batching rule run per example)."""
        def register(rule: Callable) -> Callable:
            self._vmap = rule
            return rule
        return register(fn) if fn is not None else register

    def register_kernel(self, device_types, fn: Callable | None = None):
        """The real kernel for 'cpu' (replacing the decorated function there), 'cuda', or a
        device type a package registered (called with that device's tensors)."""
        from ..backends import registry
        types = (device_types,) if isinstance(device_types, str) else tuple(device_types)
        for t in types:
            if t not in ("cpu", "cuda") and t not in registry.DEVICES:
                known = ["cpu", "cuda"] + [d for d in registry.DEVICES if d != "cuda"]
                raise CustomOpError(f"register_kernel({self._qualname}): unknown device type "
                                    f"{t!r}; expected one of {', '.join(map(repr, known))}")

        def register(kernel: Callable) -> Callable:
            for t in types:
                self._kernels[t] = kernel
            if "cuda" in types:      # eager CUDA calls it on the CUDA tensors themselves
                self._opdef.cuda_kernel = self._run_cuda_kernel
            return kernel
        return register(fn) if fn is not None else register

    # --- the registry entry's rules ----------------------------------------------------
    def _meta(self, *args):
        tensors = [a for a in _flat(args) if isinstance(a, Tensor)]
        eager = bool(tensors)
        # a CPU eager call runs the kernel only; CUDA calls run their own kernel after
        # the meta (devices.compute), which the fake function's metas size
        if eager and not _STEP.in_graph and all(t.device.type == "cpu" for t in tensors):
            return self._eager_meta(args)
        if self._fake is None:
            if eager:
                return _metas_of(self._run_kernel(args))     # no fake: the kernel decides
            raise TraceError(f"{self._qualname} has no fake (meta) implementation, which "
                             "tracing and compiling need: add one with "
                             f"@{self._qualname.split('::')[1]}.register_fake")
        try:
            return self._fake_metas(args)
        except DataDependentOutput:
            if eager:
                return _metas_of(self._run_kernel(args))     # the kernel decides
            raise TraceError(f"{self._qualname}: its output shape depends on the input's "
                             "values (the fake function asked get_ctx() for an unbacked "
                             "size), which ember's tracing and compiling do not support") \
                from None

    def _eager_meta(self, args):
        """An eager call runs the real kernel only, as torch's eager mode does (the fake
        function is for tracing): its result gives the output metas, and is kept for the
        `_reference` call that follows on the same operands, so the kernel runs once.
        Marked as reading values, so eager never caches a plan for the call."""
        result = self._run_kernel(args)
        VALUE_READS[0] += 1
        self._eager_result = (_operand_arrays(args), result)
        return _metas_of(result)

    def _fake_metas(self, args):
        builder = GraphBuilder(record_locations=False)
        symbolic = [builder.placeholder(f"a{i}", meta_of(a)) if _is_tensorish(a) else a
                    for i, a in enumerate(args)]
        with builder, grad_mode.no_grad():
            result = self._call_user(self._fake, symbolic)
        return _metas_of(result)

    def _reference(self, *arrays):
        """The real kernel on numpy operands (eager, and compiled plans' external call)."""
        pending, self._eager_result = self._eager_result, None
        if pending is not None and _same_operands(pending[0], arrays):
            return _arrays_of(pending[1])        # eager: the kernel ran for the meta
        args = tuple(_to_tensor(a) for a in arrays)
        result = self._run_kernel(args)
        if self._fake is not None:               # a compiled plan: its shapes came from
            self._check_fake(args, result)       # the fake function, which must agree
        return _arrays_of(result)

    def _run_kernel(self, args):
        kernel = self._kernels.get("cpu", self._init_fn)
        if kernel is None:
            raise CustomOpError(f"{self._qualname}: no CPU kernel is registered (defined with "
                                "Library.define; add one with Library.impl or "
                                "register_kernel)")
        with grad_mode.no_grad():
            result = self._call_user(kernel, args)
        if not _valid_result(result):
            raise CustomOpError(f"{self._qualname}: the kernel must return a Tensor, a list "
                                "of Tensors, a Python scalar or a tuple of those, got "
                                f"{type(result).__name__}")
        return result

    def _run_cuda_kernel(self, args, out_meta):
        """The 'cuda' kernel on CUDA tensors (without one, CUDA operands go through the
        host: copied to the CPU, the CPU kernel, copied back)."""
        with grad_mode.no_grad():
            result = self._kernels["cuda"](*args)
        want = out_meta if isinstance(out_meta, (tuple, list)) else (out_meta,)
        got = result if isinstance(result, (tuple, list)) else (result,)
        for i, (r, m) in enumerate(zip(got, want)):
            if not isinstance(r, Tensor) or tuple(r.shape) != tuple(m.shape) or \
                    r.dtype != m.dtype or not r.is_cuda:
                what = f"{r.dtype.short}{list(r.shape)} on {r.device}" \
                    if isinstance(r, Tensor) else type(r).__name__
                raise CustomOpError(f"{self._qualname}: the 'cuda' kernel returned {what} for "
                                    f"output {i}, but the fake function says "
                                    f"{m.dtype.short}{list(m.shape)} on cuda")
        return result

    def _check_fake(self, args, result) -> None:
        want = _metas_of(result)
        try:
            got = self._fake_metas(args)
        except DataDependentOutput:
            return                  # a data-dependent size: nothing to compare
        want, got = _flat_metas(want), _flat_metas(got)
        if len(want) != len(got):
            raise CustomOpError(f"{self._qualname}: the fake function returns {len(got)} "
                                f"tensors, the real kernel {len(want)}")
        for i, (fake, real) in enumerate(zip(got, want)):
            if tuple(fake.shape) != tuple(real.shape) or fake.dtype != real.dtype:
                raise CustomOpError(
                    f"{self._qualname}: the fake function and the real kernel disagree on "
                    f"output {i}: fake gives {fake.dtype.short}{list(fake.shape)}, the kernel "
                    f"gives {real.dtype.short}{list(real.shape)}. Fix the function registered "
                    "with register_fake.")

    def _derivative(self, grad, out=None, **kwargs):
        if self._backward is None:
            raise AutogradError(f"Trying to backward through {self._qualname} but no autograd "
                                "formula was registered. Please use register_autograd to add one.")
        inputs = tuple(kwargs[arg.name] for arg in self._opdef.schema.args)
        ctx = _Context()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad
                                     for a in inputs)
        if self._setup_context is not None:
            self._call_setup_context(ctx, inputs, out)
        grads = self._backward(ctx, *self._grads_by_output(grad, out))
        grads = grads if isinstance(grads, tuple) else (grads,)
        # one gradient per positional input, as torch: keyword-only inputs get none
        n_positional = sum(not a.kwarg_only for a in self._opdef.schema.args)
        if len(grads) != n_positional:
            raise AutogradError(f"{self._qualname}: backward returned {len(grads)} gradients "
                                f"for {n_positional} positional inputs (return None for "
                                "non-Tensor inputs)")
        return tuple(grads[i] if i < n_positional else None
                     for i in self._opdef.schema.tensor_arg_indices)

    def _call_user(self, fn, values):
        """fn(*positional, **keyword_only): the user's kernel or fake function takes the
        schema's keyword-only arguments by keyword, as its signature says."""
        args = self._opdef.schema.args
        if not any(a.kwarg_only for a in args):
            return fn(*values)
        positional = [v for a, v in zip(args, values) if not a.kwarg_only]
        keyword = {a.name: v for a, v in zip(args, values) if a.kwarg_only}
        return fn(*positional, **keyword)

    def _grads_by_output(self, grad, out=None) -> tuple:
        """The output gradients as backward takes them: one argument per output, a
        Tensor[] output's gradients as one list (as torch passes them), None for a
        Python scalar output. `grad` holds one gradient per output tensor, in order."""
        if self._opdef.schema.returns_list:
            return (list(grad),)
        if not isinstance(grad, (tuple, list)):
            return (grad,)
        scalar = (bool, int, float)          # a Python scalar output has no gradient
        if not isinstance(out, (tuple, list)) or \
                not any(isinstance(o, (list,) + scalar) for o in out):
            return tuple(grad)
        flat = iter(grad)                    # (List[Tensor], int) & co.: regroup them
        return tuple([next(flat) for _ in o] if isinstance(o, list) else
                     None if isinstance(o, scalar) else next(flat) for o in out)

    def _call_setup_context(self, ctx, inputs, out) -> None:
        """setup_context(ctx, inputs, output), or with keyword-only arguments apart,
        setup_context(ctx, inputs, keyword_only_inputs, output), as torch calls them."""
        args = self._opdef.schema.args
        if len(inspect.signature(self._setup_context).parameters) == 4:
            positional = tuple(v for a, v in zip(args, inputs) if not a.kwarg_only)
            keyword = {a.name: v for a, v in zip(args, inputs) if a.kwarg_only}
            self._setup_context(ctx, positional, keyword, out)
        else:
            self._setup_context(ctx, inputs, out)


class _GraphStep(threading.local):
    in_graph = 0


_STEP = _GraphStep()


@contextlib.contextmanager
def graph_step():
    """A compiled graph running one of its calls eagerly: the graph's later steps were
    planned from the fake function's shapes, so there the fake function gives the metas
    and must agree with the kernel (checked), unlike a plain eager call."""
    _STEP.in_graph += 1
    try:
        yield
    finally:
        _STEP.in_graph -= 1


class DataDependentOutput(Exception):
    """Raised by get_ctx().create_unbacked_symint(): the output's size depends on values."""


class _FakeContext:
    """What torch.library.get_ctx() returns inside a fake function."""

    def create_unbacked_symint(self, *, min=2, max=None):  # noqa: A002 - torch's names
        raise DataDependentOutput()

    new_dynamic_size = create_unbacked_symint


def get_ctx() -> _FakeContext:
    """torch.library.get_ctx: the fake function's context (data-dependent sizes)."""
    return _FakeContext()


def _operand_arrays(args) -> tuple:
    """The arrays eager hands the reference for these operands (a Tensor's own array)."""
    return tuple([t._array if isinstance(t, Tensor) else t for t in a]
                 if isinstance(a, (list, tuple)) else a._array if isinstance(a, Tensor)
                 else a for a in args)


def _same_operands(kept: tuple, arrays: tuple) -> bool:
    """Whether `arrays` are the very operands the kept kernel result was computed from."""
    def same(a, b):
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return a is b
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return True                 # a non-tensor argument: the tensors identify the call
    return len(kept) == len(arrays) and all(same(a, b) for a, b in zip(kept, arrays))


def _valid_result(result) -> bool:
    if isinstance(result, (Tensor, int, float, bool)):
        return True
    if isinstance(result, list):
        return all(isinstance(r, Tensor) for r in result)
    return isinstance(result, tuple) and all(_valid_result(r) for r in result)


def _arrays_of(result):
    if isinstance(result, Tensor):
        return result.detach().numpy()
    if isinstance(result, (tuple, list)):
        return type(result)(_arrays_of(r) for r in result)
    return result


def _flat_metas(metas) -> list:
    if isinstance(metas, (tuple, list)):
        return [m for x in metas for m in _flat_metas(x)]
    return [metas] if isinstance(metas, TensorMeta) else []


def _flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from a
        else:
            yield a


def _is_tensorish(a) -> bool:
    return isinstance(a, (Tensor, TensorMeta, SymbolicTensor))


def _to_tensor(a):
    from .factories import from_numpy
    if isinstance(a, np.ndarray):
        return from_numpy(np.ascontiguousarray(a))
    if isinstance(a, (list, tuple)) and a and all(isinstance(x, np.ndarray) for x in a):
        return type(a)(_to_tensor(x) for x in a)
    return a


def _metas_of(result):
    if isinstance(result, SymbolicTensor):
        return result.meta
    if isinstance(result, Tensor):
        return meta_of(result)
    if isinstance(result, (tuple, list)):
        return type(result)(_metas_of(r) for r in result)
    return result                           # a Python scalar output


def custom_op(name: str, fn: Callable | None = None, /, *, mutates_args, device_types=None,
              schema: str | None = None, tags: Sequence[Tag] = ()):
    """torch.library.custom_op: `fn` (or the decorated function) becomes the op `name`."""
    if "::" not in name or name.count("::") != 1 or not all(name.split("::")):
        raise CustomOpError(f"custom_op: the name must be 'namespace::op_name', got {name!r}")
    if mutates_args == "unknown" or tuple(mutates_args):
        raise CustomOpError(f"custom_op {name}: ember supports functional custom ops only "
                            "(mutates_args=()); return new tensors instead of mutating")
    if name in OPS:
        raise CustomOpError(f"custom_op: {name} is already registered; an op may be defined "
                            "only once (choose another name or namespace)")

    def wrap(func: Callable) -> CustomOpDef:
        text = schema if schema is not None else infer_schema(func, op_name=name)
        op = CustomOpDef(name, func, text, mutates_args)
        if tags:
            op._opdef.tags = frozenset(tags)
        if device_types is not None:
            op.register_kernel(device_types, func)
        return op
    return wrap(fn) if fn is not None else wrap


def _lookup(op) -> CustomOpDef:
    if isinstance(op, CustomOpDef):
        return op
    found = OPS.get(op) if isinstance(op, str) else getattr(op, "custom", None)
    custom = getattr(found, "custom", None) if found is not None and not \
        isinstance(found, CustomOpDef) else found
    if not isinstance(custom, CustomOpDef):
        raise CustomOpError(f"{op!r} is not an op defined with ember.library.custom_op")
    return custom


def register_fake(op, fn: Callable | None = None, *, lib: Library | None = None,
                  _stacklevel: int = 1):
    """torch.library.register_fake('mylib::op', fn) (or as a decorator); `lib` is
    accepted as torch's (the registration lives as long as the process here)."""
    custom = _lookup(op)
    return custom.register_fake(fn) if fn is not None else custom.register_fake


def register_vmap(op, fn: Callable | None = None):
    return _lookup(op).register_vmap(fn)


class Library:
    """torch.library.Library(ns, kind): `define` declares an op from its schema text,
    `impl` gives it a kernel (a CPU/CompositeExplicitAutograd key: the kernel; Meta: the
    fake function)."""

    _FAKE_KEYS = ("Meta",)

    def __init__(self, ns: str, kind: str, dispatch_key: str = ""):
        if kind not in ("DEF", "IMPL", "FRAGMENT"):
            raise ValueError(f"Library: kind must be DEF, IMPL or FRAGMENT, got {kind!r}")
        self.ns, self.kind, self.dispatch_key = ns, kind, dispatch_key

    def define(self, schema: str, alias_analysis: str = "", *, tags=()) -> str:
        name, paren, rest = schema.partition("(")
        qualname = f"{self.ns}::{name.strip()}"
        if qualname in OPS:
            raise CustomOpError(f"Library.define: {qualname} is already registered")
        op = CustomOpDef(qualname, None, paren + rest, ())
        if tags:
            op._opdef.tags = frozenset(tags)
        return name.strip()

    def impl(self, op_name, fn: Callable, dispatch_key: str = "", *, with_keyset=False):
        name = op_name if isinstance(op_name, str) else op_name.name
        custom = _lookup(name if "::" in name else f"{self.ns}::{name}")
        key = dispatch_key or self.dispatch_key
        if key in self._FAKE_KEYS:
            custom.register_fake(fn)
        else:
            device = "cuda" if "CUDA" in key else "cpu"
            custom.register_kernel(device, fn)

    def _destroy(self) -> None:
        """Ops stay registered (ember's registry keeps them for the process)."""


def register_autograd(op, backward: Callable, *, setup_context: Callable | None = None):
    _lookup(op).register_autograd(backward, setup_context=setup_context)


def register_kernel(op, device_types, fn: Callable | None = None):
    return _lookup(op).register_kernel(device_types, fn)
