"""The operator fast path: `a + b` on CPU tensors whose call was seen before (issue 22).

`Tensor.__add__` (and the other binary operators, non-reflected) normally goes
`OpDef.__call__` (schema bind, public-signature check) -> `ir.dispatch` (mode and
handler choice) -> `eager.run_op` (plan-cache key, reference arguments, result
wrapping, autograd recording): ~15 Python calls for a 1-element add. Here a call whose
operands are plain CPU tensors (or a tensor and a Python scalar), with no dispatch
mode active, looks up a *fast entry* keyed by the operands' dtype/shape/strides and
runs the op's NumPy reference directly.

A fast entry is made only from a plan the full path built and cached for the same
metadata (so every meta-rule check and promotion already passed once for exactly
these operands, and a call that fails always takes the full path and raises there),
and only for plans with a single dense result and no generated kernel. The result is
adopted only when it is fresh, owned and laid out as the plan says; anything else is
wrapped by the full path's `_wrap_outputs`, and autograd is recorded by the same
`_record`: results, dtypes, strides and graphs are identical to the full path's.
"""
from __future__ import annotations

import numpy as np

from ..ir import autocast as _autocast, dispatch, dtypes
from ..ir.ops.shape import flat_storage
from ..ir.registry import OPS, Tag
from ..ir.public_args import TENSOR_REQUIRED
from .autograd.grad_mode import STATE as _GRAD_STATE
from . import eager
from .eager import _EXTOBJ, _QUIET
from .tensor import Storage, Tensor

_MODES = dispatch._modes                     # the live list: empty when no mode is active
_DEFAULTS = dtypes.DEFAULTS
_SCALAR_TYPES = (int, float, bool)
_MAX_ENTRIES = 20000


class _Entry:
    """What a seen call needs to run again: the plan, the schema defaults after the two
    operands, the casts to the compute dtype, and the adopted result's layout."""
    __slots__ = ("plan", "tail", "cast_a", "cast_b", "shape", "strides", "np_dtype")

    def __init__(self, plan, tail, cast_a, cast_b):
        self.plan = plan
        self.tail = tail
        self.cast_a = cast_a                 # numpy dtype to cast to, or None
        self.cast_b = cast_b
        self.shape = plan.out_meta.shape
        self.strides = plan.out_strides
        self.np_dtype = plan.out_np_dtype


_ENTRIES: dict[tuple, _Entry | None] = {}
_FAST_TYPES: set = {Tensor}


def allow_type(cls) -> None:
    """Tensor subclasses that behave as Tensor in eager (nn.Parameter) take the fast path."""
    _FAST_TYPES.add(cls)


def operator_method(op_name: str):
    """The Tensor method for a binary operator (`__add__`: op_name "add"): `op(self, other)`,
    through the fast path when the call was seen before. One Python frame on a hit."""
    def method(a, b):
        op = OPS[op_name]
        # a dispatch mode or an autocast region must see the call (autocast casts first)
        if _MODES or _autocast.ACTIVE or type(a) not in _FAST_TYPES:
            return op(a, b)
        arr_a = a._array
        tb = type(b)
        if tb in _FAST_TYPES:
            arr_b = b._array
            key = (op, _DEFAULTS.float_dtype, arr_a.dtype, arr_a.shape, arr_a.strides,
                   arr_b.dtype, arr_b.shape, arr_b.strides)
            device_ok = b._storage.device == "cpu"
        elif tb in _SCALAR_TYPES:
            arr_b = b
            key = (op, _DEFAULTS.float_dtype, arr_a.dtype, arr_a.shape, arr_a.strides, tb)
            device_ok = True
        else:
            return op(a, b)
        entry = _ENTRIES.get(key)
        if entry is None or not device_ok or a._storage.device != "cpu" or _EXTOBJ is None:
            return _full_call(op, a, b, key, entry is None and device_ok)
        cast = entry.cast_a
        x = arr_a if cast is None else arr_a.astype(cast)
        cast = entry.cast_b
        if cast is None:
            y = arr_b
        else:
            y = arr_b.astype(cast) if tb in _FAST_TYPES else np.asarray(arr_b, dtype=cast)
        # IEEE results are answers, as in run_op: NumPy's warnings off (eager.quiet_fp, inline)
        current = _EXTOBJ.get()
        token = _EXTOBJ.set(_QUIET[1] if current is _QUIET[0] else _quiet_state(current))
        try:
            result = op.reference(x, y, *entry.tail)
        finally:
            _EXTOBJ.reset(token)
        if (type(result) is np.ndarray and result.base is None
                and result.dtype == entry.np_dtype and result.shape == entry.shape
                and (result.strides == entry.strides or result.size == 0)
                and result.flags.writeable and result is not arr_a and result is not arr_b
                and ((arr_a.base is None and (tb not in _FAST_TYPES or arr_b.base is None))
                     or not _is_input(result, arr_a, arr_b, tb))):
            # a base-less result is its own storage (flat_storage, without the call)
            out = Tensor._make(result, Storage(result if result.ndim == 1 else
                                               flat_storage(result)))
        else:
            out = eager._wrap_outputs(op, (a, b) + entry.tail, result, entry.plan)
        if _GRAD_STATE.enabled and (a.requires_grad or (tb in _FAST_TYPES and b.requires_grad)):
            eager._record(op, (a, b) + entry.tail, out)
        return out
    method.__name__ = op_name
    return method


def _quiet_state(current):
    """eager.quiet_fp's cached "ignore" error state, rebuilt when NumPy's state changed."""
    eager.restore_fp(eager.quiet_fp())
    return _QUIET[1]


def _is_input(result: np.ndarray, arr_a: np.ndarray, arr_b, tb) -> bool:
    """True when the (base-less) result is an operand's array or the root it views."""
    if arr_a.base is None and (tb not in _FAST_TYPES or arr_b.base is None):
        return False                        # both operands own their buffers (checked above)
    for arr in (arr_a, arr_b) if tb in _FAST_TYPES else (arr_a,):
        while arr is not result and isinstance(arr.base, np.ndarray):
            arr = arr.base
        if arr is result:
            return True
    return False


def _full_call(op, a, b, key, learn: bool):
    """The full call; when it succeeds, its cached plan becomes the key's fast entry."""
    out = op(a, b)
    if learn:
        entry = _entry_for(op, a, b)
        if len(_ENTRIES) >= _MAX_ENTRIES:
            _ENTRIES.clear()
        if entry is not None:
            _ENTRIES[key] = entry
    return out


def _entry_for(op, a, b) -> _Entry | None:
    if op.tags & _SLOW_TAGS or TENSOR_REQUIRED.get(op.name) == "all" or op.schema.returns_tuple \
            or op.schema.returns_list or len(op.schema.tensor_arg_indices) != 2:
        return None
    if not isinstance(b, Tensor) and not eager._scalars_by_type(op):
        return None                         # the plan depends on the scalar's value
    bound = op.schema.bind((a, b), {})
    if bound[0] is not a or bound[1] is not b:
        return None                         # the schema converted an operand
    key = eager._call_key(op, bound)
    plan = eager._PLANS.get(key) if key is not None else None
    if not isinstance(plan, eager._Plan) or plan.on_cuda or plan.kernel is not None or \
            plan.out_strides is None:
        return None
    compute = plan.compute_dtype
    promoted = op.promote_args if compute is not None else ()
    cast_a = compute if 0 in promoted and a._array.dtype != compute else None
    if isinstance(b, Tensor):
        cast_b = compute if 1 in promoted and b._array.dtype != compute else None
    else:
        cast_b = compute if 1 in promoted else None
    return _Entry(plan, bound[2:], cast_a, cast_b)


_SLOW_TAGS = frozenset({Tag.INPLACE, Tag.NONDETERMINISTIC, Tag.VIEW})
