"""Eager execution of registry ops on CPU tensors: the Tensor value handler.

For every op call: check devices, run the meta rule (the one source of shapes,
dtypes and error messages), promote operands, run the NumPy reference, wrap the
results (views share storage), and record the autograd node. NumPy's floating-point
warnings are silenced around the kernel: PyTorch returns inf/nan without a word. In-place variants
compute out of place, write into their target, bump its version and rebase its
autograd history (through `as_strided_scatter` when the target is a view).
"""
from __future__ import annotations

import numpy as np

from ..ir import dispatch
from ..ir.errors import AutogradError, DeviceError, EmberError, at_user_line
from ..ir.meta import TensorMeta, channels_last, contiguous_format, strides_for
from ..ir.registry import NOT_DIFFERENTIABLE, OpDef, Tag
from ..ir.ops.rules import opmath, promote_dtypes
from .autograd import grad_mode
from .autograd.engine import OpNode, edge_of
from .tensor import Tensor


def run_op(op: OpDef, args: tuple):
    if op.has_tag(Tag.INPLACE):
        return run_inplace(op, args)
    on_cuda = _check_devices(op, args)
    if not on_cuda and next(_tensors_in(op, args), None) is None:   # a factory: device=
        from .devices import creation_target
        on_cuda = creation_target(op, args) != "cpu"
    out_meta = run_meta(op, args)
    if on_cuda:                             # values from generated kernels (eager_cuda.py)
        from .eager_cuda import compute
        outputs = compute(op, args, out_meta)
    else:
        # IEEE results (exp overflow -> inf, log(0) -> -inf, 0/0 -> nan) are answers, as in
        # PyTorch, not warnings: NumPy's RuntimeWarnings stay inside the kernel
        with np.errstate(all="ignore"):
            result = op.reference(*_reference_args(op, args))
            outputs = _wrap_outputs(op, args, result, out_meta)
    if grad_mode.is_grad_enabled() and _needs_grad(op, args):
        _record(op, args, outputs)
    return outputs


def run_meta(op: OpDef, args: tuple):
    """The op's meta rule, with the op name and the user's line added to any error."""
    try:
        return op.meta(*args)
    except EmberError as err:
        raise type(err)(f"{op.name}: {err}{at_user_line()}") from None


def _tensors_in(op: OpDef, args: tuple):
    for i in op.schema.tensor_arg_indices:
        v = args[i]
        if isinstance(v, (list, tuple)):
            yield from (x for x in v if isinstance(x, Tensor))
        elif isinstance(v, Tensor):
            yield v


def _check_devices(op, args) -> bool:
    """True when the op runs on a CUDA device (0-dim CPU tensors may join, as in PyTorch)."""
    devices = {t._storage.device for t in _tensors_in(op, args) if t.ndim or
               t._storage.device != "cpu"}
    if len(devices) > 1:
        raise DeviceError(f"{op.name}: Expected all tensors to be on the same device, but found "
                          f"at least two devices, {' and '.join(sorted(devices))}!"
                          f"{at_user_line()}")
    return bool(devices) and "cpu" not in devices


def _reference_args(op: OpDef, args: tuple) -> list:
    """Unwrap tensors to arrays; cast promoted operands to the op's compute dtype."""
    compute = None
    if op.promotion is not None:
        # a callable promotion picks the kind from the call (div: rounding_mode keeps ints)
        kind = op.promotion(*args) if callable(op.promotion) else op.promotion
        compute, _ = promote_dtypes(kind, [args[i] for i in op.promote_args])
        compute = opmath(compute).np_dtype
    out = []
    for i, v in enumerate(args):
        if compute is not None and i in op.promote_args:
            out.append(_as_array(v, compute))
        elif isinstance(v, Tensor):
            out.append(v._array)
        elif isinstance(v, (list, tuple)) and v and isinstance(v[0], Tensor):
            out.append([t._array if isinstance(t, Tensor) else t for t in v])
        else:
            out.append(v)
    return out


def _as_array(v, np_dtype):
    if isinstance(v, Tensor):
        arr = v._array
        return arr if arr.dtype == np_dtype else arr.astype(np_dtype)
    return np.asarray(v, dtype=np_dtype)


def _wrap_outputs(op: OpDef, args: tuple, result, out_meta):
    if op.schema.returns_tuple or op.schema.returns_list:
        metas = list(out_meta)
        values = [_wrap_one(op, args, r, m, i) for i, (r, m) in enumerate(zip(result, metas))]
        return tuple(values) if op.schema.returns_tuple else values
    return _wrap_one(op, args, result, out_meta, 0)


def _wrap_one(op, args, value, meta: TensorMeta, index: int) -> Tensor:
    arr = np.asarray(value)
    if tuple(arr.shape) != tuple(meta.shape):
        raise EmberError(f"internal: {op.name} computed shape {list(arr.shape)} but its meta "
                         f"rule says {list(meta.shape)}")
    if op.has_tag(Tag.VIEW) and isinstance(args[0], Tensor) and \
            np.may_share_memory(arr, args[0]._array):
        return args[0]._view_of_self(arr)
    if arr.dtype != meta.dtype.np_dtype:
        arr = arr.astype(meta.dtype.np_dtype)
    fresh = not any(np.may_share_memory(arr, t._array) for t in _tensors_in(op, args))
    wants_cl = meta.memory_format is channels_last and arr.ndim == 4
    if fresh and _has_layout(arr, wants_cl):
        return Tensor._from_array(arr, meta.memory_format, copy=False)
    return Tensor._from_array(arr, meta.memory_format, copy=True)


def _has_layout(arr: np.ndarray, channels_last_wanted: bool) -> bool:
    """Exactly PyTorch's strides for the format (size-1 dims included, which numpy's
    contiguity flags ignore), in a writeable array that owns its layout."""
    if not arr.flags.writeable:
        return False
    if arr.size == 0:
        return arr.flags.c_contiguous
    fmt = channels_last if channels_last_wanted else contiguous_format
    return tuple(s // arr.itemsize for s in arr.strides) == strides_for(arr.shape, fmt)


def _needs_grad(op: OpDef, args: tuple) -> bool:
    return any(t.requires_grad for t in _tensors_in(op, args))


def _record(op: OpDef, args: tuple, outputs) -> None:
    if op.derivative is NOT_DIFFERENTIABLE:
        return
    if op.derivative is None:
        raise AutogradError(f"{op.name}: the derivative is not implemented; call it under "
                            f"ember.no_grad() or detach its inputs{at_user_line()}")
    outs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    edges, metas = [], []
    for i in op.schema.tensor_arg_indices:
        values = args[i] if isinstance(args[i], (list, tuple)) else (args[i],)
        for v in values:
            edges.append(edge_of(v))
            metas.append((tuple(v.shape), v.dtype) if isinstance(v, Tensor) else (None, None))
    node = OpNode(op, args, outputs, tuple(metas))
    node.next_functions = tuple(edges)
    for nr, t in enumerate(outs):
        if t.dtype.is_floating_point or t.dtype.is_complex:
            t.requires_grad = True
            t.grad_fn = node
            t._output_nr = nr


# --- in-place ----------------------------------------------------------------------

def run_inplace(op: OpDef, args: tuple) -> Tensor:
    target = args[0]
    _check_devices(op, args)
    run_meta(op, args)                      # shape/dtype checks against the target
    recording = grad_mode.is_grad_enabled() and _needs_grad(op, args)
    if recording:
        _check_inplace_allowed(op, target)
        snap = _snapshot(target)            # `x.mul_(x)`: every use of x sees the old x
        args = (snap,) + tuple(snap if a is target else a for a in args[1:])
    result = run_op(op.functional, args)
    if target.is_cuda:
        from .eager_cuda import copy_into
        copy_into(target, result)
    else:
        with np.errstate(all="ignore"):     # inf/nan into an int target: as PyTorch, quietly
            np.copyto(target._array, result._array, casting="unsafe")
    target._bump_version()
    if recording and result.requires_grad:
        _rebase_history(target, result)
    return target


def _check_inplace_allowed(op: OpDef, target: Tensor) -> None:
    if target.requires_grad and target.is_leaf:
        raise AutogradError(f"{op.name}: a leaf Variable that requires grad is being used in an "
                            f"in-place operation.{at_user_line()}")
    base = target._base
    if base is not None and base.requires_grad and base.is_leaf:
        raise AutogradError(f"{op.name}: a view of a leaf Variable that requires grad is being "
                            f"used in an in-place operation.{at_user_line()}")


def _snapshot(t: Tensor) -> Tensor:
    """A copy of `t` that keeps its autograd history: the value the op's rule must see."""
    if t.is_cuda:
        from .eager_cuda import clone
        copy = clone(t)
    else:
        copy = Tensor._from_array(t._array, t.memory_format)
    copy.requires_grad = t.requires_grad
    copy.grad_fn = t.grad_fn
    copy._output_nr = t._output_nr
    copy._grad_accumulator = t._grad_accumulator
    return copy


def _rebase_history(target: Tensor, result: Tensor) -> None:
    base = target._base
    if base is None or not (base.requires_grad or target.requires_grad or result.requires_grad):
        target.grad_fn, target._output_nr = result.grad_fn, result._output_nr
        target.requires_grad = True
        return
    from ..ir.ops import OPS_NS
    offset = target.storage_offset() - base.storage_offset()
    new_base = OPS_NS.as_strided_scatter(_snapshot(base), result, list(target.shape),
                                         list(target.stride()), offset)
    base.grad_fn, base._output_nr, base.requires_grad = new_base.grad_fn, 0, True
    view = OPS_NS.as_strided(base, list(target.shape), list(target.stride()),
                             target.storage_offset())
    target.grad_fn, target._output_nr, target.requires_grad = view.grad_fn, 0, True


def install() -> None:
    dispatch.register_value_handler(Tensor, run_op, priority=0)
    dispatch.set_default_handler(run_op)
