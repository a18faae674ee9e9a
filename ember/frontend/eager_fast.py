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

`seen_call` (below) does the same for every other registry op call: OpDef.__call__
asks it first, and a call seen before with the same metadata runs run_op's plan
without binding and dispatch.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..ir import autocast as _autocast, dispatch, dtypes
from ..ir.meta import MemoryFormat, contiguous_format
from ..ir.ops.creation import fill_array
from ..ir.ops.rules import cast_scalar, is_tensor_like
from ..ir.ops.shape import flat_storage
from ..ir.registry import OPS, Tag
from ..ir.public_args import TENSOR_REQUIRED
from ..ir.torch_function import NOT_OVERRIDDEN, STATE as _TF_STATE, DispatchFailed, \
    dispatch_public
from .autograd.grad_mode import STATE as _GRAD_STATE
from .devices import creation_device
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
    __slots__ = ("plan", "tail", "cast_a", "cast_b", "shape", "strides", "np_dtype", "ufunc")

    def __init__(self, plan, tail, cast_a, cast_b, ufunc=None):
        self.plan = plan
        self.tail = tail
        self.ufunc = ufunc                   # the NumPy ufunc the reference calls, or None
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
            return _operator_call(method, op, a, b)
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
            return _operator_call(method, op, a, b)
        entry = _ENTRIES.get(key)
        if entry is None or not device_ok or a._storage.device != "cpu" or _EXTOBJ is None:
            return _full_call(op, a, b, key, entry is None and device_ok)
        cast = entry.cast_a
        x = arr_a if cast is None else arr_a.astype(cast)
        cast = entry.cast_b
        if cast is None:
            y = arr_b
        else:
            y = arr_b.astype(cast) if tb in _FAST_TYPES else _scalar_array(arr_b, cast)
        # IEEE results are answers, as in run_op: NumPy's warnings off (eager.quiet_fp, inline)
        current = _EXTOBJ.get()
        token = _EXTOBJ.set(_QUIET[1] if current is _QUIET[0] else _quiet_state(current))
        try:
            ufunc = entry.ufunc
            result = ufunc(x, y) if ufunc is not None else op.reference(x, y, *entry.tail)
        finally:
            _EXTOBJ.reset(token)
        if (type(result) is np.ndarray and result.base is None
                and (result.dtype is entry.np_dtype or result.dtype == entry.np_dtype)
                and result.shape == entry.shape
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


def _operator_call(method, op, a, b):
    """The operator off the fast path: `__torch_function__` first (with `Tensor.__add__`
    as the function), then the op. A failed dispatch is NotImplemented, so Python tries
    the other operand's reflected operator, as torch's operators do."""
    if _TF_STATE.on and _TF_STATE.level:
        try:
            result = dispatch_public(method, (a, b), None, True)
        except DispatchFailed:
            return NotImplemented
        if result is not NOT_OVERRIDDEN:
            return result
    b = operator_operand(b)
    if b is NotImplemented:
        return NotImplemented
    return op(a, b)


def operator_operand(other):
    """The other operand of a Tensor operator, as torch's operators take it: a tensor or a
    number as is, a NumPy array as a tensor (`t + np.ones(2)`), anything else
    NotImplemented, so Python tries the other side's reflected operator and then its
    own fallback: `t == None` is False, `t != "a"` True, `t + [1]` a TypeError."""
    if isinstance(other, np.ndarray):
        return Tensor._from_array(other) if other.dtype != object else NotImplemented
    if (isinstance(other, (numbers.Number, np.generic)) or is_tensor_like(other)
            or hasattr(other, "__torch_function__") or hasattr(other, "__index__")
            or hasattr(other, "__float__")):
        return other
    return NotImplemented


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
            plan.out_strides is None or plan.round_via is not None:
        return None
    compute = plan.compute_dtype
    promoted = op.promote_args if compute is not None else ()
    cast_a = compute if 0 in promoted and a._array.dtype != compute else None
    if isinstance(b, Tensor):
        cast_b = compute if 1 in promoted and b._array.dtype != compute else None
    else:
        cast_b = compute if 1 in promoted else None
    return _Entry(plan, bound[2:], cast_a, cast_b, _direct_ufunc(op, bound[2:]))


def _direct_ufunc(op, tail: tuple):
    """The ufunc that op's reference reduces to for these schema defaults: add/sub with
    alpha 1 are `x + y` / `x - y`, mul is `x * y` (ndarray operators are these ufuncs)."""
    name = op.name
    if name in ("add", "sub") and tail == (1,) and type(tail[0]) is int:
        return np.add if name == "add" else np.subtract
    if name == "mul" and tail == ():
        return np.multiply
    return None


_SLOW_TAGS = frozenset({Tag.INPLACE, Tag.NONDETERMINISTIC, Tag.VIEW})


# --- the seen-call path of every registry op call --------------------------------------
#
# `OpDef.__call__` (ir/registry.py) hands positional-only calls to `seen_call` first.
# A call whose arguments are plain CPU tensors (or lists of them), Python scalars, None,
# strings, dtypes and int lists, with no dispatch mode and no autocast region, is keyed
# by that metadata (scalar values included); the first such call takes the full path
# (bind, public-signature check, dispatch, run_op); at the second, when run_op cached a
# plan for it, the key remembers that plan and the schema values after the arguments.
# Later calls run `eager.run_plan` with them: the same kernel, result wrapping and
# autograd recording as run_op, without binding, dispatch and run_op's key. Calls the
# path cannot take (another device, a mode, keyword arguments, values a handler other
# than eager's may claim) return NotImplemented and take the full path.

_CALLS: dict[tuple, tuple | None] = {}
_UNSEEN = object()
_PENDING = object()                         # called once: the entry is made on the next call


def seen_call(op, args: tuple, kwargs: dict):
    if _MODES or _autocast.ACTIVE:
        return NotImplemented
    special = SPECIAL_CALLS.get(op)
    if special is not None:
        out = special(args, kwargs)
        if out is not NotImplemented:
            return out
    key = [op, _DEFAULTS.float_dtype]
    for v in args:
        cls = type(v)
        if cls in _FAST_TYPES:
            if v._storage.device != "cpu":
                return NotImplemented
            a = v._array
            key.append((cls, a.dtype, a.shape, a.strides))
        elif cls in _VALUE_TYPES:
            key.append((cls, v))
        elif cls is list or cls is tuple:
            part = _sequence_part(v)
            if part is None:
                return NotImplemented
            key.append(part)
        elif v is None:
            key.append(None)
        else:
            return NotImplemented
    if kwargs:                              # values only: a tensor keyword takes the full call
        key.append(_KWARGS)
        for name, v in kwargs.items():
            cls = type(v)
            if cls in _VALUE_TYPES:
                key.append((name, cls, v))
            elif v is None:
                key.append((name, None))
            elif (cls is list or cls is tuple) and all(type(x) is int for x in v):
                key.append((name, cls, tuple(v)))
            else:
                return NotImplemented
    key = tuple(key)
    entry = _CALLS.get(key, _UNSEEN)
    if entry is None:                       # seen, and not a call this path may take
        return NotImplemented
    if entry is _UNSEEN or entry is _PENDING:
        return _learn(op, args, kwargs, key, entry)
    tail = entry.tail
    if kwargs:                              # this call's keyword values, in schema order
        tail = list(tail)
        for j, name in entry.keywords:
            tail[j] = kwargs[name]
        tail = tuple(tail)
    if entry.factory and creation_device() != "cpu":
        return NotImplemented               # a derivative rule's device: the full path
    if entry.plain:
        return _run_seen(op, args + tail if tail else args, entry)
    return eager.run_plan(op, args + tail if tail else args, entry.plan)


def _run_seen(op, bound: tuple, entry: "_Seen"):
    """run_plan for a NumPy-reference call with one result and no casts, inline."""
    plan = entry.plan
    ref = list(bound)
    for i in entry.tensors:
        ref[i] = bound[i]._array
    current = _EXTOBJ.get()                 # NumPy's warnings off, as run_op (inline)
    token = _EXTOBJ.set(_QUIET[1] if current is _QUIET[0] else _quiet_state(current))
    try:
        result = op.reference(*ref)
    finally:
        _EXTOBJ.reset(token)
    if isinstance(result, np.generic) and entry.shape == () and not entry.view:
        result = np.asarray(result)         # a full reduction's NumPy scalar: a fresh 0-d array
    if type(result) is np.ndarray and result.shape == entry.shape:
        if entry.view:
            first = ref[0]
            if result.base is not None and np.may_share_memory(result, first):
                out = bound[0]._view_of_self(result)
            else:
                out = eager._wrap_outputs(op, bound, result, plan)
        elif (result.base is None and result.dtype == entry.np_dtype
              and (result.strides == entry.strides or result.size == 0)
              and result.flags.writeable and not _owns_input(result, ref, entry.tensors)):
            out = Tensor._make(result, Storage(result if result.ndim == 1 else
                                               flat_storage(result)))
        else:
            out = eager._wrap_outputs(op, bound, result, plan)
    else:
        out = eager._wrap_outputs(op, bound, result, plan)
    if _GRAD_STATE.enabled:
        for i in entry.tensors:
            if bound[i].requires_grad:
                eager._record(op, bound, out)
                break
    return out


def _owns_input(result: np.ndarray, arrays: list, tensors: tuple) -> bool:
    """True when the base-less result is an input's array or the root one views."""
    for i in tensors:
        arr = arrays[i]
        while arr is not result and isinstance(arr.base, np.ndarray):
            arr = arr.base
        if arr is result:
            return True
    return False


class _Seen:
    """A seen call's plan and schema defaults; `plain` when _run_seen may run it: a
    NumPy reference, one tensor result, no operand cast, no tensor list."""
    __slots__ = ("plan", "tail", "keywords", "plain", "tensors", "view", "shape", "strides",
                 "np_dtype", "factory")

    def __init__(self, op, plan, bound: tuple, n_args: int, keywords: tuple):
        self.plan = plan
        self.factory = plan.factory          # valid only while creating on the CPU
        self.tail = bound[n_args:]
        self.keywords = keywords            # (index in tail, name): filled per call
        self.tensors = tuple(i for i, v in enumerate(bound) if type(v) in _FAST_TYPES)
        promoted = op.promote_args if plan.compute_dtype is not None else ()
        casts = any(i in promoted and (type(bound[i]) not in _FAST_TYPES or
                                       bound[i]._array.dtype != plan.compute_dtype)
                    for i in range(len(bound)))
        lists = any(type(v) in (list, tuple) and v and isinstance(v[0], Tensor) for v in bound)
        self.view = Tag.VIEW in op.tags
        self.plain = (plan.kernel is None and not plan.quantized and plan.out_strides is not None
                      and not casts and not lists and (not self.view or self.tensors[:1] == (0,)))
        self.shape = plan.out_meta.shape if plan.out_strides is not None else None
        self.strides = plan.out_strides
        self.np_dtype = plan.out_np_dtype


def _sequence_part(v) -> tuple | None:
    parts = [type(v)]
    for x in v:
        cls = type(x)
        if cls is int:
            parts.append(x)
        elif cls in _FAST_TYPES:
            if x._storage.device != "cpu":
                return None
            a = x._array
            parts.append((cls, a.dtype, a.shape, a.strides))
        elif cls in _VALUE_TYPES:
            parts.append((cls, x))
        else:
            return None
    return tuple(parts)


def _learn(op, args: tuple, kwargs: dict, key: tuple, state):
    """A key's first call takes the full path (in OpDef.__call__'s own frame) and marks
    the key pending; its second call makes the entry from the plan the first one left
    (none when it raised or was not cacheable) and runs it."""
    if state is _UNSEEN:
        if len(_CALLS) >= _MAX_ENTRIES:
            _CALLS.clear()
        _CALLS[key] = _PENDING
        return NotImplemented
    try:
        entry = _seen_entry(op, args, kwargs)
    except Exception:                       # noqa: BLE001 - the full path raises it
        entry = None
    _CALLS[key] = entry
    if entry is None:
        return NotImplemented
    return seen_call(op, args, kwargs)


def _seen_entry(op, args: tuple, kwargs: dict):
    """The plan and the schema values after `args` when the full path ran run_op's plan
    for exactly these arguments, else None."""
    if op.tags & _RUN_OP_ONLY:
        return None
    schema = op.schema
    bound = schema.bind(args, dict(kwargs))
    for i in schema.tensor_arg_indices:     # a number where a tensor goes: the public
        if not _tensors_or_none(bound[i]):  # check reads the caller's frame
            return None
    if any(b is not a for a, b in zip(args, bound)):
        return None                         # the schema converted an argument
    names = [a.name for a in schema.args]
    keywords = tuple((names.index(name) - len(args), name) for name in kwargs)
    if any(bound[len(args) + j] is not kwargs[name] for j, name in keywords):
        return None
    key = eager._call_key(op, bound)
    plan = eager._PLANS.get(key) if key is not None else None
    if not isinstance(plan, eager._Plan) or plan.on_cuda:
        return None
    return _Seen(op, plan, bound, len(args), keywords)


def _tensors_or_none(v) -> bool:
    if v is None or type(v) in _FAST_TYPES:
        return True
    return (type(v) is list or type(v) is tuple) and all(type(x) in _FAST_TYPES for x in v)


# op -> fn(args) -> its result, or NotImplemented for the full call: ops whose common
# calls a frontend module answers directly (quantized.py: a converted model's input
# quantize_per_tensor with its stored scale and zero point tensors, which the schema
# converts to numbers, so no seen-call entry is ever made for it; and dequantize)
SPECIAL_CALLS: dict = {}


def install_seen_calls() -> None:
    from ..ir import registry
    from .quantized import fast_calls
    registry.FAST_CALL[:] = [seen_call]
    SPECIAL_CALLS.update({op: _positional_only(fn) for op, fn in fast_calls().items()})
    SPECIAL_CALLS.update({OPS[name]: _in_place_call(OPS[name]) for name in _IN_PLACE_NAMES})
    from . import factories
    factories.FILL_CALL[:] = [fill_call]
    from . import tensor
    tensor.FAST_GETITEM[:] = [basic_getitem]


# --- basic indexing without a graph: x[0], x[:, 1:3], x[i, j] ---------------------------
#
# indexing.getitem turns `x[i, a:b]` into one select/slice op call per item, each a view
# of the last. With no graph to record (grad off, or x needs none), no mode and a CPU
# tensor, an index made only of in-range ints and positive-step slices gives the same
# view as NumPy's basic indexing of x's array (the ops' references compute these
# strides); the tensor is then made as the seen-call path makes those ops' views. Any
# other index (None, Ellipsis, bools, tensors, lists, out-of-range ints, empty results)
# takes getitem, which raises every error as before.

def basic_getitem(t, index):
    if type(t) not in _FAST_TYPES or _MODES or _TF_STATE.modes or \
            (_GRAD_STATE.enabled and t.requires_grad) or t._storage.device != "cpu":
        return NotImplemented
    a = t._array
    shape = a.shape
    cls = type(index)
    if cls is int or cls is slice:
        if not shape or not _basic_item(index, shape[0]):
            return NotImplemented
        view = a[index, ...]
    elif cls is tuple:
        if len(index) > len(shape):
            return NotImplemented
        for item, size in zip(index, shape):
            if not _basic_item(item, size):
                return NotImplemented
        view = a[index + (Ellipsis,)]
    else:
        return NotImplemented
    if view.size == 0 or type(a) is not np.ndarray:
        return NotImplemented
    return t._view_of_self(view)


def _basic_item(item, size: int) -> bool:
    cls = type(item)
    if cls is int:
        return -size <= item < size
    if cls is not slice:
        return False
    start, stop, step = item.start, item.stop, item.step
    return (start is None or type(start) is int) and (stop is None or type(stop) is int) \
        and (step is None or (type(step) is int and step > 0))


def _positional_only(fn):
    def call(args, kwargs):
        return NotImplemented if kwargs else fn(args)
    return call


# --- in-place arithmetic without a graph: x.add_(y), p.mul_(0.9), relu_ ----------------
#
# run_inplace's checks (devices, the in-place meta rule, internal overlap) depend only on
# the operands' metadata and the scalars' types; once they passed for a key, a later call
# with no graph to record writes the target's array with the same NumPy ufunc
# run_inplace's `_in_place_on_array` uses (eager.py): the same values, no meta rule.
# Anything else (recording, another dtype, a tensor subclass) returns NotImplemented and
# takes the full path, which raises every error as before.

_IN_PLACE_NAMES = ("add_", "sub_", "mul_", "relu_")
_IN_PLACE_SEEN: set = set()


def _in_place_call(op):
    """SPECIAL_CALLS' entry for one in-place op: `call(args, kwargs)`."""
    unary = op.name == "relu_"
    takes_alpha = op.name in ("add_", "sub_")

    def call(args: tuple, kwargs: dict):
        n = len(args)
        if n != (1 if unary else 2) or _EXTOBJ is None:
            return NotImplemented
        target = args[0]
        if type(target) not in _FAST_TYPES or target._storage.device != "cpu":
            return NotImplemented
        a = target._array
        if a.dtype not in _IN_PLACE_DTYPES or (_GRAD_STATE.enabled and target.requires_grad):
            return NotImplemented
        key = [op, _DEFAULTS.float_dtype, a.dtype, a.shape, a.strides]
        if not unary:
            other = args[1]
            cls = type(other)
            if cls in _FAST_TYPES:
                if other._storage.device != "cpu" or \
                        (_GRAD_STATE.enabled and other.requires_grad):
                    return NotImplemented
                o = other._array
                key.append((o.dtype, o.shape, o.strides))
            elif cls is float:
                key.append(float)
            elif cls is int:
                key.append((int, other))
            else:
                return NotImplemented
        alpha = 1
        if kwargs:
            if not takes_alpha or len(kwargs) != 1 or "alpha" not in kwargs:
                return NotImplemented
            alpha = kwargs["alpha"]
            if type(alpha) is not float and type(alpha) is not int:
                return NotImplemented
            key.append((type(alpha), alpha == 1))
        key = tuple(key)
        if key not in _IN_PLACE_SEEN and not _learn_in_place(op, args, kwargs, key):
            return NotImplemented
        if not a.flags.writeable or not _write_in_place(op, target, args, alpha):
            return NotImplemented
        target._bump_version()
        return target
    return call


def _learn_in_place(op, args: tuple, kwargs: dict, key: tuple) -> bool:
    """run_inplace's checks for this key; False (the full path raises) when one fails."""
    try:
        bound = op.schema.bind(args, dict(kwargs))
        if any(b is not a for a, b in zip(args, bound)) or eager._check_devices(op, bound):
            return False
        eager.run_meta(op, bound)
        eager._check_no_internal_overlap(op, bound)
    except Exception:                       # noqa: BLE001 - the full path raises it
        return False
    if len(_IN_PLACE_SEEN) >= _MAX_ENTRIES:
        _IN_PLACE_SEEN.clear()
    _IN_PLACE_SEEN.add(key)
    return True


def _write_in_place(op, target, args: tuple, alpha) -> bool:
    if alpha == 1:
        return eager._in_place_on_array(op, target, args)
    a, other = target._array, args[1]
    if type(other) not in _FAST_TYPES or other._array.dtype != a.dtype:
        return False                        # a scalar times alpha rounds differently
    # the reference's x + y * alpha (pointwise._times_alpha, float y), written into a
    scaled = other._array * alpha
    (np.add if op.name == "add_" else np.subtract)(a, scaled, out=a)
    return True


_IN_PLACE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_RUN_OP_ONLY = frozenset({Tag.INPLACE, Tag.NONDETERMINISTIC})
_VALUE_TYPES = {int, float, bool, complex, str, type(dtypes.DEFAULTS.float_dtype), MemoryFormat}
_KWARGS = object()                          # separates keyword parts in a key


# --- constant-fill factories: ember.zeros / ones / full / empty -----------------------
#
# `ember.zeros(3)` through the registry op `full` costs a schema bind (or a seen-call
# key over its keyword arguments) and a plan around a single np.zeros. A fill whose
# (shape, fill type, dtype, default dtype) made a CPU tensor through the full path
# before runs the op's reference directly: the same array, adopted as the full path
# adopts it. A dispatch mode (tracing), an autocast region and a derivative rule's
# creation device (devices.creation_device) always take the full path.

_FILLS: dict[tuple, np.dtype] = {}
_FILL_TYPES = (int, float, bool, complex)


def _scalar_array(value, np_dtype):
    try:
        return np.asarray(value, dtype=np_dtype)
    except OverflowError:                   # an int out of range wraps, as in torch
        return cast_scalar(value, np_dtype)


def fill_call(shape: list, fill_value, dtype):
    """`full(shape, fill_value, dtype=dtype)` on the CPU, contiguous."""
    kind = type(fill_value)
    if _MODES or _autocast.ACTIVE or kind not in _FILL_TYPES or _EXTOBJ is None or \
            not (dtype is None or type(dtype) is _DTYPE_TYPE):
        return _full_op(shape, fill_value, dtype)
    key = (tuple(shape), kind, dtype, _DEFAULTS.float_dtype)
    np_dtype = _FILLS.get(key)
    if np_dtype is None or creation_device() != "cpu" or \
            kind is int and not 0 <= fill_value < 128 and np_dtype.kind in "iu":
        # (an int fill outside every integer dtype's range wraps or is refused: the op's rule)
        out = _full_op(shape, fill_value, dtype)
        if out._storage.device == "cpu" and creation_device() == "cpu":
            if len(_FILLS) >= _MAX_ENTRIES:
                _FILLS.clear()
            _FILLS[key] = out._array.dtype
        return out
    current = _EXTOBJ.get()                 # an overflowing fill is inf, quietly (run_op)
    token = _EXTOBJ.set(_QUIET[1] if current is _QUIET[0] else _quiet_state(current))
    try:
        arr = fill_array(key[0], fill_value, np_dtype)
    finally:
        _EXTOBJ.reset(token)
    # a fresh C-ordered array: its flat view is its storage (flat_storage, without the call)
    return Tensor._make(arr, Storage(arr if arr.ndim == 1 else arr.reshape(-1)))


def _full_op(shape: list, fill_value, dtype):
    return OPS["full"](shape, fill_value, dtype=dtype, device=None,
                       memory_format=contiguous_format)


_DTYPE_TYPE = type(dtypes.DEFAULTS.float_dtype)
