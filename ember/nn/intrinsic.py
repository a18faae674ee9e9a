"""ember.nn.intrinsic: torch.nn.intrinsic, the older name of ember.ao.nn.intrinsic."""
import importlib as _importlib
import sys as _sys

from ..ao.nn.intrinsic import *  # noqa: F401,F403

# the subpackages under both names (`import ember.nn.intrinsic.qat as nniqat`)
for _sub in ("qat", "quantized", "quantized.dynamic"):
    _mod = _importlib.import_module(f"ember.ao.nn.intrinsic.{_sub}")
    _sys.modules[f"{__name__}.{_sub}"] = _mod
    if "." not in _sub:
        globals()[_sub] = _mod
