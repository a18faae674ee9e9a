"""torch.version: ember's version; `cuda` is the CUDA driver version the CUDA runtime found
(None without a GPU), as code reading torch.version.cuda expects."""
from __future__ import annotations

__version__ = "0.1.0"
git_version = "unknown"
debug = False
hip = None


def _cuda_version():
    try:
        from .frontend import cuda
        if not cuda.is_available():
            return None
        from .runtime.cuda import driver
        major, minor = divmod(int(driver.call("cuDriverGetVersion")), 1000)
        return f"{major}.{minor // 10}"
    except (ImportError, OSError, RuntimeError):   # no bindings or no GPU: code checks None
        return None


cuda = _cuda_version()
