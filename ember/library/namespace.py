"""`ember.ops.mylib.my_op`: registry ops by namespace, as torch.ops.mylib.my_op."""
from __future__ import annotations

from ..ir.registry import OPS


class _Namespace:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, op_name: str):
        if op_name.startswith("__"):
            raise AttributeError(op_name)
        op = OPS.get(f"{self._name}::{op_name}")
        if op is None:
            raise AttributeError(f"'_OpNamespace' '{self._name}' object has no attribute "
                                 f"'{op_name}'")
        return op


class _Ops:
    def __getattr__(self, namespace: str) -> _Namespace:
        if namespace.startswith("__"):
            raise AttributeError(namespace)
        return _Namespace(namespace)


ops = _Ops()
