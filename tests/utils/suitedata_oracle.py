"""Shared by the suites ported from PyTorch's test_dataloader.py, test_serialization.py and
optim/test_lrscheduler.py: a case is PyTorch user code `case(lib)`, run once with torch
(the oracle) and once with ember; what it returns is reduced to plain Python (`plain`)
and must be equal, and its warnings and errors must match in kind and key words."""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import ember

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontend"))
from torch_suite_common import run_recording  # noqa: E402  (shared with the tensor suites)
from torch_suite_common import raises_both as raises_in_both  # noqa: E402


def plain(v):
    """What a program sees of a result, without either library's own types."""
    if isinstance(v, (torch.Tensor, ember.Tensor)):
        v = v.detach().cpu()
        values = v.float().tolist() if str(v.dtype).endswith("bfloat16") else v.tolist()
        return ("tensor", str(v.dtype).split(".")[-1], tuple(v.shape), plain(values))
    if isinstance(v, (torch.dtype, ember.dtype)):
        return ("dtype", str(v).split(".")[-1])
    if isinstance(v, (torch.Size, ember.Size)):
        return ("Size", tuple(v))
    if isinstance(v, (torch.device, ember.device)):
        return ("device", str(v))
    if isinstance(v, np.ndarray):
        return ("ndarray", str(v.dtype), plain(v.tolist()))
    if isinstance(v, tuple) and hasattr(v, "_fields"):
        return (type(v).__name__, tuple(plain(x) for x in v))
    if isinstance(v, (list, tuple)):
        return type(v).__name__, [plain(x) for x in v]
    if isinstance(v, dict):
        return type(v).__name__, {k: plain(x) for k, x in v.items()}
    if isinstance(v, float):
        return "nan" if math.isnan(v) else float(f"{v:.9g}")
    if isinstance(v, complex):
        return complex(float(f"{v.real:.9g}"), float(f"{v.imag:.9g}"))
    if isinstance(v, str):
        return v.replace("torch", "LIB").replace("ember", "LIB")
    return v


def both(fn, warns=None, check_warnings=True):
    """fn(lib) for torch and ember: equal plain() results. warns: a key phrase both must
    warn with; otherwise ember must warn exactly when torch does."""
    t, t_warn = run_recording(fn, torch)
    e, e_warn = run_recording(fn, ember)
    assert plain(e) == plain(t), f"\ntorch {plain(t)!r}\nember {plain(e)!r}"
    if warns is not None:
        for lib, caught in (("torch", t_warn), ("ember", e_warn)):
            assert any(warns in w for w in caught), f"{lib} did not warn {warns!r}: {caught}"
    elif check_warnings:
        assert bool(e_warn) == bool(t_warn), f"torch warned {t_warn}, ember {e_warn}"
    return t, e


def raises_both(fn, *words, kind=Exception):
    """fn(lib) raises for both libraries: the same exception kind (the most derived
    builtin base both share with `kind`) and messages holding each key word."""
    torch_error, ember_error = raises_in_both(fn, *words, kind=kind)
    torch_builtin = next(b for b in type(torch_error).__mro__ if b.__module__ == "builtins")
    assert isinstance(ember_error, torch_builtin), \
        f"torch raised {type(torch_error).__name__}, ember {type(ember_error).__name__}"

