"""The ops the device claims. Each is called with the op's arguments in schema order and
returns tensors on the device; everything else falls back through the CPU."""
from __future__ import annotations

import ember
from ember.utils.backend_registration import device_buffer, make_device_tensor

from .memory import MEMORY, xp

# how many times each claimed kernel ran (a test checks that they did)
CALLS: dict[str, int] = {}


def _array(value):
    """A device tensor as the device's strided array; Python scalars pass through."""
    if not isinstance(value, ember.Tensor):
        return value
    b = device_buffer(value)
    return MEMORY.typed(b.handle, b.dtype, b.offset, b.shape, b.strides)


def _tensor(array, *operands) -> ember.Tensor:
    """A new device tensor holding `array`, on the device of the first tensor operand."""
    like = next(t for t in operands if isinstance(t, ember.Tensor))
    array = xp.ascontiguousarray(array)
    handle = MEMORY.adopt(array)
    return make_device_tensor(handle, array.nbytes, like.device, array.shape, array.dtype)


def _counted(name):
    def wrap(fn):
        def kernel(*args):
            CALLS[name] = CALLS.get(name, 0) + 1
            return fn(*args)
        kernel.__name__ = name
        return kernel
    return wrap


@_counted("add")
def add(a, b, alpha=1):
    return _tensor(_array(a) + alpha * _array(b), a, b)


@_counted("mul")
def mul(a, b):
    return _tensor(_array(a) * _array(b), a, b)


@_counted("relu")
def relu(a):
    return _tensor(xp.maximum(_array(a), 0).astype(_array(a).dtype), a)


@_counted("mm")
def mm(a, b):
    return _tensor(_array(a) @ _array(b), a)


@_counted("linear")
def linear(x, weight, bias=None):
    out = _array(x) @ _array(weight).T
    return _tensor(out if bias is None else out + _array(bias), x)


@_counted("copy_")
def copy_(dst, src):
    """dst[...] = src on the device (in-place ops and optimizer updates end here)."""
    _array(dst)[...] = _array(src).astype(_array(dst).dtype)


OPS = {"add": add, "mul": mul, "relu": relu, "mm": mm, "linear": linear, "copy_": copy_}
