"""ember.device: 'cpu', 'cuda[:n]', 'meta', and device types packages register
(frontend/device_backend.py)."""
from __future__ import annotations

from ..backends import registry
from ..ir.errors import DeviceError


class device:  # noqa: N801 - PyTorch's name
    __slots__ = ("type", "index")

    def __init__(self, spec, index: int | None = None):
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        text = str(spec)
        kind, _, idx = text.partition(":")
        if kind not in ("cpu", "cuda", "meta") and kind not in registry.DEVICES:
            raise DeviceError(f"Expected one of {', '.join(registry.device_types())} device "
                              f"type at start of device string: {text}")
        self.type = kind
        self.index = int(idx) if idx else index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))
