"""Public names for what ember implements in internal modules.

Users write `ember.nn.functional.relu`, never `ember.frontend.nn.functional.relu`;
what they see should say the same. At import, `ember/__init__.py` calls:

- `publish_functions(module, public)`: each function the public module exports that
  was defined in an internal module gets `__module__ = public` (torch's functions
  do the same: `torch.nn.functional.relu.__module__`). Printed IR, generated fx
  code, reprs and pickles then name it `ember.nn.functional.relu` (pickle finds it
  there, since the public module exports it under that name).
- `name_missing_attributes(module, public)`: `ember.nn.functional.foo` raises
  "module 'ember.nn.functional' has no attribute 'foo'" although the module object
  is ember.frontend.nn.functional.
"""
from __future__ import annotations

import types

INTERNAL_PREFIXES = ("ember.frontend", "ember.ir")


def publish_functions(module: types.ModuleType, public: str) -> None:
    for name, value in vars(module).items():
        if isinstance(value, types.FunctionType) and value.__name__ == name and \
                not name.startswith("_") and \
                getattr(value, "__module__", "").startswith(INTERNAL_PREFIXES):
            value.__module__ = public


def name_missing_attributes(module: types.ModuleType, public: str) -> None:
    """A module-level __getattr__ whose AttributeError names `public` (an existing
    __getattr__, e.g. a lazy loader, is asked first)."""
    previous = vars(module).get("__getattr__")

    def __getattr__(name: str):
        if previous is not None:
            try:
                return previous(name)
            except AttributeError:
                pass
        raise AttributeError(f"module '{public}' has no attribute '{name}'")

    module.__getattr__ = __getattr__
