"""ember.autocast: torch.autocast's context manager and decorator (automatic mixed precision).

Inside `with ember.autocast("cuda"):` (or "cpu"), ops run in the dtypes PyTorch's autocast
picks: GEMMs and convolutions in float16/bfloat16, losses and precision-sensitive ops in
float32, mixed inputs of cat/stack promoted. The policy tables and the argument rewrite
live in ir/autocast.py (dispatch applies them to every op call, eager or traced); this
module owns the user API and the state PyTorch exposes: `is_autocast_enabled`,
`get_autocast_dtype`, `set_autocast_enabled`, `set_autocast_dtype`,
`is_autocast_cache_enabled`, `set_autocast_cache_enabled`, `clear_autocast_cache`.

A region with enabled=False turns autocast off inside an enabled one, as in PyTorch;
model code uses it to keep precision-sensitive parts in float32.
"""
from __future__ import annotations

import functools
import warnings

from ..ir import autocast as _state
from ..ir import dtypes

_DEVICE_TYPES = ("cpu", "cuda", "meta")
_SUPPORTED = {"cpu": (dtypes.bfloat16, dtypes.float16),
              "cuda": (dtypes.float16, dtypes.bfloat16)}


def _dtype_list(device_type: str) -> str:
    return ", ".join(f"torch.{d.name}" for d in _SUPPORTED[device_type])


class autocast:  # noqa: N801 - torch's name
    """`autocast(device_type, dtype=None, enabled=True, cache_enabled=None)`."""

    def __init__(self, device_type: str, dtype=None, enabled: bool = True,
                 cache_enabled: bool | None = None) -> None:
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: "
                             f"`{type(device_type)}`")
        if device_type not in _DEVICE_TYPES:
            raise RuntimeError(f"autocast: unsupported device type '{device_type}' "
                               f"(expected one of {', '.join(_DEVICE_TYPES)})")
        self.device = device_type
        self.fast_dtype = get_autocast_dtype(device_type) if dtype is None else dtype
        self._cache_enabled = (_state.is_cache_enabled() if cache_enabled is None
                               else bool(cache_enabled))
        self._enabled = bool(enabled) and self._check_supported()

    def _check_supported(self) -> bool:
        """False (with PyTorch's warning) where this device cannot autocast to fast_dtype."""
        if self.device == "meta":
            raise RuntimeError("autocast: device type 'meta' supports only enabled=False")
        if self.device == "cuda":
            from . import cuda
            if not cuda.is_available():
                warnings.warn("CUDA is not available. Disabling autocast.", stacklevel=3)
                return False
        if self.fast_dtype not in _SUPPORTED[self.device]:
            kind = self.device.upper()
            warnings.warn(f"In {kind} autocast, but the target dtype is not supported. "
                          f"Disabling autocast.\n{kind} Autocast only supports dtype of "
                          f"{_dtype_list(self.device)} currently.", stacklevel=3)
            return False
        return True

    def __enter__(self):
        device = self.device
        self._saved = (_state.is_enabled(device), _state.get_dtype(device),
                       _state.is_cache_enabled())
        _state.set_enabled(device, self._enabled)
        _state.set_dtype(device, self.fast_dtype)
        _state.set_cache_enabled(self._cache_enabled)
        _state.increment_nesting()
        return self

    def __exit__(self, *exc_info) -> None:
        if _state.decrement_nesting() == 0:
            _state.clear_cache()
        enabled, dtype, cache_enabled = self._saved
        _state.set_enabled(self.device, enabled)
        _state.set_dtype(self.device, dtype)
        _state.set_cache_enabled(cache_enabled)
        return None

    def __call__(self, fn):
        @functools.wraps(fn)
        def autocast_region(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self._enabled, self._cache_enabled):
                return fn(*args, **kwargs)
        return autocast_region


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """Whether autocast is on for `device_type` (PyTorch: 'cuda' when not given)."""
    return _state.is_enabled("cuda" if device_type is None else device_type)


def set_autocast_enabled(device_type: str, enabled: bool) -> None:
    _state.set_enabled(device_type, enabled)


def get_autocast_dtype(device_type: str):
    return _state.get_dtype(device_type)


def set_autocast_dtype(device_type: str, dtype) -> None:
    _state.set_dtype(device_type, dtype)


def is_autocast_cache_enabled() -> bool:
    return _state.is_cache_enabled()


def set_autocast_cache_enabled(enabled: bool) -> None:
    _state.set_cache_enabled(enabled)


def clear_autocast_cache() -> None:
    _state.clear_cache()
