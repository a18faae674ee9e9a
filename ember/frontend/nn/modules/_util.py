"""Helpers shared by the layers: fresh parameters, input-shape checks."""
from __future__ import annotations

from ....ir import dtypes
from ....ir.errors import ShapeError
from ...factories import empty
from ..parameter import Parameter


def new_param(*shape, dtype=None) -> Parameter:
    """An uninitialized Parameter; the layer's reset_parameters fills it."""
    return Parameter(empty(*shape, dtype=dtype or dtypes.get_default_dtype()))


def check_ndim(module, input, allowed: tuple[int, ...], what: str) -> None:
    if input.ndim not in allowed:
        raise ShapeError(f"{module!r}: expected {what} input, got shape {list(input.shape)}")


def check_channels(module, input, channels: int, dim: int, what: str) -> None:
    if input.ndim <= dim or input.shape[dim] != channels:
        raise ShapeError(f"{module!r}: expected input with {channels} {what} at dimension "
                         f"{dim}, got {list(input.shape)}")


def ntuple(v, n: int) -> tuple:
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n
