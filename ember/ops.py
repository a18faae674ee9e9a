"""ember.ops: torch.ops's namespaces over ember's op registry.

Graph-transform authors reach ATen ops by name (`torch.ops.aten.add.Tensor`,
`torch.ops.aten.convolution.default`). ember's registry ops carry ATen's names, so
`ember.ops.aten.<name>` is the registry op of that name; `.default` and the other
overload names torch uses (`.Tensor`, `.Scalar`, `.int`, ...) return the same op, whose
schema already takes every overload's arguments.

    >>> import ember
    >>> ember.ops.aten.relu.default(ember.tensor([-1.0, 2.0]))
    tensor([0., 2.])
"""
from __future__ import annotations

import sys

from .ir.registry import OPS


class OpOverloadPacket:
    """One registry op under torch.ops's name; any overload attribute is the op itself."""

    def __init__(self, op):
        self.op = op
        self.__name__ = op.name

    def __call__(self, *args, **kwargs):
        return self.op(*args, **kwargs)

    def __getattr__(self, overload: str):
        if overload.startswith("__"):
            raise AttributeError(overload)
        return self.op

    def overloads(self) -> list[str]:
        return ["default"]

    def __repr__(self) -> str:
        return f"ember.ops.aten.{self.op.name}"


class _Namespace:
    """`ember.ops.<namespace>`: registry ops by name (aten: ember's own ops)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, name: str) -> OpOverloadPacket:
        if name.startswith("__"):
            raise AttributeError(name)
        key = name if self._name == "aten" else f"{self._name}::{name}"
        op = OPS.get(key)
        if op is None:
            raise AttributeError(f"ember.ops.{self._name} has no op named {name!r}")
        # a custom op (ember.library) is its registry entry itself; OpDef.default is itself
        return OpOverloadPacket(op) if self._name == "aten" else op


aten = _Namespace("aten")


class _HigherOrder:
    """`ember.ops.higher_order`: torch.ops.higher_order's control flow (`cond`, `map`,
    `while_loop`: ember._higher_order_ops)."""

    def __getattr__(self, name: str):
        import importlib
        module = importlib.import_module("ember._higher_order_ops")
        if name.startswith("__") or name not in module.__all__:
            raise AttributeError(f"ember.ops.higher_order has no op named {name!r}")
        return getattr(module, name)


higher_order = _HigherOrder()


def __getattr__(namespace: str) -> _Namespace:
    if namespace.startswith("__"):
        raise AttributeError(namespace)
    return _Namespace(namespace)


ops_namespace = sys.modules[__name__]


def load_library(path) -> None:
    """torch.ops.load_library: loads a shared library of compiled custom ops.

    PyTorch C++ extensions (a package's `_C.so`, ...) are built against libtorch's ABI and
    register their kernels with PyTorch's dispatcher, which ember does not have, so none can
    be loaded. The OSError is the one torch raises for a library that fails to load, which
    packages with optional extensions (torchvision, torchaudio) catch to run without them.
    """
    raise OSError(f"Could not load this library: {path}. ember cannot load PyTorch C++ "
                  f"extension libraries; register custom ops with ember.library.custom_op")
