"""isclose: elementwise |self - other| <= atol + rtol * |other| (torch.isclose).

PyTorch's rules: both tensors must have the same dtype ("Float did not match
Long"); rtol and atol must be non-negative; shapes broadcast; the result is bool.
Equal values are close (so inf == inf is, -inf vs inf is not); NaNs are close to
each other only with equal_nan=True; bool tensors compare by equality. Floats are
compared in their own precision (half types in float32, as every eager kernel).
`ember.allclose` and `ember.equal` (frontend/comparison.py) are built on it.
"""
from __future__ import annotations

import numpy as np

from ..errors import DTypeError, EmberError
from ..meta import TensorMeta
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from ..dtypes import bool_
from . import samples as S
from .rules import broadcast_shapes, device_of, shape_of


class ClosenessError(EmberError, ValueError, RuntimeError):
    """A negative tolerance."""


def _isclose_meta(self, other, rtol, atol, equal_nan) -> TensorMeta:
    if self.dtype is not other.dtype:
        raise DTypeError(f"{self.dtype.scalar_type_name} did not match "
                         f"{other.dtype.scalar_type_name}")
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value < 0:
            raise ClosenessError(f"{name} must be greater than or equal to zero, "
                                 f"but got {value:g}")
    shape = broadcast_shapes(shape_of(self), shape_of(other))
    return TensorMeta(shape, bool_, device_of([self, other]))


def _isclose_reference(a, b, rtol, atol, equal_nan):
    if a.dtype == np.bool_:
        return np.equal(a, b)
    if a.dtype.itemsize == 2 and a.dtype.kind == "f" or a.dtype.name == "bfloat16":
        a, b = a.astype(np.float32), b.astype(np.float32)
    with np.errstate(all="ignore"):      # inf - inf is nan: not close, no warning
        close = a == b
        if a.dtype.kind in "fc":
            distance = np.abs(a - b)
            close |= np.isfinite(distance) & (distance <= atol + rtol * np.abs(b))
        else:                           # integers: exact differences, in float64
            distance = np.abs(a.astype(np.float64) - b.astype(np.float64))
            close |= distance <= atol + rtol * np.abs(b.astype(np.float64))
    if equal_nan and a.dtype.kind in "fc":
        close |= np.isnan(a) & np.isnan(b)
    return close


def _isclose_samples(rng):
    def near(a):
        """a copy of `a` with entries equal, slightly off, far off, nan and inf."""
        b = a.copy().reshape(-1)
        flat = a.reshape(-1)
        for i in range(b.size):
            b[i] = flat[i] + [0.0, 1e-9, 1e-3, 1.0][i % 4]
        return b.reshape(a.shape).astype(a.dtype)
    x = S.randn(rng, 3, 4)
    specials = np.array([np.nan, np.inf, -np.inf, 1.0, np.nan], np.float32)
    return [
        S.Sample((x, near(x))),
        S.Sample((x, near(x)[0])),                                   # broadcasting
        S.Sample((x, near(x)), {"rtol": 1e-2, "atol": 0.0}),
        S.Sample((specials, np.array([np.nan, np.inf, np.inf, np.nan, 1.0], np.float32))),
        S.Sample((specials, specials.copy()), {"equal_nan": True}),
        S.Sample((S.randn(rng, 5, dtype=np.float64), S.randn(rng, 5, dtype=np.float64))),
        S.Sample((S.int_array(rng, 6), S.int_array(rng, 6)), {"rtol": 0.5, "atol": 1.0}),
        S.Sample((S.bool_array(rng, 2, 3), S.bool_array(rng, 2, 3))),
        S.Sample((np.array(1.0, np.float32), np.array(1.0 + 1e-6, np.float32))),
    ]


isclose = defop(
    "isclose(Tensor self, Tensor other, float rtol=1e-05, float atol=1e-08, "
    "bool equal_nan=False) -> Tensor",
    meta=_isclose_meta, reference=_isclose_reference, derivative=NOT_DIFFERENTIABLE,
    tags={Tag.POINTWISE}, samples=_isclose_samples, torch_ref="torch.isclose", method=True,
    doc="isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False) -> Tensor: "
        "elementwise |input - other| <= atol + rtol * |other| (see torch.isclose).")
