"""ember._dynamo.utils: is_compile_supported, as torch._dynamo.utils has it."""
from __future__ import annotations

#: the device types ember.compile generates code for
_COMPILED_DEVICE_TYPES = ("cpu", "cuda")


def is_compile_supported(device_type) -> bool:
    """True where ember.compile can compile for `device_type` ('cpu', 'cuda', ...)."""
    return str(device_type) in _COMPILED_DEVICE_TYPES
