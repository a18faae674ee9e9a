"""Shared by tests/frontend/test_torch_suite_*.py: run the same code with torch (the
oracle) and ember and compare what a user's program can see: values, dtypes, shapes,
strides, view-ness, warnings, and for errors their kind and the key words of the
message."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import ember


def describe(v):
    """What a program sees of a result, without the library's own types."""
    if isinstance(v, (torch.Tensor, ember.Tensor)):
        return ("tensor", str(v.dtype).split(".")[-1], tuple(v.shape), tuple(v.stride()),
                describe(v.detach().cpu().tolist()))
    if isinstance(v, (torch.dtype, ember.dtype)):
        return ("dtype", str(v).split(".")[-1])
    if isinstance(v, np.ndarray):
        return ("ndarray", str(v.dtype), v.tolist())
    if isinstance(v, (torch.Size, ember.Size)):
        return ("Size", tuple(v))
    if isinstance(v, (list, tuple)):
        return type(v).__name__, [describe(x) for x in v]
    if isinstance(v, dict):
        return {k: describe(x) for k, x in v.items()}
    if isinstance(v, float):
        return "nan" if math.isnan(v) else float(f"{v:.6g}")
    if isinstance(v, complex):
        return complex(float(f"{v.real:.6g}"), float(f"{v.imag:.6g}"))
    if isinstance(v, str):
        return v.replace("torch", "LIB").replace("ember", "LIB")
    return v


def run_recording(fn, lib):
    """fn(lib)'s result and the messages of the warnings it gave (deprecations only where
    they name a library)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(lib)
    return result, [str(w.message) for w in caught
                    if not issubclass(w.category, DeprecationWarning)
                    or "ember" in str(w.message) or "torch" in str(w.message)]


IGNORE = "ignore"


def both(fn, warns=None):
    """fn(lib) for torch and ember: the same description of the result. warns: a key
    phrase both must warn with (None: ember warns iff torch does; IGNORE: warnings not
    compared, for torch's warn-once warnings that an earlier test may have used up)."""
    t, t_warn = run_recording(fn, torch)
    e, e_warn = run_recording(fn, ember)
    assert describe(e) == describe(t), f"torch {t!r}\nember {e!r}"
    if warns is IGNORE:
        pass
    elif warns is not None:
        for lib, caught in (("torch", t_warn), ("ember", e_warn)):
            assert any(warns in w for w in caught), f"{lib} did not warn {warns!r}: {caught}"
    else:
        assert bool(e_warn) == bool(t_warn), f"torch warned {t_warn}, ember {e_warn}"
    return t, e


def raises_both(fn, *words, kind=RuntimeError):
    """fn raises for both libraries: torch's error kind (ember's errors subclass the
    builtins torch raises) and the message's key words. Returns (torch's, ember's)
    exceptions."""
    raised = []
    for lib in (torch, ember):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(kind) as info:
                fn(lib)
        msg = str(info.value)
        for w in words:
            assert w in msg, f"{lib.__name__}: {w!r} not in {msg!r}"
        raised.append(info.value)
    return tuple(raised)


LIBS = pytest.mark.parametrize("lib", [torch, ember], ids=["torch", "ember"])
