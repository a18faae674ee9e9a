"""ember.ir: the graph IR (Graph, Node, OpKind), its textual form and its checks.

Everything here is exported lazily (module `__getattr__`): the runtime imports
`ember.ir` to read saved graphs and must load without lark (the parser) or
networkx (analyses). Only touching `ember.ir.parse`, `graphs_equal` or
`to_networkx` imports those libraries.
"""
from __future__ import annotations

import importlib

# public name -> (submodule, attribute)
_EXPORTS = {
    "Graph": ("graph", "Graph"),
    "Node": ("graph", "Node"),
    "OpKind": ("graph", "OpKind"),
    "map_arg": ("graph", "map_arg"),
    "print_graph": ("printer", "print_graph"),
    "parse": ("parser", "parse"),
    "graphs_equal": ("parser", "graphs_equal"),
    "verify": ("verifier", "verify"),
    "to_networkx": ("analysis", "to_networkx"),
    "GraphDrawer": ("drawer", "GraphDrawer"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    entry = _EXPORTS.get(name)
    if entry is None:
        raise AttributeError(f"module 'ember.ir' has no attribute {name!r}")
    module, attr = entry
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value      # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
