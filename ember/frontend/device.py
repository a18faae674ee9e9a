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

    # `with ember.device("cuda"):` makes it the default device of factories inside the block
    def __enter__(self):
        _DEFAULT_STACK.append(get_default_device())
        set_default_device(self)
        return self

    def __exit__(self, *exc):
        set_default_device(_DEFAULT_STACK.pop())
        return False


_DEFAULT = [None]          # None: factories make CPU tensors
_DEFAULT_STACK: list = []


def set_default_device(spec) -> None:
    """ember.set_default_device('cuda'): factories called without device= create tensors
    there (PyTorch's torch.set_default_device); None or 'cpu' restores the CPU."""
    _DEFAULT[0] = None if spec is None or device(spec).type == "cpu" else device(spec)


def get_default_device() -> device:
    return _DEFAULT[0] or device("cpu")


def default_device_or(spec):
    """A factory's device: the one given, else the default set by set_default_device."""
    return spec if spec is not None else _DEFAULT[0]
