"""torch.autograd.detect_anomaly / set_detect_anomaly: while on, every backward function's
results are checked, and the first NaN raises naming the function that produced it (PyTorch's
message), instead of surfacing steps later as a NaN loss."""
from __future__ import annotations

import os
import traceback
import warnings

import numpy as np

from ...ir.errors import AutogradError

_STATE = {"enabled": False, "check_nan": True}
# frames under the package are ember's own, left out of forward traces
_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep


def is_anomaly_enabled() -> bool:
    return _STATE["enabled"]


def is_anomaly_check_nan_enabled() -> bool:
    return _STATE["enabled"] and _STATE["check_nan"]


class set_detect_anomaly:  # noqa: N801 - PyTorch's name; a context manager or a plain call
    def __init__(self, mode: bool, check_nan: bool = True):
        self.previous = dict(_STATE)
        _STATE.update(enabled=bool(mode), check_nan=bool(check_nan))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _STATE.update(self.previous)
        return False


class detect_anomaly:  # noqa: N801 - PyTorch's name; a context manager or a decorator
    def __init__(self, check_nan: bool = True):
        self.check_nan = check_nan
        self.previous = None

    def __enter__(self):
        self.previous = dict(_STATE)
        _STATE.update(enabled=True, check_nan=self.check_nan)
        return self

    def __exit__(self, *exc):
        _STATE.update(self.previous)
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with detect_anomaly(self.check_nan):
                return fn(*args, **kwargs)
        return wrapped


def check_results(node, results) -> None:
    """Called by the engine after each backward function while anomaly mode checks NaNs."""
    for i, g in enumerate(results):
        array = getattr(g, "_array", None)
        if array is not None and array.dtype.kind in "fc" and np.isnan(array).any():
            raise AutogradError(f"Function '{node.name}' returned nan values in its {i}th "
                                f"output.")


def forward_trace() -> str:
    """The user's stack where a backward node is made (anomaly mode only): printed when
    that node's backward fails, to name the forward line at fault."""
    frames = [f for f in traceback.extract_stack() if not f.filename.startswith(_PACKAGE)]
    return "".join(traceback.format_list(frames))


def apply_reporting(node, grads):
    """node.apply(grads), NaN-checked when asked; a failure warns with the forward call's
    traceback ("Error detected in MulBackward0..."), as PyTorch's anomaly mode."""
    try:
        results = node.apply(grads)
        if is_anomaly_check_nan_enabled():
            check_results(node, results)
        return results
    except Exception:
        trace = node.__dict__.get("forward_trace")
        if trace is not None:
            warnings.warn(f"Error detected in {node.name}. Traceback of forward call that "
                          f"caused the error:\n{trace}", UserWarning, stacklevel=2)
        raise
