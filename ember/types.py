"""ember.types: torch.types' aliases for annotations (Number, Device, ...)."""
from __future__ import annotations

from typing import Union

from .frontend.device import device as _device
from .frontend.tensor import Size as _size  # noqa: F401 - torch.types._size
from .ir.dtypes import DType as _dtype  # noqa: F401 - torch.types._dtype

Number = Union[int, float, bool]
py_sym_types = (int, float, bool)
Device = Union[_device, str, int, None]
IntLikeType = int
FloatLikeType = float
BoolLikeType = bool

__all__ = ["Number", "Device", "IntLikeType", "FloatLikeType", "BoolLikeType"]
