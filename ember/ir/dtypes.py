"""Scalar types and PyTorch's type promotion.

`DType` objects are singletons (`ember.float32` ...). Each knows its numpy dtype
(bfloat16 comes from ml_dtypes, imported the first time bfloat16's numpy dtype is
needed: loading it costs most of a second), its category (bool < int < float < complex) and
its short IR name (`f32`). `result_type` implements PyTorch's promotion: tensors
with dims outrank 0-d tensors, which outrank Python scalars, and a higher
category always wins (int tensor + 2.5 -> default float dtype).
"""
from __future__ import annotations

import enum
import sys
from dataclasses import dataclass

import numpy as np

from .errors import DTypeError


class Category(enum.IntEnum):
    BOOL = 0
    INT = 1
    FLOAT = 2
    COMPLEX = 3


@dataclass(frozen=True, eq=False)
class DType:
    name: str          # PyTorch's name: 'float32'
    short: str         # IR name: 'f32'
    category: Category
    itemsize: int
    # np_dtype: an instance attribute set by _make, or on first use for bfloat16

    def __getattr__(self, name: str):
        if name == "np_dtype" and self.name == "bfloat16":
            npd = _load_bfloat16()
            object.__setattr__(self, "np_dtype", npd)
            return npd
        if name == "np_dtype" and self.name in _FLOAT8_NAMES:
            npd = _load_ml_dtype(self)
            object.__setattr__(self, "np_dtype", npd)
            return npd
        raise AttributeError(f"'DType' object has no attribute '{name}'")

    def __repr__(self) -> str:
        return f"ember.{self.name}"

    def __reduce__(self):  # pickle as the singleton
        return (dtype_from_name, (self.name,))

    @property
    def is_floating_point(self) -> bool:
        return self.category == Category.FLOAT

    @property
    def is_complex(self) -> bool:
        return self.category == Category.COMPLEX

    @property
    def scalar_type_name(self) -> str:
        """PyTorch's C++ ScalarType name, used in its error messages ('Float', 'Long')."""
        return _SCALAR_TYPE_NAMES[self.name]

    @property
    def is_signed(self) -> bool:
        return self.name not in ("bool", "uint8", "quint8", "uint16", "uint32", "uint64")

    @property
    def is_quantized(self) -> bool:
        """quint8/qint8/qint32: the values are integers standing for scale * (q - zero_point);
        `np_dtype` is the integer storage type (what `int_repr()` returns)."""
        return self.name in _QUANTIZED_NAMES

    def to_real(self) -> "DType":
        """complex64 -> float32; other dtypes unchanged."""
        return {complex64: float32, complex128: float64}.get(self, self)

    def to_complex(self) -> "DType":
        """float32 -> complex64 (float16/bfloat16 too, as PyTorch's CPU build does)."""
        return {float64: complex128, complex64: complex64, complex128: complex128}.get(
            self, complex64)


_SCALAR_TYPE_NAMES = {"bool": "Bool", "uint8": "Byte", "int8": "Char", "int16": "Short",
                      "int32": "Int", "int64": "Long", "float16": "Half",
                      "bfloat16": "BFloat16", "float32": "Float", "float64": "Double",
                      "complex64": "ComplexFloat", "complex128": "ComplexDouble",
                      "quint8": "QUInt8", "qint8": "QInt8", "qint32": "QInt32",
                      "uint16": "UInt16", "uint32": "UInt32", "uint64": "UInt64",
                      "float8_e4m3fn": "Float8_e4m3fn", "float8_e5m2": "Float8_e5m2",
                      "float8_e4m3fnuz": "Float8_e4m3fnuz", "float8_e5m2fnuz": "Float8_e5m2fnuz",
                      "float8_e8m0fnu": "Float8_e8m0fnu"}
_QUANTIZED_NAMES = frozenset({"quint8", "qint8", "qint32"})
_FLOAT8_NAMES = frozenset({"float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                           "float8_e5m2fnuz", "float8_e8m0fnu"})


def _make(name, short, npd, cat, itemsize=None):
    """A DType; npd None: its numpy dtype is loaded on first use (bfloat16)."""
    if npd is None:
        return DType(name, short, cat, itemsize)
    npd = np.dtype(npd)
    dtype = DType(name, short, cat, npd.itemsize)
    object.__setattr__(dtype, "np_dtype", npd)
    return dtype


def _load_ml_dtype(dtype: "DType") -> np.dtype:
    import ml_dtypes
    npd = np.dtype(getattr(ml_dtypes, dtype.name))
    _BY_NP[npd] = dtype
    return npd


def _load_bfloat16() -> np.dtype:
    import ml_dtypes
    npd = np.dtype(ml_dtypes.bfloat16)
    _BY_NP[npd] = bfloat16
    return npd


bool_ = _make("bool", "b8", np.bool_, Category.BOOL)
uint8 = _make("uint8", "u8", np.uint8, Category.INT)
int8 = _make("int8", "i8", np.int8, Category.INT)
int16 = _make("int16", "i16", np.int16, Category.INT)
int32 = _make("int32", "i32", np.int32, Category.INT)
int64 = _make("int64", "i64", np.int64, Category.INT)
float16 = _make("float16", "f16", np.float16, Category.FLOAT)
bfloat16 = _make("bfloat16", "bf16", None, Category.FLOAT, itemsize=2)
float32 = _make("float32", "f32", np.float32, Category.FLOAT)
float64 = _make("float64", "f64", np.float64, Category.FLOAT)
complex64 = _make("complex64", "c64", np.complex64, Category.COMPLEX)
complex128 = _make("complex128", "c128", np.complex128, Category.COMPLEX)

ALL_DTYPES = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32,
              float64, complex64, complex128)
FLOAT_DTYPES = (float16, bfloat16, float32, float64)
INT_DTYPES = (uint8, int8, int16, int32, int64)

# Quantized dtypes (torch.quint8 ...) are kept out of ALL_DTYPES and the numpy lookup:
# their storage is a plain integer array, and no op promotes to or from them.
quint8 = _make("quint8", "qu8", np.uint8, Category.INT)
qint8 = _make("qint8", "qi8", np.int8, Category.INT)
qint32 = _make("qint32", "qi32", np.int32, Category.INT)
QUANTIZED_DTYPES = (quint8, qint8, qint32)

# torch's "barebones" unsigned types: tensors of them exist (from NumPy, by conversion) and
# take the ops NumPy computes, but, as in torch, they promote with no other integer type.
uint16 = _make("uint16", "u16", np.uint16, Category.INT)
uint32 = _make("uint32", "u32", np.uint32, Category.INT)
uint64 = _make("uint64", "u64", np.uint64, Category.INT)
BAREBONES_UINT_DTYPES = (uint16, uint32, uint64)

# torch's float8 types (NumPy dtypes from ml_dtypes, loaded on first use): storage and
# conversion types; as in torch, they promote with no other type
float8_e4m3fn = _make("float8_e4m3fn", "f8e4m3fn", None, Category.FLOAT, itemsize=1)
float8_e5m2 = _make("float8_e5m2", "f8e5m2", None, Category.FLOAT, itemsize=1)
float8_e4m3fnuz = _make("float8_e4m3fnuz", "f8e4m3fnuz", None, Category.FLOAT, itemsize=1)
float8_e5m2fnuz = _make("float8_e5m2fnuz", "f8e5m2fnuz", None, Category.FLOAT, itemsize=1)
float8_e8m0fnu = _make("float8_e8m0fnu", "f8e8m0fnu", None, Category.FLOAT, itemsize=1)
FLOAT8_DTYPES = (float8_e4m3fn, float8_e5m2, float8_e4m3fnuz, float8_e5m2fnuz, float8_e8m0fnu)

_EXTRA_DTYPES = QUANTIZED_DTYPES + BAREBONES_UINT_DTYPES + FLOAT8_DTYPES
_BY_NAME = {d.name: d for d in ALL_DTYPES + _EXTRA_DTYPES} | \
    {d.short: d for d in ALL_DTYPES + _EXTRA_DTYPES}
_BY_NAME |= {"half": float16, "float": float32, "double": float64, "long": int64,
             "int": int32, "short": int16, "cfloat": complex64, "cdouble": complex128}
_BY_NP = {d.np_dtype: d for d in ALL_DTYPES + BAREBONES_UINT_DTYPES if d is not bfloat16}


class _Defaults:
    float_dtype: DType = float32


DEFAULTS = _Defaults()


def dtype_from_name(name: str) -> DType:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise DTypeError(f"unknown dtype {name!r}; known: {sorted(_BY_NAME)}") from None


def from_numpy_dtype(npd) -> DType:
    try:
        known = _BY_NP.get(npd)     # an np.dtype (every tensor's dtype property): one lookup
    except TypeError:               # an unhashable dtype description
        known = None
    if known is not None:
        return known
    npd = np.dtype(npd)
    try:
        return _BY_NP[npd]
    except KeyError:
        if npd.name == "bfloat16" and "ml_dtypes" in sys.modules:   # an ml_dtypes array
            return bfloat16 if bfloat16.np_dtype == npd else _no_equivalent(npd)
        return _no_equivalent(npd)


def _no_equivalent(npd):
    raise DTypeError(f"numpy dtype {npd} has no ember equivalent")


def as_dtype(d) -> DType:
    """Accept an ember DType, a name ('float32', 'f32'), a numpy dtype or a Python type."""
    if isinstance(d, DType):
        return d
    if d is float:
        return DEFAULTS.float_dtype
    if d is int:
        return int64
    if d is bool:
        return bool_
    if d is complex:
        return DEFAULTS.float_dtype.to_complex()
    if isinstance(d, str):
        return dtype_from_name(d)
    return from_numpy_dtype(d)


def get_default_dtype() -> DType:
    return DEFAULTS.float_dtype


def set_default_dtype(d) -> None:
    d = as_dtype(d)
    if d not in (float32, float64, float16, bfloat16):
        raise DTypeError(f"set_default_dtype: only floating dtypes are allowed, got {d}")
    DEFAULTS.float_dtype = d


# --- promotion ---------------------------------------------------------------

# PyTorch's promotion lattice among same-category types, plus the cross pairs that
# do not follow "bigger itemsize wins" (uint8 + int8 -> int16, f16 + bf16 -> f32).
def _promote_pair(a: DType, b: DType) -> DType:
    if a is b:
        return a
    if a.is_quantized or b.is_quantized:
        raise DTypeError(f"promote_types: no promotion with quantized dtypes ({a}, {b}); "
                         f"dequantize() first")
    if a in FLOAT8_DTYPES or b in FLOAT8_DTYPES:
        raise DTypeError(f"Promotion for Float8 Types is not supported, attempted to promote "
                         f"{a.scalar_type_name} and {b.scalar_type_name}")
    if a.category != b.category:
        hi, lo = (a, b) if a.category > b.category else (b, a)
        if hi.category == Category.COMPLEX and lo in (float64,):
            return complex128
        return hi
    if a.category == Category.INT:
        if a in BAREBONES_UINT_DTYPES or b in BAREBONES_UINT_DTYPES:
            raise DTypeError(f"Promotion for uint16, uint32, uint64 types is not supported, "
                             f"attempted to promote {a.scalar_type_name} and "
                             f"{b.scalar_type_name}")
        if {a, b} == {uint8, int8}:
            return int16
        if uint8 in (a, b):
            return b if a is uint8 else a
        return a if a.itemsize >= b.itemsize else b
    if a.category == Category.FLOAT:
        if {a, b} == {float16, bfloat16}:
            return float32
        return a if a.itemsize >= b.itemsize else b
    return a if a.itemsize >= b.itemsize else b


def promote_types(a, b) -> DType:
    """torch.promote_types."""
    return _promote_pair(as_dtype(a), as_dtype(b))


def scalar_category(value) -> Category:
    if isinstance(value, (bool, np.bool_)):
        return Category.BOOL
    if isinstance(value, (int, np.integer)):
        return Category.INT
    if isinstance(value, (float, np.floating)):
        return Category.FLOAT
    if isinstance(value, (complex, np.complexfloating)):
        return Category.COMPLEX
    raise DTypeError(f"not a scalar: {value!r} ({type(value).__name__})")


def scalar_default_dtype(value) -> DType:
    """The dtype a Python scalar gets on its own: ember.tensor(2.5).dtype."""
    cat = scalar_category(value)
    return {Category.BOOL: bool_, Category.INT: int64,
            Category.FLOAT: DEFAULTS.float_dtype,
            Category.COMPLEX: DEFAULTS.float_dtype.to_complex()}[cat]


def result_type(operands) -> DType:
    """PyTorch's result_type over a mix of (dtype, ndim) pairs and Python scalars.

    `operands` items are either `(DType, ndim)` for tensors or a Python scalar.
    Three tiers: dimensioned tensors, 0-d tensors, scalars. A lower tier only
    matters when its category is higher than every higher tier's.
    """
    dim_t, zero_t, scal = None, None, None
    for op in operands:
        if isinstance(op, tuple):
            dt, ndim = op
            if ndim > 0:
                dim_t = dt if dim_t is None else _promote_pair(dim_t, dt)
            else:
                zero_t = dt if zero_t is None else _promote_pair(zero_t, dt)
        else:
            dt = scalar_default_dtype(op)
            scal = dt if scal is None else _promote_pair(scal, dt)
    result = None
    for tier in (dim_t, zero_t, scal):
        if tier is None:
            continue
        if result is None:
            result = tier
        elif tier.category > result.category:
            result = _combine_up(result, tier)
    if result is None:
        raise DTypeError("result_type needs at least one operand")
    return result


def _combine_up(result: DType, lower_tier: DType) -> DType:
    """A lower tier of higher category wins the category; float -> complex keeps the
    float's width (float64 tensor + 1j -> complex128)."""
    if lower_tier.category == Category.COMPLEX and result.category == Category.FLOAT:
        return _promote_pair(result.to_complex(), lower_tier) if result is float64 \
            else result.to_complex()
    return lower_tier


def can_cast(from_: DType, to: DType) -> bool:
    """torch.can_cast: no downcast across categories (float -> int, complex -> float)."""
    return from_.category <= to.category
