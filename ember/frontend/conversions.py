"""Tensor.to(...) with PyTorch's overloads: to(dtype), to(device), to(other),
to(device, dtype), and the keywords dtype/device/copy/memory_format."""
from __future__ import annotations

from ..ir import dtypes
from ..ir.dtypes import DType
from ..ir.errors import DeviceError
from ..ir.meta import MemoryFormat, preserve_format
from ..ir.registry import OPS
from .device import device as Device


def _parse_to_args(t, args, kwargs):
    dtype = kwargs.pop("dtype", None)
    dev = kwargs.pop("device", None)
    copy = kwargs.pop("copy", False)
    memory_format = kwargs.pop("memory_format", preserve_format)
    non_blocking = kwargs.pop("non_blocking", False)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword arguments {list(kwargs)}")
    for a in args:
        if a is None:               # to(None) / to(None, dtype): the device stays
            continue
        # identity tests: `a in (float, ...)` would compare a tensor argument with ==
        if isinstance(a, DType) or any(a is kind for kind in (float, int, bool, complex)):
            dtype = a
        elif isinstance(a, (str, Device)):
            dev = a
        elif hasattr(a, "dtype") and hasattr(a, "device"):     # to(other): its dtype, device
            dtype, dev = a.dtype, a.device
        elif isinstance(a, bool):
            copy = a
        else:
            raise TypeError(f"to() received an invalid combination of arguments: {a!r}")
    return dtype, dev, copy, memory_format, non_blocking


def _traced_argument_tracer(args: tuple, kwargs: dict):
    """The fx tracer of a Proxy among `to`'s arguments (`c.to(device=x.device)` on a
    constant `c` while tracing), else None."""
    for value in (*args, *kwargs.values()):
        tracer = getattr(value, "tracer", None)
        if tracer is not None and hasattr(value, "node"):
            return tracer
    return None


def tensor_to(t, *args, **kwargs):
    tracer = _traced_argument_tracer(args, kwargs)
    if tracer is not None:                  # recorded as torch.fx records it: a method call
        return tracer.create_proxy("call_method", "to", (t, *args), kwargs)
    dtype, dev, copy, memory_format, non_blocking = _parse_to_args(t, args, dict(kwargs))
    dtype = dtypes.as_dtype(dtype) if dtype is not None else None
    if isinstance(memory_format, str):
        memory_format = MemoryFormat(memory_format)
    if dev is not None:
        target = Device(dev)
        if str(target.type) != str(t.device).split(":")[0]:
            if getattr(t, "is_symbolic", False):
                raise_traced_device_move(t, target)
            from . import devices
            from .pinned import non_blocking_copies
            with non_blocking_copies(non_blocking):
                t = devices.move(t, target)
    out = t
    if dtype is not None and dtype is not out.dtype:
        out = OPS["convert_element_type"](out, dtype)
    if memory_format is not preserve_format and not out.is_contiguous(memory_format):
        out = OPS["contiguous"](out, memory_format=memory_format)
    if copy and out is t:
        out = OPS["clone"](t)
    return out


def check_device_available(dev: Device) -> None:
    from ..backends import registry
    if dev.type in registry.DEVICES:            # CUDA and devices packages registered
        from .device_backend import hooks_for
        hooks_for(dev.type).check(dev)
    elif dev.type not in ("cpu", "meta"):
        raise DeviceError(f"device '{dev}' is not available: this build of ember runs on the "
                          "CPU only (ember.cuda.is_available() is False)")


def raise_traced_device_move(t, target) -> None:
    """A compiled graph runs on one device: moving a traced value is refused by name."""
    from ..ir.errors import TraceError, at_user_line
    raise TraceError(f"Tensor.to('{target}'): a tensor on {t.device} cannot move to another "
                     f"device inside a function being traced into a graph (ember.compile); "
                     f"move the inputs before calling it (the line runs eagerly){at_user_line()}")
