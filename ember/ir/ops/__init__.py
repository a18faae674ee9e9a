"""All op families. Importing this package registers every op in `registry.OPS`.

`OPS_NS` gives attribute access by Python name (`OPS_NS.sum(x, [0])`), which is
how shared code (autodiff, decompositions) calls ops without import cycles.
"""
from __future__ import annotations

import importlib
import types

from ..registry import OPS

import pkgutil

# Every module in this package is an op family, except the shared helpers.
HELPERS = {"rules", "samples", "linalg_common"}
FAMILIES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__)
                        if m.name not in HELPERS))

for _family in FAMILIES:
    importlib.import_module(f"{__name__}.{_family}")


def _namespace() -> types.SimpleNamespace:
    ns = types.SimpleNamespace()
    for op in OPS.values():
        if op.namespace == "":
            setattr(ns, op.python_name, op)
    return ns


OPS_NS = _namespace()
