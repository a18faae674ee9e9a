"""ember.autocast: torch.autocast's context manager and decorator.

Model code wraps precision-sensitive regions in `autocast(device_type, enabled=False)`
to keep them in full precision; that is exactly ember's behaviour, so a disabled
region runs unchanged. Automatic mixed precision itself (enabled=True: ops cast to
float16/bfloat16 by an op list) is not implemented and is refused, not ignored, so
no result silently differs in precision from PyTorch's.
"""
from __future__ import annotations

import functools

_DEVICE_TYPES = ("cpu", "cuda", "meta")


class autocast:  # noqa: N801 - torch's name
    def __init__(self, device_type: str, dtype=None, enabled: bool = True,
                 cache_enabled: bool | None = None) -> None:
        if not isinstance(device_type, str):
            raise ValueError(f"Expected `device_type` of type `str`, got: "
                             f"`{type(device_type)}`")
        if device_type not in _DEVICE_TYPES:
            raise RuntimeError(f"autocast: unsupported device type '{device_type}' "
                               f"(expected one of {', '.join(_DEVICE_TYPES)})")
        if enabled:
            raise NotImplementedError(
                "autocast(enabled=True): automatic mixed precision is not supported by "
                "ember; cast the model or inputs with .to(dtype) explicitly")
        self.device, self.fast_dtype = device_type, dtype
        self._enabled, self._cache_enabled = enabled, cache_enabled

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def __call__(self, fn):
        @functools.wraps(fn)
        def disabled_region(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)
        return disabled_region


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """Always False: ember never enables automatic mixed precision."""
    return False
