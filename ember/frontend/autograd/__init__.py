"""ember.autograd: backward, grad, grad modes, custom Functions, functional
(jacobian/hessian/...), forward_ad (dual tensors), gradcheck/gradgradcheck."""
from .engine import backward, grad, Node
from .function import Function, FunctionCtx, once_differentiable
from .grad_mode import (no_grad, enable_grad, set_grad_enabled, inference_mode,
                        is_grad_enabled, is_inference_mode_enabled)

__all__ = ["backward", "grad", "Node", "Function", "FunctionCtx", "once_differentiable",
           "no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_grad_enabled", "is_inference_mode_enabled"]

from . import functional, forward_ad  # noqa: E402  (they need engine and grad_mode)
from .gradcheck import gradcheck, gradgradcheck, GradcheckError  # noqa: E402
from .variable import Variable  # noqa: E402
from . import graph, profiler  # noqa: E402

from .anomaly import (detect_anomaly, set_detect_anomaly, is_anomaly_enabled,  # noqa: E402
                      is_anomaly_check_nan_enabled)

__all__ += ["functional", "forward_ad", "gradcheck", "gradgradcheck", "GradcheckError",
            "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled",
            "is_anomaly_check_nan_enabled", "Variable", "graph", "profiler"]

# `ember.autograd` is this package: register it (and its public submodules) under that
# name too, so `import ember.autograd.functional as F` works as torch's spelling does and
# never loads a second copy of a submodule.
import sys as _sys  # noqa: E402
_sys.modules.setdefault("ember.autograd", _sys.modules[__name__])
import importlib as _importlib  # noqa: E402
for _name in ("functional", "forward_ad", "gradcheck", "function", "variable", "graph",
              "profiler", "grad_mode", "anomaly"):   # anomaly: torch's anomaly_mode below
    _sys.modules.setdefault(f"ember.autograd.{_name}",
                            _importlib.import_module(f"{__name__}.{_name}"))
_sys.modules.setdefault("ember.autograd.anomaly_mode", _sys.modules[f"{__name__}.anomaly"])
