"""ember.finfo / ember.iinfo: the numerical limits of a dtype, with torch's fields
(bits, eps, max, min, tiny, smallest_normal, resolution; bits, max, min) and errors.
Values come from NumPy (ml_dtypes for bfloat16); complex dtypes report their real part's
limits, as in PyTorch."""
from __future__ import annotations

import numpy as np

from ..ir import dtypes
from ..ir.dtypes import Category

_REAL_PART = {"complex64": dtypes.float32, "complex128": dtypes.float64}


def _numpy_finfo(dtype):
    if dtype.name == "bfloat16" or dtype.name.startswith("float8"):
        import ml_dtypes  # noqa: PLC0415 - a dependency; NumPy has no bfloat16 or float8
        return ml_dtypes.finfo(getattr(ml_dtypes, dtype.name))
    return np.finfo(dtype.np_dtype)


class finfo:  # noqa: N801 - torch's name
    """Limits of a floating point (or complex) dtype; the default dtype when omitted."""

    def __init__(self, type=None) -> None:  # noqa: A002 - torch's keyword
        dtype = dtypes.get_default_dtype() if type is None else type
        if not isinstance(dtype, dtypes.DType) or dtype.category not in (Category.FLOAT,
                                                                         Category.COMPLEX):
            raise TypeError("torch.finfo() requires a floating point input type. Use "
                            "torch.iinfo to handle 'torch.finfo'")
        dtype = _REAL_PART.get(dtype.name, dtype)
        info = _numpy_finfo(dtype)
        self.bits = dtype.itemsize * 8
        self.eps, self.max, self.min = float(info.eps), float(info.max), float(info.min)
        self.tiny = self.smallest_normal = float(info.smallest_normal)
        self.resolution = float(10.0 ** -info.precision)
        self.dtype = dtype.name

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, "
                f"eps={self.eps:g}, smallest_normal={self.smallest_normal:g}, "
                f"tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:  # noqa: N801 - torch's name
    """Limits of an integer dtype."""

    def __init__(self, type) -> None:  # noqa: A002 - torch's keyword
        if isinstance(type, dtypes.DType) and type.category == Category.BOOL:
            raise TypeError("torch.bool is not supported by torch.iinfo")
        if not isinstance(type, dtypes.DType) or type.category != Category.INT:
            raise TypeError("torch.iinfo() requires an integer input type. Use torch.finfo "
                            "to handle 'torch.iinfo'")
        info = np.iinfo(type.np_dtype)
        self.bits, self.min, self.max = type.itemsize * 8, int(info.min), int(info.max)
        self.dtype = type.name

    def __repr__(self) -> str:
        return f"iinfo(min={self.min:g}, max={self.max:g}, dtype={self.dtype})"
