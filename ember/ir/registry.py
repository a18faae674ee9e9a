"""The op registry: every operator declared once, read by every layer.

`defop(schema, ...)` creates an `OpDef` and records it in `OPS`. An OpDef carries:

- `meta`: the shape/dtype/memory-format rule (TensorMeta in, TensorMeta out);
- `reference`: a NumPy kernel, used by eager CPU execution and the interpreter;
- `derivative`: the VJP written with ember ops, so the eager tape, the graph
  autograd pass and higher-order derivatives share it. Its parameters are `g`
  (the output gradient, a tuple for multi-output ops), then the op's arguments by
  schema name, and optionally `out`. It returns one gradient per tensor argument.
- `jvp`: optional forward-mode rule (tangents in, tangent out);
- `decomposition`: optional rewrite into primitive ops (ember calls);
- `lowering`: how codegen lowers it (set by codegen's tables for primitives);
- `samples` / `torch_ref`: what the table-driven tests feed it and compare with.

Calling an OpDef binds its arguments against the schema and hands the call to
`ir.dispatch`, the one place where eager execution, tracing, profiling and
device dispatch intercept every op.
"""
from __future__ import annotations

import enum
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from . import autocast, dispatch
from .errors import EmberError
from .public_args import check_public_call
from .schema import Schema, parse_schema
from .torch_function import NOT_OVERRIDDEN, STATE as _TF_STATE, dispatch_public


class Tag(enum.Enum):
    POINTWISE = "pointwise"
    UNARY = "unary"
    BINARY = "binary"
    COMMUTATIVE = "commutative"
    REDUCTION = "reduction"
    VIEW = "view"                  # output aliases input 0's storage
    SHAPE = "shape"                # movement/reshaping (view or copy)
    RANDOM = "random"              # reads the global generator
    COMPOSITE = "composite"        # has a decomposition into primitives
    NONDETERMINISTIC = "nondeterministic"
    INPLACE = "inplace"            # mutates its first argument
    FACTORY = "factory"            # makes a tensor from no tensor
    LINALG = "linalg"
    FFT = "fft"
    DYNAMIC_SHAPE = "dynamic_shape"  # output shape depends on input values: eager only
    QUANTIZED = "quantized"        # takes quantized operands (ir/ops/quantized.py)


class Promotion(enum.Enum):
    """PyTorch's ELEMENTWISE_TYPE_PROMOTION_KIND."""
    DEFAULT = "default"            # result_type of the operands
    INT_TO_FLOAT = "int_to_float"  # like DEFAULT, but ints/bools -> default float
    ALWAYS_BOOL = "always_bool"    # compute in result_type, return bool
    COMPLEX_TO_FLOAT = "complex_to_float"  # abs/angle: complex -> its real dtype
    BOOL_TO_LONG = "bool_to_long"  # sum/pow of bools


class _NotDifferentiable:
    def __repr__(self) -> str:
        return "NOT_DIFFERENTIABLE"


NOT_DIFFERENTIABLE = _NotDifferentiable()


class RegistryError(EmberError, KeyError):
    """Unknown op name, or an op registered twice."""


@dataclass(eq=False)
class OpDef:
    schema: Schema
    meta: Callable
    reference: Callable
    derivative: Any = None
    tags: frozenset = frozenset()
    promotion: Promotion | None = None
    promote_args: tuple[int, ...] | None = None   # arg indices promoted (default: tensor args)
    jvp: Callable | None = None
    decomposition: Callable | None = None
    lowering: Any = None
    samples: Callable | None = None
    torch_ref: Any = None
    namespace: str = ""            # '', 'nn.functional', 'linalg', 'fft', 'special'
    python_name: str = ""          # name inside the namespace (default: schema name)
    method: bool = False           # also a Tensor method
    inplace_variant: bool = False  # also `name_` (Tensor method)
    tol: dict = field(default_factory=dict)
    # where PyTorch's own gradient is wrong, say why; tests then check against finite
    # differences only
    torch_grad_differs: str = ""
    functional: "OpDef | None" = None   # for an in-place variant: the out-of-place op
    # names of the tensor args whose *values* the derivative reads; the others are saved
    # as metadata only (no version check, no memory held). None: all of them.
    saves: tuple[str, ...] | None = None
    # float outputs that carry no gradient in PyTorch (derivatives.yaml's
    # output_differentiability: lstsq's singular_values): they never require grad
    nondifferentiable_outputs: tuple[int, ...] = ()
    doc: str = ""
    _derivative_wants_out: bool = False

    @property
    def default(self) -> "OpDef":
        """torch.ops' overload attribute (`ember.ops.mylib.op.default`): the op itself,
        whose schema takes every overload's arguments."""
        return self

    @property
    def name(self) -> str:
        return self.schema.name

    # a public function's names (`ember.add.__name__`), which __torch_function__
    # implementations and loggers read
    @property
    def __name__(self) -> str:
        return self.python_name or self.schema.name

    def __repr__(self) -> str:
        return f"<op {self.name}>"

    def __reduce__(self):  # ops pickle by name: graphs and GraphModules refer to them
        return (get_op, (self.name,))

    def __call__(self, *args, **kwargs):
        if FAST_CALL and "out" not in kwargs:   # eager's seen-call path (eager_fast.py)
            out = FAST_CALL[0](self, args, kwargs)
            if out is not NotImplemented:
                return out
        # __torch_function__: a subclass, a Tensor-like or a mode claims the call first
        if _TF_STATE.level:
            result = dispatch_public(self, args, kwargs, True)
            if result is not NOT_OVERRIDDEN:
                return result
        # (the full call stays in this frame: the public check reads the caller's frame)
        out = kwargs.pop("out", None) if "out" in kwargs else None
        bound = self.schema.bind(args, kwargs)
        check_public_call(self, bound)      # numbers where PyTorch's signature wants tensors
        if out is None:
            return dispatch.dispatch(self, bound)
        from .out_arg import check_overlap, out_sets_dtype, write_out  # (ir/out_arg.py)
        check_overlap(self, bound, out)
        bound = out_sets_dtype(self, bound, out)
        return write_out(self, dispatch.dispatch(self, bound), out)

    def has_tag(self, tag: Tag) -> bool:
        return tag in self.tags

    @property
    def is_differentiable(self) -> bool:
        return self.derivative is not None and self.derivative is not NOT_DIFFERENTIABLE

    def call_derivative(self, grad, bound: tuple, out):
        """Run the VJP rule; always returns a tuple aligned with the tensor args."""
        kwargs = self.schema.as_kwargs(bound)
        if self._derivative_wants_out:
            kwargs["out"] = out
        with autocast.suspended():     # a backward computes in its forward's dtypes
            grads = self.derivative(grad, **kwargs)
        n_tensor_args = len(self.schema.tensor_arg_indices)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if len(grads) != n_tensor_args:
            raise EmberError(f"derivative of {self.name} returned {len(grads)} gradients for "
                             f"{n_tensor_args} tensor arguments")
        return grads


OPS: dict[str, OpDef] = {}
# [fn(op, args, kwargs) -> result, or NotImplemented to take the full call]: set by
# the eager frontend; it answers only calls it saw succeed with the same metadata
FAST_CALL: list = []


def defop(schema: str, *, meta: Callable, reference: Callable, derivative=None,
          tags=(), **fields) -> OpDef:
    """Declare an op; see the module docstring for the fields."""
    parsed = parse_schema(schema)
    if parsed.name in OPS:
        raise RegistryError(f"op {parsed.name!r} is registered twice")
    op = OpDef(parsed, meta, reference, derivative, frozenset(tags), **fields)
    if not op.python_name:
        op.python_name = parsed.name
    op.__module__ = f"ember.{op.namespace}" if op.namespace else "ember"
    op.__qualname__ = op.python_name
    if op.promotion is not None and op.promote_args is None:
        op.promote_args = parsed.tensor_arg_indices
    if op.is_differentiable:
        op._derivative_wants_out = "out" in inspect.signature(derivative).parameters
    OPS[parsed.name] = op
    if op.inplace_variant:
        _define_inplace(op)
    return op


def _define_inplace(op: OpDef) -> OpDef:
    """`add_` from `add`: same schema, mutates and returns its first argument."""
    schema = parse_schema(op.schema.text.replace(op.name + "(", op.name + "_(", 1))
    variant = OpDef(schema, _inplace_meta(op), op.reference, op.derivative,
                    op.tags | {Tag.INPLACE}, op.promotion, op.promote_args,
                    python_name=op.name + "_", method=True, functional=op,
                    saves=op.saves, _derivative_wants_out=op._derivative_wants_out)
    OPS[schema.name] = variant
    return variant


def _inplace_meta(op: OpDef):
    def rule(self, *args, **kwargs):
        from .dtypes import can_cast
        from .errors import DTypeError, ShapeError
        out = op.meta(self, *args, **kwargs)
        if tuple(out.shape) != tuple(self.shape):
            raise ShapeError(f"output with shape {list(self.shape)} doesn't match the "
                             f"broadcast shape {list(out.shape)}")
        if not can_cast(out.dtype, self.dtype):
            raise DTypeError(f"result type {out.dtype.scalar_type_name} can't be cast to the "
                             f"desired output type {self.dtype.scalar_type_name}")
        return out.with_(dtype=self.dtype)
    return rule


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise RegistryError(f"unknown op {name!r}") from None


def is_op(target) -> bool:
    """True for registry ops (and their subclasses): what graphs call by name."""
    return isinstance(target, OpDef)


def ops_tagged(tag: Tag) -> list[OpDef]:
    return [op for op in OPS.values() if tag in op.tags]
