"""Tensor factories: ember.tensor / as_tensor / from_numpy, zeros, ones, full, empty,
arange, linspace, logspace, eye, rand, randn, randint, randperm, and the *_like forms.

Constant-fill factories go through registry ops (`full`, `arange`, `*_like`) so they
trace; random factories draw from the seeded generator.
"""
from __future__ import annotations

import functools
import numbers

import math
import warnings

import numpy as np

from ..ir import dispatch, dtypes
from ..ir.errors import DTypeError, EmberError, ShapeError
from ..ir.meta import (MemoryFormat, check_layout, contiguous_format, preserve_format,
                       sparse_coo)
from ..ir.registry import OPS
from ..ir.symbolic import SymbolicTensor
from ..ir.unbacked import UnbackedValue
from .conversions import check_device_available
from .device import default_device_or, device as Device
from .random import numpy_rng
from .tensor import Tensor


def _sizes(size) -> list[int]:
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        size = size[0]
    out = []
    for s in size:
        if not isinstance(s, (numbers.Integral,)) and not (isinstance(s, Tensor) and s.ndim == 0):
            if isinstance(s, UnbackedValue):    # ember.export: the refusal names the line
                s.__index__()
            raise TypeError(f"size must be a sequence of ints, got {s!r}")
        # an int stays itself: a traced size (ir/symdim.py's TracedSize) keeps the
        # polynomial ember.export's dynamic shapes read from the recorded op
        out.append(s if type(s) is not bool and isinstance(s, int) else int(s))
    return out


def _size_argument(name: str, sizes: tuple, size) -> list[int]:
    """The shape of zeros/ones/empty/rand/randn: positional ints, or a sequence given
    positionally or as the `size=` keyword (torch.zeros(size=(2, 3)))."""
    if size is None:
        return _sizes(sizes)
    if sizes:
        raise TypeError(f"{name}() got multiple values for argument 'size'")
    return _sizes((size,))


def _finish(t: Tensor, requires_grad: bool, device=None) -> Tensor:
    if device is not None:
        t = t.to(device)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer_dtype(data) -> dtypes.DType:
    """PyTorch's inference for nested Python data: bool < int < float (default) < complex."""
    if isinstance(data, np.ndarray):
        return dtypes.from_numpy_dtype(data.dtype)
    flat = np.asarray(data, dtype=object).reshape(-1) if not isinstance(data, (
        numbers.Number, np.generic)) else [data]
    if len(flat) == 0:
        return dtypes.get_default_dtype()
    if any(isinstance(x, (np.ndarray, np.generic)) for x in flat):
        # elements that were tensors, and NumPy scalars, keep their dtype; Python numbers
        # count at their default dtype; all promote together (torch.tensor([t0, t1]) of
        # 0-d int32 tensors: int32; torch.tensor(np.float64(1.5)): float64)
        return functools.reduce(dtypes.promote_types, (
            dtypes.from_numpy_dtype(x.dtype) if isinstance(x, (np.ndarray, np.generic))
            else dtypes.scalar_default_dtype(x) for x in flat))
    cat = max(dtypes.scalar_category(x if not isinstance(x, Tensor) else x.item())
              for x in flat)
    return {dtypes.Category.BOOL: dtypes.bool_, dtypes.Category.INT: dtypes.int64,
            dtypes.Category.FLOAT: dtypes.get_default_dtype(),
            dtypes.Category.COMPLEX: dtypes.get_default_dtype().to_complex()}[cat]


def _to_nested_numbers(data):
    if isinstance(data, Tensor):
        return data.detach()._array
    if isinstance(data, (list, tuple)):
        return [_to_nested_numbers(x) for x in data]
    return data


def _accepts_layout(factory):
    """PyTorch's factories take `layout=` and `pin_memory=`: strided (the only layout ember
    stores) and any pin_memory are accepted, another layout is refused naming the factory.
    Without device=, the result goes to the default device (ember.set_default_device)."""
    import functools

    @functools.wraps(factory)
    def wrapper(*args, layout=None, pin_memory=False, device=None, **kwargs):
        if layout is sparse_coo and factory.__name__ in ("zeros", "empty"):
            return _sparse_zeros(args, kwargs)
        check_layout(factory.__name__, layout)
        device = default_device_or(device)
        if device is not None:
            kwargs["device"] = device
        return factory(*args, **kwargs)
    return wrapper


def _sparse_zeros(args, kwargs):
    """zeros(..., layout=sparse_coo) / empty(...): a sparse tensor with no entries."""
    from .sparse_coo import sparse_coo_tensor
    size = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
    size = tuple(kwargs.pop("size", size))
    sparse = sparse_coo_tensor(size, dtype=kwargs.get("dtype"))
    return sparse.requires_grad_() if kwargs.get("requires_grad") else sparse


class ValueOverflowError(EmberError, ValueError, RuntimeError):
    """A Python number that does not fit the dtype it is stored as (torch raises
    RuntimeError "value cannot be converted ..." or ValueError "Overflow when unpacking
    long long": both are caught)."""


def warn_copy_construct(how: str, stacklevel: int = 4) -> None:
    """torch's warning when a tensor is copied through tensor()/new_tensor()."""
    warnings.warn("To copy construct from a tensor, it is recommended to use "
                  "sourceTensor.detach().clone() or sourceTensor.detach().clone()"
                  f".requires_grad_(True), rather than {how}(sourceTensor).",
                  UserWarning, stacklevel=stacklevel)


def _check_fits(arr: np.ndarray, dt: dtypes.DType) -> None:
    """torch.tensor stores each Python number with an overflow check: into an integer
    dtype a NaN, an infinity or a value out of range is refused (an unsigned type
    also takes negatives down to -max, which wrap: tensor([-1], dtype=uint8) is 255)."""
    if dt.category != dtypes.Category.INT or arr.size == 0 or arr.dtype.kind not in "iuf":
        return
    info = np.iinfo(dt.np_dtype)
    low = -int(info.max) if info.min == 0 else int(info.min)
    finite = bool(np.isfinite(arr).all()) if arr.dtype.kind == "f" else True
    if not finite or arr.min() < low or arr.max() > info.max:
        raise ValueOverflowError(f"tensor(): value cannot be converted to type {dt.name} "
                                 "without overflow")


def _python_data_array(data, dtype) -> tuple[np.ndarray, dtypes.DType]:
    """Nested Python data (numbers, lists, NumPy scalars and arrays, tensors) as an array
    and the dtype torch.tensor gives it."""
    data = _to_nested_numbers(data)
    try:
        arr = np.asarray(data)
    except ValueError as err:
        raise ShapeError(f"tensor(): nested data has inconsistent lengths: {err}") from None
    if arr.dtype == object and not _holds_only_numbers(arr):
        raise DTypeError(f"tensor(): could not infer a dtype for {type(data).__name__} data")
    dt = dtypes.as_dtype(dtype) if dtype is not None else _infer_dtype(data)
    past_int64 = arr.dtype == object or (arr.dtype == np.uint64 and dt.np_dtype != np.uint64
                                         and not isinstance(data, (np.ndarray, np.generic)))
    if past_int64 and dt.category == dtypes.Category.INT:
        # Python ints NumPy had to keep as uint64 or objects (a float dtype takes them)
        raise ValueOverflowError("tensor(): Overflow when unpacking long long: "
                                 f"{arr.reshape(-1).max()} does not fit {dt.name}")
    if not past_int64 and not isinstance(data, np.ndarray) and dtype is not None:
        _check_fits(arr, dt)
    return arr, dt


def _holds_only_numbers(arr: np.ndarray) -> bool:
    return all(isinstance(x, numbers.Number) for x in arr.reshape(-1))


@_accepts_layout
def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists, numbers, arrays, tensors)."""
    if isinstance(data, Tensor):
        warn_copy_construct("ember.tensor")
        arr = data.detach()._array
        dt = dtypes.as_dtype(dtype) if dtype is not None else data.dtype
    else:
        arr, dt = _python_data_array(data, dtype)
    with np.errstate(over="ignore", invalid="ignore"):     # 1e10 as float16 is inf
        arr = arr.astype(dt.np_dtype, copy=False)
    return _finish(Tensor._from_array(arr), requires_grad, device)


@_accepts_layout
def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Shares memory with a numpy array or tensor when dtype allows, else copies."""
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtypes.as_dtype(dtype))
    if isinstance(data, np.ndarray) and (dtype is None or
                                         dtypes.as_dtype(dtype).np_dtype == data.dtype):
        return from_numpy(data)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor sharing `arr`'s memory (PyTorch's from_numpy); negative strides refused."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"from_numpy expected np.ndarray (got {type(arr).__name__})")
    if any(s < 0 for s in arr.strides):
        raise ShapeError("from_numpy: arrays with negative strides are not supported; "
                         "use arr.copy() first")
    dtypes.from_numpy_dtype(arr.dtype)
    from ..ir.ops.shape import flat_storage
    from .tensor import Storage
    if not arr.flags.writeable:
        arr = arr.copy()
    return Tensor._make(arr, Storage(flat_storage(arr)))


def _rebuild_tensor(arr, requires_grad, memory_format):
    t = Tensor._from_array(arr, memory_format)
    t.requires_grad = requires_grad
    return t


# [fn(size, fill_value, dtype) -> Tensor]: the CPU eager fill (eager_fast.fill_call), set
# when the eager frontend installs; `full` with no device and the contiguous format
FILL_CALL: list = []


def _full(size: list, fill_value, dtype, device, requires_grad, memory_format) -> Tensor:
    if device is None and memory_format is contiguous_format and FILL_CALL:
        t = FILL_CALL[0](size, fill_value, dtype)
    else:
        t = OPS["full"](size, fill_value, dtype=dtype, device=device,
                        memory_format=memory_format)
    return _finish(t, requires_grad, device) if requires_grad or device is not None else t


@_accepts_layout
def full(size, fill_value, *, dtype=None, device=None, requires_grad=False,
         memory_format=contiguous_format) -> Tensor:
    return _full(list(size), fill_value, dtype, device, requires_grad, memory_format)


@_accepts_layout
def zeros(*sizes, size=None, dtype=None, device=None, requires_grad=False,
          memory_format=contiguous_format) -> Tensor:
    return _full(_size_argument("zeros", sizes, size), 0, dtype or dtypes.get_default_dtype(),
                 device, requires_grad, memory_format)


@_accepts_layout
def ones(*sizes, size=None, dtype=None, device=None, requires_grad=False,
         memory_format=contiguous_format) -> Tensor:
    return _full(_size_argument("ones", sizes, size), 1, dtype or dtypes.get_default_dtype(),
                 device, requires_grad, memory_format)


@_accepts_layout
def empty(*sizes, size=None, dtype=None, device=None, requires_grad=False,
          memory_format=contiguous_format) -> Tensor:
    """Uninitialized in PyTorch; ember fills with zeros so results never depend on garbage."""
    return _full(_size_argument("empty", sizes, size), 0, dtype or dtypes.get_default_dtype(),
                 device, requires_grad, memory_format)


_LIKE_FILLS = {"zeros_like": 0, "ones_like": 1}


def _like(op_name, t, dtype, memory_format, requires_grad, device, **extra):
    if device is not None and t.device.type == "meta" and Device(device).type != "meta":
        # a meta tensor has no data to move: the result is made on `device` (as torch's
        # empty_like(meta_tensor, device="cpu"), which loaders use to materialize buffers)
        fill = _LIKE_FILLS.get(op_name, extra.get("fill_value"))
        return _full(list(t.shape), fill, dtype or t.dtype, device, requires_grad,
                     contiguous_format)
    if dtype is None and memory_format is preserve_format:     # the schema's defaults:
        out = OPS[op_name](t, *extra.values())                  # a shorter seen-call key
    else:
        out = OPS[op_name](t, *extra.values(), dtype=dtype, memory_format=memory_format)
    return _finish(out, requires_grad, device) if requires_grad or device is not None else out


@_accepts_layout
def zeros_like(input, *, dtype=None, device=None, requires_grad=False,
               memory_format=preserve_format) -> Tensor:
    return _like("zeros_like", input, dtype, memory_format, requires_grad, device)


@_accepts_layout
def ones_like(input, *, dtype=None, device=None, requires_grad=False,
              memory_format=preserve_format) -> Tensor:
    return _like("ones_like", input, dtype, memory_format, requires_grad, device)


@_accepts_layout
def empty_like(input, *, dtype=None, device=None, requires_grad=False,
               memory_format=preserve_format) -> Tensor:
    return zeros_like(input, dtype=dtype, device=device, requires_grad=requires_grad,
                      memory_format=memory_format)


@_accepts_layout
def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False,
              memory_format=preserve_format) -> Tensor:
    return _like("full_like", input, dtype, memory_format, requires_grad, device,
                 fill_value=fill_value)


def _with_out(factory):
    """PyTorch's out= for a factory: the result (in out's dtype unless dtype= says
    otherwise) is written into out, resized to fit."""
    import functools

    @functools.wraps(factory)
    def wrapper(*args, out=None, **kwargs):
        if out is None:
            return factory(*args, **kwargs)
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = out.dtype
        result = factory(*args, **kwargs)
        if tuple(out.shape) != tuple(result.shape):
            out.resize_(list(result.shape))
        out.copy_(result)
        return out
    return wrapper


@_accepts_layout
@_with_out
def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    start, end, step = (v.item() if isinstance(v, Tensor) else v for v in (start, end, step))
    if not all(np.isfinite(complex(v)) for v in (start, end)):
        raise ShapeError(f"arange: unsupported range: {start} -> {end}")
    if dtype is not None and dtypes.as_dtype(dtype).category <= dtypes.Category.INT:
        # PyTorch casts the bounds and the step to the integer type first (0.5 -> 0)
        if step != 0 and int(step) == 0:
            raise ValueError("step must be nonzero")
        narrow = dtypes.as_dtype(dtype) != dtypes.int64
        if narrow and (end - start) / step > 0:
            # torch counts the elements of narrower integer types from the float bounds
            # (arange(3.1, dtype=int32) has 4), then steps from the truncated start
            count = math.ceil((end - start) / step)
            start, step = int(start), int(step)
            end = start + count * step
        start, end, step = int(start), int(end), int(step)
    return _finish(OPS["arange"](start, end, step, dtype=dtype), requires_grad, device)


def _check_steps(steps) -> None:
    """PyTorch's rules for linspace/logspace's steps: an int (a TypeError otherwise), >= 0."""
    if isinstance(steps, Tensor):
        steps = steps.item()
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"steps must be an int, not {type(steps).__name__}")
    if steps < 0:
        raise ShapeError("number of steps must be non-negative")


@_accepts_layout
@_with_out
def linspace(start, end, steps: int, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    _check_steps(steps)
    dt = _space_dtype(start, end, dtype)
    if _traced(start) or _traced(end):
        return _finish(_traced_linspace(start, end, int(steps), dt), requires_grad, device)
    start, end = _endpoints(start, end, dt)
    arr = np.linspace(start, end, int(steps),
                      dtype=np.complex128 if dt.is_complex else np.float64)
    if not (dt.is_floating_point or dt.is_complex) and steps > 1:  # torch's two-sided steps
        idx = np.arange(int(steps))
        step = (end - start) / max(int(steps) - 1, 1)
        arr = np.where(idx < int(steps) // 2, start + step * idx,
                       end - step * (int(steps) - 1 - idx))
    return _finish(Tensor._from_array(arr.astype(dt.np_dtype)), requires_grad, device)


def _traced(value) -> bool:
    """A tensor end of linspace/logspace that has no values yet (traced by vmap, grad,
    ember.compile): the points are then computed with ops, not NumPy."""
    return isinstance(value, SymbolicTensor)


def _traced_linspace(start, end, steps: int, dt):
    """torch's linspace from ops: the first half of the points stepped from `start`, the
    rest back from `end` (so both ends are exact), in float64 then cast to `dt`."""
    work = dtypes.complex128 if dt.is_complex else dtypes.float64
    start, end = (OPS["convert_element_type"](v, work) if isinstance(v, SymbolicTensor)
                  else v for v in (start, end))
    if not (dt.is_floating_point or dt.is_complex):
        start, end = (OPS["trunc"](v) if isinstance(v, SymbolicTensor) else float(math.trunc(v))
                      for v in (start, end))
    index = OPS["arange"](0, steps, 1, dtype=work)
    step = (end - start) / max(steps - 1, 1)
    halfway = steps // 2 if steps > 1 else 1        # one point: `start`
    points = OPS["where"](index < halfway, start + step * index,
                          end - step * ((steps - 1) - index))
    return OPS["convert_element_type"](points, dt)


def _space_dtype(start, end, dtype) -> dtypes.DType:
    """linspace/logspace's dtype: dtype=, else the default float dtype, or its complex
    partner when an end is complex (torch.linspace(0, 1j, 3) is complex64)."""
    if dtype:
        return dtypes.as_dtype(dtype)
    ends = [v.item() if isinstance(v, Tensor) else v for v in (start, end)]
    complex_end = any(isinstance(v, (complex, np.complexfloating)) for v in ends)
    default = dtypes.get_default_dtype()
    return default.to_complex() if complex_end else default


def _endpoints(start, end, dt):
    """linspace/logspace's ends as floats; an integer dtype truncates them first, as
    torch does (linspace(4.3, -3, 50, dtype=int64) starts 4, 3, ...)."""
    if dt.is_complex:
        return complex(start), complex(end)
    start, end = float(start), float(end)
    if not dt.is_floating_point:
        return float(math.trunc(start)), float(math.trunc(end))
    return start, end


@_accepts_layout
@_with_out
def logspace(start, end, steps: int, base: float = 10.0, *, dtype=None, device=None,
             requires_grad=False) -> Tensor:
    _check_steps(steps)
    dt = _space_dtype(start, end, dtype)
    if _traced(start) or _traced(end):
        exponents = _traced_linspace(start, end, int(steps), dtypes.float64)
        return _finish(OPS["pow"](float(base), exponents).to(dt), requires_grad, device)
    start, end = _endpoints(start, end, dt)
    arr = np.logspace(start, end, int(steps), base=base,
                      dtype=np.complex128 if dt.is_complex else np.float64)
    return _finish(Tensor._from_array(arr.astype(dt.np_dtype)), requires_grad, device)


@_accepts_layout
@_with_out
def eye(n: int, m: int | None = None, *, dtype=None, device=None, requires_grad=False):
    if n < 0 or (m is not None and m < 0):
        raise ShapeError(f"n must be greater or equal to 0, got {n}" if n < 0 else
                         f"m must be greater or equal to 0, got {m}")
    dt = dtypes.as_dtype(dtype) if dtype else dtypes.get_default_dtype()
    return _finish(Tensor._from_array(np.eye(n, m, dtype=dt.np_dtype)), requires_grad, device)


def _float_dtype(dtype):
    dt = dtypes.as_dtype(dtype) if dtype else dtypes.get_default_dtype()
    if not (dt.is_floating_point or dt.is_complex):
        raise DTypeError(f"random floats requested with a non-float dtype {dt}")
    return dt


def _recording() -> bool:
    """True while a dispatch mode sees op calls (ember.compile's capture, jit.trace, the
    profiler). The random factories draw with NumPy outside ops; under a mode they draw
    through the sampling ops instead, so a captured graph holds a node that draws anew
    at every run rather than the capture's values baked in as a constant (torch.compile
    and torch.jit.trace record aten::rand the same way)."""
    return bool(dispatch.active_modes())


def _recorded_draw(sampler: str, shape, generator, dt, device, memory_format,
                   requires_grad, *params):
    """`sampler` (uniform/normal/random) over a fresh tensor of `shape`: its values are
    the sampler's first parameter for normal (the mean), otherwise ignored."""
    blank = full(shape, 0, dtype=dt, device=device, memory_format=memory_format)
    return _finish(OPS[sampler](blank, *params, generator=generator), requires_grad)


def _random(values: np.ndarray, dtype, requires_grad, device, memory_format=contiguous_format):
    dt = _float_dtype(dtype)
    values = values.astype(dt.np_dtype)      # a fresh C-ordered array: adopted as it is
    t = Tensor._from_array(values, memory_format, copy=memory_format is not contiguous_format)
    return _finish(t, requires_grad, device) if requires_grad or device is not None else t


@_accepts_layout
def rand(*sizes, size=None, generator=None, dtype=None, device=None, requires_grad=False,
         memory_format=contiguous_format) -> Tensor:
    shape = _size_argument("rand", sizes, size)
    if _recording():
        return _recorded_draw("uniform", shape, generator, _float_dtype(dtype), device,
                              memory_format, requires_grad, 0.0, 1.0)
    values = numpy_rng(generator).random(shape)
    return _random(values, dtype, requires_grad, device, memory_format)


@_accepts_layout
def randn(*sizes, size=None, generator=None, dtype=None, device=None, requires_grad=False,
          memory_format=contiguous_format) -> Tensor:
    shape = _size_argument("randn", sizes, size)
    if _recording():
        dt = _float_dtype(dtype)
        std = full(shape, 1.0, dtype=dt, device=device, memory_format=memory_format)
        return _recorded_draw("normal", shape, generator, dt, device, memory_format,
                              requires_grad, std)
    values = numpy_rng(generator).standard_normal(shape)
    return _random(values, dtype, requires_grad, device, memory_format)


@_accepts_layout
def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad=False) -> Tensor:
    if size is None:
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    dt = dtypes.as_dtype(dtype) if dtype else dtypes.int64
    if _recording():
        return _recorded_draw("random", _sizes((size,)), generator, dt, device,
                              contiguous_format, requires_grad, low, high)
    values = numpy_rng(generator).integers(low, high, size=_sizes((size,)))
    return _finish(Tensor._from_array(values.astype(dt.np_dtype)), requires_grad, device)


@_accepts_layout
def randperm(n: int, *, generator=None, dtype=None, device=None, requires_grad=False):
    dt = dtypes.as_dtype(dtype) if dtype else dtypes.int64
    if _recording():                        # the order of n independent uniform draws
        keys = _recorded_draw("uniform", [int(n)], generator, dtypes.float64, device,
                              contiguous_format, False, 0.0, 1.0)
        return _finish(OPS["argsort"](keys).to(dt), requires_grad)
    values = numpy_rng(generator).permutation(int(n))
    return _finish(Tensor._from_array(values.astype(dt.np_dtype)), requires_grad, device)


@_accepts_layout
def rand_like(input, *, generator=None, dtype=None, device=None, requires_grad=False,
              memory_format=preserve_format) -> Tensor:
    fmt = input.memory_format if memory_format is preserve_format else memory_format
    return rand(*input.shape, generator=generator, dtype=dtype or input.dtype,
                device=_like_device(input, device), requires_grad=requires_grad,
                memory_format=fmt)


@_accepts_layout
def randn_like(input, *, generator=None, dtype=None, device=None, requires_grad=False,
               memory_format=preserve_format) -> Tensor:
    fmt = input.memory_format if memory_format is preserve_format else memory_format
    return randn(*input.shape, generator=generator, dtype=dtype or input.dtype,
                 device=_like_device(input, device), requires_grad=requires_grad,
                 memory_format=fmt)


@_accepts_layout
def randint_like(input, low=0, high=None, *, generator=None, dtype=None, device=None,
                 requires_grad=False) -> Tensor:
    return randint(low, high, list(input.shape), generator=generator,
                   dtype=dtype or input.dtype, device=_like_device(input, device),
                   requires_grad=requires_grad)


def _like_device(input, device):
    """A *_like factory's device: the one given, else the input's (PyTorch's default)."""
    storage = getattr(input, "_storage", None)     # a value traced by a transform has none
    if device is not None or (storage is not None and storage.device == "cpu"):
        return device
    return input.device


@_accepts_layout
def scalar_tensor(value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A 0-d tensor of `value`, in the default float dtype unless dtype= says otherwise
    (torch.scalar_tensor(3) is float32, where torch.tensor(3) is int64)."""
    if isinstance(value, Tensor):
        value = value.item()
    return tensor(value, dtype=dtype or dtypes.get_default_dtype(), device=device,
                  requires_grad=requires_grad)


__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "annotations", "numbers", "np", "dtypes", "Tensor", "OPS", "MemoryFormat", "Device",
    "DTypeError", "ShapeError", "check_device_available", "numpy_rng", "default_device_or",
    "contiguous_format", "preserve_format", "check_layout", "FILL_CALL", "EmberError",
    "ValueOverflowError", "warn_copy_construct", "warnings")]
