"""Quantized tensors in eager mode: torch's quint8/qint8/qint32 tensors.

A `QuantizedTensor` is an ember Tensor whose `_array` holds the integer representation
(what `int_repr()` returns) and which carries its qparams: a scale and zero point per
tensor, or scales, zero points and an axis per channel. Its `dtype` is the quantized
dtype. Registry ops see it as an `ir.quantized.QuantizedArray`.

Few ops accept quantized tensors, as in PyTorch: those written for them (dequantize
and the quantized kernels of ember.ao), shape ops and max pooling over per-tensor
quantized values (exact on the integers: the qparams carry over), and relu (max with
the zero point). Every other op refuses with an error that says to dequantize first,
so nothing computes silently on the integers as if they were the values.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from ..ir import autocast as _autocast, dispatch as _dispatch, dtypes
from ..ir.errors import AutogradError, EmberError, at_user_line
from ..ir.quantized import QuantizedArray, qrange
from ..ir.ops import quantized_pointwise as QP
from ..ir.registry import OPS, OpDef, Tag
from .tensor import Storage, Tensor
from .torch_function import _disabled_torch_function_impl
from ..ir.torch_function import STATE as _TF_STATE
from ..ir.ops.shape import flat_storage
from ..runtime import threads as _threads

# ops whose NumPy references take QuantizedArray operands themselves (besides the ops
# tagged QUANTIZED: ir/ops/quantized.py)
QUANTIZED_KERNELS: set[str] = {"dequantize"}

# averaging ops: computed on the dequantized values, requantized with the input's qparams
# (PyTorch's quantized pooling keeps the input's scale and zero point too)
SAME_QPARAMS_REQUANTIZED = {"adaptive_avg_pool1d", "adaptive_avg_pool2d", "avg_pool1d",
                            "avg_pool2d", "mean", "upsample_nearest2d", "dropout",
                            "leaky_relu", "gelu", "upsample_bilinear2d", "pad"}

# ops that act on the integers alone and keep per-tensor qparams (monotone or moving data)
SAME_QPARAMS = {"view", "reshape", "_unsafe_view", "flatten", "permute", "transpose", "t",
                "contiguous", "clone", "squeeze", "unsqueeze", "expand", "select", "slice",
                "narrow", "detach", "alias", "max_pool1d", "max_pool2d", "max_pool3d",
                "adaptive_max_pool2d", "unflatten", "movedim", "chunk", "split", "repeat",
                "expand_as", "stack", "flip", "index_select", "index", "pixel_shuffle",
                "pixel_unshuffle", "channel_shuffle",
                # order-preserving (the scale is positive): sorting the integers sorts the
                # values, as torch's quantized sort / topk do
                "sort", "argsort", "topk", "msort", "max_dim", "min_dim"}


# clamping ops: computed on the integers against the quantized bounds, qparams kept
# (torch's quantized hardtanh / relu6 / clamp do the same)
CLAMPS = {"hardtanh", "relu6", "clamp"}


class QuantizedTensor(Tensor):
    """A Tensor of dtype quint8/qint8/qint32 (see the module docstring)."""

    __torch_function__ = _disabled_torch_function_impl    # an ember value, not a user's class

    @classmethod
    def _wrap(cls, qa: QuantizedArray) -> "QuantizedTensor":
        arr = qa.int_repr
        if not _channels_last_dense(arr):   # the int8 convolutions' channels-last results
            arr = np.asarray(arr)
            if not arr.flags.c_contiguous:  # (ascontiguousarray would make a 0-d value [1])
                arr = np.array(arr, order="C")
        t = cls._make(arr, Storage(flat_storage(arr)))
        t._qdtype = qa.dtype
        t._qscale = qa.scale
        t._qzero_point = qa.zero_point
        t._qaxis = qa.axis
        cache = qa.__dict__.get("_kernel_cache")
        if cache is not None:       # a compiled plan's weight: its packed forms
            t.__dict__["_kernel_cache"] = cache
        return t

    def _qarray(self) -> QuantizedArray:
        return QuantizedArray(self._array, self._qdtype, self._qscale, self._qzero_point,
                              self._qaxis)

    @property
    def dtype(self):
        return self._qdtype

    @property
    def is_quantized(self) -> bool:
        return True

    def qscheme(self):
        return self._qarray().qscheme

    def _per_tensor(self, what: str):
        if self._qaxis is not None:
            raise EmberError(f"{what}: expected a per-tensor quantized tensor, got "
                             f"qscheme {self.qscheme().name}")

    def _per_channel(self, what: str):
        if self._qaxis is None:
            raise EmberError(f"{what}: expected a per-channel quantized tensor, got "
                             f"qscheme {self.qscheme().name}")

    def q_scale(self) -> float:
        self._per_tensor("q_scale")
        return float(self._qscale)

    def q_zero_point(self) -> int:
        self._per_tensor("q_zero_point")
        return int(self._qzero_point)

    def q_per_channel_scales(self) -> Tensor:
        self._per_channel("q_per_channel_scales")
        return Tensor._from_array(np.asarray(self._qscale, np.float64))

    def q_per_channel_zero_points(self) -> Tensor:
        self._per_channel("q_per_channel_zero_points")
        zero_points = np.asarray(self._qzero_point)
        return Tensor._from_array(zero_points if zero_points.dtype.kind == "f" else
                                  zero_points.astype(np.int64))

    def q_per_channel_axis(self) -> int:
        self._per_channel("q_per_channel_axis")
        return int(self._qaxis)

    def _assign_same_qparams(self, result: "QuantizedTensor") -> "QuantizedTensor":
        """In-place form of an op that keeps the qparams (relu_, hardtanh_): the result's
        integers written into this tensor's memory."""
        same = result._qdtype is self._qdtype and result._qaxis is None and \
            self._qaxis is None and float(result._qscale) == float(self._qscale) and \
            int(result._qzero_point) == int(self._qzero_point)
        if not same or result.shape != self.shape:
            raise NotImplementedError("in-place op on a quantized tensor whose result has "
                                      "other qparams; use the out-of-place form")
        np.copyto(self._array, result._array)
        return self

    def int_repr(self) -> Tensor:
        return Tensor._from_array(self._array)

    def numpy(self, *, force: bool = False):
        raise EmberError("numpy() of a quantized tensor: call int_repr() or dequantize() first")

    def detach(self) -> "QuantizedTensor":
        """The same integers and qparams (shares storage; quantized tensors have no grad)."""
        return QuantizedTensor._wrap(self._qarray())

    def requires_grad_(self, requires_grad: bool = True):
        if requires_grad:
            raise AutogradError(f"only Tensors of floating point and complex dtype can require "
                                f"gradients, got {self.dtype}")
        return self

    def __repr__(self) -> str:
        # torch's layout: the dequantized values, then size / dtype / qscheme / qparams
        # as suffixes that wrap at the print width like any tensor's
        from .printing import add_suffixes, tensor_str
        values = self._qarray().dequantize()
        body = "[]" if values.size == 0 else tensor_str(values, len("tensor("))
        if self._qaxis is None:
            qparams = [f"scale={float(self._qscale)}", f"zero_point={int(self._qzero_point)}"]
        else:
            qparams = [f"scale={self.q_per_channel_scales()!r}",
                       f"zero_point={self.q_per_channel_zero_points()!r}",
                       f"axis={self._qaxis}"]
        suffixes = [f"size={tuple(self.shape)}", f"dtype={self.dtype}",
                    f"quantization_scheme={self.qscheme()!r}", *qparams]
        return add_suffixes("tensor(" + body, suffixes, len("tensor("))

    def __deepcopy__(self, memo):
        return QuantizedTensor._wrap(QuantizedArray(
            self._array.copy(), self._qdtype, self._qscale, self._qzero_point, self._qaxis))

    def __reduce_ex__(self, proto):
        return (_rebuild, (self._array.copy(), self._qdtype.name, self._qscale,
                           self._qzero_point, self._qaxis))


def _rebuild(arr, dtype_name, scale, zero_point, axis):
    return QuantizedTensor._wrap(QuantizedArray(arr, dtypes.dtype_from_name(dtype_name), scale,
                                                zero_point, axis))


def _channels_last_dense(arr: np.ndarray) -> bool:
    return arr.ndim == 4 and arr.transpose(0, 2, 3, 1).flags.c_contiguous and \
        arr.flags.writeable


_LAZY: dict = {}


def _eager():
    """frontend/eager.py (imported on first use: it imports this module)."""
    mod = _LAZY.get("eager")
    if mod is None:
        from . import eager as mod
        _LAZY["eager"] = mod
    return mod


def _kernels():
    """codegen/quantized.py, the native kernels' choice (imported on first use; a
    function-level import statement costs microseconds on every quantized op)."""
    mod = _LAZY.get("kernels")
    if mod is None:
        from ..codegen import quantized as mod
        _LAZY["kernels"] = mod
    return mod


def is_quantized_tensor(v) -> bool:
    return type(v) is QuantizedTensor


def wrap_result(value):
    """A reference's QuantizedArray result as a tensor (eager's output wrapping)."""
    return QuantizedTensor._wrap(value)


def run_quantized(op: OpDef, args: tuple, tensors: list):
    """Eager execution of an op that has a quantized tensor among its operands."""
    if op.name == "dequantize":
        value = _native_dequantize(args)
        if value is not None:
            return value
    if op.name == "quantized_add":
        value = _native_add(args)
        if value is not None:
            return value
    if op.name in QUANTIZED_KERNELS or op.has_tag(Tag.QUANTIZED):
        eager = _eager()
        out_meta = eager.run_meta(op, args)
        ref_args = [_unwrap(v) for v in args]
        return eager.wrap_with_meta(op, args, _native_or_reference(op, args, ref_args),
                                    out_meta)
    if op.name == "cat" and args and isinstance(args[0], (list, tuple)) and \
            all(is_quantized_tensor(t) and t._qaxis is None for t in args[0]):
        return _quantized_cat(args[0], args[1] if len(args) > 1 else 0)
    if op.name == "stack" and args and isinstance(args[0], (list, tuple)) and args[0] and \
            all(is_quantized_tensor(t) and t._qaxis is None for t in args[0]):
        dim = args[1] if len(args) > 1 else 0
        return _quantized_cat([t.unsqueeze(dim) for t in args[0]], dim)
    if op.name == "expand_as" and is_quantized_tensor(args[0]) and args[0]._qaxis is None:
        return args[0].expand(args[1].shape)      # only the other tensor's shape is read
    if op.name == "copy" and _quantized_copy_ok(args):
        # `x.copy_(f(x))` of an in-place activation as a traced graph records it (eager
        # mode assigns quantized in-place results directly): the source's integers and
        # qparams, in a buffer of their own
        qa = args[1]._qarray()
        return QuantizedTensor._wrap(qa.with_values(np.array(qa.int_repr, copy=True)))
    (first,) = tensors if len(tensors) == 1 else (None,)
    if first is not None and first._qaxis is None and op.name in SAME_QPARAMS:
        return _same_qparams(op, args, first)
    if first is not None and first._qaxis is None and op.name in SAME_QPARAMS_REQUANTIZED:
        return _requantized_same(op, args, first)
    if first is not None and op.name in QP.FIXED_QPARAMS and args[0] is first and \
            QP.lut_applies(first._qarray()):
        # torch's quantized sigmoid / tanh / hardsigmoid: fixed output qparams, by table
        return QuantizedTensor._wrap(QP.apply_fixed(op.name, first._qarray()))
    if first is not None and op.name == "relu" and first._qaxis is None:
        qa = first._qarray()
        return QuantizedTensor._wrap(qa.with_values(
            np.maximum(qa.int_repr, qa.zero_point).astype(qa.int_repr.dtype)))
    if first is not None and op.name in CLAMPS and first._qaxis is None and args[0] is first:
        bounds = _clamp_bounds(op.name, args)
        if bounds is not None:
            done = _already_clamped(first, bounds)
            return done if done is not None else _clamped(first._qarray(), *bounds)
    kinds = ", ".join(sorted({f"{t.dtype} ({t.qscheme().name})" for t in tensors}))
    raise NotImplementedError(
        f"{op.name}: not supported on quantized tensors ({kinds}); call .dequantize() "
        f"first, or use a quantized module from ember.ao{at_user_line()}")


def _native_add(args: tuple):
    """quantized_add (a residual add) by the native kernel, as a tensor, or None (then
    the full path). The kernel takes only two per-tensor quint8 operands of one shape, on
    which the op's meta rule (both quantized, shapes broadcastable) holds and gives the
    operands' shape: so the rule is skipped, ~10 us of a residual add's ~45 us of Python
    a call (eight of them in resnet18, serial at any thread count)."""
    a, b = args[0], args[1]
    if type(a) is not QuantizedTensor or type(b) is not QuantizedTensor or \
            a._storage.device != "cpu" or b._storage.device != "cpu":
        return None
    kernel = _kernels().binary_kernel("quantized_add", a._qarray(), b._qarray())
    if kernel is None:
        return None
    return QuantizedTensor._wrap(kernel(*[_unwrap(v) for v in args[2:]]))


# the largest residual operand (elements) fused into its conv's epilogue. In a converted
# resnet18 at batch 8 the fused epilogue first cost more than the add's own pass on the
# 56x56 and 28x28 planes (one thread); with its plain loads and fbgemm's requantization
# the fused model is level at one thread (thread CPU 33.06 / 35.69 ms unfused there
# against 32.98 / 35.26 fused, in-process A/B, load 5-7) and at two threads the unfused
# pairs' serial call glue is ~0.3 ms a call more (the add's call, its kernel lookup and
# its hand-off, while the other thread waits). So every resnet-sized plane fuses; larger
# operands (unmeasured) keep the pair
FUSED_RESIDUAL_MAX = 1 << 24


def conv2d_add(conv_args: tuple, other, scale, zero_point, relu):
    """quantized_add(quantized_conv2d(*conv_args), other, scale, zero_point, relu) as one
    GEMM whose epilogue rounds the conv's result to its own qparams and then adds `other`
    (codegen's quantized_conv2d_add kernel: the pair's integers exactly), or None where
    that does not apply (the caller then runs the pair: under a dispatch mode, autocast
    or a TorchFunctionMode, which then see its quantized_add as without fusion). Applies
    to a conv call the layer has made before with these operands' geometry and qparams
    (its meta rule's verdict is kept: run_checked), groups 1, and an `other` of the conv's
    result shape and layout (channels-last, as the unfused add's result then is) that is
    per-tensor quint8, of at most FUSED_RESIDUAL_MAX elements."""
    x, weight = conv_args[0], conv_args[1]
    if _dispatch._modes or _autocast.ACTIVE or _TF_STATE.modes or \
            type(x) is not QuantizedTensor or type(other) is not QuantizedTensor or \
            type(weight) is not QuantizedTensor or other._array.size > FUSED_RESIDUAL_MAX:
        return None
    add = (float(_unwrap(scale)), int(_unwrap(zero_point)), bool(relu))
    bias = conv_args[2]
    seen = weight.__dict__.get("_seen_add")
    if seen is not None and seen.matches(conv_args, other, add):
        value = seen.runner(x._array, bias._array if isinstance(bias, Tensor) else bias,
                            other._array)
        if value is not None:
            return QuantizedTensor._wrap(value)
    settle_deferred()
    if conv_args[6] != 1 or other._qaxis is not None or \
            other._qdtype is not dtypes.quint8 or other._storage.device != "cpu" or \
            not _channels_last_dense(other._array):
        return None
    key = _checked_key(quantized_conv2d_op(), conv_args)
    out_meta = None if key is None else _CHECKED.get(key)
    if out_meta is None or tuple(out_meta.shape) != other._array.shape:
        return None
    cache = weight.__dict__.setdefault("_kernel_cache", {})
    bias = bias._array if isinstance(bias, Tensor) else bias
    runner_key = ("runner-add", key, other._array.shape, other._array.strides,
                  other._qscale, other._qzero_point, add)
    try:
        runner = cache.get(runner_key)
    except TypeError:       # qparams that are not plain numbers: the general kernel
        runner, runner_key = False, None
    if runner is None:
        kept = [k for k in cache if isinstance(k, tuple) and k[0] == "runner-add"]
        for k in kept if len(kept) >= _MAX_RUNNERS else ():
            del cache[k]
        runner = cache[runner_key] = _kernels().conv_runner(
            [_unwrap(v) for v in conv_args], cache, residual=(other._qarray(), *add)) or False
    if runner is not False:
        value = runner(x._array, bias, other._array)
        if value is not None:
            # the pair's next like call runs this runner directly
            weight.__dict__["_seen_add"] = _SeenAdd(conv_args, other, add, runner, out_meta)
            return QuantizedTensor._wrap(value)
    ref_args = [_unwrap(v) for v in conv_args] + [other._qarray(), *add]
    kernel = _kernels().kernel_for("quantized_conv2d_add", ref_args, cache)
    return None if kernel is None else QuantizedTensor._wrap(kernel())


def settle_deferred() -> None:
    """No kernel of this thread left running and none to be left (runtime/threads.py
    ThreadPool.defer, which fused_forward's conv steps allow around a layer's prepared
    call): every path but a prepared call's reads its operands in Python, makes runners
    or times kernels."""
    pool = _threads._DEFAULT
    if pool is not None:
        pool.open_window(False)
        pool.join()


def quantized_conv2d_op() -> OpDef:
    return OPS["quantized_conv2d"]


def linear_dequantize(linear_args: tuple):
    """dequantize(quantized_linear(*linear_args)) as a float32 tensor by one GEMM whose
    epilogue dequantizes the values it rounds (codegen's linear runner `.dequantized`:
    the pair's floats exactly, without the uint8 result, the dequantize's call and its
    serial pass), or None where that does not apply (the caller then runs the pair):
    only a call the layer's prepared call repeats (_seen_call: the same operands'
    geometry, layout and qparams; no dispatch mode, autocast or TorchFunctionMode, which
    then see the two calls) on a tile that has the kernel."""
    if _TF_STATE.modes:
        return None
    seen = _seen_call(OPS["quantized_linear"], linear_args)
    dequantized = getattr(seen.runner, "dequantized", None) if seen is not None else None
    if dequantized is None:
        return None
    bias = linear_args[2]
    value = dequantized(linear_args[0]._array, bias._array if isinstance(bias, Tensor)
                        else bias)
    return None if value is None else Tensor._adopt(value)


def linear_dequantize_for(linear_args: tuple):
    """linear_dequantize made ready before its input's values exist: linear_args[0] a
    quantized tensor of the input's geometry and qparams whose array the caller fills
    later (fused_forward.pool_linear_dequantize: the pool's kernel writes it). A
    function(a) giving linear_dequantize(linear_args) on the values then in `a` (the
    array itself), or None where linear_dequantize would decline (then the caller runs
    it, or the pair, once the values exist)."""
    if _TF_STATE.modes:
        return None
    seen = _seen_call(OPS["quantized_linear"], linear_args)
    ready = getattr(seen.runner, "dequantized_for", None) if seen is not None else None
    bias = linear_args[2]
    run = ready(bias._array if isinstance(bias, Tensor) else bias) if ready else None
    if run is None:
        return None

    def call(a):
        value = run(a)
        return None if value is None else Tensor._adopt(value)
    return call


class _SeenAdd:
    """A fused residual pair's prepared call (kept on the conv's weight, as _SeenCall):
    the conv's operands, the other operand's geometry, layout and qparams and the add's
    qparams of the call that made its runner; a call repeating them all runs it at once
    (conv2d_add's checks, key and lookup are ~10 us a pair)."""
    __slots__ = ("conv", "other_state", "add", "runner")

    def __init__(self, conv_args: tuple, other, add: tuple, runner, out_meta):
        self.conv = _SeenCall(quantized_conv2d_op(), conv_args, None, out_meta)
        self.other_state = _other_state(other)
        self.add, self.runner = add, runner

    def matches(self, conv_args: tuple, other, add: tuple) -> bool:
        return add == self.add and _other_state(other) == self.other_state and \
            self.conv.matches(self.conv.op, conv_args)


def _other_state(other) -> tuple:
    a = other._array
    return (a.shape, a.strides, other._qdtype, other._qscale, other._qzero_point,
            other._qaxis, other._storage.device)


def _native_dequantize(args: tuple):
    """dequantize(x) of a per-tensor 8-bit CPU tensor by the native kernel, as a tensor
    over the kernel's result, or None (then the full path). The kernel takes only a
    C-contiguous x, whose result is what the meta rule says (x's shape, contiguous
    float32), so the call skips the rule and the wrapping: ~10 us of the ~17 a quantized
    model's output dequantize took. Any other layout goes the full path, which lays the
    result out by the rule: a compiled plan reads it that way."""
    x = args[0] if len(args) == 1 else None
    if type(x) is not QuantizedTensor or x._qaxis is not None or x._storage.device != "cpu":
        return None
    kernel = _kernels().dequantize_kernel(x._qarray())
    return None if kernel is None else Tensor._adopt(kernel())


def fast_calls() -> dict:
    """{op: fn(args)} for eager_fast's SPECIAL_CALLS (no dispatch mode or autocast
    active there): the calls below, answered without binding and dispatch where they
    apply, NotImplemented (the full call) anywhere else."""
    calls = {OPS["quantize_per_tensor"]: _fast_quantize_per_tensor,
             OPS["dequantize"]: _fast_dequantize,
             OPS["quantized_add"]: _fast_quantized_add}
    for name in _FAST_SAME_QPARAMS:
        calls[OPS[name]] = functools.partial(_fast_same_qparams, OPS[name])
    return calls


# ops on a per-tensor quantized value that fast_calls answers with run_quantized's own
# step (a converted CNN's pooling and flatten: ~10-20 us of binding and dispatch each)
_FAST_SAME_QPARAMS = ("max_pool2d", "adaptive_avg_pool2d", "reshape", "flatten")


def _fast_same_qparams(op: OpDef, args: tuple):
    """op(x, ...) of a per-tensor quantized CPU tensor x whose other arguments are plain
    ints, bools, None or sequences of ints (what the schema binds as they are): the full
    call's own step (run_quantized: a quantized operand's plan runs no meta rule), without
    the binding and dispatch before it."""
    x = args[0] if args else None
    if type(x) is not QuantizedTensor or x._qaxis is not None or _TF_STATE.modes or \
            x._storage.device != "cpu" or not all(_plain(a) for a in args[1:]):
        return NotImplemented
    return run_quantized(op, args, [x])


def _plain(value) -> bool:
    cls = type(value)
    if cls is int or cls is bool or value is None:
        return True
    return (cls is list or cls is tuple) and all(type(v) is int for v in value)


def _fast_quantized_add(args: tuple):
    """quantized_add(a, b, scale, zero_point[, relu]) of two quantized tensors, scale and
    zero point numbers or 0-dim tensors (as the schema converts them): _native_add, as
    the full call runs it, or NotImplemented (the full call)."""
    if len(args) not in (4, 5) or _TF_STATE.modes or type(args[0]) is not QuantizedTensor \
            or type(args[1]) is not QuantizedTensor:
        return NotImplemented
    scale, zero_point = _number(args[2], float), _number(args[3], int)
    relu = args[4] if len(args) == 5 else False
    if scale is None or zero_point is None or type(relu) is not bool:
        return NotImplemented
    value = _native_add((args[0], args[1], scale, zero_point, relu))
    return NotImplemented if value is None else value


def _fast_quantize_per_tensor(args: tuple):
    """quantize_per_tensor(x, scale, zero_point, dtype) of a C-contiguous float32 CPU
    tensor (not requiring grad) to quint8/qint8, scale and zero point given as numbers
    or as the 0-dim tensors a converted model stores (which the schema turns into
    numbers: float(scale.item()), int(zero_point.item())): the native kernel the full
    call runs, on the same values, wrapped as it wraps the result. A converted model's
    input quantize spent ~13 of its ~17 us in binding, dispatch and the plan lookup."""
    if len(args) != 4 or _TF_STATE.modes:     # (plain operands: only a mode overrides)
        return NotImplemented
    x, scale, zero_point, dtype = args
    if type(x) is not Tensor or x.requires_grad or x._storage.device != "cpu" or \
            (dtype is not dtypes.quint8 and dtype is not dtypes.qint8):
        return NotImplemented
    a = x._array
    if a.dtype != np.float32 or not a.flags.c_contiguous or not a.size:
        return NotImplemented
    scale, zero_point = _number(scale, float), _number(zero_point, int)
    if scale is None or zero_point is None or not scale > 0:
        return NotImplemented
    qe = _qelementwise()
    if qe is None:
        return NotImplemented
    values = qe.quantize(a, scale, zero_point, dtype.np_dtype)
    return QuantizedTensor._wrap(QuantizedArray(values, dtype, scale, zero_point))


def _number(value, kind):
    """A float (kind float) or int argument as the schema converts it: the Python
    number, or a 0-dim CPU tensor's value (floating for a float, integer for an int);
    None for anything else."""
    cls = type(value)
    if kind is float and (cls is float or cls is int):
        return float(value)
    if kind is int and cls is int:
        return value
    if cls is not Tensor or value.ndim != 0 or value.requires_grad or \
            value._storage.device != "cpu":
        return None
    a = value._array
    if kind is float and a.dtype.kind == "f":
        return float(a.item())
    if kind is int and a.dtype.kind in "iu":
        return int(a.item())
    return None


def _qelementwise():
    """codegen's qelementwise module where its kernels run (as the eager kernel choice
    decides it, per EMBER_ISA value), else None."""
    kernels = _kernels()
    if not kernels._elementwise_native(os.environ.get("EMBER_ISA")):
        return None
    return kernels.QE


def _fast_dequantize(args: tuple):
    """x.dequantize() of a C-contiguous per-tensor 8-bit CPU tensor: _native_dequantize,
    which run_quantized reaches after binding and dispatch."""
    if len(args) != 1 or _TF_STATE.modes:
        return NotImplemented
    value = _native_dequantize(args)
    return NotImplemented if value is None else value


def run_checked(op: OpDef, args: tuple):
    """`op(*args)` for a quantized module's call (Linear, Conv2d, dynamic Linear: args in
    schema order, a per-tensor quantized input or a float one first). The first call of a geometry takes the full path
    (binding, dispatch modes, the op's meta rule and its errors); a later call whose
    operands have the same layout, dtypes and qparams, and the same other arguments,
    runs the kernel choice directly (the meta rule's verdict depends on nothing else).
    That saves ~15 us of Python per layer, which at two threads is as much as a small
    layer's kernel."""
    seen = _seen_call(op, args)
    if seen is not None:
        value = seen.run(args[0]._array, args[2])
        if value is not None:
            return seen.wrap(op, args, value)
    settle_deferred()
    key = _checked_key(op, args)
    if key is None:
        return op(*args)
    out_meta = _CHECKED.get(key)
    if out_meta is None:
        result = op(*args)
        if len(_CHECKED) >= _MAX_CHECKED:
            _CHECKED.clear()
        _CHECKED[key] = _eager().run_meta(op, args)
        return result
    value = _run_conv_runner(op, args, key, None, out_meta)
    if value is None:
        value = _native_or_reference(op, args, [_unwrap(v) for v in args])
    return _wrap_checked(op, args, value, out_meta)


def _wrap_checked(op: OpDef, args: tuple, value, out_meta):
    if type(value) is QuantizedArray:       # what wrap_with_meta makes of it, directly
        return QuantizedTensor._wrap(value)
    if op.name == "quantized_linear_dynamic" and _dense_as_meta(value, out_meta):
        # the float result a dynamic Linear's GEMM (or its reference) just made, never an
        # input: adopted as wrap_with_meta adopts it, without its checks (~3 us a layer)
        return Tensor._make(value, Storage(flat_storage(value)))
    return _eager().wrap_with_meta(op, args, value, out_meta)


def _dense_as_meta(value, meta) -> bool:
    """A writeable ndarray of the meta's shape and dtype with exactly its strides."""
    return type(value) is np.ndarray and value.shape == meta.shape and \
        value.dtype == meta.dtype.np_dtype and value.flags.writeable and value.size and \
        meta.strides is not None and \
        tuple(s // value.itemsize for s in value.strides) == tuple(meta.strides)


class _SeenCall:
    """A layer's prepared call (kept on its weight tensor): the operands of the call that
    made its runner, so that a next call repeating them (the same input type, geometry,
    layout and qparams, the same bias tensor and other arguments: a converted model's
    every call) runs the runner at once, without run_checked's key, its table and the
    runner's lookup (~6 us a layer). Anything else takes run_checked's full way."""
    __slots__ = ("op", "x_type", "shape", "strides", "x_state", "bias", "rest", "runner",
                 "out_meta")

    def __init__(self, op: OpDef, args: tuple, runner, out_meta):
        x = args[0]
        self.op, self.x_type, self.bias, self.rest = op, type(x), args[2], args[3:]
        self.shape, self.strides = x._array.shape, x._array.strides
        self.x_state = _x_state(x)
        self.runner, self.out_meta = runner, out_meta

    def matches(self, op: OpDef, args: tuple) -> bool:
        x = args[0]
        if op is not self.op or type(x) is not self.x_type or args[2] is not self.bias:
            return False
        a = x._array
        return a.shape == self.shape and a.strides == self.strides and \
            _x_state(x) == self.x_state and args[3:] == self.rest and \
            x._storage.device == "cpu"

    def run(self, a, bias):
        return self.runner(a, bias._array if isinstance(bias, Tensor) else bias)

    def wrap(self, op: OpDef, args: tuple, value):
        return _wrap_checked(op, args, value, self.out_meta)


def _x_state(x) -> tuple:
    """What of a layer's input, besides its geometry, its runner was made for: a
    quantized input's qparams, a float input's dtype and (refused while set)
    requires_grad."""
    if type(x) is QuantizedTensor:
        return (x._qdtype, x._qscale, x._qzero_point, x._qaxis)
    return (x._array.dtype, x.requires_grad)


def _seen_call(op: OpDef, args: tuple):
    """The weight's prepared call where this call repeats it (and no dispatch mode or
    autocast is active), else None."""
    weight = args[1]
    if type(weight) is not QuantizedTensor or _dispatch._modes or _autocast.ACTIVE:
        return None
    seen = weight.__dict__.get("_seen_call")
    return seen if seen is not None and seen.matches(op, args) else None


def _run_conv_runner(op: OpDef, args: tuple, key: tuple, clamp, out_meta=None):
    """A quantized conv2d's or (dynamic) linear's result by the layer's runner (codegen's
    conv_runner / linear_runner / dynamic_runner: made on the second call of a seen key
    and kept in the weight's kernel cache), or None where there is none or it declines
    this call (then the full kernel choice runs). Given the call's out_meta (run_checked),
    a runner that computed the result becomes the weight's prepared call (_SeenCall)."""
    weight = args[1]
    maker = _RUNNERS.get(op.name)
    if maker is None or type(weight) is not QuantizedTensor or type(args[0]) is not maker[1]:
        return None
    cache = weight.__dict__.setdefault("_kernel_cache", {})
    runner_key = ("runner", key, clamp)
    runner = cache.get(runner_key)
    if runner is None:
        if sum(isinstance(k, tuple) and k[0] == "runner" for k in cache) >= _MAX_RUNNERS:
            for k in [k for k in cache if isinstance(k, tuple) and k[0] == "runner"]:
                del cache[k]
        make = getattr(_kernels(), maker[0])
        runner = cache[runner_key] = (make([_unwrap(v) for v in args], cache, clamp)
                                      if clamp is not None else
                                      make([_unwrap(v) for v in args], cache)) or False
    if runner is False:
        return None
    bias = args[2]
    value = runner(args[0]._array, bias._array if isinstance(bias, Tensor) else bias)
    if value is not None and out_meta is not None:
        # the layer's next like call runs this runner directly (run_checked)
        weight.__dict__["_seen_call"] = _SeenCall(op, args, runner, out_meta)
    return value


_MAX_RUNNERS = 16      # runners a weight keeps (one per input geometry and qparams)
# the ops whose seen calls run a runner: its maker in codegen/quantized.py and the type
# of the input it takes (a dynamic linear's is a float tensor)
_RUNNERS = {"quantized_conv2d": ("conv_runner", QuantizedTensor),
            "quantized_linear": ("linear_runner", QuantizedTensor),
            "quantized_linear_dynamic": ("dynamic_runner", Tensor)}


def _checked_key(op: OpDef, args: tuple):
    """run_checked's key for a call: the op, the first operand's layout, dtype and
    qparams, the other tensors' dtypes and shapes and the other arguments; None where
    the call must take the full path (dispatch modes, autocast, a device other than the
    CPU, an argument that is not a plain value, an unhashable one)."""
    x = args[0]
    if _dispatch._modes or _autocast.ACTIVE or not isinstance(x, Tensor) or \
            x._storage.device != "cpu":
        return None
    a = x._array
    if type(x) is QuantizedTensor and x._qaxis is None:
        key = [op, a.shape, a.strides, x._qdtype, x._qscale, x._qzero_point]
    elif type(x) is Tensor and not x.requires_grad:     # quantize_dynamic's float input
        key = [op, a.shape, a.strides, a.dtype]
    else:
        return None
    for v in args[1:]:
        if isinstance(v, Tensor):
            if v._storage.device != "cpu":
                return None
            key.append((type(v), v._array.dtype, v._array.shape,
                        getattr(v, "_qdtype", None), getattr(v, "_qaxis", None)))
        elif v is None or type(v) in (int, float, bool, tuple):
            key.append(v)
        else:
            return None
    key = tuple(key)
    try:
        hash(key)
    except TypeError:       # an unhashable argument (a list inside a tuple)
        return None
    return key


_CHECKED: dict[tuple, object] = {}
_MAX_CHECKED = 4096


def _quantized_copy_ok(args: tuple) -> bool:
    """copy(self, src) of two quantized tensors of one shape and dtype, per-tensor."""
    dst, src = args[0], args[1]
    return is_quantized_tensor(dst) and is_quantized_tensor(src) and \
        tuple(dst.shape) == tuple(src.shape) and dst.dtype == src.dtype and \
        dst._qaxis is None and src._qaxis is None


# ops whose eager work is one native kernel call on their operands' integers
NATIVE_STEPS = ("quantized_linear", "quantized_linear_dynamic", "quantized_conv2d",
                "quantized_conv2d_add")


def native_step(op: OpDef):
    """A compiled plan's step for a quantized op of NATIVE_STEPS or quantized_add, on the
    plan's values (QuantizedArrays, arrays, numbers in schema order): the eager kernel
    choice without wrapping every operand as a tensor and dispatching (the plan checked
    shapes when it was built); None for other ops."""
    if op.name not in NATIVE_STEPS + ("quantized_add",):
        return None

    def run(*ref_args):
        return _native_or_reference(op, ref_args, list(ref_args))
    return run


def _native_or_reference(op: OpDef, args: tuple, ref_args: list):
    """The op's native kernel where codegen has one for these operands (VNNI int8 GEMM,
    identical results), else its NumPy reference. A weight keeps its packed form in
    `_kernel_cache`, so packing happens once per weight."""
    if op.name == "quantized_add":
        kernel = _kernels().binary_kernel(op.name, ref_args[0], ref_args[1])
        if kernel is not None:
            return kernel(*ref_args[2:])
    if op.name == "dequantize" and isinstance(ref_args[0], QuantizedArray):
        kernel = _kernels().dequantize_kernel(ref_args[0])     # a model's float output
        if kernel is not None:
            return kernel()
    weight = args[1] if len(args) > 1 and isinstance(args[1], QuantizedTensor) else None
    if weight is None and len(ref_args) > 1 and isinstance(ref_args[1], QuantizedArray):
        weight = ref_args[1]        # a compiled plan's constant (native_step)
    if weight is not None and op.name in NATIVE_STEPS:
        cache = weight.__dict__.setdefault("_kernel_cache", {})
        kernel = _kernels().kernel_for(op.name, ref_args, cache)
        if kernel is not None:
            return kernel()
    if op.name == "quantized_conv2d_add":     # no fused kernel here: the pair's kernels
        from ..ir.registry import OPS
        conv = _native_or_reference(OPS["quantized_conv2d"], args[:10], ref_args[:10])
        return _native_or_reference(OPS["quantized_add"], (None,) + tuple(args[10:]),
                                    [conv] + list(ref_args[10:]))
    return op.reference(*ref_args)


def _unwrap(v):
    if isinstance(v, QuantizedTensor):
        return v._qarray()
    if isinstance(v, Tensor):
        return v._array
    return v


def _same_qparams(op: OpDef, args: tuple, qt: QuantizedTensor):
    """Run a data-movement op on the integers and keep the qparams."""
    qa = qt._qarray()
    if args and args[0] is qt:
        kernel = _kernels().same_qparams_kernel(op.name, qa, args)
        if kernel is not None:
            return QuantizedTensor._wrap(kernel())
    ints = _integers_of(qt, op.name)
    int_args = tuple(ints if a is qt else a for a in args)
    positional, keywords = op.schema.unbind(int_args)   # keyword-only arguments stay keywords
    result = op(*positional, **keywords)
    if isinstance(result, (tuple, list)):
        items = [_requantized_like(r, qa) for r in result]
        # a named tuple (sort's / topk's (values, indices)) takes its fields positionally
        return type(result)(*items) if hasattr(result, "_fields") else type(result)(items)
    return _requantized_like(result, qa)


# SAME_QPARAMS ops that view or reshape their input (torch's quantized ones read its memory)
_VIEWING = {"reshape", "flatten", "permute", "transpose", "t",
            "squeeze", "unsqueeze", "expand", "expand_as", "select", "slice", "narrow",
            "detach", "alias", "unflatten", "movedim", "chunk", "split"}


def _integers_of(qt: QuantizedTensor, op_name: str) -> Tensor:
    """qt's integers as a plain tensor for a data-movement op. A channels-last one (an
    int8 convolution's result) is read in place by the viewing ops, over qt's memory, as
    torch's quantized view ops read it: copying it contiguous first cost a flatten after a
    convolution ~40 us on 8 x 512 x 7 x 7 values. Other ops read a contiguous copy as
    before (clone: torch's quantized clone is contiguous; view: a view of a channels-last
    result, which torch refuses unless its strides allow it, keeps working as it did)."""
    if op_name in _VIEWING and _channels_last_dense(qt._array):
        return Tensor._make(qt._array, qt._storage)
    return Tensor._from_array(qt._array, copy=False)


def _requantized_same(op: OpDef, args: tuple, qt: QuantizedTensor):
    """Run an averaging op in float on the dequantized values; requantize with the input's
    scale and zero point."""
    from ..ir.quantized import quantize_array
    qa = qt._qarray()
    if args and args[0] is qt:
        kernel = _kernels().same_qparams_kernel(op.name, qa, args)
        if kernel is not None:
            return QuantizedTensor._wrap(kernel())
    float_args = tuple(Tensor._from_array(qa.dequantize()) if a is qt else a for a in args)
    positional, keywords = op.schema.unbind(float_args)     # mean's dtype is keyword-only
    result = op(*positional, **keywords)
    return QuantizedTensor._wrap(quantize_array(result._array, qa.scale, qa.zero_point,
                                                qa.dtype))


def _quantized_cat(seq, dim: int) -> "QuantizedTensor":
    """torch's quantized cat: the result takes the first input's qparams; the integers of
    inputs that share them are concatenated as they are (convert_fx's cat: one shared
    observer), others are requantized to them (torch warns of the loss)."""
    from ..ir.quantized import quantize_array
    first = seq[0]._qarray()
    ints = []
    for t in seq:
        qa = t._qarray()
        same = qa.dtype is first.dtype and float(qa.scale) == float(first.scale) and \
            int(qa.zero_point) == int(first.zero_point)
        ints.append(qa.int_repr if same else quantize_array(
            qa.dequantize(), first.scale, first.zero_point, first.dtype).int_repr)
    from .eager import run_meta
    from ..ir.registry import OPS
    run_meta(OPS["cat"], (list(seq), dim))      # shapes and dim checked as for floats
    out = np.concatenate(ints, axis=dim % first.int_repr.ndim)
    return QuantizedTensor._wrap(first.with_values(out))


def _requantized_like(t, qa: QuantizedArray):
    if not isinstance(t, Tensor) or t.dtype.np_dtype != qa.dtype.np_dtype:
        return t      # an index output (max_pool's indices)
    return QuantizedTensor._wrap(qa.with_values(np.asarray(t._array)))


def _clamp_bounds(name: str, args: tuple):
    """(low, high) real bounds of a clamping op, None for either side that is absent;
    None when a bound is not a Python number (a tensor bound is not supported)."""
    if name == "relu6":
        return 0.0, 6.0
    defaults = (-1.0, 1.0) if name == "hardtanh" else (None, None)
    bounds = list(args[1:3]) + list(defaults[len(args) - 1:])
    if any(b is not None and not isinstance(b, (int, float)) for b in bounds):
        return None
    return tuple(bounds)


def _int_bounds(qa: QuantizedArray, low, high) -> tuple:
    """A clamp's real bounds as integers of qa's qparams (None where absent), quantized
    as torch's quantized hardtanh / clamp quantize them."""
    return _int_bounds_of(float(qa.scale), int(qa.zero_point), qa.dtype, low, high)


@functools.lru_cache(maxsize=1024)
def _int_bounds_of(scale: float, zero_point: int, dtype, low, high) -> tuple:
    """_int_bounds by qparams, computed once per (qparams, bounds): a converted model
    clamps every call with the same ones (quantizing them took ~10 us a clamp)."""
    from ..ir.quantized import quantize_array

    def bound(v):
        return None if v is None else \
            int(quantize_array(np.float32(v), scale, zero_point, dtype).int_repr)
    return bound(low), bound(high)


def conv2d_clamped(op: OpDef, args: tuple, low, high) -> "QuantizedTensor":
    """quantized_conv2d(*args) followed by a clamp to the real [low, high] (relu6 /
    hardtanh on its result), the clamp done by the convolution's epilogue where a native
    kernel runs it (its integer bounds intersected with the epilogue's), else as a pass
    of its own: the same integers either way. The result remembers the integer range it
    was clamped to, so that the clamp node after it (convert_fx's graph keeps it, as
    torch.ao's does) finds nothing left to do."""
    seen = _seen_clamped(op, args, low, high)
    if seen is not None:
        value = seen[1].run(args[0]._array, args[2])
        if value is not None:
            out = seen[1].wrap(op, args, value)
            out._clamped_to = seen[0]
            return out
    eager = _eager()
    key = _checked_key(op, args)      # the meta rule's verdict, as run_checked keeps it
    out_meta = None if key is None else _CHECKED.get(key)
    if out_meta is None:
        out_meta = eager.run_meta(op, args)
        if key is not None:
            if len(_CHECKED) >= _MAX_CHECKED:
                _CHECKED.clear()
            _CHECKED[key] = out_meta
    ref_args = [_unwrap(v) for v in args]
    lo, hi = _int_bounds_of(float(args[7]), int(args[8]), ref_args[0].dtype, low, high)
    qlo, qhi = qrange(ref_args[0].dtype)
    bounds = (qlo if lo is None else lo, qhi if hi is None else hi)
    weight = args[1]
    if key is not None:
        value = _run_conv_runner(op, args, key, bounds)
        if value is not None:
            out = eager.wrap_with_meta(op, args, value, out_meta)
            out._clamped_to = bounds
            runner = weight.__dict__["_kernel_cache"].get(("runner", key, bounds))
            if runner:      # the layer's next like call, same bounds: the runner at once
                weight.__dict__["_seen_clamped"] = (low, high, bounds,
                                                    _SeenCall(op, args, runner, out_meta))
            return out
    kernel = None
    if isinstance(weight, QuantizedTensor) and args[0]._qaxis is None:
        cache = weight.__dict__.setdefault("_kernel_cache", {})
        kernel = _kernels().kernel_for(op.name, ref_args, cache, clamp=bounds)
    if kernel is not None:
        out = eager.wrap_with_meta(op, args, kernel(), out_meta)
    else:
        out = eager.wrap_with_meta(op, args, _native_or_reference(op, args, ref_args),
                                   out_meta)
        out = _clamped(out._qarray(), low, high)
    out._clamped_to = bounds
    return out


def _seen_clamped(op: OpDef, args: tuple, low, high):
    """(integer bounds, the prepared call) where this clamped conv call repeats the one
    its weight's clamped runner was made for with the same real bounds (as _seen_call
    for run_checked: ~10 us of key, meta lookup and unwrapping a layer), else None."""
    weight = args[1]
    if type(weight) is not QuantizedTensor or _dispatch._modes or _autocast.ACTIVE:
        return None
    seen = weight.__dict__.get("_seen_clamped")
    if seen is None or seen[0] != low or seen[1] != high or not seen[3].matches(op, args):
        return None
    return seen[2], seen[3]


def _already_clamped(qt: "QuantizedTensor", bounds: tuple):
    """qt itself (a new tensor on its integers) where a fused epilogue already clamped it
    into these bounds (conv2d_clamped), else None."""
    done = getattr(qt, "_clamped_to", None)
    if done is None:
        return None
    lo, hi = _int_bounds(qt._qarray(), *bounds)
    if (lo is not None and done[0] < lo) or (hi is not None and done[1] > hi):
        return None
    return QuantizedTensor._wrap(qt._qarray())


def clamp_already_done(x, low, high):
    """F.hardtanh / relu6 (not in place) on a quantized conv's result that its fused
    epilogue already clamped into [low, high]: the result (a new tensor on the same
    integers, as the dispatched op gives), without the dispatch (~20 us a clamp node of
    a converted MobileNet, which convert_fx keeps as torch.ao does); None otherwise."""
    if type(x) is not QuantizedTensor or _dispatch._modes or _autocast.ACTIVE or \
            x._qaxis is not None or getattr(x, "_clamped_to", None) is None:
        return None
    return _already_clamped(x, (low, high))


def _clamped(qa: QuantizedArray, low, high) -> "QuantizedTensor":
    """One clip of the integers into a fresh buffer of the input's memory order (a
    convolution's channels-last result stays channels-last, its storage one block)."""
    from ..runtime.lite_int8 import memory_order
    q = qa.int_repr
    flat = memory_order(q)
    if flat is None:
        q = np.ascontiguousarray(q)
        flat = memory_order(q)
    src, out = flat[0], np.empty_like(flat[0])
    lo, hi = _int_bounds(qa, low, high)
    if lo is None and hi is None:
        out[...] = src
        return QuantizedTensor._wrap(qa.with_values(flat[1](out)))

    def clip(begin, end, worker=0):     # NumPy's clip releases the GIL: threads share it
        np.clip(src[begin * _CLIP_CHUNK:end * _CLIP_CHUNK], lo, hi,
                out=out[begin * _CLIP_CHUNK:end * _CLIP_CHUNK])
    chunks = -(-src.size // _CLIP_CHUNK)
    if chunks > 1:
        from ..runtime.threads import default_pool
        default_pool().parallel_for(clip, chunks)
    else:
        clip(0, 1)
    return QuantizedTensor._wrap(qa.with_values(flat[1](out)))


_CLIP_CHUNK = 1 << 17       # bytes of a quantized clamp one thread-pool task unit clips


# torch's function forms of the quantized-tensor accessors (torch.int_repr(q), ...)
def int_repr(input: Tensor) -> Tensor:
    return _quantized_operand(input, "int_repr").int_repr()


def q_scale(input: Tensor) -> float:
    return _quantized_operand(input, "q_scale").q_scale()


def q_zero_point(input: Tensor) -> int:
    return _quantized_operand(input, "q_zero_point").q_zero_point()


def q_per_channel_scales(input: Tensor) -> Tensor:
    return _quantized_operand(input, "q_per_channel_scales").q_per_channel_scales()


def q_per_channel_zero_points(input: Tensor) -> Tensor:
    return _quantized_operand(input, "q_per_channel_zero_points").q_per_channel_zero_points()


def q_per_channel_axis(input: Tensor) -> int:
    return _quantized_operand(input, "q_per_channel_axis").q_per_channel_axis()


def _quantized_operand(value, what: str) -> QuantizedTensor:
    if not isinstance(value, QuantizedTensor):
        kind = f"a tensor of dtype {value.dtype}" if isinstance(value, Tensor) else \
            type(value).__name__
        raise EmberError(f"{what}: expected a quantized tensor, got {kind}")
    return value


def quantize_per_tensor_dynamic(input: Tensor, dtype, reduce_range: bool) -> QuantizedTensor:
    """torch.quantize_per_tensor_dynamic: qparams chosen from this tensor's range (widened
    to include 0) as dynamic quantization does, then quantize_per_tensor."""
    if dtype not in (dtypes.quint8, dtypes.qint8):
        raise EmberError(f"quantize_per_tensor_dynamic: dtype {dtype} is not supported "
                         f"(quint8 or qint8)")
    if not isinstance(input, Tensor) or input.dtype != dtypes.float32:
        raise EmberError("quantize_per_tensor_dynamic: expected a float32 tensor")
    qmin, qmax = qrange(dtype)
    if reduce_range:
        qmin, qmax = qmin // 2, qmax // 2
    values = np.asarray(input.detach().numpy(), np.float32)
    lo = min(float(values.min()), 0.0) if values.size else 0.0
    hi = max(float(values.max()), 0.0) if values.size else 0.0
    scale, zero_point = choose_affine_qparams(lo, hi, qmin, qmax)
    return OPS["quantize_per_tensor"](input, scale, zero_point, dtype)


# a scale below this is raised to it, with the range widened to match (fbgemm's rule)
_SMALLEST_SCALE = float(np.float32(6.1e-5))     # a float32 constant there


def choose_affine_qparams(lo: float, hi: float, qmin: int, qmax: int) -> tuple:
    """Affine qparams for the range [lo, hi] (lo <= 0 <= hi) as torch's quantized kernels
    choose them: the scale in double precision (kept so); the zero point taken
    from whichever end loses less precision, rounded and clamped."""
    scale = (hi - lo) / (qmax - qmin)
    if np.float32(scale) == 0.0 or np.isinf(np.float32(1.0) / np.float32(scale)):
        scale = 0.1
    if scale < _SMALLEST_SCALE:
        scale = _SMALLEST_SCALE
        if lo == 0.0:
            hi = scale * (qmax - qmin)
        elif hi == 0.0:
            lo = -scale * (qmax - qmin)
        else:
            amplify = _SMALLEST_SCALE / ((hi - lo) / (qmax - qmin))
            lo, hi = lo * amplify, hi * amplify
    from_min, from_max = qmin - lo / scale, qmax - hi / scale
    min_error = abs(qmin) - abs(lo / scale)
    max_error = abs(qmax) - abs(hi / scale)
    initial = from_min if min_error < max_error else from_max
    zero_point = qmin if initial < qmin else qmax if initial > qmax else int(np.rint(initial))
    return float(scale), int(zero_point)
