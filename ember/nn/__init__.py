"""`import ember.nn as nn`: the user-facing name of ember.frontend.nn.

The submodules (functional, init, parameter, modules, utils) are the very same
module objects as under ember.frontend.nn, registered under ember.nn.* so that
`import ember.nn.functional as F` works.
"""
import importlib as _importlib
import sys as _sys

from ..frontend import nn as _impl
from ..frontend.nn import *  # noqa: F401,F403
from ..frontend.nn import Parameter, Buffer, Module  # noqa: F401

for _name in ("functional", "init", "parameter", "modules", "utils", "attention", "grad",
              "common_types", "_reduction"):
    try:
        _mod = _importlib.import_module(f"{_impl.__name__}.{_name}")
    except ModuleNotFoundError as _err:
        if _err.name != f"{_impl.__name__}.{_name}":
            raise
        continue
    _sys.modules[f"{__name__}.{_name}"] = _mod
    globals()[_name] = _mod

# their own submodules too (`import ember.nn.utils.parametrize as P`, `from
# ember.nn.modules.conv import Conv2d`): one module object under both names
for _full, _mod in list(_sys.modules.items()):
    if _full.startswith(_impl.__name__ + ".") and _mod is not None:
        _sys.modules.setdefault(__name__ + _full[len(_impl.__name__):], _mod)

from . import parallel  # noqa: E402,F401 - nn.parallel.DistributedDataParallel / DataParallel


def __getattr__(name: str):
    # torch.nn.quantized / intrinsic / qat (loaded on first use: they pull in the
    # quantized ops)
    if name in ("quantized", "intrinsic", "qat", "quantizable"):
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module '{__name__}' has no attribute '{name}'")
