"""ember.torch_version: `TorchVersion`, the string type of `ember.__version__` that compares
as a version with strings and tuples (`ember.__version__ >= "0.1"`, `>= (0, 1)`), as
torch.__version__ does; a plain string compare would put "0.10" before "0.9"."""
from __future__ import annotations

import re

from .version import __version__ as internal_version

__all__ = ["TorchVersion", "__version__"]


def _release(text) -> tuple:
    """The numeric release part: "2.1.0a0+git1" -> (2, 1, 0); a tuple is taken as given."""
    if isinstance(text, tuple):
        return tuple(int(part) for part in text)
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", str(text))
    if match is None:
        raise ValueError(f"cannot compare a version with {text!r}: not a version string")
    return tuple(int(part) for part in match.group(1).split("."))


def _padded(a: tuple, b: tuple) -> tuple[tuple, tuple]:
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)), b + (0,) * (width - len(b))


class TorchVersion(str):
    """A version string comparing by release numbers ("0.10" > "0.9", "1.0" == "1")."""

    def _compare(self, other, op) -> bool:
        if not isinstance(other, (str, tuple)):
            return NotImplemented
        return op(*_padded(_release(self), _release(other)))

    def __gt__(self, other):
        return self._compare(other, tuple.__gt__)

    def __ge__(self, other):
        return self._compare(other, tuple.__ge__)

    def __lt__(self, other):
        return self._compare(other, tuple.__lt__)

    def __le__(self, other):
        return self._compare(other, tuple.__le__)

    def __eq__(self, other):
        if isinstance(other, (str, tuple)):
            try:
                return self._compare(other, tuple.__eq__)
            except ValueError:
                return str.__eq__(self, other)
        return NotImplemented

    __hash__ = str.__hash__


__version__ = TorchVersion(internal_version)
