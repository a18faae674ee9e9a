"""`import ember.fx` — re-exports ember.frontend.fx.

Also provides torch's pass locations, so code written against torch.fx finds them:
`ember.fx.passes.split_module.split_module` and
`ember.fx.passes.graph_drawer.FxGraphDrawer` (ember.fx is a module, not a
package, so these are registered as module aliases).
"""
import sys as _sys
import types as _types

from .frontend.fx import *  # noqa: F401,F403
from .frontend.fx import __all__  # noqa: F401
from .frontend.fx import split_module as _split_module_fn
from .ir import drawer as _drawer


def _alias_module(name: str, **attrs) -> _types.ModuleType:
    module = _types.ModuleType(f"{__name__}.{name}")
    module.__dict__.update(attrs)
    _sys.modules[module.__name__] = module
    return module


passes = _alias_module(
    "passes",
    split_module=_alias_module("passes.split_module", split_module=_split_module_fn),
    graph_drawer=_alias_module("passes.graph_drawer", FxGraphDrawer=_drawer.GraphDrawer))
