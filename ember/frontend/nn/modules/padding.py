"""The padding layers (ZeroPad2d, ReflectionPad1d, ReplicationPad3d, ConstantPad2d,
CircularPad2d, ...): F.pad with the mode and the padding each fixes, PyTorch's argument
rules (an int pads every side; a tuple lists (left, right, top, bottom, front, back))."""
from __future__ import annotations

from .. import functional as F
from .module import Module


def _expand(padding, dims: int, name: str) -> tuple:
    if isinstance(padding, int):
        return (padding,) * (2 * dims)
    padding = tuple(padding)
    if len(padding) != 2 * dims or not all(isinstance(p, int) for p in padding):
        raise ValueError(f"{name}: padding must be an int or a tuple of {2 * dims} ints, got "
                         f"{padding!r}")
    return padding


class _PadNd(Module):
    mode = "constant"
    dims = 1

    def __init__(self, padding, value: float | None = None) -> None:
        super().__init__()
        self.padding = _expand(padding, self.dims, type(self).__name__)
        if value is not None:
            self.value = value

    def forward(self, input):
        if input.ndim not in (self.dims + 1, self.dims + 2):
            raise ValueError(f"{type(self).__name__}: expected {self.dims + 1}D or "
                             f"{self.dims + 2}D input (got {input.ndim}D input), shape "
                             f"{list(input.shape)}")
        if self.mode == "constant":
            return F.pad(input, list(self.padding), "constant", getattr(self, "value", 0.0))
        return F.pad(input, list(self.padding), self.mode)

    def extra_repr(self) -> str:
        if self.mode == "constant" and type(self).__name__.startswith("Constant"):
            return f"padding={self.padding}, value={self.value}"
        return f"{self.padding}"


def _pad_class(name: str, mode: str, dims: int, takes_value: bool):
    def __init__(self, padding, value: float = 0.0) -> None:
        _PadNd.__init__(self, padding, value)

    def __init_no_value__(self, padding) -> None:
        _PadNd.__init__(self, padding, 0.0 if mode == "constant" else None)

    return type(name, (_PadNd,), {"mode": mode, "dims": dims, "__module__": __name__,
                                  "__init__": __init__ if takes_value else __init_no_value__,
                                  "__qualname__": name})


ConstantPad1d = _pad_class("ConstantPad1d", "constant", 1, True)
ConstantPad2d = _pad_class("ConstantPad2d", "constant", 2, True)
ConstantPad3d = _pad_class("ConstantPad3d", "constant", 3, True)
ZeroPad1d = _pad_class("ZeroPad1d", "constant", 1, False)
ZeroPad2d = _pad_class("ZeroPad2d", "constant", 2, False)
ZeroPad3d = _pad_class("ZeroPad3d", "constant", 3, False)
ReflectionPad1d = _pad_class("ReflectionPad1d", "reflect", 1, False)
ReflectionPad2d = _pad_class("ReflectionPad2d", "reflect", 2, False)
ReflectionPad3d = _pad_class("ReflectionPad3d", "reflect", 3, False)
ReplicationPad1d = _pad_class("ReplicationPad1d", "replicate", 1, False)
ReplicationPad2d = _pad_class("ReplicationPad2d", "replicate", 2, False)
ReplicationPad3d = _pad_class("ReplicationPad3d", "replicate", 3, False)
CircularPad1d = _pad_class("CircularPad1d", "circular", 1, False)
CircularPad2d = _pad_class("CircularPad2d", "circular", 2, False)
CircularPad3d = _pad_class("CircularPad3d", "circular", 3, False)

__all__ = [n for n in dir() if n.endswith(("Pad1d", "Pad2d", "Pad3d"))]
