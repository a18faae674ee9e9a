"""Eager execution of registry ops on CPU tensors: the Tensor value handler.

For every op call: check devices, run the meta rule (the one source of shapes,
dtypes and error messages), promote operands, run the NumPy reference, wrap the
results (views share storage), and record the autograd node. NumPy's floating-point
warnings are silenced around the kernel: PyTorch returns inf/nan without a word. In-place variants
compute out of place, write into their target, bump its version and rebase its
autograd history (through `as_strided_scatter` when the target is a view).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ..ir import determinism, dispatch, dtypes
from ..ir.dtypes import Category
from ..ir.errors import (META_WARNINGS, AutogradError, DeviceError, EmberError, ShapeError,
                         at_user_line, user_stacklevel)
from ..ir.meta import (TensorMeta, channels_last, channels_last_3d, contiguous_format,
                       strides_for)
from ..ir.registry import NOT_DIFFERENTIABLE, OpDef, Tag
from ..ir.ops.rules import cast_scalar, opmath, promote_dtypes
from .autograd import grad_mode
from .autograd.engine import OpNode, SavedTensor, edge_of, output_tensors
from ..ir.ops.shape import flat_storage
from ..ir.quantized import QuantizedArray
from . import eager_kernels
from .devices import creation_device, creation_target
from .quantized import is_quantized_tensor, run_quantized, wrap_result
from .tensor import VALUE_READS, Storage, Tensor


def run_op(op: OpDef, args: tuple):
    if op.name in _INDEX_OPS:
        args = _indices_to_device(args)
    special = _SPECIAL_OPS.get(op)          # (Tag lookups hash a Python enum: cached)
    if special is None:
        special = _SPECIAL_OPS[op] = bool(op.tags & _SPECIAL_TAGS)
    if special:
        if Tag.NONDETERMINISTIC in op.tags:
            determinism.alert_not_deterministic(op.name)
        if Tag.INPLACE in op.tags:
            return run_inplace(op, args)
    key = _call_key(op, args)
    plan = _PLANS.get(key) if key is not None else None
    if plan is None or (plan.factory and creation_device() != "cpu"):
        plan = _make_plan(op, args, key)
    return run_plan(op, args, plan)


def run_plan(op: OpDef, args: tuple, plan):
    """The call with its plan chosen: the kernel, the result tensors, the autograd node
    (also eager_fast's entry point for calls seen before)."""
    if plan.quantized:                      # quint8/qint8/qint32 operands (quantized.py)
        return run_quantized(op, args, [t for t in _tensors_in(op, args)
                                        if is_quantized_tensor(t)])
    if plan.on_cuda:                        # CUDA or a registered device (devices.py)
        from . import devices
        outputs = devices.compute(op, args, plan.out_meta,
                                  devices.op_device(op, _tensors_in(op, args), args))
    elif plan.kernel is not None:            # a generated kernel (eager_kernels.py)
        if plan.measured:
            result = plan.kernel(args)
        else:                               # first use: measure it against the reference
            result, plan.kernel = eager_kernels.choose(
                op, args, plan.kernel,
                lambda: op.reference(*_reference_args(op, args, plan.compute_dtype,
                                                      plan.round_via)))
            plan.measured = True
        outputs = _wrap_outputs(op, args, result, plan)
    else:
        # IEEE results (exp overflow -> inf, log(0) -> -inf, 0/0 -> nan) are answers, as in
        # PyTorch, not warnings: NumPy's RuntimeWarnings stay inside the kernel
        token = quiet_fp()
        try:
            result = op.reference(*_reference_args(op, args, plan.compute_dtype,
                                                   plan.round_via))
            outputs = _wrap_outputs(op, args, result, plan)
        finally:
            restore_fp(token)
    if grad_mode.is_grad_enabled() and _needs_grad(op, args):
        _record(op, args, outputs)
    return outputs


# --- NumPy's floating-point warnings, silenced cheaply ---------------------------------
# `with np.errstate(all="ignore")` costs ~0.8 us a call (it rebuilds NumPy's error state
# object each time), more than a 1-element add. NumPy 2 keeps that state in a context
# variable: setting it to a cached "ignore everything" object derived from the current
# state (bufsize and error callback kept) is the same thing at a third of the cost.
try:
    from numpy._core._ufunc_config import _extobj_contextvar as _EXTOBJ, _make_extobj
except ImportError:                           # another NumPy: the public context manager
    _EXTOBJ = None
_QUIET = [None, None]                         # [state it was derived from, quiet state]


def quiet_fp():
    """Silence NumPy's floating-point warnings until `restore_fp(token)`."""
    if _EXTOBJ is None:
        state = np.errstate(all="ignore")
        state.__enter__()
        return state
    current = _EXTOBJ.get()
    if current is not _QUIET[0] and current is not _QUIET[1]:
        _QUIET[0], _QUIET[1] = current, _make_extobj(all="ignore")
    return _EXTOBJ.set(_QUIET[1])


def restore_fp(token) -> None:
    if _EXTOBJ is None:
        token.__exit__(None, None, None)
    else:
        _EXTOBJ.reset(token)


_SPECIAL_TAGS = frozenset({Tag.NONDETERMINISTIC, Tag.INPLACE})
_SPECIAL_OPS: dict[OpDef, bool] = {}
_VIEW_OPS: dict[OpDef, bool] = {}


def run_meta(op: OpDef, args: tuple):
    """The op's meta rule, with the op name and the user's line added to any error."""
    try:
        return op.meta(*args)
    except EmberError as err:
        raise type(err)(_prefixed(op, str(err)) + at_user_line()) from None


def _prefixed(op: OpDef, message: str) -> str:
    """An op's error under the name users call it by: torch.linalg's functions as
    `linalg.inv`, not the registry's `linalg_inv`; once, if the message names it already."""
    name = f"linalg.{op.python_name}" if op.namespace == "linalg" else op.name
    return message if message.startswith(name) else f"{name}: {message}"


# --- the per-call plan and its cache -------------------------------------------------
#
# Everything run_op decides before the kernel runs (device checks, the meta rule,
# the compute dtype) is a function of the arguments' metadata (dtype, shape, strides,
# device), the non-tensor argument values and the default dtype. A call whose key was
# seen before reuses that decision; only successful calls are cached, so errors are
# raised (with the user's line) exactly as before. A meta rule that reads tensor
# *values* (boolean-mask indexing) is seen doing so and its call is never cached.

class _Plan:
    __slots__ = ("on_cuda", "out_meta", "compute_dtype", "out_np_dtype", "out_strides",
                 "kernel", "measured", "quantized", "factory", "round_via")

    def __init__(self, on_cuda, out_meta, compute_dtype, factory=False, round_via=None):
        self.quantized = False
        # a promoted dtype narrower than its compute dtype (bfloat16, float16): operands
        # are rounded to it first, as PyTorch casts them (`1.001 - x` subtracts bf16(1.001))
        self.round_via = round_via
        self.factory = factory                   # tensor-less: valid on the CPU creation device
        self.on_cuda = on_cuda
        self.kernel = None                       # a generated kernel, once chosen
        self.measured = False
        self.out_meta = out_meta
        self.compute_dtype = compute_dtype       # numpy dtype of promoted operands, or None
        single = isinstance(out_meta, TensorMeta)
        self.out_np_dtype = out_meta.dtype.np_dtype if single else None
        # the byte strides a fresh result must have to be adopted without a copy
        self.out_strides = _wanted_strides(out_meta) if single else None


def _layout_of(meta: TensorMeta):
    """The layout a fresh result of `meta` takes: channels_last (4-d) or
    channels_last_3d (5-d) where its format says so, else contiguous."""
    fmt = meta.memory_format
    if (fmt is channels_last and len(meta.shape) == 4) or \
            (fmt is channels_last_3d and len(meta.shape) == 5):
        return fmt
    return contiguous_format


def _wanted_strides(meta: TensorMeta) -> tuple:
    """PyTorch's strides (in bytes) for a fresh result of `meta`'s shape and format."""
    strides = strides_for(meta.shape, _layout_of(meta))
    return tuple(s * meta.dtype.itemsize for s in strides)


_PLANS: dict[tuple, _Plan] = {}
# EMBER_EAGER_KERNELS=0 keeps every eager op on its NumPy reference
_USE_KERNELS = os.environ.get("EMBER_EAGER_KERNELS", "1") != "0"
_MAX_PLANS = 20000                           # cleared when full: keys with changing scalars
_MAX_KEYED_LIST = 32                         # longer literal lists are not worth hashing
_SCALARS = (int, float, bool, complex)


class _QuantizedPlan:
    """Calls with quantized operands run through quantized.py (their dtypes are in the key)."""
    quantized = True
    factory = False


_QUANTIZED_PLAN = _QuantizedPlan()


def _make_plan(op: OpDef, args: tuple, key) -> _Plan:
    if any(is_quantized_tensor(t) for t in _tensors_in(op, args)):
        if key is not None:
            _PLANS[key] = _QUANTIZED_PLAN
        return _QUANTIZED_PLAN
    on_cuda = _check_devices(op, args)
    factory = next(_tensors_in(op, args), None) is None
    if not on_cuda and factory:             # a factory: device=, or the creation device
        on_cuda = creation_target(op, args) != "cpu"
    reads_before, warned_before = VALUE_READS[0], META_WARNINGS[0]
    out_meta = run_meta(op, args)
    compute = via = None
    if op.promotion is not None and not on_cuda:
        # a callable promotion picks the kind from the call (div: rounding_mode keeps ints)
        kind = op.promotion(*args) if callable(op.promotion) else op.promotion
        promoted, _ = promote_dtypes(kind, [args[i] for i in op.promote_args])
        compute = opmath(promoted).np_dtype
        if promoted.np_dtype != compute and promoted.is_floating_point:
            via = promoted.np_dtype
    plan = _Plan(on_cuda, out_meta, compute, factory, via)
    # where a factory creates depends on thread state too (a CUDA derivative rule's
    # creation device), not only on its arguments: its plan is cached only when made
    # for the CPU creation device, and run_op uses it only while that is still the one
    # (a call whose meta rule warned is planned afresh each time: it warns each time)
    cacheable = key is not None and VALUE_READS[0] == reads_before and \
        META_WARNINGS[0] == warned_before and not (factory and creation_device() != "cpu")
    if cacheable and not on_cuda and not factory and _USE_KERNELS:
        plan.kernel = eager_kernels.candidate(op, args, out_meta)
        plan.measured = getattr(plan.kernel, "exact", False)    # bit-exact: no trial needed
    if cacheable:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def _scalars_by_type(op: OpDef) -> bool:
    """True when the op's meta rule is the shared pointwise rule, which reads Python
    scalars only through their type (promotion): `x * 0.5` and `x * 0.7` share a plan."""
    facts = _SCALAR_KEYING.get(op)
    if facts is None:
        rule = (op.functional or op).meta
        facts = _SCALAR_KEYING[op] = getattr(rule, "__qualname__", "").startswith(
            "pointwise_meta.")
    return facts


_SCALAR_KEYING: dict[OpDef, bool] = {}


def _call_key(op: OpDef, args: tuple):
    """The plan-cache key of a call, or None when the call is not cacheable (CUDA
    tensors, unhashable or long literal arguments)."""
    by_type = _scalars_by_type(op)
    key = [op, dtypes.DEFAULTS.float_dtype]
    for v in args:
        cls = type(v)
        if cls is Tensor:                   # the common argument, inline (_key_part's rule)
            if v._storage.device != "cpu":
                return None
            a = v._array
            key.append((cls, a.dtype, a.shape, a.strides))
            continue
        part = _key_part(v, by_type)
        if part is _UNKEYABLE:
            return None
        key.append(part)
    key = tuple(key)
    try:
        hash(key)
    except TypeError:
        return None
    return key


_UNKEYABLE = object()


def _key_part(v, scalars_by_type: bool):
    cls = type(v)
    if cls is Tensor or isinstance(v, Tensor):
        if v._storage.device != "cpu":
            return _UNKEYABLE
        a = v._array
        return (cls, a.dtype, a.shape, a.strides)
    if v is None:
        return None
    if cls in _SCALARS:
        return cls if scalars_by_type else (cls, v)
    if cls is list or cls is tuple:
        if len(v) > _MAX_KEYED_LIST:
            return _UNKEYABLE
        parts = [cls]
        for x in v:
            part = _key_part(x, False)
            if part is _UNKEYABLE:
                return _UNKEYABLE
            parts.append(part)
        return tuple(parts)
    if isinstance(v, np.ndarray):
        return _UNKEYABLE
    return (cls, v)


def _tensors_in(op: OpDef, args: tuple):
    for i in op.schema.tensor_arg_indices:
        v = args[i]
        if isinstance(v, (list, tuple)):
            yield from (x for x in v if isinstance(x, Tensor))
        elif isinstance(v, Tensor):
            yield v


def _check_devices(op, args) -> bool:
    """True when the op runs on a device other than the CPU (CUDA or a registered one;
    0-dim CPU tensors may join, as in PyTorch)."""
    devices = {t._storage.device for t in _tensors_in(op, args) if t.ndim or
               t._storage.device != "cpu"}
    if len(devices) > 1:
        if _meta_accepts_host_operands(op, args, devices):
            return True
        raise DeviceError(f"{op.name}: Expected all tensors to be on the same device, but found "
                          f"at least two devices, {' and '.join(sorted(devices))}!"
                          f"{at_user_line()}")
    return bool(devices) and "cpu" not in devices


_INDEX_OPS = frozenset({"index", "index_put", "index_put_"})


def _indices_to_device(args: tuple) -> tuple:
    """`x[cpu_index]` / `x[cpu_mask] = v` on a device tensor: PyTorch moves index tensors
    on the CPU to x's device (other ops refuse mixed devices)."""
    target, indices = args[0], args[1] if len(args) > 1 else None
    if not isinstance(target, Tensor) or target._storage.device in ("cpu", "meta") or \
            not isinstance(indices, (list, tuple)) or \
            not any(isinstance(i, Tensor) and i._storage.device == "cpu" for i in indices):
        return args
    moved = [i.to(target.device) if isinstance(i, Tensor) and i._storage.device == "cpu"
             else i for i in indices]
    return (target, type(indices)(moved)) + tuple(args[2:])


def _copy_across_devices(op, args) -> tuple | None:
    """`dst.copy_(src)` with src on another device (CPU <-> CUDA, as torch allows): src
    moved to dst's device first (a recorded move, so gradients reach src's device), then
    the same-device copy converts the dtype and broadcasts. Decided on the mixed-device
    error path only, so same-device calls pay nothing. None: other ops keep the error."""
    if op.name != "copy_" or len(args) < 2 or not isinstance(args[1], Tensor):
        return None
    if "meta" in (args[0]._storage.device, args[1]._storage.device):
        return None
    non_blocking = bool(args[2]) if len(args) > 2 else False   # from pinned memory: queued
    return (args[0], args[1].to(args[0].device, non_blocking=non_blocking)) + tuple(args[2:])


# ops PyTorch runs on a meta tensor with CPU operands (a copy source, index tensors):
# nothing is read from them, so the call is a meta call
_META_WITH_HOST_OPERANDS = frozenset({"copy", "copy_", "index", "index_put", "index_put_"})


def _meta_accepts_host_operands(op, args, devices) -> bool:
    return devices == {"meta", "cpu"} and op.name in _META_WITH_HOST_OPERANDS and \
        isinstance(args[0], Tensor) and args[0]._storage.device == "meta"


def _reference_args(op: OpDef, args: tuple, compute, via=None) -> list:
    """Unwrap tensors to arrays; cast promoted operands to the op's compute dtype
    (through the promoted dtype `via` when that is narrower)."""
    promoted = op.promote_args if compute is not None else ()
    out = []
    for i, v in enumerate(args):
        if i in promoted:
            keep = via is not None and op.name in _SCALAR_IN_OPMATH and \
                (not isinstance(v, Tensor) or v.ndim == 0)
            out.append(_as_array(v, compute, None if keep else via))
        elif isinstance(v, Tensor):
            out.append(v._array)
        elif isinstance(v, (list, tuple)) and v and isinstance(v[0], Tensor):
            out.append([t._array if isinstance(t, Tensor) else t for t in v])
        else:
            out.append(v)
    return out


# PyTorch's CPU mul, div (every rounding mode) and lerp read a scalar operand (a Python number
# or a 0-dim tensor) at the compute precision, unrounded; other ops cast it first
_SCALAR_IN_OPMATH = frozenset({"mul", "div", "floor_divide", "lerp"})


def _as_array(v, np_dtype, via=None):
    if isinstance(v, Tensor):
        arr = v._array
        if via is not None and arr.dtype != via:
            arr = arr.astype(via)
        return arr if arr.dtype == np_dtype else arr.astype(np_dtype)
    if via is not None:
        return np.asarray(v, dtype=via).astype(np_dtype)
    try:
        return np.asarray(v, dtype=np_dtype)
    except OverflowError:                   # an int out of range wraps, as in torch
        return cast_scalar(v, np_dtype)


def _wrap_outputs(op: OpDef, args: tuple, result, plan: _Plan):
    schema = op.schema
    if schema.returns_tuple or schema.returns_list:
        values = [_wrap_nested(op, args, r, m) for r, m in zip(result, plan.out_meta)]
        return tuple(values)      # torch's split/chunk/unbind return tuples, as do others
    return _wrap_one(op, args, result, plan.out_meta, plan)


def _wrap_nested(op: OpDef, args: tuple, value, meta):
    """One output of a tuple-returning op: a Tensor, a list of Tensors (a custom op's
    `(List[Tensor], int)`), or a Python scalar, which stays one."""
    if isinstance(meta, TensorMeta):
        return _wrap_one(op, args, value, meta, None)
    if isinstance(meta, (list, tuple)):
        return type(meta)(_wrap_nested(op, args, v, m) for v, m in zip(value, meta))
    return value.item() if isinstance(value, np.generic) else value


def wrap_with_meta(op: OpDef, args: tuple, result, out_meta):
    """Results as Tensors laid out as `out_meta` says, for callers with no cached plan
    (quantized.py)."""
    if op.schema.returns_tuple or op.schema.returns_list:
        values = [_wrap_one(op, args, r, m, None) for r, m in zip(result, out_meta)]
        return tuple(values)
    return _wrap_one(op, args, result, out_meta, None)


# views torch does not record as views (`_is_view()` False, `_base` None): rereading the
# bits as another dtype has no gradient to carry back
_NON_DIFFERENTIABLE_VIEWS = frozenset({"view_dtype"})


def _wrap_one(op, args, value, meta: TensorMeta, plan: _Plan | None) -> Tensor:
    if isinstance(value, QuantizedArray):
        return wrap_result(value)
    arr = value if type(value) is np.ndarray else np.asarray(value)
    if arr.shape != meta.shape:
        raise EmberError(f"internal: {op.name} computed shape {list(arr.shape)} but its meta "
                         f"rule says {list(meta.shape)}")
    is_view = _VIEW_OPS.get(op)
    if is_view is None:
        is_view = _VIEW_OPS[op] = Tag.VIEW in op.tags
    if is_view and isinstance(args[0], Tensor) and \
            np.may_share_memory(arr, args[0]._array):
        if op.name in _NON_DIFFERENTIABLE_VIEWS:     # shares memory, but no _base
            return Tensor._make(arr, args[0]._storage)
        return args[0]._view_of_self(arr)
    np_dtype = plan.out_np_dtype if plan is not None else meta.dtype.np_dtype
    if arr.dtype != np_dtype:
        arr = arr.astype(np_dtype)
    fresh = not _shares_input_memory(arr, op, args)
    flags = arr.flags
    if fresh and flags.writeable and (flags.c_contiguous or flags.f_contiguous):
        if plan is not None:
            exact = arr.strides == plan.out_strides or arr.size == 0
        else:
            exact = _has_layout(arr, _layout_of(meta))
        if exact:                           # adopt the dense, owned result as it is
            return Tensor._make(arr, Storage(flat_storage(arr)))
    return Tensor._from_array(arr, meta.memory_format, copy=True)


def _shares_input_memory(arr: np.ndarray, op: OpDef, args: tuple) -> bool:
    if arr.base is None:
        # an array owning its buffer aliases an input only by being that input's array
        # or the root array its views hang from: identity checks, no bounds arithmetic
        for t in _tensors_in(op, args):
            a = t._array
            while a is not arr and isinstance(a.base, np.ndarray):
                a = a.base
            if a is arr:
                return True
        return False
    return any(np.may_share_memory(arr, t._array) for t in _tensors_in(op, args))


def _has_layout(arr: np.ndarray, fmt) -> bool:
    """Exactly PyTorch's strides for the format (size-1 dims included, which numpy's
    contiguity flags ignore), in a writeable array that owns its layout."""
    if not arr.flags.writeable:
        return False
    if arr.size == 0:
        return arr.flags.c_contiguous
    return tuple(s // arr.itemsize for s in arr.strides) == strides_for(arr.shape, fmt)


def _needs_grad(op: OpDef, args: tuple) -> bool:
    for i in op.schema.tensor_arg_indices:
        v = args[i]
        if isinstance(v, Tensor):
            if v.requires_grad:
                return True
        elif isinstance(v, (list, tuple)) and any(isinstance(x, Tensor) and x.requires_grad
                                                  for x in v):
            return True
    return False


def _record(op: OpDef, args: tuple, outputs) -> None:
    if op.derivative is NOT_DIFFERENTIABLE:
        return
    if op.derivative is None:
        raise AutogradError(f"{op.name}: the derivative is not implemented; call it under "
                            f"ember.no_grad() or detach its inputs{at_user_line()}")
    outs = (outputs,) if type(outputs) is Tensor else output_tensors(outputs)
    edges, metas = [], []
    for i in op.schema.tensor_arg_indices:
        v = args[i]
        if type(v) is Tensor:               # the common case, edge_of inline
            if not v.requires_grad:
                edges.append(_NO_EDGE)
            elif v.grad_fn is not None:
                edges.append((v.grad_fn, v._output_nr))
            else:
                edges.append(edge_of(v))
            metas.append((v._array.shape, v.dtype))
            continue
        values = v if isinstance(v, (list, tuple)) else (v,)
        for v in values:
            edges.append(edge_of(v))
            metas.append((v._array.shape, v.dtype) if isinstance(v, Tensor) else (None, None))
    node = OpNode(op, args, outputs, tuple(metas))
    node.next_functions = tuple(edges)
    for nr, t in enumerate(outs):
        category = t.dtype.category
        if (category is Category.FLOAT or category is Category.COMPLEX) \
                and nr not in op.nondifferentiable_outputs:
            t.requires_grad = True
            t.grad_fn = node
            t._output_nr = nr


_NO_EDGE = (None, 0)


# --- in-place ----------------------------------------------------------------------

def run_inplace(op: OpDef, args: tuple) -> Tensor:
    if op.name in _INDEX_OPS:
        args = _indices_to_device(args)
    target = args[0]
    try:
        _check_devices(op, args)
    except DeviceError:
        moved = _copy_across_devices(op, args)  # copy_ between the CPU and a device
        if moved is None:
            raise
        args = moved
        _check_devices(op, args)
    run_meta(op, args)                      # shape/dtype checks against the target
    _check_no_internal_overlap(op, args)
    recording = grad_mode.is_grad_enabled() and _needs_grad(op, args)
    if not recording and _in_place_on_array(op, target, args):
        target._bump_version()
        return target
    if recording:
        _check_inplace_allowed(op, target)
        # `x.mul_(x)`: every use of x sees the old x, and a derivative reading `self`
        # needs the old values after the copy below overwrites them
        snap = _snapshot(target, op.functional.name not in _DERIVATIVE_READS_OUT_ONLY)
        args = (snap,) + tuple(snap if a is target else a for a in args[1:])
    result = run_op(op.functional, args)
    if target._storage.device != "cpu":
        from .devices import copy_into
        copy_into(target, result)
    else:
        with np.errstate(all="ignore"):     # inf/nan into an int target: as PyTorch, quietly
            np.copyto(target._array, result._array, casting="unsafe")
    target._bump_version()
    if recording and result.requires_grad:
        _result_saved_as_target(result, target)
        _rebase_history(target, result)
    return target


def _result_saved_as_target(result: Tensor, target: Tensor) -> None:
    """An in-place op whose derivative reads its result saves the written tensor itself,
    as torch does: writing it again before backward is then refused (ReLU(inplace=True)
    followed by LeakyReLU(inplace=True); `y.sigmoid_().mul_(2)`), not silently
    differentiated through the values the first op wrote."""
    saved = result.grad_fn.__dict__.get("_out") if result.grad_fn is not None else None
    if type(saved) is SavedTensor and saved.tensor is result and saved.unpack_hook is None \
            and target.dtype == result.dtype and target.shape == result.shape:
        saved.tensor, saved.version = target, target._version


# in-place ops torch lets write an expanded tensor (each element gets the same value),
# with the indexing form its deprecation warning names (None: no warning)
_OVERLAP_ALLOWED = {"masked_fill_": "tensor[mask] = scalar",
                    "index_put_": "tensor[indices] = tensor", "index_fill_": None}


def _check_no_internal_overlap(op: OpDef, args: tuple) -> None:
    """torch refuses to write a tensor whose elements share memory (an expanded one:
    stride 0 along a dimension of size > 1): which write lands would be undefined. A
    fill (copy_ of one value: fill_, zero_, `t[:] = 1`) and the ops above may."""
    arr = args[0]._array
    if arr.size <= 1 or not any(st == 0 and n > 1 for st, n in zip(arr.strides, arr.shape)):
        return
    if op.name in _OVERLAP_ALLOWED:
        if _OVERLAP_ALLOWED[op.name]:
            warnings.warn(f"Use of {op.name} on expanded tensors is deprecated. Please clone() "
                          "the tensor before performing this operation. This also applies to "
                          f"advanced indexing e.g. {_OVERLAP_ALLOWED[op.name]}", UserWarning,
                          stacklevel=user_stacklevel())
        return
    if not (op.name == "copy_" and getattr(args[1], "ndim", 1) == 0):
        raise ShapeError(f"{op.name}: unsupported operation: more than one element of the "
                         "written-to tensor refers to a single memory location. Please "
                         f"clone() the tensor before performing the operation.{at_user_line()}")


def _check_inplace_allowed(op: OpDef, target: Tensor) -> None:
    if target.requires_grad and target.is_leaf:
        raise AutogradError(f"{op.name}: a leaf Variable that requires grad is being used in an "
                            f"in-place operation.{at_user_line()}")
    base = target._base
    if base is not None and base.requires_grad and base.is_leaf:
        raise AutogradError(f"{op.name}: a view of a leaf Variable that requires grad is being "
                            f"used in an in-place operation.{at_user_line()}")


# in-place ops whose reference is one NumPy ufunc that can write its input: without a
# graph to record they run on the target's own array (no result array, no copy back);
# the values are the reference's, bit for bit. Each returns False for arguments it does
# not cover (then the functional op runs and its result is copied in).
_IN_PLACE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _same_dtype_operand(a: np.ndarray, other):
    """other as an array operand of a's dtype (a CPU tensor of that dtype or a Python
    int/float, which NumPy converts to a's dtype as the reference does), else None."""
    if type(other) in (int, float):
        return other
    if isinstance(other, Tensor) and other._storage.device == "cpu" and \
            other._array.dtype == a.dtype:
        return other._array
    return None


def _binary_in_place(ufunc, with_alpha: bool):
    def run(a, args) -> bool:
        if with_alpha and len(args) > 2 and not (type(args[2]) in (int, float) and
                                                 args[2] == 1):
            return False
        other = _same_dtype_operand(a, args[1]) if len(args) > 1 else None
        if other is None:
            return False
        ufunc(a, other, out=a)
        return True
    return run


def _relu_in_place(a, args) -> bool:
    np.maximum(a, 0, out=a)
    return True


_UFUNC_IN_PLACE = {"relu": _relu_in_place, "add": _binary_in_place(np.add, True),
                   "sub": _binary_in_place(np.subtract, True),
                   "mul": _binary_in_place(np.multiply, False)}


def _in_place_on_array(op: OpDef, target, args) -> bool:
    run = _UFUNC_IN_PLACE.get(op.functional.name)
    if run is None or type(target) is not Tensor or target._storage.device != "cpu":
        return False
    a = target._array
    if a.dtype not in _IN_PLACE_DTYPES or not a.flags.writeable:
        return False
    return run(a, args)


# ops whose derivative reads only the result (and self's metadata): their in-place form
# needs no copy of the old values (ReLU(inplace=True) on every activation of a CNN)
_DERIVATIVE_READS_OUT_ONLY = frozenset({"relu"})


def _snapshot(t: Tensor, copy_values: bool = True) -> Tensor:
    """A copy of `t` that keeps its autograd history: the value the op's rule must see
    (copy_values=False: `t`'s memory itself, for rules that never read its values)."""
    if t._storage.device != "cpu":
        from .devices import clone_on_device
        copy = clone_on_device(t)
    else:
        copy = Tensor._from_array(t._array, t.memory_format, copy=copy_values)
    copy.requires_grad = t.requires_grad
    copy.grad_fn = t.grad_fn
    copy._output_nr = t._output_nr
    copy._grad_accumulator = t._grad_accumulator
    return copy


def _rebase_history(target: Tensor, result: Tensor) -> None:
    old = (target.grad_fn, target._output_nr)
    _rebase_history_of(target, result)
    if target._retains_grad:
        target._move_retained_grad(*old)


def _rebase_history_of(target: Tensor, result: Tensor) -> None:
    base = target._base
    if base is None or not (base.requires_grad or target.requires_grad or result.requires_grad):
        target.grad_fn, target._output_nr = result.grad_fn, result._output_nr
        target.requires_grad = True
        return
    from ..ir.ops import OPS_NS
    offset = target.storage_offset() - base.storage_offset()
    new_base = OPS_NS.as_strided_scatter(_snapshot(base), result, list(target.shape),
                                         list(target.stride()), offset)
    old_base = (base.grad_fn, base._output_nr)
    base.grad_fn, base._output_nr, base.requires_grad = new_base.grad_fn, 0, True
    if base._retains_grad:
        base._move_retained_grad(*old_base)
    view = OPS_NS.as_strided(base, list(target.shape), list(target.stride()),
                             target.storage_offset())
    target.grad_fn, target._output_nr, target.requires_grad = view.grad_fn, 0, True


def install() -> None:
    dispatch.register_value_handler(Tensor, run_op, priority=0)
    from . import eager_backward
    eager_backward.install()                # NumPy backwards for dispatch-bound rules
    from .eager_fast import install_seen_calls
    install_seen_calls()                    # seen calls skip binding and dispatch
    dispatch.set_default_handler(run_op)
